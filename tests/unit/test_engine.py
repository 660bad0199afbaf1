"""The engine's decisions, with in-memory ports: every path from intent to outcome."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from backend.execution.adapters.dry_run_broker import DryRunBroker
from backend.execution.clock import FixedClock
from backend.execution.context_reader import FactSources
from backend.execution.decisions import ExecutionResult
from backend.execution.engine import ExecutionEngine, IntentContext, OrderIntent
from backend.execution.errors import (
    BrokerAuthFailed,
    BrokerRejected,
    BrokerUnavailable,
    ConfigurationError,
    DuplicateClientOrderId,
    LedgerUnavailable,
    RiskDataUnavailable,
)
from backend.execution.kill_switch import KillSwitchReading, parse_switch_value
from backend.execution.settings import Settings
from backend.execution.vocabulary import AgentState, CheckOutcome, Reason, Status
from tests.support.fakes import (
    FixedPrices,
    InMemoryLedger,
    InMemoryRiskBook,
    RecordingBroker,
    StaticKillSwitch,
    tracker,
)

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
OFF = KillSwitchReading("env:EXECUTION_HALTED", halted=False, value="0")


class FixedHeartbeat:
    def __init__(self, at: datetime | None) -> None:
        self.at = at

    def last_beat(self) -> datetime | None:
        return self.at


def make_engine(
    *,
    live: bool = False,
    kill: KillSwitchReading = OFF,
    broker: Any = None,
    ledger: InMemoryLedger | None = None,
    book: InMemoryRiskBook | None = None,
    heartbeat: Any = None,
    facts: FactSources | None = None,
    **overrides: Any,
) -> ExecutionEngine:
    values: dict[str, Any] = {
        "dry_run": not live,
        "agent_mode": "LIVE" if live else "DISABLED",
        "duplicate_wait_s": 0,
    }
    if live:
        values |= {
            "alpaca_api_key": "key",
            "alpaca_secret_key": "secret",
            "broker_account_id": "acct-1",
        }
    settings = Settings(**(values | overrides))
    return ExecutionEngine(
        broker=broker or (RecordingBroker() if live else DryRunBroker()),
        facts=facts or FactSources(reference_prices=FixedPrices({"SPY": Decimal("400")}, at=NOW)),
        settings=settings,
        ledger=ledger or InMemoryLedger(),
        risk_book=book or InMemoryRiskBook(),
        kill_switches=[StaticKillSwitch(kill)],
        heartbeat=heartbeat,
        clock=FixedClock(NOW),
        agent=tracker(),
    )


def intent(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "client_intent_id": "intent-1",
        "strategy_id": "momentum",
        "broker_account_id": "acct-1",
        "symbol": "SPY",
        "side": "buy",
        "qty": "5",
        "order_type": "market",
    }
    return OrderIntent(**(fields | overrides))


def check(result: Any, name: str) -> Any:
    return next(c for c in result.checks if c.name == name)


# -- gate ----------------------------------------------------------------------------------


def test_kill_switch_on_refuses_without_calling_the_broker_even_in_dry_run() -> None:
    book = InMemoryRiskBook()
    engine = make_engine(kill=parse_switch_value("file:/k", "1"), book=book)
    result = engine.execute_intent(intent())
    assert result.status is Status.REJECTED
    assert result.reason is Reason.KILL_SWITCH_ENABLED
    assert "file:/k" in check(result, "kill_switch").detail
    assert book.holds == 0


def test_an_unreadable_kill_switch_source_halts_trading_and_asks_for_a_retry() -> None:
    broker, ledger = RecordingBroker(), InMemoryLedger()
    unreadable = KillSwitchReading("file:/k", halted=True, error="file does not exist")
    engine = make_engine(live=True, broker=broker, ledger=ledger, kill=unreadable)
    result = engine.execute_intent(intent())
    assert result.reason is Reason.KILL_SWITCH_UNAVAILABLE
    assert result.retryable and result.retry_after_s
    assert "unreadable" in result.message
    assert broker.submitted == []

    engine.kill_switches = (StaticKillSwitch(OFF),)  # the source reads "off" again
    assert engine.execute_intent(intent()).status is Status.SUBMITTED  # the intent was not lost


def test_an_explicit_on_wins_over_an_unreadable_source_and_is_final() -> None:
    unreadable = KillSwitchReading("firestore:ops/kill", halted=True, error="DeadlineExceeded")
    engine = make_engine(live=True)
    engine.kill_switches = (
        StaticKillSwitch(unreadable),
        StaticKillSwitch(parse_switch_value("file:/k", "1")),
    )
    result = engine.execute_intent(intent())
    assert result.reason is Reason.KILL_SWITCH_ENABLED and not result.retryable


def test_live_routing_needs_agent_mode_live_and_refuses_before_any_risk_io() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    engine = make_engine(live=True, broker=broker, book=book, agent_mode="PAPER")
    result = engine.execute_intent(intent())
    assert result.reason is Reason.AGENT_MODE_NOT_LIVE
    assert (book.holds, broker.submitted) == (0, [])


def test_agent_mode_halted_refuses_even_dry_runs() -> None:
    result = make_engine(agent_mode="HALTED").execute_intent(intent())
    assert result.reason is Reason.AGENT_MODE_NOT_LIVE


def test_a_stale_market_data_heartbeat_degrades_the_agent_and_blocks_live_routing() -> None:
    broker = RecordingBroker()
    stale = FixedHeartbeat(NOW - timedelta(seconds=121))
    engine = make_engine(live=True, broker=broker, heartbeat=stale)
    result = engine.execute_intent(intent())
    assert result.reason is Reason.AGENT_STATE_NOT_READY
    assert check(result, "agent_state").inputs["agent_state"] == "DEGRADED"
    assert broker.submitted == []


def test_a_stale_heartbeat_refusal_is_retryable_so_the_intent_routes_once_data_is_back() -> None:
    broker, heartbeat = RecordingBroker(), FixedHeartbeat(NOW - timedelta(seconds=121))
    engine = make_engine(live=True, broker=broker, heartbeat=heartbeat)
    refused = engine.execute_intent(intent())
    assert refused.reason is Reason.AGENT_STATE_NOT_READY
    assert refused.retryable and refused.retry_after_s
    heartbeat.at = NOW - timedelta(seconds=1)
    assert engine.execute_intent(intent()).status is Status.SUBMITTED
    assert len(broker.submitted) == 1


def test_a_heartbeat_dated_in_the_future_is_not_trusted() -> None:
    broker = RecordingBroker()
    engine = make_engine(
        live=True, broker=broker, heartbeat=FixedHeartbeat(NOW + timedelta(hours=1))
    )
    result = engine.execute_intent(intent())
    assert result.reason is Reason.AGENT_STATE_NOT_READY
    assert "future" in check(result, "agent_state").detail
    assert broker.submitted == []


def test_a_fresh_heartbeat_leaves_the_agent_ready_to_route() -> None:
    fresh = FixedHeartbeat(NOW - timedelta(seconds=5))
    result = make_engine(live=True, heartbeat=fresh).execute_intent(intent())
    assert result.status is Status.SUBMITTED


def test_dry_run_does_not_require_a_ready_agent_but_records_its_state() -> None:
    result = make_engine(heartbeat=FixedHeartbeat(None)).execute_intent(intent())
    assert result.status is Status.DRY_RUN
    assert check(result, "agent_state").outcome is CheckOutcome.SKIPPED


# -- risk ----------------------------------------------------------------------------------


def test_the_daily_trade_limit_refuses_once_reached() -> None:
    book = InMemoryRiskBook(trades_today=3)
    result = make_engine(book=book, max_daily_trades=3).execute_intent(intent())
    assert result.reason is Reason.MAX_DAILY_TRADES_EXCEEDED
    assert check(result, "max_daily_trades").inputs["trades_today"] == 3


def test_the_trading_date_is_new_york_time() -> None:
    late = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)  # 22:30 on the 10th in New York
    engine = make_engine(facts=FactSources(FixedPrices({"SPY": Decimal("400")}, at=late)))
    engine.clock = FixedClock(late)
    result = engine.execute_intent(intent())
    assert str(check(result, "max_daily_trades").inputs["trading_date"]) == "2026-03-10"


def test_the_position_limit_applies_to_the_projected_position() -> None:
    book = InMemoryRiskBook({("acct-1", "SPY"): Decimal("96")})
    result = make_engine(book=book).execute_intent(intent(qty="5"))
    assert result.reason is Reason.MAX_POSITION_SIZE_EXCEEDED
    assert check(result, "max_position_size").inputs["projected_worst"] == Decimal("101")


def test_a_sell_that_reduces_a_long_position_is_allowed() -> None:
    book = InMemoryRiskBook({("acct-1", "SPY"): Decimal("100")})
    result = make_engine(book=book).execute_intent(intent(side="sell", qty="30"))
    assert result.status is Status.DRY_RUN


def test_a_sell_that_opens_too_large_a_short_is_refused() -> None:
    result = make_engine(max_order_qty=None).execute_intent(intent(side="sell", qty="100.5"))
    assert result.reason is Reason.MAX_POSITION_SIZE_EXCEEDED


def test_unreadable_risk_data_fails_closed_and_is_retryable() -> None:
    book = InMemoryRiskBook()
    book.error = RiskDataUnavailable("risk book: OperationalError")
    result = make_engine(book=book).execute_intent(intent())
    assert result.reason is Reason.RISK_DATA_UNAVAILABLE
    assert result.retryable


def test_fail_open_lets_unreadable_risk_data_pass_with_a_warning() -> None:
    book = InMemoryRiskBook()
    book.error = RiskDataUnavailable("risk book down")
    result = make_engine(book=book, risk_fail_open=True).execute_intent(intent())
    assert result.status is Status.DRY_RUN
    assert check(result, "max_daily_trades").outcome is CheckOutcome.WARNING


# -- freshness -----------------------------------------------------------------------------


def test_an_intent_older_than_the_max_age_is_refused_as_final() -> None:
    old = intent(created_at=NOW - timedelta(seconds=301))
    result = make_engine().execute_intent(old)
    assert result.reason is Reason.INTENT_EXPIRED
    assert not result.retryable


def test_without_created_at_the_pubsub_publish_time_decides_the_age() -> None:
    context = IntentContext(source="pubsub", publish_time=NOW - timedelta(seconds=400))
    result = make_engine().execute_intent(intent(), context)
    assert result.reason is Reason.INTENT_EXPIRED


def test_a_created_at_far_in_the_future_is_refused() -> None:
    result = make_engine().execute_intent(intent(created_at=NOW + timedelta(hours=1)))
    assert result.reason is Reason.INVALID_INTENT


# -- idempotency ---------------------------------------------------------------------------


def test_a_repeated_intent_gets_the_original_outcome_and_no_second_order() -> None:
    broker = RecordingBroker()
    engine = make_engine(live=True, broker=broker)
    first = engine.execute_intent(intent())
    second = engine.execute_intent(intent())
    assert first.status is Status.SUBMITTED
    assert second.status is Status.DUPLICATE
    assert second.original_status is Status.SUBMITTED
    assert second.broker_order_id == first.broker_order_id
    assert len(broker.submitted) == 1


def test_a_refused_intent_is_replayed_as_refused() -> None:
    ledger = InMemoryLedger()
    make_engine(ledger=ledger, max_daily_trades=0).execute_intent(intent())
    again = make_engine(ledger=ledger).execute_intent(intent())
    assert again.status is Status.REJECTED
    assert again.reason is Reason.MAX_DAILY_TRADES_EXCEEDED
    assert again.original_status is Status.REJECTED


def test_a_retryable_outcome_lets_the_next_delivery_decide_again() -> None:
    ledger, book = InMemoryLedger(), InMemoryRiskBook()
    book.error = RiskDataUnavailable("down")
    engine = make_engine(ledger=ledger, book=book)
    assert engine.execute_intent(intent()).reason is Reason.RISK_DATA_UNAVAILABLE
    book.error = None
    assert engine.execute_intent(intent()).status is Status.DRY_RUN


def test_a_delivery_while_another_holds_the_claim_is_told_it_is_in_progress() -> None:
    ledger = InMemoryLedger()
    ledger.claim(intent(), now=NOW, lease_s=30, source="test")
    result = make_engine(ledger=ledger).execute_intent(intent())
    assert result.reason is Reason.DUPLICATE_IN_PROGRESS
    assert result.retry_after_s == 31


def test_an_expired_claim_of_a_dead_attempt_is_taken_over_and_adopts_its_order() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    ledger.claim(intent(), now=NOW - timedelta(seconds=60), lease_s=30, source="test")
    broker.submit(intent())  # the dead attempt reached the broker before dying
    result = make_engine(live=True, ledger=ledger, broker=broker).execute_intent(intent())
    assert result.status is Status.SUBMITTED
    assert result.broker_order_id == "order-1"
    assert len(broker.submitted) == 1
    assert check(result, "earlier_attempt").outcome is CheckOutcome.PASSED


def test_the_intent_store_being_down_places_nothing() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    ledger.unavailable = LedgerUnavailable("Firestore ServiceUnavailable")
    result = make_engine(live=True, ledger=ledger, broker=broker).execute_intent(intent())
    assert result.reason is Reason.LEDGER_UNAVAILABLE
    assert result.retryable
    assert broker.submitted == []


def test_an_order_placed_but_not_recorded_is_reported_and_retryable() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    ledger.fail_record_outcome = True
    result = make_engine(live=True, ledger=ledger, broker=broker).execute_intent(intent())
    assert result.status is Status.SUBMITTED
    assert result.broker_order_id == "order-1"
    assert result.reason is Reason.LEDGER_UNAVAILABLE
    assert result.retryable


# -- broker --------------------------------------------------------------------------------


def test_a_broker_refusal_is_final() -> None:
    broker = RecordingBroker()
    broker.fail_with = BrokerRejected(
        "HTTP 403: insufficient buying power", status_code=403, code=1
    )
    result = make_engine(live=True, broker=broker).execute_intent(intent())
    assert result.reason is Reason.BROKER_REJECTED
    assert "insufficient buying power" in result.message
    assert not result.retryable


def test_refused_broker_keys_are_retryable_and_release_the_slot() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    broker.fail_with = BrokerAuthFailed("HTTP 401 while submitting the order: unauthorized.")
    engine = make_engine(live=True, broker=broker, book=book)
    result = engine.execute_intent(intent())
    assert result.reason is Reason.BROKER_AUTH_FAILED
    assert result.retryable and result.retry_after_s
    assert book.state_of("intent-1") == "released"  # nothing was placed
    broker.fail_with = None  # the keys are fixed
    assert engine.execute_intent(intent()).status is Status.SUBMITTED
    assert len(broker.orders) == 1


def test_an_unknown_broker_outcome_is_retryable_and_the_retry_adopts_instead_of_resending() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("timeout", outcome_unknown=True)
    broker.accept_then_fail = True
    engine = make_engine(live=True, ledger=ledger, broker=broker)
    first = engine.execute_intent(intent())
    assert first.reason is Reason.BROKER_UNAVAILABLE and first.retryable
    broker.fail_with = None
    second = engine.execute_intent(intent())
    assert second.status is Status.SUBMITTED
    assert second.broker_order_id == "order-1"
    assert len(broker.submitted) == 1


def test_a_duplicate_client_order_id_at_the_broker_is_adopted() -> None:
    broker = RecordingBroker()
    broker.fail_with = DuplicateClientOrderId("must be unique", status_code=422, code=40010001)
    broker.accept_then_fail = True
    result = make_engine(live=True, broker=broker).execute_intent(intent())
    assert result.status is Status.SUBMITTED
    assert result.broker_order_id == "order-1"


# -- agent errors and wiring ---------------------------------------------------------------


def test_unexpected_exceptions_on_two_different_intents_send_the_agent_to_error_with_backoff() -> (
    None
):
    book = InMemoryRiskBook()
    book.error = ZeroDivisionError()
    broker = RecordingBroker()
    engine = make_engine(live=True, book=book, broker=broker)
    assert engine.execute_intent(intent()).reason is Reason.INTERNAL_ERROR
    result = engine.execute_intent(intent(client_intent_id="intent-2"))
    assert result.reason is Reason.INTERNAL_ERROR
    assert engine.agent.state is AgentState.ERROR
    book.error = None
    blocked = engine.execute_intent(intent(client_intent_id="intent-3"))
    assert blocked.reason is Reason.AGENT_STATE_NOT_READY
    assert blocked.retryable  # ERROR is "unable to decide": the intent is not lost
    engine.clock = FixedClock(NOW + timedelta(seconds=2))
    assert engine.execute_intent(intent(client_intent_id="intent-3")).status is Status.SUBMITTED


class PoisonLedger(InMemoryLedger):
    """Fails on one intent's own data, as fingerprinting a pathological intent once did."""

    def claim(self, intent: OrderIntent, **kwargs: Any) -> Any:
        if intent.client_intent_id == "poison":
            raise RecursionError("maximum recursion depth exceeded")
        return super().claim(intent, **kwargs)


def test_one_poison_intent_redelivered_never_puts_the_agent_in_error_nor_blocks_valid_ones() -> (
    None
):
    broker = RecordingBroker()
    engine = make_engine(live=True, broker=broker, ledger=PoisonLedger())
    for _ in range(3):  # Pub/Sub redelivers it
        assert engine.execute_intent(intent(client_intent_id="poison")).reason is (
            Reason.INTERNAL_ERROR
        )
    assert engine.agent.state is not AgentState.ERROR
    valid = engine.execute_intent(intent(client_intent_id="valid-1"))
    assert valid.status is Status.SUBMITTED
    assert len(broker.submitted) == 1


def test_dry_run_with_a_real_broker_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="dry_run"):
        make_engine(broker=RecordingBroker())


# -- reservations ----------------------------------------------------------------------------


def test_a_routed_order_keeps_its_daily_slot_and_a_dry_run_takes_none() -> None:
    book = InMemoryRiskBook()
    make_engine(live=True, book=book).execute_intent(intent(client_intent_id="live-1"))
    make_engine(book=book).execute_intent(intent(client_intent_id="dry-1"))
    assert book.state_of("live-1") == "working"
    assert book.state_of("dry-1") is None


def test_a_broker_refusal_gives_the_slot_back() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    broker.fail_with = BrokerRejected("HTTP 403: no", status_code=403, code=None)
    make_engine(live=True, book=book, broker=broker).execute_intent(intent())
    assert book.state_of("intent-1") == "released"


def test_a_failure_before_the_broker_could_see_the_order_gives_the_slot_back() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("connect timeout", outcome_unknown=False)
    make_engine(live=True, book=book, broker=broker).execute_intent(intent())
    assert book.state_of("intent-1") == "released"


def test_an_unknown_outcome_keeps_the_slot_until_resolved() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("timeout", outcome_unknown=True)
    engine = make_engine(live=True, book=book, broker=broker, max_daily_trades=1)
    engine.execute_intent(intent())
    assert book.state_of("intent-1") == "reserved"
    blocked = engine.execute_intent(intent(client_intent_id="intent-2"))
    assert blocked.reason is Reason.MAX_DAILY_TRADES_EXCEEDED


def test_the_position_check_counts_orders_the_position_row_cannot_reflect_yet() -> None:
    book = InMemoryRiskBook({("acct-1", "SPY"): Decimal("90")})
    engine = make_engine(live=True, book=book)
    results = [engine.execute_intent(intent(client_intent_id=f"buy-{n}")) for n in range(3)]
    assert [r.status for r in results] == [Status.SUBMITTED, Status.SUBMITTED, Status.REJECTED]
    assert check(results[2], "max_position_size").inputs["working_buy"] == Decimal("10")


# -- safety details of idempotency -----------------------------------------------------------


def test_a_reused_intent_id_with_different_order_fields_is_refused_as_a_conflict() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    engine = make_engine(live=True, ledger=ledger, broker=broker)
    first = engine.execute_intent(intent(qty="5"))
    second = engine.execute_intent(intent(qty="50"))
    assert second.reason is Reason.IDEMPOTENCY_KEY_CONFLICT
    assert not second.retryable
    assert len(broker.submitted) == 1
    assert ledger.load("intent-1").broker_order_id == first.broker_order_id  # type: ignore[union-attr]


def test_a_conflicting_request_never_takes_over_the_original_intents_record() -> None:
    ledger, book = InMemoryLedger(), InMemoryRiskBook()
    book.error = RiskDataUnavailable("down")
    engine = make_engine(ledger=ledger, book=book)
    engine.execute_intent(intent(qty="5"))  # leaves the record retry_pending
    before = ledger.load("intent-1")
    assert engine.execute_intent(intent(qty="6")).reason is Reason.IDEMPOTENCY_KEY_CONFLICT
    assert ledger.load("intent-1") == before


def test_an_outcome_that_could_not_be_recorded_is_retryable_even_without_an_order() -> None:
    ledger = InMemoryLedger()
    ledger.fail_record_outcome = True
    result = make_engine(ledger=ledger).execute_intent(intent())
    assert result.status is Status.DRY_RUN
    assert result.reason is Reason.LEDGER_UNAVAILABLE and result.retryable


def test_an_unexpected_error_mid_attempt_leaves_the_intent_retryable_at_once() -> None:
    ledger, book = InMemoryLedger(), InMemoryRiskBook()
    book.error = ZeroDivisionError()
    engine = make_engine(ledger=ledger, book=book, error_backoff_base_s=0.001)
    assert engine.execute_intent(intent()).reason is Reason.INTERNAL_ERROR
    assert ledger.load("intent-1").status == "retry_pending"  # type: ignore[union-attr]
    book.error = None
    engine.clock = FixedClock(NOW + timedelta(seconds=1))
    assert engine.execute_intent(intent()).status is Status.DRY_RUN


class JumpingClock:
    """Time passes: each reading is ``step`` later than the one before."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.at, self.step = start, step

    def now(self) -> datetime:
        current = self.at
        self.at += self.step
        return current


def test_no_broker_call_starts_when_the_claim_could_expire_during_it() -> None:
    book, broker = InMemoryRiskBook(), RecordingBroker()
    engine = make_engine(live=True, book=book, broker=broker)
    engine.clock = JumpingClock(NOW, timedelta(seconds=20))  # the lease is 45 s
    result = engine.execute_intent(intent())
    assert result.reason is Reason.BROKER_UNAVAILABLE
    assert "expire" in result.message
    assert broker.submitted == []
    assert book.state_of("intent-1") == "released"


def test_a_duplicate_waits_briefly_and_answers_with_the_first_attempts_outcome() -> None:
    ledger = InMemoryLedger()
    claim = ledger.claim(intent(), now=NOW, lease_s=30, source="first")
    done = ExecutionResult(Status.DRY_RUN, "intent-1")

    def finish_first_attempt() -> None:
        time.sleep(0.3)
        ledger.record_outcome(intent(), claim, done, trading_day=NOW.date(), decided_at=NOW)

    finisher = threading.Thread(target=finish_first_attempt)
    finisher.start()
    result = make_engine(ledger=ledger, duplicate_wait_s=2).execute_intent(intent())
    finisher.join()
    assert result.status is Status.DUPLICATE
    assert result.original_status is Status.DRY_RUN


def test_an_adopted_order_keeps_the_checks_that_let_it_through() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("timeout", outcome_unknown=True)
    broker.accept_then_fail = True
    engine = make_engine(live=True, ledger=ledger, broker=broker)
    engine.execute_intent(intent())
    broker.fail_with = None
    adopted = engine.execute_intent(intent())
    names = [c.name for c in adopted.checks]
    assert "max_position_size" in names and names[-1] == "earlier_attempt"


def test_a_library_caller_cannot_route_live_without_a_bound_account() -> None:
    settings = Settings(dry_run=True)  # EXEC_DRY_RUN unset, overridden by the caller below
    with pytest.raises(ConfigurationError, match="EXEC_BROKER_ACCOUNT_ID"):
        ExecutionEngine(
            broker=RecordingBroker(),
            dry_run=False,
            settings=settings,
            ledger=InMemoryLedger(),
            risk_book=InMemoryRiskBook(),
            kill_switches=[StaticKillSwitch(OFF)],
            clock=FixedClock(NOW),
            agent=tracker(),
        )
