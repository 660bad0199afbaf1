"""The operator's kill switch: what it cancels, what it reports it could not, and in what order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backend.execution.book import BookRow
from backend.execution.broker_facts import CancelOutcome, CancelStatus
from backend.execution.clock import FixedClock
from backend.execution.decisions import BrokerOrder
from backend.execution.operator import Operator, OperatorActions

AT = datetime(2026, 3, 10, 15, tzinfo=UTC)


def row(intent_id: str, order_id: str | None) -> BookRow:
    state = "working" if order_id else "reserved"
    return BookRow(intent_id, "acct", "SPY", "buy", Decimal(1), state, order_id, None,
                   Decimal(0), Decimal(1), AT, AT)  # fmt: skip


class Book:
    def __init__(self, rows: list[BookRow]) -> None:
        self.rows = rows

    def open_rows(self, broker_account_id: str | None = None) -> list[BookRow]:
        return self.rows


class Broker:
    def __init__(self, answers: dict[str, CancelStatus], late: dict[str, str]) -> None:
        self.answers, self.late, self.lookups = answers, late, 0
        self.cancelled: list[str] = []

    def cancel_order(self, broker_order_id: str) -> CancelOutcome:
        self.cancelled.append(broker_order_id)
        return CancelOutcome(
            broker_order_id, self.answers.get(broker_order_id, CancelStatus.CANCELED)
        )

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        self.lookups += 1
        order_id = self.late.get(client_order_id) if self.lookups > 1 else None
        if order_id is None:
            return None
        return BrokerOrder(order_id, client_order_id, "new", Decimal(0), None, None, None, {})


class Switch:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def set(self, state: str, *, reason: str, who: str, at: datetime) -> None:
        self.log.append(f"switch:{state}")


class Log:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def record(self, action: dict[str, Any]) -> str:
        self.entries.append(action)
        return str(len(self.entries))

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.entries[-limit:]


class Ticks:
    """A monotonic clock that moves only when the operator sleeps."""

    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float, events: list[str]) -> None:
        self.at += seconds
        events.append(f"sleep:{seconds:g}")


def operator(rows: list[BookRow], broker: Broker, events: list[str]) -> OperatorActions:
    clock = Ticks()
    return OperatorActions(
        broker_account_id="acct", latches=None, actions=Log(), clock=FixedClock(AT),
        kill_switch=Switch(events), working_orders=Book(rows), canceller=broker,
        in_flight_wait_s=1, sleep=lambda s: clock.advance(s, events),
        monotonic=clock.now,
    )  # fmt: skip


def test_the_switch_is_set_before_the_first_cancel() -> None:
    events: list[str] = []
    broker = Broker({}, {})
    result = operator([row("i-1", "o-1")], broker, events).halt(
        reason="r", who=Operator("operator"), cancel_working_orders=True
    )
    assert events == ["switch:halted"]  # no row in flight: no wait at all
    assert broker.cancelled == ["o-1"] and result.details["cancelled"][0]["status"] == "canceled"


def test_an_order_already_final_is_listed_apart_and_an_unanswered_one_is_not_cancelled() -> None:
    broker = Broker({"o-1": CancelStatus.ALREADY_FINAL, "o-2": CancelStatus.UNAVAILABLE}, {})
    result = operator([row("i-1", "o-1"), row("i-2", "o-2")], broker, []).cancel_working_orders()
    assert result.cancelled == ()
    assert [c["broker_order_id"] for c in result.already_final] == ["o-1"]
    assert [c["broker_order_id"] for c in result.not_cancelled] == ["o-2"]


def test_a_reservation_whose_order_reaches_the_broker_late_is_found_and_cancelled() -> None:
    events: list[str] = []
    broker = Broker({}, {"i-1": "o-late"})
    result = operator([row("i-1", None)], broker, events).cancel_working_orders()
    assert events == ["sleep:0.25"]  # looked again a quarter second later, and found it
    assert broker.cancelled == ["o-late"] and result.not_cancelled == ()


def test_a_reservation_that_never_reached_the_broker_is_reported_not_cancelled() -> None:
    result = operator([row("i-1", None)], Broker({}, {}), []).cancel_working_orders()
    assert [c["status"] for c in result.not_cancelled] == ["not_at_broker"]


def test_without_the_firestore_kill_switch_halt_says_which_switch_to_flip() -> None:
    actions = OperatorActions(
        broker_account_id="a", latches=None, actions=Log(), clock=FixedClock(AT)
    )
    result = actions.halt(reason="r", who=Operator("operator"), cancel_working_orders=False)
    assert not result.ok and "EXECUTION_HALTED_FILE" in result.message
