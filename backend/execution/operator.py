"""What an operator can do to a running gateway, through the admin endpoints and the console:
re-enable a latched strategy, halt (optionally cancelling working orders), reduce-only, resume.

Every action is recorded (who, when, why, what happened) in Firestore's
``execution_operator_actions``, and takes effect on every instance: the latch lives in Postgres,
the kill switch in a Firestore document each instance re-reads within its TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from backend.execution.book import BookRow
from backend.execution.broker_facts import CancelOutcome, CancelStatus
from backend.execution.clock import Clock
from backend.execution.decisions import BrokerOrder
from backend.execution.errors import BrokerUnavailable, TransientError
from backend.execution.ports import HaltStore, KillSwitchWriter, LatchStore, OperatorLog

HaltMode = Literal["halt", "reduce_only"]
# How often the cancel pass re-reads the book for orders still on their way to the broker.
IN_FLIGHT_POLL_S = 0.25


class WorkingOrders(Protocol):
    """The book's rows that may still be working (PostgresOrderBook.open_rows)."""

    def open_rows(self, broker_account_id: str | None = None) -> list[BookRow]: ...


class Canceller(Protocol):
    """The broker, for a kill switch: cancel one order, find one by its intent id."""

    def cancel_order(self, broker_order_id: str) -> CancelOutcome: ...

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None: ...


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operator:
    """Who acts: a role (operator, auditor) and, behind IAP, the verified e-mail."""

    role: str
    email: str | None = None

    def describe(self) -> str:
        return f"{self.role}:{self.email}" if self.email else self.role


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    action_id: str | None = None


@dataclass(frozen=True)
class Cancellation:
    """What a kill switch did about working orders: each order cancelled, and each it could
    not (with why), so the operator knows exactly what may still fill."""

    cancelled: tuple[dict[str, str], ...] = ()
    not_cancelled: tuple[dict[str, str], ...] = ()
    # The broker answered "not cancelable": filled (or otherwise final) before the cancel.
    already_final: tuple[dict[str, str], ...] = ()


class OperatorActions:
    def __init__(
        self,
        *,
        broker_account_id: str | None,
        latches: LatchStore | None,
        actions: OperatorLog,
        clock: Clock,
        kill_switch: KillSwitchWriter | None = None,
        halts: HaltStore | None = None,
        working_orders: WorkingOrders | None = None,
        canceller: Canceller | None = None,
        in_flight_wait_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._account = broker_account_id
        self._latches = latches
        self._actions = actions
        self._clock = clock
        self._switch = kill_switch
        self._halts = halts
        self._working = working_orders
        self._canceller = canceller
        # How long an order reserved just before the halt may take to reach the broker.
        self._in_flight_wait_s = in_flight_wait_s
        self._sleep = sleep
        self._monotonic = monotonic

    @property
    def kill_switch_document_configured(self) -> bool:
        return self._switch is not None

    def halt(
        self, *, reason: str, who: Operator, cancel_working_orders: bool, mode: HaltMode = "halt"
    ) -> ActionResult:
        """Halts (or reduce-only) on every instance, then, when asked, cancels every working
        order of the book at the broker, one DELETE each: never throttled, never blocked by a
        control. Two records: the Firestore document every gate reads within its TTL, and the
        book's halt row, written under the account lock every reservation takes, so no order
        can be reserved after it commits and every one reserved before is in the book."""
        if self._switch is None:
            return ActionResult(False, NO_DOCUMENT)
        state = "halted" if mode == "halt" else "reduce_only"
        details: dict[str, Any] = {"mode": mode, "cancel_working_orders": cancel_working_orders}
        problems = self._set_everywhere(state, reason, who, details)
        if "kill_switch_document" in problems and "book_halt" in problems:
            self._record("halt_failed", who, reason, details | {"problems": problems})
            raise TransientError(f"could not halt: {problems}")
        if cancel_working_orders:
            if "book_halt" in problems:
                # Postgres is down: nothing can be reserved now either (fail closed), but what is
                # working cannot be listed. Say so; the broker's open orders are the next place.
                details |= {"cancelled": [], "already_final": [],
                            "not_cancelled": [{"why": f"book unreadable: {problems['book_halt']}"}]}  # fmt: skip
            else:
                outcome = self.cancel_working_orders()
                details |= {"cancelled": list(outcome.cancelled),
                            "already_final": list(outcome.already_final),
                            "not_cancelled": list(outcome.not_cancelled)}  # fmt: skip
        if problems:
            details["problems"] = problems
        action_id = self._record("halt", who, reason, details)
        message = "trading reduce-only" if mode == "reduce_only" else "trading halted"
        if problems:
            message += f" (partly: {'; '.join(f'{k}: {v}' for k, v in problems.items())})"
        if cancel_working_orders:
            message += (
                f"; {len(details['cancelled'])} working orders cancelled, "
                f"{len(details['already_final'])} already final, "
                f"{len(details['not_cancelled'])} not cancelled"
            )
        return ActionResult(True, message, details, action_id)

    def resume(self, *, reason: str, who: Operator) -> ActionResult:
        if self._switch is None:
            return ActionResult(False, NO_DOCUMENT)
        details: dict[str, Any] = {}
        problems = self._set_everywhere("off", reason, who, details)
        if problems:
            # Half resumed is still halted somewhere: report it, so it can be done again.
            self._record("resume_failed", who, reason, details | {"problems": problems})
            raise TransientError(f"could not resume everywhere: {problems}")
        action_id = self._record("resume", who, reason, details)
        return ActionResult(True, "trading resumed", details, action_id)

    def halt_state(self) -> dict[str, Any] | None:
        """The book's halt row (None: never halted through POST /halt)."""
        if self._halts is None or self._account is None:
            return None
        return self._halts.get(self._account)

    def _set_everywhere(
        self, state: str, reason: str, who: Operator, details: dict[str, Any]
    ) -> dict[str, str]:
        """Writes the document and the book's halt row; returns what could not be written."""
        assert self._switch is not None
        problems: dict[str, str] = {}
        try:
            self._switch.set(state, reason=reason, who=who.describe(), at=self._clock.now())
            details["kill_switch_document"] = state
        except TransientError as exc:
            problems["kill_switch_document"] = str(exc)
        if self._halts is not None and self._account is not None:
            try:
                self._halts.set(self._account, state, who=who.describe(), reason=reason)
                details["book_halt"] = state
            except TransientError as exc:
                problems["book_halt"] = str(exc)
        return problems

    def cancel_working_orders(self) -> Cancellation:
        """Every book row still reserved or working: cancelled by its broker id, or looked up
        by its intent id first. A row without an order yet may be one already on its way to the
        broker: the book is read again every quarter second, for up to ``in_flight_wait_s``,
        until no such row is left."""
        if self._working is None or self._canceller is None:
            return Cancellation(not_cancelled=({"why": "no broker to cancel with"},))
        cancelled: list[dict[str, str]] = []
        final: list[dict[str, str]] = []
        failed: list[dict[str, str]] = []
        done: set[str] = set()
        deadline = self._monotonic() + self._in_flight_wait_s
        while True:
            unsent = []
            for row in self._working.open_rows(self._account):
                if row.client_intent_id in done:
                    continue
                outcome = self._cancel_row(row)
                if outcome is None:
                    unsent.append(row)
                    continue
                done.add(row.client_intent_id)
                buckets = {CancelStatus.CANCELED: cancelled, CancelStatus.ALREADY_FINAL: final}
                buckets.get(outcome.status, failed).append(_cancel_entry(row, outcome))
            if not unsent or self._monotonic() >= deadline:
                failed.extend(
                    {"client_intent_id": r.client_intent_id, "status": "not_at_broker",
                     "why": "no order at the broker under this intent id (never sent)"}
                    for r in unsent
                )  # fmt: skip
                return Cancellation(tuple(cancelled), tuple(failed), tuple(final))
            self._sleep(IN_FLIGHT_POLL_S)

    def _cancel_row(self, row: BookRow) -> CancelOutcome | None:
        assert self._canceller is not None
        order_id = row.broker_order_id
        if order_id is None:
            try:
                found = self._canceller.find_by_client_order_id(row.client_intent_id)
            except BrokerUnavailable as exc:
                return CancelOutcome("", CancelStatus.UNAVAILABLE, f"lookup failed: {exc}")
            if found is None:
                return None
            order_id = found.broker_order_id
        return self._canceller.cancel_order(order_id)

    def enable_strategy(self, strategy_id: str, *, reason: str, who: Operator) -> ActionResult:
        """Lifts the repeated-execution latch of a strategy (RTS 6 Art. 15(3): only a person)."""
        if self._latches is None or self._account is None:
            return ActionResult(False, "no latches here: EXEC_BROKER_ACCOUNT_ID is not set")
        lifted = self._latches.release(
            self._account, strategy_id, who=who.describe(), reason=reason
        )
        if lifted is None:
            return ActionResult(False, f"strategy {strategy_id} is not halted")
        details = {"strategy_id": strategy_id, "broker_account_id": self._account} | lifted
        action_id = self._record("enable_strategy", who, reason, details)
        return ActionResult(True, f"strategy {strategy_id} re-enabled", details, action_id)

    def latched_strategies(self) -> list[dict[str, Any]]:
        if self._latches is None or self._account is None:
            return []
        return self._latches.latches(self._account)

    def recent_actions(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._actions.recent(limit)

    def _record(self, action: str, who: Operator, reason: str, details: dict[str, Any]) -> str:
        entry = {
            "action": action,
            "who": who.describe(),
            "role": who.role,
            "email": who.email,
            "reason": reason,
            "at": self._clock.now(),
            **details,
        }
        log.warning(
            "operator %s: %s (%s)",
            who.describe(),
            action,
            reason,
            extra={"event": f"operator.{action}", "operator_action": entry},
        )
        return self._actions.record(entry)


NO_DOCUMENT = (
    "halt and resume need the Firestore kill switch (EXECUTION_HALTED_DOC); flip the file "
    "(EXECUTION_HALTED_FILE) or the environment variable (EXECUTION_HALTED) instead"
)


def _cancel_entry(row: BookRow, outcome: CancelOutcome) -> dict[str, str]:
    entry = {"client_intent_id": row.client_intent_id, "broker_order_id": outcome.broker_order_id,
             "status": outcome.status.value}  # fmt: skip
    if outcome.detail:
        entry["why"] = outcome.detail
    return entry
