"""Is the order the broker holds under our client_order_id really the intent's order?

Pure. The broker's answer to "order with this client_order_id" is only ours to adopt if it is
the order the intent describes: the same symbol, side, quantity, type and prices. Anything else
(a different tool reusing the id, a hand-placed order) is never adopted, and its broker data is
never written over the intent's ledger entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

# Intent field -> the broker order's field carrying the same fact.
_COMPARED = (
    ("symbol", "symbol"),
    ("side", "side"),
    ("qty", "qty"),
    ("order_type", "type"),
    ("limit_price", "limit_price"),
    ("stop_price", "stop_price"),
    ("time_in_force", "time_in_force"),
)
_NUMERIC = frozenset({"qty", "limit_price", "stop_price"})


def order_differences(expected: Mapping[str, Any], broker_order: Mapping[str, Any]) -> list[str]:
    """One line per field where the broker's order differs from the intent's fields.

    ``expected`` holds the intent's order fields as stored (``OrderIntent.summary()`` or a
    decision record): symbol, side, qty, order_type, limit_price, stop_price. Numbers compare as
    exact decimals, so "100" and "100.0" agree and "100" and "100.0001" do not.
    """
    differences = []
    for ours, theirs in _COMPARED:
        want, got = expected.get(ours), broker_order.get(theirs)
        if theirs == "type" and got is None:
            got = broker_order.get("order_type")
        if not _same(want, got, numeric=ours in _NUMERIC):
            differences.append(f"{ours}: intent {want!r}, broker {got!r}")
    # The gateway only ever sends simple, regular-hours orders: anything else is not its order
    # (a bracket's legs, say, would be orders the book never counts).
    if broker_order.get("extended_hours"):
        differences.append("extended_hours: intent False, broker True")
    if broker_order.get("order_class") not in (None, "", "simple"):
        differences.append(
            f"order_class: intent 'simple', broker {broker_order.get('order_class')!r}"
        )
    return differences


def _same(want: Any, got: Any, *, numeric: bool) -> bool:
    if want is None or got is None or got == "":
        return (want is None) and (got is None or got == "")
    if numeric:
        try:
            return Decimal(str(want)) == Decimal(str(got))
        except InvalidOperation:
            return False
    return str(want) == str(got)
