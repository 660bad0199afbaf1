"""A retried intent is bounded by its age even when it carries no timestamp (engine, fakes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.clock import FixedClock
from backend.execution.context_reader import FactSources
from backend.execution.engine import ExecutionEngine, OrderIntent
from backend.execution.errors import BrokerUnavailable
from backend.execution.kill_switch import KillSwitchReading
from backend.execution.settings import Settings
from backend.execution.vocabulary import Reason, Status
from tests.support.fakes import (
    FixedPrices,
    InMemoryLedger,
    InMemoryRiskBook,
    RecordingBroker,
    StaticKillSwitch,
    tracker,
)

FIRST = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def engine_at(now: datetime, ledger: InMemoryLedger, broker: RecordingBroker) -> ExecutionEngine:
    settings = Settings(
        dry_run=False,
        agent_mode="LIVE",
        alpaca_api_key="key",
        alpaca_secret_key="secret",
        broker_account_id="acct-1",
        duplicate_wait_s=0,
        intent_max_age_s=300,
    )
    return ExecutionEngine(
        broker=broker,
        facts=FactSources(reference_prices=FixedPrices({"SPY": Decimal("400")}, at=now)),
        settings=settings,
        ledger=ledger,
        risk_book=InMemoryRiskBook(),
        kill_switches=[StaticKillSwitch(KillSwitchReading("env:X", halted=False, value="0"))],
        clock=FixedClock(now),
        agent=tracker(),
    )


def intent(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "client_intent_id": "intent-1",
        "strategy_id": "s",
        "broker_account_id": "acct-1",
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }
    return OrderIntent(**(fields | overrides))


def test_a_retry_hours_after_the_first_receipt_is_refused_as_expired_and_places_nothing() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("connect timeout", outcome_unknown=False)
    first = engine_at(FIRST, ledger, broker).execute_intent(intent())
    assert first.reason is Reason.BROKER_UNAVAILABLE and first.retryable
    broker.fail_with = None
    sent_before = len(broker.submitted)

    retry = engine_at(FIRST + timedelta(hours=3), ledger, broker).execute_intent(intent())

    assert (retry.status, retry.reason) == (Status.REJECTED, Reason.INTENT_EXPIRED)
    assert not retry.retryable
    assert len(broker.submitted) == sent_before
    age = next(c for c in retry.checks if c.name == "intent_age")
    assert age.inputs["basis"] == "first_received_at"


def test_a_prompt_retry_of_an_intent_without_timestamps_is_still_placed() -> None:
    ledger, broker = InMemoryLedger(), RecordingBroker()
    broker.fail_with = BrokerUnavailable("connect timeout", outcome_unknown=False)
    engine_at(FIRST, ledger, broker).execute_intent(intent())
    broker.fail_with = None

    retry = engine_at(FIRST + timedelta(seconds=30), ledger, broker).execute_intent(intent())

    assert retry.status is Status.SUBMITTED
