"""Orchestration: intent -> claim -> gate -> risk -> broker -> ledger.

This is the only module that sequences I/O. Every decision it makes is delegated to a pure
function (``gate``, ``risk``, ``freshness``, ``idempotency``, ``outcomes``); every read or write
goes through a port. The public library API lives here::

    from backend.execution.engine import ExecutionEngine, OrderIntent, AlpacaBroker, DryRunBroker
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from backend.execution import freshness, gate, outcomes, risk
from backend.execution.adapters.alpaca_broker import AlpacaBroker
from backend.execution.adapters.dry_run_broker import DryRunBroker
from backend.execution.adoption import order_differences
from backend.execution.agent_state import AgentInputs, AgentStateTracker
from backend.execution.broker_facts import BrokerAccount
from backend.execution.clock import Clock, SystemClock, trading_date
from backend.execution.context_reader import (
    FactSources,
    book_context,
    read_order_context,
    reduce_only_source,
)
from backend.execution.controls.book_rules import trips_latch
from backend.execution.controls.context import ControlContext, Fact, OrderContext, Stage
from backend.execution.controls.table import CONTROLS, facts_needed, run_stage
from backend.execution.deadline import Step, StepCosts, fits
from backend.execution.decision_log import log_decision
from backend.execution.decisions import (
    CheckResult,
    ExecutionResult,
    PreTradeDecision,
    check_from_dict,
)
from backend.execution.errors import (
    BrokerAuthFailed,
    BrokerRejected,
    BrokerUnavailable,
    ConfigurationError,
    DuplicateClientOrderId,
    LedgerUnavailable,
    TransientError,
)
from backend.execution.idempotency import Claim, ClaimVerdict
from backend.execution.intent import OrderIntent
from backend.execution.kill_switch import KillSwitchReading, kill_switch_check
from backend.execution.ports import (
    Broker,
    BrokerAccountSource,
    HeartbeatSource,
    IntentLedger,
    KillSwitchSource,
    RiskBook,
)
from backend.execution.settings import Settings
from backend.execution.settlement import Settlement, settle
from backend.execution.vocabulary import AgentState, CheckOutcome, Reason, Status

__all__ = [
    "AlpacaBroker",
    "DryRunBroker",
    "ExecutionEngine",
    "ExecutionResult",
    "IntentContext",
    "OrderIntent",
]

log = logging.getLogger(__name__)

# How often a duplicate delivery re-reads the claim while it waits for the first to finish.
DUPLICATE_POLL_S = 0.2
# Margin kept between the end of a broker call and the expiry of the claim lease.
LEASE_MARGIN_S = 1.0


@dataclass(frozen=True)
class IntentContext:
    """How the intent arrived; used for the age check and the decision record."""

    source: str = "library"  # "execute", "pubsub", "library"
    publish_time: datetime | None = None
    message_id: str | None = None
    trace: str | None = None


@dataclass
class _Attempt:
    """What one attempt did that matters after the broker call."""

    lease_until: datetime | None
    # A reservation may exist: this attempt made one, or an earlier attempt did.
    may_hold_reservation: bool
    # The broker may have the order even though we have no answer: keep the reservation.
    order_may_exist: bool = False
    # When (monotonic) the answer is due: EXEC_REQUEST_DEADLINE_S after the request arrived.
    deadline_at: float = math.inf


@dataclass(frozen=True)
class GateSnapshot:
    """What the gate saw: also served by ``GET /state``."""

    kill_switch: tuple[KillSwitchReading, ...]
    agent_state: AgentState
    agent_state_why: str
    heartbeat: datetime | None
    heartbeat_error: str | None


class ExecutionEngine:
    """Decides, and if allowed places, one order per intent. Thread-safe; build one per process."""

    def __init__(
        self,
        broker: Broker | None = None,
        broker_name: str = "alpaca",
        dry_run: bool | None = None,
        *,
        settings: Settings | None = None,
        ledger: IntentLedger | None = None,
        risk_book: RiskBook | None = None,
        kill_switches: Sequence[KillSwitchSource] | None = None,
        heartbeat: HeartbeatSource | None = None,
        clock: Clock | None = None,
        agent: AgentStateTracker | None = None,
        broker_account: BrokerAccountSource | None = None,
        facts: FactSources | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Imported here: the composition root imports this module to build engines.
        from backend.execution import bootstrap

        self.settings = settings or bootstrap.load_settings()
        self.dry_run = self.settings.dry_run if dry_run is None else dry_run
        self.broker_name = broker_name
        built = bootstrap.build_missing(
            self.settings,
            dry_run=self.dry_run,
            broker=broker,
            ledger=ledger,
            risk_book=risk_book,
            kill_switches=kill_switches,
            heartbeat=heartbeat,
            agent=agent,
            broker_account=broker_account,
            facts=facts,
        )
        self.broker: Broker = built.broker
        # Set when ALPACA_ACCOUNT_NUMBER asks for the keys' account to be confirmed.
        self.broker_account: BrokerAccountSource | None = built.broker_account
        # Market data, clock, calendar and restricted list for the pre-trade controls.
        self.facts: FactSources = built.facts
        self.ledger: IntentLedger = built.ledger
        self.risk_book: RiskBook = built.risk_book
        self.kill_switches: tuple[KillSwitchSource, ...] = tuple(built.kill_switches)
        self.heartbeat: HeartbeatSource | None = built.heartbeat
        self.agent: AgentStateTracker = built.agent
        self.clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self._costs = StepCosts(self.settings.broker_timeout_s, self.settings.io_timeout_s)
        self._closers = built.closers
        if not self.dry_run and self.settings.broker_account_id is None:
            # Every order goes to the one account behind the keys: without naming it, any label
            # an intent carries would get a fresh cap and a flat position.
            raise ConfigurationError(
                "live routing needs the bound account: set EXEC_BROKER_ACCOUNT_ID "
                "(or Settings(broker_account_id=...))"
            )
        if self.dry_run != self.broker.simulated:
            raise ConfigurationError(
                f"dry_run={self.dry_run} does not match broker {type(self.broker).__name__}: "
                "dry-run needs DryRunBroker, live routing a real broker"
            )

    # -- public API -------------------------------------------------------------------------

    def execute_intent(
        self, intent: OrderIntent, context: IntentContext | None = None
    ) -> ExecutionResult:
        context = context or IntentContext()
        now = self.clock.now()
        deadline_at = self._monotonic() + self.settings.request_deadline_s
        try:
            result = self._execute(intent, context, now, deadline_at)
        except Exception as exc:  # a failure around the claim or the record: nothing was sent
            result = self._unexpected(intent, exc, now)
        if result.reason is not Reason.INTERNAL_ERROR:
            self.agent.record_success()
        log_decision(
            intent,
            result,
            source=context.source,
            message_id=context.message_id,
            trace=context.trace,
            dry_run=self.dry_run,
            broker_name=self.broker_name,
        )
        return result

    def gate_snapshot(self) -> GateSnapshot:
        """Reads every gate input once and derives the agent state (no risk I/O)."""
        readings = tuple(source.read() for source in self.kill_switches)
        beat, beat_error = self._read_heartbeat()
        inputs = AgentInputs(
            kill_switch_halted=any(r.halted for r in readings),
            mode=self.settings.agent_mode,
            heartbeat_configured=self.heartbeat is not None,
            last_heartbeat=beat,
            heartbeat_error=beat_error,
            stale_threshold_s=self.settings.heartbeat_stale_s,
        )
        state, why = self.agent.observe(inputs, self.clock.now())
        return GateSnapshot(readings, state, why, beat, beat_error)

    def check_readiness(self) -> dict[str, str]:
        """Pings the stores every intent needs; 'ok' or the error, per dependency."""
        probes = {
            "firestore": lambda: self.ledger.load("_readiness_probe"),
            "postgres": getattr(self.risk_book, "ping", None),
        }
        if self.settings.alpaca_account_number and self.broker_account is not None:
            probes["broker_account"] = self._probe_broker_account
        status: dict[str, str] = {}
        for name, probe in probes.items():
            if probe is None:
                continue
            try:
                probe()
                status[name] = "ok"
            except TransientError as exc:
                status[name] = str(exc)
        return status

    def _probe_broker_account(self) -> None:
        check = self._account_checks()[0]
        if check.blocks:
            raise TransientError(check.detail)

    def close(self) -> None:
        """Releases the pools and clients the composition root opened for this engine."""
        for close in self._closers:
            close()

    # -- the pipeline -----------------------------------------------------------------------

    def _execute(
        self, intent: OrderIntent, context: IntentContext, now: datetime, deadline_at: float
    ) -> ExecutionResult:
        try:
            claim = self._claim(intent, context, now)
        except LedgerUnavailable as exc:
            return outcomes.refused(intent, Reason.LEDGER_UNAVAILABLE, f"intent store: {exc}")
        if claim.verdict is ClaimVerdict.CONFLICT:
            return outcomes.key_conflict(intent)
        if claim.verdict is ClaimVerdict.REPLAY:
            assert claim.record is not None
            return outcomes.replay(intent, claim.record)
        if claim.verdict is ClaimVerdict.IN_PROGRESS:
            return outcomes.in_progress(intent, claim.record, self.clock.now())

        attempt = _Attempt(
            claim.lease_until,
            may_hold_reservation=claim.resumes_earlier_attempt,
            deadline_at=deadline_at,
        )
        try:
            result = self._decide_and_route(intent, context, claim, now, attempt)
        except Exception as exc:
            # Where it failed is unknown, possibly inside the broker call: keep any reservation
            # and leave the outcome retryable, so the next attempt looks the order up first.
            attempt.order_may_exist = True
            result = self._unexpected(intent, exc, now)
        self._settle_reservation(intent, now, result, attempt)
        return self._record(intent, claim, result, trading_date(now))

    def _claim(self, intent: OrderIntent, context: IntentContext, now: datetime) -> Claim:
        """Claims the intent; a duplicate of an attempt in flight waits briefly for its outcome
        (or for the chance to take over if that attempt gives up) instead of answering blind."""
        lease_s = self.settings.claim_lease_s
        claim = self.ledger.claim(intent, now=now, lease_s=lease_s, source=context.source)
        deadline = time.monotonic() + self.settings.duplicate_wait_s
        while claim.verdict is ClaimVerdict.IN_PROGRESS and time.monotonic() < deadline:
            time.sleep(DUPLICATE_POLL_S)
            claim = self.ledger.claim(
                intent, now=self.clock.now(), lease_s=lease_s, source=context.source
            )
        return claim

    def _decide_and_route(
        self,
        intent: OrderIntent,
        context: IntentContext,
        claim: Claim,
        now: datetime,
        attempt: _Attempt,
    ) -> ExecutionResult:
        if claim.resumes_earlier_attempt and not self.broker.simulated:
            # An earlier attempt may have reached the broker before it died or timed out: the
            # order it placed (if any) is adopted, never placed a second time.
            earlier = claim.record.checks if claim.record else ()
            previous = PreTradeDecision(tuple(check_from_dict(c) for c in earlier))
            late = self._out_of_time(intent, attempt, Step.MARKET_DATA, previous)
            if late is not None:  # the lookup is a broker call: it must fit too
                attempt.order_may_exist = True  # not looked up: the earlier order may exist
                return late
            adopted = self._adopt_existing_order(intent, attempt, previous)
            if adopted is not None:
                return adopted

        decision = PreTradeDecision(
            (
                freshness.intent_age_check(
                    intent.created_at,
                    context.publish_time,
                    now,
                    self.settings.intent_max_age_s,
                    first_received_at=claim.record.received_at if claim.record else None,
                ),
                gate.account_binding_check(
                    intent.broker_account_id, self.settings.broker_account_id, dry_run=self.dry_run
                ),
            )
        )
        if not decision.allowed:
            return outcomes.rejected_by_checks(intent, decision)

        gate_checks, gate_seen = self._gate_checks()
        decision = decision.plus(gate_checks)
        if not decision.allowed:  # refused before any risk I/O
            return outcomes.rejected_by_checks(intent, decision)

        day = trading_date(now)
        reduce_only = reduce_only_source(
            self.settings, [r.source for r in gate_seen.kill_switch if r.reduce_only]
        )
        if Fact.REFERENCE_PRICE in facts_needed(self.settings):
            late = self._out_of_time(intent, attempt, Step.MARKET_DATA, decision)
            if late is not None:
                return late
        order_context = read_order_context(intent, now, day, self.settings, self.facts, reduce_only)
        decision = decision.plus(
            run_stage(Stage.ORDER, intent, ControlContext(order_context), self.settings)
        )
        if not decision.allowed:  # refused on the order itself: no Postgres round trip
            return outcomes.rejected_by_checks(intent, decision)

        late = self._out_of_time(intent, attempt, Step.BOOK, decision)
        if late is not None:
            return late
        decision = decision.plus(self._book_checks(intent, day, order_context, attempt))
        if not decision.allowed:
            return outcomes.rejected_by_checks(intent, decision)

        return self._route(intent, decision, attempt)

    def _gate_checks(self) -> tuple[list[CheckResult], GateSnapshot]:
        snapshot = self.gate_snapshot()
        checks = [
            kill_switch_check(snapshot.kill_switch),
            gate.agent_mode_check(self.settings.agent_mode, dry_run=self.dry_run),
            gate.agent_state_check(
                snapshot.agent_state, snapshot.agent_state_why, dry_run=self.dry_run
            ),
        ]
        if not any(check.blocks for check in checks):
            checks.extend(self._account_checks())
        return checks, snapshot

    def _account_checks(self) -> list[CheckResult]:
        expected = self.settings.alpaca_account_number
        if expected is None or self.broker_account is None:
            return []
        seen, error = self.read_broker_account()
        return [gate.broker_account_verified_check(expected, seen, error)]

    def read_broker_account(self) -> tuple[BrokerAccount | None, str | None]:
        """The keys' account (cached by the adapter), or why it could not be read."""
        if self.broker_account is None:
            return None, "not configured"
        try:
            return self.broker_account.account(), None
        except TransientError as exc:
            return None, str(exc)

    def _book_checks(
        self, intent: OrderIntent, day: date, order_context: OrderContext, attempt: _Attempt
    ) -> list[CheckResult]:
        """Runs the book's controls on one consistent snapshot; when routing for real and all
        pass, reserves the order in the same locked transaction. A tripped repeat latch is
        written in that transaction too."""
        reserve = not self.dry_run
        try:
            with self.risk_book.hold(intent, day, exclusive=reserve) as hold:
                book = book_context(day, hold.snapshot, self.settings)
                context = ControlContext(order_context, book)
                checks = run_stage(Stage.BOOK, intent, context, self.settings)
                if reserve and not any(check.blocks for check in checks):
                    attempt.may_hold_reservation = True
                    hold.reserve()
                for check in checks:
                    if trips_latch(check):
                        hold.latch(check.detail)
            return checks
        except TransientError as exc:
            return self._book_unreadable(intent, day, order_context, str(exc))

    def _book_unreadable(
        self, intent: OrderIntent, day: date, order_context: OrderContext, error: str
    ) -> list[CheckResult]:
        """Every book control that is on refuses, fail closed, unless EXEC_RISK_FAIL_OPEN lets
        it pass with a warning. Reduce-only never does: without the book it cannot tell an exit
        from an entry. (A halt recorded only in the book is still in the Firestore document.)"""
        account = intent.broker_account_id
        inputs = {"broker_account_id": account, "symbol": intent.symbol, "trading_date": day}
        reducing = order_context.reduce_only is not None
        return [
            risk.data_unavailable(
                control.name,
                inputs,
                error,
                fail_open=self.settings.risk_fail_open and control.name != "reduce_only",
            )
            for control in CONTROLS
            if control.stage is Stage.BOOK
            and control.is_on(self.settings)
            and (control.name != "reduce_only" or reducing)
        ]

    def _route(
        self, intent: OrderIntent, decision: PreTradeDecision, attempt: _Attempt
    ) -> ExecutionResult:
        if self.broker.simulated:
            return outcomes.dry_run(intent, decision)
        late = self._out_of_time(intent, attempt, Step.BROKER, decision)
        if late is not None:  # nothing sent: the reservation is released, a redelivery decides
            return late
        if not self._lease_covers_a_broker_call(attempt):
            # Sending now could outlive our claim and race a takeover: give the slot back and
            # let the next attempt (with a fresh lease) send it.
            return outcomes.refused(
                intent,
                Reason.BROKER_UNAVAILABLE,
                "the claim on this intent would expire during the broker call; retry",
                decision,
            )
        try:
            order = self.broker.submit(intent)
        except DuplicateClientOrderId:
            # The broker already has this client_order_id (a retried POST, or a lost answer):
            # that order is ours; adopt it.
            adopted = self._adopt_existing_order(intent, attempt, decision)
            if adopted is not None:
                return adopted
            attempt.order_may_exist = True
            return outcomes.refused(
                intent,
                Reason.BROKER_UNAVAILABLE,
                "broker reports the client_order_id as used but has no such order; retry later",
                decision,
            )
        except BrokerRejected as exc:
            return outcomes.refused(
                intent,
                Reason.BROKER_REJECTED,
                f"broker rejected the order: {exc}",
                decision,
                retry_after_s=None,
            )
        except BrokerAuthFailed as exc:  # nothing was placed; retryable once the keys work
            return outcomes.refused(intent, Reason.BROKER_AUTH_FAILED, str(exc), decision)
        except BrokerUnavailable as exc:
            attempt.order_may_exist = exc.outcome_unknown
            return outcomes.refused(intent, Reason.BROKER_UNAVAILABLE, str(exc), decision)
        return outcomes.submitted(intent, decision, order)

    def _out_of_time(
        self, intent: OrderIntent, attempt: _Attempt, step: Step, decision: PreTradeDecision
    ) -> ExecutionResult | None:
        """A refusal if the step, and the writes after it, no longer fit in the deadline."""
        remaining = attempt.deadline_at - self._monotonic()
        if fits(step, self._costs, remaining_s=remaining):
            return None
        used = self.settings.request_deadline_s - remaining
        return outcomes.refused(
            intent,
            Reason.REQUEST_DEADLINE_EXCEEDED,
            f"{used:.1f}s of the request's {self.settings.request_deadline_s:g}s are used and "
            f"{step.value} could take {self._costs.worst_case_s(step):g}s more: not started; "
            "retry",
            decision,
            retry_after_s=1,
        )

    def _lease_covers_a_broker_call(self, attempt: _Attempt) -> bool:
        if attempt.lease_until is None:
            return True
        remaining = (attempt.lease_until - self.clock.now()).total_seconds()
        # A call may take a connect timeout plus a read timeout.
        return remaining >= 2 * self.settings.broker_timeout_s + LEASE_MARGIN_S

    def _adopt_existing_order(
        self, intent: OrderIntent, attempt: _Attempt, decision: PreTradeDecision
    ) -> ExecutionResult | None:
        try:
            order = self.broker.find_by_client_order_id(intent.client_intent_id)
        except BrokerUnavailable as exc:
            attempt.order_may_exist = True
            return outcomes.refused(
                intent, Reason.BROKER_UNAVAILABLE, f"looking up an earlier attempt: {exc}", decision
            )
        if order is None:
            return None
        differences = order_differences(intent.summary(), order.raw)
        if differences:
            # Not the intent's order: someone else used this client_order_id. Adopting it would
            # write its broker data over the intent's ledger entry and count the wrong order.
            log.error(
                "the broker's order under client_order_id %s is not this intent's: %s",
                intent.client_intent_id,
                "; ".join(differences),
                extra={
                    "event": "broker.order_mismatch",
                    "client_intent_id": intent.client_intent_id,
                    "intent": intent.summary(),
                    "broker_order": dict(order.raw),
                    "differences": differences,
                },
            )
            mismatch = CheckResult(
                "earlier_attempt",
                CheckOutcome.FAILED,
                {"client_order_id": intent.client_intent_id, "differences": differences},
                Reason.BROKER_ORDER_MISMATCH,
                "the broker has a different order under this client_order_id; nothing adopted",
            )
            return outcomes.refused(
                intent,
                Reason.BROKER_ORDER_MISMATCH,
                f"the broker has a different order under this client_order_id "
                f"({'; '.join(differences)}); nothing was adopted or sent",
                decision.plus([mismatch]),
                retry_after_s=None,
            )
        adoption = CheckResult(
            "earlier_attempt",
            CheckOutcome.PASSED,
            {"client_order_id": intent.client_intent_id, "broker_order_id": order.broker_order_id},
            detail="the broker already had this order; adopted instead of sending it again",
        )
        return outcomes.submitted(intent, decision.plus([adoption]), order, adopted=True)

    def _settle_reservation(
        self, intent: OrderIntent, now: datetime, result: ExecutionResult, attempt: _Attempt
    ) -> None:
        """Applies the one settlement rule (:mod:`backend.execution.settlement`) to the book."""
        if self.broker.simulated:
            return
        order = result.broker_order if result.status is Status.SUBMITTED else None
        outcome = settle(
            placed=order is not None,
            order_may_exist=attempt.order_may_exist,
            may_hold_reservation=attempt.may_hold_reservation,
        )
        try:
            if outcome is Settlement.PLACED:
                assert order is not None
                self.risk_book.record_placed(intent, trading_date(now), order)
            elif outcome is Settlement.RELEASE:
                self.risk_book.release(intent)
        except TransientError as exc:
            # Failing to settle leaves the reservation counted: conservative, never permissive.
            log.error(
                "could not settle the book entry of %s: %s",
                intent.client_intent_id,
                exc,
                extra={"event": "risk.settle_failed", "client_intent_id": intent.client_intent_id},
            )

    def _record(
        self, intent: OrderIntent, claim: Claim, result: ExecutionResult, day: date
    ) -> ExecutionResult:
        try:
            self.ledger.record_outcome(
                intent, claim, result, trading_day=day, decided_at=self.clock.now()
            )
        except LedgerUnavailable as exc:
            log.error(
                "could not record the outcome of %s: %s",
                intent.client_intent_id,
                exc,
                extra={"event": "ledger.write_failed", "client_intent_id": intent.client_intent_id},
            )
            # An outcome is only final once recorded. Ask for a retry: once the claim lease
            # ends, the next attempt decides again (finding and adopting any placed order).
            placed = result.broker_order_id is not None
            return replace(
                result,
                reason=Reason.LEDGER_UNAVAILABLE,
                message=(
                    f"order placed but not yet recorded ({exc}); retry to record it"
                    if placed
                    else f"decided {result.status.value} but could not record it ({exc}); retry"
                ),
                retry_after_s=int(self.settings.claim_lease_s) + 1,
            )
        return result

    # -- small helpers ------------------------------------------------------------------------

    def _unexpected(self, intent: OrderIntent, exc: Exception, now: datetime) -> ExecutionResult:
        log.exception("unexpected error while executing intent %s", intent.client_intent_id)
        # Tied to the intent: one intent failing alone (its own data, perhaps) is no ERROR.
        self.agent.record_unexpected_error(now, type(exc).__name__, intent.client_intent_id)
        return outcomes.internal_error(intent, exc, int(self.settings.error_backoff_base_s) + 1)

    def _read_heartbeat(self) -> tuple[datetime | None, str | None]:
        if self.heartbeat is None:
            return None, None
        try:
            return self.heartbeat.last_beat(), None
        except TransientError as exc:
            return None, str(exc)
