"""The intent model refuses anything ambiguous, with a message naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from backend.execution.intent import OrderIntent

BASE: dict[str, Any] = {
    "client_intent_id": "abc-1",
    "strategy_id": "s1",
    "broker_account_id": "a1",
    "symbol": "spy",
    "side": "buy",
    "qty": "1.5",
    "order_type": "market",
}


def errors_for(**overrides: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        OrderIntent(**(BASE | overrides))
    return {".".join(map(str, e["loc"])) or "(intent)": e["msg"] for e in caught.value.errors()}


def test_a_valid_intent_keeps_its_quantity_exact_and_normalises_the_symbol() -> None:
    parsed = OrderIntent(**BASE)
    assert parsed.qty == Decimal("1.5")
    assert parsed.symbol == "SPY"
    assert parsed.time_in_force.value == "day"


def test_unknown_fields_are_refused_not_ignored() -> None:
    assert "limt_price" in errors_for(limt_price="10")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 49, "semi;colon"])
def test_client_intent_id_must_be_a_broker_safe_key(bad: str) -> None:
    assert "client_intent_id" in errors_for(client_intent_id=bad)


@pytest.mark.parametrize("qty", ["0", "-1", "NaN", "Infinity", "abc"])
def test_qty_must_be_a_finite_positive_decimal(qty: str) -> None:
    assert "qty" in errors_for(qty=qty)


def test_limit_orders_need_a_limit_price() -> None:
    assert "limit_price is required" in str(errors_for(order_type="limit"))


def test_market_orders_refuse_a_limit_price() -> None:
    assert "limit_price is not allowed" in str(errors_for(limit_price="10"))


def test_stop_limit_orders_need_both_prices() -> None:
    message = str(errors_for(order_type="stop_limit"))
    assert "limit_price is required" in message and "stop_price is required" in message


def test_created_at_must_carry_a_timezone() -> None:
    assert "created_at" in errors_for(created_at="2026-01-02T10:00:00")


@pytest.mark.parametrize("field,value", [("side", "short"), ("time_in_force", "gtd")])
def test_enumerated_fields_refuse_unknown_values(field: str, value: str) -> None:
    assert field in errors_for(**{field: value})


@pytest.mark.parametrize(
    "spelling,plain", [("1e2", "100"), ("100.0", "100"), ("1e-7", "0.0000001")]
)
def test_every_spelling_of_a_quantity_is_stored_in_plain_digits(spelling: str, plain: str) -> None:
    assert OrderIntent(**(BASE | {"qty": spelling})).summary()["qty"] == plain


def test_the_same_quantity_spelled_differently_has_the_same_fingerprint() -> None:
    assert (
        OrderIntent(**(BASE | {"qty": "100"})).fingerprint()
        == OrderIntent(**(BASE | {"qty": "100.00"})).fingerprint()
    )


def test_the_fingerprint_changes_with_the_order_but_not_with_metadata() -> None:
    base = OrderIntent(**BASE)
    assert base.fingerprint() == OrderIntent(**(BASE | {"metadata": {"a": 1}})).fingerprint()
    assert base.fingerprint() != OrderIntent(**(BASE | {"qty": "2"})).fingerprint()


def test_sells_have_a_negative_signed_quantity() -> None:
    assert OrderIntent(**(BASE | {"side": "sell"})).signed_qty == Decimal("-1.5")
