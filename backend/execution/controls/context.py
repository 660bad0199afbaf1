"""What the controls read, gathered once per intent by the engine. Pure values, no I/O.

Two parts, read at two moments: the order context (broker facts from caches, read before any
lock is taken) and the book context (read from Postgres under the advisory locks that make
check-and-reserve exact across instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from backend.execution.broker_facts import MarketClock, ReferencePrice, TradingSession
from backend.execution.exposure import Exposure, PositionRow

T = TypeVar("T")


class Fact(StrEnum):
    """Broker facts a control may read; each is read only when a control that needs it is on."""

    REFERENCE_PRICE = "reference_price"
    MARKET_CLOCK = "market_clock"
    TRADING_SESSION = "trading_session"
    RESTRICTED_LIST = "restricted_list"


class Stage(StrEnum):
    ORDER = "order"  # needs no book: runs first, and a refusal here costs no Postgres round trip
    BOOK = "book"  # needs the book: runs under the hold, and may reserve


@dataclass(frozen=True)
class Reading(Generic[T]):
    """A fact as read: the value, or why it could not be read (never both)."""

    value: T | None = None
    error: str | None = None


@dataclass(frozen=True)
class OrderContext:
    now: datetime
    reference: Reading[ReferencePrice]
    market: Reading[MarketClock]
    # Today's session with extended hours (empty on a holiday), for trading_hours=extended.
    session: Reading[tuple[TradingSession, ...]]
    # Restricted symbols from every source (settings and the Firestore document).
    restricted: Reading[frozenset[str]]
    # Set when only exposure-reducing orders may pass, with the source that said so.
    reduce_only: str | None = None


@dataclass(frozen=True)
class Latch:
    latched_at: datetime
    detail: str


@dataclass(frozen=True)
class BookContext:
    day: date
    trades_today: int
    position: PositionRow | None
    exposure: Exposure
    # Orders reserved for the account in the last 60 s, and when the oldest leaves the window.
    orders_last_minute: int
    rate_frees_in_s: float | None
    # Orders of the same strategy, symbol and side within the repeat window.
    repeats_in_window: int
    latch: Latch | None
    # An operator's halt as the book records it: ("halted" | "reduce_only", who/when/why).
    halt: tuple[str, str] | None = None


@dataclass(frozen=True)
class ControlContext:
    order: OrderContext
    book: BookContext | None = None
