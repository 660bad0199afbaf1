"""A symbol's reference price from Alpaca's Market Data API, read exactly.

Market data sends prices as JSON numbers and alpaca-py's data models hold them as float, so the
answer is parsed with Decimal (``ThreadLocalDataClients``) and never goes through those models.

One request per read: ``/v2/stocks/snapshots`` carries both the latest trade and the latest
quote, so falling back from one to the other costs no second round trip. A read is cached for
``ttl_s`` (monotonic clock), so a burst of intents for one symbol costs one request; when the
cached read is older than that, a failed read raises and is never answered with the old price.
How old the price itself may be (the trade's time) is the caller's rule, not this cache's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from backend.execution.adapters.alpaca_client import ThreadLocalDataClients, read_errors_as
from backend.execution.adapters.ttl_cache import TtlCache
from backend.execution.broker_facts import PriceSource, ReferencePrice
from backend.execution.errors import ConfigurationError, RiskDataUnavailable
from backend.execution.fills import broker_time

DATA_HOST = "https://data.alpaca.markets"
# iex is free; sip needs a paid subscription (Alpaca answers 403 without one).
FEEDS = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "otc"})
SOURCES: frozenset[str] = frozenset({"trade", "quote_mid"})


class AlpacaMarketData:
    """Implements ``ports.ReferencePrices``. Raises RiskDataUnavailable, never a vendor error."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        base_url: str = DATA_HOST,
        *,
        feed: str = "iex",
        prefer: PriceSource = "trade",
        ttl_s: float = 1.0,
        timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if feed not in FEEDS:
            raise ConfigurationError(
                f"unknown market data feed {feed!r}: use one of {sorted(FEEDS)}"
            )
        if prefer not in SOURCES:
            raise ConfigurationError(f"unknown reference price source {prefer!r}: trade|quote_mid")
        self.feed = feed
        self.prefer: PriceSource = prefer
        self._clients = ThreadLocalDataClients(api_key, secret_key, base_url.rstrip("/"), timeout_s)
        self._cache: TtlCache[str, ReferencePrice] = TtlCache(ttl_s, monotonic=monotonic)

    def reference_price(self, symbol: str) -> ReferencePrice:
        """The latest trade's price (or the quote midpoint), at most ttl_s old as a read."""
        return self._cache.get(symbol, lambda: self._read(symbol))

    def _read(self, symbol: str) -> ReferencePrice:
        doing = f"reading the {self.feed} snapshot of {symbol}"
        with read_errors_as(RiskDataUnavailable, doing):
            raw = self._clients.get().get(
                "/stocks/snapshots", {"symbols": symbol, "feed": self.feed}
            )
        return reference_from_snapshots(raw, symbol, prefer=self.prefer, feed=self.feed)


def reference_from_snapshots(
    raw: Any, symbol: str, *, prefer: PriceSource, feed: str
) -> ReferencePrice:
    """The reference price in a ``/v2/stocks/snapshots`` answer parsed with Decimal.

    The preferred source first; the other one when the preferred is absent (no trade yet, or no
    two-sided quote). A record that is read and found malformed raises rather than falling back:
    a broken feed is no reason to trust the other half of the same answer.
    """
    if not isinstance(raw, dict):
        raise RiskDataUnavailable(f"market data for {symbol}: unexpected answer {str(raw)[:120]}")
    snapshot = raw.get(symbol)
    if snapshot is None:
        raise RiskDataUnavailable(f"market data: no trade or quote for {symbol} on {feed}")
    if not isinstance(snapshot, dict):
        raise RiskDataUnavailable(f"market data: malformed snapshot for {symbol}")
    readers: dict[PriceSource, Callable[[], tuple[Decimal, datetime] | None]] = {
        "trade": lambda: trade_price(snapshot.get("latestTrade")),
        "quote_mid": lambda: quote_midpoint(snapshot.get("latestQuote")),
    }
    fallback: PriceSource = "quote_mid" if prefer == "trade" else "trade"
    for source in (prefer, fallback):
        found = readers[source]()
        if found is not None:
            return ReferencePrice(symbol, found[0], found[1], source, feed)
    raise RiskDataUnavailable(
        f"market data: no trade and no two-sided quote for {symbol} on {feed}"
    )


def trade_price(trade: object) -> tuple[Decimal, datetime] | None:
    """A latest-trade record ({"p": 187.25, "t": "...Z", ...}) -> (price, time); None if absent."""
    if trade is None:
        return None
    if not isinstance(trade, dict):
        raise RiskDataUnavailable("market data: malformed trade")
    price = _number(trade.get("p"), "trade price")
    if price <= 0:
        raise RiskDataUnavailable(f"market data: trade price {price} is not positive")
    return price, _instant(trade.get("t"), "trade time")


def quote_midpoint(quote: object) -> tuple[Decimal, datetime] | None:
    """A latest-quote record -> (midpoint, time); None if absent or not two-sided (a bid or an
    ask of 0 means none, as Alpaca sends it) or crossed (ask below bid)."""
    if quote is None:
        return None
    if not isinstance(quote, dict):
        raise RiskDataUnavailable("market data: malformed quote")
    bid, ask = _number(quote.get("bp"), "bid price"), _number(quote.get("ap"), "ask price")
    at = _instant(quote.get("t"), "quote time")
    if bid <= 0 or ask <= 0 or ask < bid:
        return None
    return midpoint(bid, ask), at


def midpoint(bid: Decimal, ask: Decimal) -> Decimal:
    """(bid + ask) / 2, exact: with this precision neither the sum nor the halving rounds."""
    with localcontext() as context:
        context.prec = 80
        return (bid + ask) / 2


def _number(value: object, what: str) -> Decimal:
    # A JSON number arrives as Decimal (with a fraction) or int; a string is tolerated.
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise RiskDataUnavailable(f"market data: {what} {value!r} is not a number")
    try:
        number = Decimal(value)
    except ArithmeticError:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise RiskDataUnavailable(f"market data: {what} {value!r} is not a price")
    return number


def _instant(value: object, what: str) -> datetime:
    at = broker_time(value)
    if at is None:
        raise RiskDataUnavailable(f"market data: {what} {str(value)[:40]!r} is not RFC 3339")
    return at
