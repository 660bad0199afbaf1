"""The intent model refuses anything ambiguous, with a message naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from backend.execution.intent import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_STRING_CHARS,
    NO_CONTROL_CHARACTERS,
    OrderIntent,
)

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


# -- what an intent may carry (issue 10, findings 2 and 3) ------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """A metadata object ``levels`` objects deep: {"a": {"a": ... {}}}."""
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels - 1):
        node["a"] = {}
        node = node["a"]
    return root


def test_metadata_nested_to_the_limit_is_accepted_and_fingerprinted() -> None:
    parsed = OrderIntent(**(BASE | {"metadata": nested(MAX_METADATA_DEPTH)}))
    assert parsed.fingerprint() and parsed.summary()["metadata"] == nested(MAX_METADATA_DEPTH)


@pytest.mark.parametrize("levels", [MAX_METADATA_DEPTH + 1, 300, 900])
def test_metadata_nested_deeper_than_the_limit_is_refused_not_left_to_fail_later(
    levels: int,
) -> None:
    message = errors_for(metadata=nested(levels))["metadata"]
    assert message == (
        f"Value error, is nested deeper than {MAX_METADATA_DEPTH} levels (at a.a.a.a.a.a.a.a)"
    )


def test_metadata_larger_than_the_limit_is_refused() -> None:
    big = {f"k{i}": "x" * 1000 for i in range(MAX_METADATA_BYTES // 1000 + 1)}
    assert "must be at most 8192 bytes as JSON" in errors_for(metadata=big)["metadata"]


def test_metadata_keys_and_strings_have_a_length_limit() -> None:
    long_key = {"k" * (MAX_METADATA_KEY_CHARS + 1): 1}
    long_value = {"note": ["x" * (MAX_METADATA_STRING_CHARS + 1)]}
    assert "keys must be at most 128 characters" in errors_for(metadata=long_key)["metadata"]
    assert errors_for(metadata=long_value)["metadata"] == (
        "Value error, strings must be at most 1024 characters (at note[0])"
    )


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "line\nbreak", "\x7f", "\x9b"])
@pytest.mark.parametrize("field", ["strategy_id", "broker_account_id"])
def test_control_characters_are_refused_in_string_fields(field: str, bad: str) -> None:
    assert errors_for(**{field: f"x{bad}y"})[field] == f"Value error, {NO_CONTROL_CHARACTERS}"


@pytest.mark.parametrize("field", ["strategy_id", "broker_account_id"])
def test_unpaired_surrogates_are_refused_in_string_fields(field: str) -> None:
    assert field in errors_for(**{field: "x\ud800y"})  # pydantic's own str check


@pytest.mark.parametrize(
    "metadata", [{"note": "a\x00b"}, {"a\x00": 1}, {"list": [{"deep": "\ud800"}]}]
)
def test_control_characters_are_refused_in_metadata_keys_and_values_too(
    metadata: dict[str, Any],
) -> None:
    assert NO_CONTROL_CHARACTERS in errors_for(metadata=metadata)["metadata"]


def test_a_nul_in_the_broker_account_is_refused_but_the_account_is_never_trimmed() -> None:
    assert "broker_account_id" in errors_for(broker_account_id="acct\x00")
    assert OrderIntent(**(BASE | {"broker_account_id": "a1 "})).broker_account_id == "a1 "


@pytest.mark.parametrize("reserved", [".", "..", "__x__", "____", "__.__"])
def test_client_intent_ids_that_firestore_cannot_store_are_refused(reserved: str) -> None:
    assert errors_for(client_intent_id=reserved)["client_intent_id"] == (
        'Value error, must not be "." or "..", nor start and end with "__"'
        " (Firestore refuses such ids)"
    )


@pytest.mark.parametrize("fine", ["...", "___", "__x", "x__", "a.b", "_"])
def test_ids_that_only_look_reserved_are_accepted(fine: str) -> None:
    assert OrderIntent(**(BASE | {"client_intent_id": fine})).client_intent_id == fine


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_created_at_must_be_an_instant_that_exists_in_utc(stamp: str) -> None:
    assert errors_for(created_at=stamp)["created_at"] == (
        "Value error, must lie between years 1 and 9999 in UTC"
    )


@pytest.mark.parametrize("value", [float("nan"), Decimal("Infinity"), object()])
def test_metadata_holds_only_finite_json_values(value: object) -> None:
    assert "metadata" in errors_for(metadata={"x": value})
