"""Reconciliation of the trade ledger with the broker: a pure comparison, no I/O.

The inputs are already scoped to one account and trading day: ledger rows keyed by
broker_order_id, and the broker's orders (Alpaca's JSON) keyed by their id. An id present on
one side only is a discrepancy in itself; an id on both sides is compared field by field.
Numbers are compared as Decimal ("100" equals "100.0") and printed as each side stored them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

Record = Mapping[str, Any]


class Kind(StrEnum):
    MISSING_FROM_LEDGER = "missing from ledger"
    UNKNOWN_TO_BROKER = "unknown to broker"
    QTY = "qty mismatch"
    FILLED_QTY = "filled_qty mismatch"
    FILLED_AVG_PRICE = "filled_avg_price mismatch"
    STATUS = "status mismatch"


@dataclass(frozen=True)
class Discrepancy:
    kind: Kind
    broker_order_id: str
    client_order_id: str | None
    ledger: str  # the ledger's value, or a summary of its row
    broker: str  # the broker's value, or a summary of its order

    def describe(self) -> str:
        return (
            f"{self.kind.value}: order={self.broker_order_id} "
            f"intent={self.client_order_id or '?'} ledger={self.ledger} broker={self.broker}"
        )


@dataclass(frozen=True)
class Reconciliation:
    in_ledger: int
    at_broker: int
    compared: int  # distinct orders looked at: on either side or both
    discrepancies: tuple[Discrepancy, ...]

    @property
    def clean(self) -> bool:
        return not self.discrepancies


def _same_decimal(ledger: Any, broker: Any) -> bool:
    if ledger is None or broker is None:
        return ledger is None and broker is None
    try:
        return Decimal(str(ledger)) == Decimal(str(broker))
    except InvalidOperation:
        return str(ledger) == str(broker)


def _same_text(ledger: Any, broker: Any) -> bool:
    return bool(ledger == broker)


# (field, kind, how to compare); the ledger stores these under Alpaca's own field names.
_COMPARED: tuple[tuple[str, Kind, Callable[[Any, Any], bool]], ...] = (
    ("qty", Kind.QTY, _same_decimal),
    ("filled_qty", Kind.FILLED_QTY, _same_decimal),
    ("filled_avg_price", Kind.FILLED_AVG_PRICE, _same_decimal),
    ("status", Kind.STATUS, _same_text),
)


def reconcile(ledger: Mapping[str, Record], broker: Mapping[str, Record]) -> Reconciliation:
    """Discrepancies in ledger order first, then the broker's orders the ledger lacks."""
    found: list[Discrepancy] = []
    for order_id, row in ledger.items():
        order = broker.get(order_id)
        client_id = row.get("client_intent_id") or (order or {}).get("client_order_id")
        if order is None:
            found.append(
                Discrepancy(Kind.UNKNOWN_TO_BROKER, order_id, client_id, summary(row), "absent")
            )
            continue
        for field, kind, same in _COMPARED:
            if not same(row.get(field), order.get(field)):
                found.append(
                    Discrepancy(
                        kind, order_id, client_id, shown(row.get(field)), shown(order.get(field))
                    )
                )
    for order_id, order in broker.items():
        if order_id not in ledger:
            found.append(
                Discrepancy(
                    Kind.MISSING_FROM_LEDGER,
                    order_id,
                    order.get("client_order_id"),
                    "absent",
                    summary(order),
                )
            )
    return Reconciliation(
        in_ledger=len(ledger),
        at_broker=len(broker),
        compared=len(ledger.keys() | broker.keys()),
        discrepancies=tuple(found),
    )


def shown(value: Any) -> str:
    return "null" if value is None else str(value)


def summary(record: Record) -> str:
    """One side of a one-sided discrepancy, in a form that stays one token per field."""
    fields = ("status", "symbol", "side", "qty", "filled_qty", "filled_avg_price", "submitted_at")
    return "(" + ",".join(f"{f}:{shown(record.get(f))}" for f in fields) + ")"
