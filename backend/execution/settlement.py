"""What happens to an attempt's place in the order book when the attempt ends. Pure.

The book row is written as ``reserved`` in the transaction that passed the limits, before the
broker call. When the attempt ends, one rule decides what becomes of it:

| the attempt ended with ...                                    | the row                 |
|---------------------------------------------------------------|-------------------------|
| an order at the broker (placed now, or adopted)               | placed: working / final |
| no answer from the broker, a failed lookup, an unexpected error | kept reserved: counts |
| a definite "no order" (refused by the broker or by a check,   | released, if this or an |
| never sent, a foreign order under our id)                     | earlier attempt held it |
"""

from __future__ import annotations

from enum import StrEnum


class Settlement(StrEnum):
    PLACED = "placed"
    KEEP = "keep"
    RELEASE = "release"
    NOTHING = "nothing"


def settle(*, placed: bool, order_may_exist: bool, may_hold_reservation: bool) -> Settlement:
    if placed:
        return Settlement.PLACED
    if order_may_exist:
        # The broker may have it: giving the exposure back could let a limit be walked around.
        return Settlement.KEEP
    return Settlement.RELEASE if may_hold_reservation else Settlement.NOTHING
