"""What becomes of a book row when an attempt ends, and when a broker order is the intent's."""

from __future__ import annotations

from backend.execution.adoption import order_differences
from backend.execution.settlement import Settlement, settle

INTENT = {
    "symbol": "SPY",
    "side": "buy",
    "qty": "10",
    "order_type": "limit",
    "limit_price": "401.5",
    "stop_price": None,
}
BROKER = {
    "id": "o-1",
    "symbol": "SPY",
    "side": "buy",
    "qty": "10.0",
    "type": "limit",
    "limit_price": "401.50",
    "stop_price": None,
}


def test_a_placed_order_is_recorded_as_placed_whatever_else_happened() -> None:
    assert settle(placed=True, order_may_exist=True, may_hold_reservation=False) is (
        Settlement.PLACED
    )


def test_an_unknown_outcome_keeps_the_reservation() -> None:
    assert settle(placed=False, order_may_exist=True, may_hold_reservation=True) is Settlement.KEEP


def test_a_definite_no_releases_a_reservation_this_or_an_earlier_attempt_made() -> None:
    assert settle(placed=False, order_may_exist=False, may_hold_reservation=True) is (
        Settlement.RELEASE
    )


def test_a_refusal_before_any_reservation_touches_nothing() -> None:
    assert settle(placed=False, order_may_exist=False, may_hold_reservation=False) is (
        Settlement.NOTHING
    )


def test_the_intents_own_order_matches_however_the_broker_spells_its_numbers() -> None:
    assert order_differences(INTENT, BROKER) == []


def test_an_order_with_another_quantity_is_not_the_intents() -> None:
    assert order_differences(INTENT, BROKER | {"qty": "11"}) == ["qty: intent '10', broker '11'"]


def test_an_order_on_another_symbol_side_type_or_price_is_not_the_intents() -> None:
    other = BROKER | {"symbol": "QQQ", "side": "sell", "type": "market", "limit_price": None}
    assert [line.split(":")[0] for line in order_differences(INTENT, other)] == [
        "symbol",
        "side",
        "order_type",
        "limit_price",
    ]


def test_a_notional_order_is_never_taken_for_a_quantity_order() -> None:
    assert order_differences(INTENT, BROKER | {"qty": None, "notional": "4015"}) == [
        "qty: intent '10', broker None"
    ]


def test_a_stop_price_where_the_intent_has_none_is_a_difference() -> None:
    assert order_differences(INTENT, BROKER | {"stop_price": "400"}) == [
        "stop_price: intent None, broker '400'"
    ]
