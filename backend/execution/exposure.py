"""Exposure as FIA's guidance counts it: the position plus working orders, each side on its own.

Pure: the Postgres adapter only fetches rows (the position row and this gateway's own orders with
their fills); every rule about what counts, and where, lives here.

The position row (``public.broker_positions``, written by the position-sync job) says what the
broker held when it was read, ``as_of``. Each of this gateway's orders splits into parts:

| part of an order                                  | counted as                              |
|---------------------------------------------------|-----------------------------------------|
| filled, fill time at or before ``as_of - skew``   | nothing: the row already includes it    |
| filled, fill time after ``as_of + skew``          | position (the row cannot include it)    |
| filled, fill time within ``as_of ± skew``         | working on the order's side             |
| filled, time unknown, reported before as_of - skew| nothing: the row already includes it    |
| filled, fill time not yet known (fill sync behind)| working on the order's side             |
| not filled, order still working or outcome unknown| working on the order's side             |
| not filled, order final (canceled, expired, ...)  | nothing                                 |
| any fill, when there is no position row           | position                                |

"Working on its side" is the one placement that is never permissive: a buy that may or may not
be in the row is added to the worst-case long and leaves the worst-case short alone; counting
it in the position instead would give the short side headroom it may not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from backend.execution.intent import Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class PositionRow:
    """The position-sync job's row for (account, symbol); ``as_of`` is its ``updated_at``."""

    qty: Decimal
    as_of: datetime


@dataclass(frozen=True)
class Fill:
    qty: Decimal  # unsigned, as the broker's FILL activity reports it
    at: datetime


@dataclass(frozen=True)
class BookOrder:
    """One of this gateway's orders, as its book knows it.

    ``filled_qty`` is the broker's cumulative filled quantity (from order snapshots);
    ``fills`` are the FILL activities the fill sync has recorded, with their times. The two may
    disagree while the sync is behind: the part of ``filled_qty`` not covered by ``fills`` has
    no known time.
    """

    client_intent_id: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    fills: tuple[Fill, ...]
    # May still fill: reserved (the broker may have it) or open at the broker.
    working: bool
    # The broker time of the snapshot that reported filled_qty: every fill in it is older.
    filled_as_of: datetime | None = None


@dataclass(frozen=True)
class Exposure:
    position: Decimal  # the row plus fills it certainly does not include
    working_buy: Decimal
    working_sell: Decimal

    @property
    def worst_long(self) -> Decimal:
        """The position if every working buy filled and no sell did."""
        return self.position + self.working_buy

    @property
    def worst_short(self) -> Decimal:
        """The position if every working sell filled and no buy did."""
        return self.position - self.working_sell

    def with_order(self, side: Side, qty: Decimal) -> Exposure:
        """The exposure once an order of ``qty`` on ``side`` is working too."""
        if side is Side.BUY:
            return Exposure(self.position, self.working_buy + qty, self.working_sell)
        return Exposure(self.position, self.working_buy, self.working_sell + qty)


@dataclass(frozen=True)
class Untouched:
    """Working orders that have not filled at all, by side: their whole quantity is working."""

    buy: Decimal = ZERO
    sell: Decimal = ZERO


@dataclass(frozen=True)
class _Split:
    """Where one order's quantity counts (see the module's table)."""

    position: Decimal  # signed
    on_its_side: Decimal  # unsigned


def exposure(
    row: PositionRow | None,
    orders: Iterable[BookOrder],
    *,
    skew: timedelta,
    untouched: Untouched | None = None,
) -> Exposure:
    """``untouched``: the total of working orders with no fill at all, summed by the store
    rather than listed (each counts in full on its side, which is what ``split_order`` gives
    such an order), so that a book of many resting orders costs one row, not one each."""
    position = row.qty if row is not None else ZERO
    buy = untouched.buy if untouched else ZERO
    sell = untouched.sell if untouched else ZERO
    for order in orders:
        split = split_order(order, row, skew=skew)
        position += split.position
        if order.side is Side.BUY:
            buy += split.on_its_side
        else:
            sell += split.on_its_side
    return Exposure(position, buy, sell)


def split_order(order: BookOrder, row: PositionRow | None, *, skew: timedelta) -> _Split:
    sign = 1 if order.side is Side.BUY else -1
    known = sum((fill.qty for fill in order.fills), ZERO)
    filled = min(max(order.filled_qty, known), order.qty)
    in_position = uncertain = ZERO
    for fill in order.fills:
        placement = _fill_placement(fill.at, row, skew)
        if placement == "after_row":
            in_position += fill.qty
        elif placement == "uncertain":
            uncertain += fill.qty
    unknown_time = filled - min(known, filled)
    if row is None:
        # No row: the position-sync job has never seen this symbol, so no fill is in it.
        in_position += unknown_time
    elif order.filled_as_of is None or order.filled_as_of > row.as_of - skew:
        uncertain += unknown_time
    # else: the broker reported them filled before the row's horizon, so the row has them.
    unfilled = order.qty - filled if order.working else ZERO
    return _Split(position=sign * in_position, on_its_side=uncertain + unfilled)


def _fill_placement(at: datetime, row: PositionRow | None, skew: timedelta) -> str:
    if row is None or at > row.as_of + skew:
        return "after_row"
    if at <= row.as_of - skew:
        return "in_row"
    return "uncertain"
