"""Gathers what the pre-trade controls read, through the ports, once per intent.

The order context comes from cached broker facts (reference price, market clock, calendar,
restricted list) and is read before any Postgres lock is taken, so a slow market-data call
never holds a lock; only the facts that a switched-on control needs are read. The book context
is derived from the snapshot the risk book reads under its locks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import TypeVar

from backend.execution import exposure
from backend.execution.controls.context import (
    BookContext,
    Fact,
    Latch,
    OrderContext,
    Reading,
)
from backend.execution.controls.table import facts_needed
from backend.execution.errors import TransientError
from backend.execution.intent import OrderIntent
from backend.execution.ports import (
    MarketClockSource,
    ReferencePrices,
    RestrictedList,
    TradingCalendar,
)
from backend.execution.risk import RiskSnapshot
from backend.execution.settings import Settings
from backend.execution.vocabulary import AgentMode

T = TypeVar("T")
NO_KEYS = (
    "no Alpaca keys to read it with (set ALPACA_API_KEY and ALPACA_SECRET_KEY, or switch off "
    "the controls that need it)"
)


@dataclass(frozen=True)
class FactSources:
    """The broker-fact adapters; None where no keys (or no document) are configured."""

    reference_prices: ReferencePrices | None = None
    market_clock: MarketClockSource | None = None
    calendar: TradingCalendar | None = None
    restricted_list: RestrictedList | None = None


def read_order_context(
    intent: OrderIntent,
    now: datetime,
    day: date,
    settings: Settings,
    sources: FactSources,
    reduce_only: str | None,
) -> OrderContext:
    needed = facts_needed(settings)

    def fact(kind: Fact, read: Callable[[], T] | None) -> Reading[T]:
        if kind not in needed:
            return Reading(error="not read: no control that needs it is on")
        if read is None:
            return Reading(error=NO_KEYS)
        return _read(read)

    restricted: Reading[frozenset[str]] = Reading(value=settings.restricted_symbols)
    if sources.restricted_list is not None and Fact.RESTRICTED_LIST in needed:
        listed = _read(sources.restricted_list.symbols)
        restricted = (
            Reading(value=settings.restricted_symbols | listed.value)
            if listed.value is not None
            else Reading(error=listed.error)
        )
    prices, clock, calendar = sources.reference_prices, sources.market_clock, sources.calendar
    return OrderContext(
        now=now,
        reference=fact(
            Fact.REFERENCE_PRICE,
            None if prices is None else partial(prices.reference_price, intent.symbol),
        ),
        market=fact(Fact.MARKET_CLOCK, None if clock is None else clock.clock),
        session=fact(
            Fact.TRADING_SESSION, None if calendar is None else partial(calendar.sessions_on, day)
        ),
        restricted=restricted,
        reduce_only=reduce_only,
    )


def reduce_only_source(settings: Settings, switch_sources: list[str]) -> str | None:
    """Who put the gateway in reduce-only mode, or None: AGENT_MODE=REDUCING, or a kill-switch
    source whose value is ``reduce_only``."""
    if settings.agent_mode is AgentMode.REDUCING:
        return "AGENT_MODE=REDUCING"
    return switch_sources[0] if switch_sources else None


def book_context(day: date, snapshot: RiskSnapshot, settings: Settings) -> BookContext:
    skew = timedelta(seconds=settings.position_skew_s)
    latch = Latch(*snapshot.latched) if snapshot.latched else None
    return BookContext(
        day=day,
        trades_today=snapshot.trades_today,
        position=snapshot.position,
        exposure=exposure.exposure(
            snapshot.position, snapshot.orders, skew=skew, untouched=snapshot.untouched
        ),
        orders_last_minute=snapshot.orders_last_minute,
        rate_frees_in_s=snapshot.rate_frees_in_s,
        repeats_in_window=snapshot.repeats_in_window,
        latch=latch,
        halt=snapshot.halt,
    )


def _read(read: Callable[[], T]) -> Reading[T]:
    try:
        return Reading(value=read())
    except TransientError as exc:
        return Reading(error=str(exc))
