"""What the gateway reads from Alpaca besides orders, as plain values: a reference price, the
market clock, the account, and what a cancel did. Pure: no I/O.

The adapters in ``backend/execution/adapters/`` (``alpaca_market_data``, ``alpaca_clock``,
``alpaca_account``, ``AlpacaBroker.cancel_order``) produce these; the pre-trade controls and the
kill switch only ever see these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

PriceSource = Literal["trade", "quote_mid"]


@dataclass(frozen=True)
class ReferencePrice:
    """A symbol's reference price, exact as the market-data feed sent it."""

    symbol: str
    price: Decimal
    # When the trade printed or the quote was made: not when the gateway read it.
    at: datetime
    source: PriceSource
    feed: str

    def age_s(self, now: datetime) -> float:
        return (now - self.at).total_seconds()


@dataclass(frozen=True)
class MarketClock:
    """Alpaca's market clock (the regular session), as read at ``timestamp``."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime

    def is_open_at(self, now: datetime) -> bool:
        """Whether the regular session is open at ``now``, by this reading alone.

        While the market is open, next_open lies after next_close; while it is closed, the
        session runs from next_open to next_close. So a reading a few seconds old still flips at
        the bell instead of up to a cache lifetime late.
        """
        return now < self.next_close and (self.is_open or now >= self.next_open)


@dataclass(frozen=True)
class TradingSession:
    """One trading day from Alpaca's calendar, extended hours included (New York times as
    instants): pre-market from ``session_open``, after-hours until ``session_close``."""

    day: date
    session_open: datetime
    session_close: datetime

    def contains(self, now: datetime) -> bool:
        return self.session_open <= now < self.session_close


@dataclass(frozen=True)
class BrokerAccount:
    """The fields of Alpaca's account that decide whether this deployment may route."""

    account_number: str
    status: str
    trading_blocked: bool
    account_blocked: bool


class CancelStatus(StrEnum):
    # The broker took the cancel (204). The order may still fill before the cancel lands; its
    # final status arrives through the fill sync.
    CANCELED = "canceled"
    # 422: the broker says the order cannot be canceled, because it is already filled,
    # canceled, expired, replaced or rejected (or is pending a cancel already).
    ALREADY_FINAL = "already_final"
    # 404, or an id that cannot be an Alpaca order id (never sent).
    NOT_FOUND = "not_found"
    # No definitive answer (timeout, dropped connection, 429, 5xx, 401/403): the order may or
    # may not have been canceled. Look it up before reporting it either way.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CancelOutcome:
    broker_order_id: str
    status: CancelStatus
    detail: str = ""
