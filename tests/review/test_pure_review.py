"""Review findings in pure rules (no I/O): the reference price's age, what adoption compares,
and how the kill-switch document spells reduce-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.adapters.firestore_documents import FirestoreKillSwitch
from backend.execution.adoption import order_differences
from backend.execution.broker_facts import MarketClock, ReferencePrice
from backend.execution.controls import order_rules
from backend.execution.controls.context import ControlContext, OrderContext, Reading
from backend.execution.intent import OrderIntent
from backend.execution.kill_switch import parse_switch_value
from backend.execution.settings import Settings
from backend.execution.vocabulary import CheckOutcome, Reason

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
OPEN = MarketClock(NOW, True, NOW + timedelta(hours=18), NOW + timedelta(hours=5))


def intent(**fields: Any) -> OrderIntent:
    base = {"client_intent_id": "i-1", "strategy_id": "s", "broker_account_id": "acct",
            "symbol": "SPY", "side": "buy", "qty": "10", "order_type": "limit",
            "limit_price": "400"}  # fmt: skip
    return OrderIntent(**(base | fields))


def context_with_a_trade_at(at: datetime) -> ControlContext:
    price = ReferencePrice("SPY", Decimal("400"), at, "trade", "iex")
    return ControlContext(
        OrderContext(
            now=NOW,
            reference=Reading(price),
            market=Reading(OPEN),
            session=Reading(()),
            restricted=Reading(frozenset[str]()),
        )
    )


def test_a_reference_price_dated_an_hour_in_the_future_is_not_fresh() -> None:
    """FINDING: age = now - at is negative for a future-dated print, and only "age > max" is
    refused, so a trade stamped in the future (a feed or clock fault) passes as fresh and
    keeps passing for as long as its stamp stays ahead: the collar and the notional then
    decide on a price of unknown age."""
    check = order_rules.reference_price(
        intent(), context_with_a_trade_at(NOW + timedelta(hours=1)), Settings()
    )
    assert (check.outcome, check.reason) == (
        CheckOutcome.ERROR,
        Reason.REFERENCE_PRICE_UNAVAILABLE,
    ), check


def broker_order(**fields: Any) -> dict[str, Any]:
    base = {"symbol": "SPY", "side": "buy", "qty": "10", "type": "limit", "limit_price": "400",
            "stop_price": None, "time_in_force": "day", "extended_hours": False,
            "order_class": ""}  # fmt: skip
    return base | fields


def test_adoption_sees_a_different_time_in_force() -> None:
    """FINDING: a GTC order under our client_order_id is adopted for a DAY intent: it keeps
    working after the close, overnight and beyond, while the ledger records a day order."""
    assert order_differences(intent().summary(), broker_order(time_in_force="gtc"))


def test_adoption_sees_an_extended_hours_order() -> None:
    """FINDING: an order that may trade pre-market and after hours is adopted for an intent that
    asked for neither (with EXEC_TRADING_HOURS=regular it could fill when the gateway would
    have refused to route)."""
    assert order_differences(intent().summary(), broker_order(extended_hours=True))


def test_adoption_sees_a_bracket_order() -> None:
    """FINDING: a bracket parent with the same symbol, side, qty, type and price is adopted;
    its take-profit and stop-loss legs (sells of 10, under other client_order_ids) never
    enter the book, so they are never counted as working sells."""
    assert order_differences(intent().summary(), broker_order(order_class="bracket"))


class _Document:
    def __init__(self, data: dict[str, Any]) -> None:
        self.path = "ops/kill_switch"
        self._data = data

    def get(self) -> dict[str, Any]:
        return self._data

    def invalidate(self) -> None:
        pass


def test_the_kill_switch_document_reads_reduce_only_as_the_file_and_environment_do() -> None:
    """FINDING (consistency, fails closed): the file and the environment accept "REDUCE_ONLY"
    or " reduce_only " (trimmed, any case); the Firestore document only the exact string, so an
    operator who types REDUCE_ONLY in the console halts everything (retryable
    kill_switch_unavailable) instead of entering reduce-only mode."""
    from_file = parse_switch_value("file:x", "REDUCE_ONLY")
    from_document = FirestoreKillSwitch(_Document({"enabled": "REDUCE_ONLY"})).read()  # type: ignore[arg-type]
    assert (from_document.halted, from_document.reduce_only) == (
        from_file.halted,
        from_file.reduce_only,
    ), from_document
