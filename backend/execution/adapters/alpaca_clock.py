"""Alpaca's market clock (``GET /v2/clock``), for the trading-hours control. Fail-closed.

Cached briefly (``ttl_s``): the answer only changes at the open and the close, and
``MarketClock.is_open_at`` flips at the bell from the cached reading's next_open/next_close.
An unreadable or malformed clock raises RiskDataUnavailable, never answers "open".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from backend.execution.adapters.alpaca_client import ThreadLocalClients, read_errors_as
from backend.execution.adapters.ttl_cache import TtlCache
from backend.execution.broker_facts import MarketClock
from backend.execution.errors import RiskDataUnavailable
from backend.execution.fills import broker_time
from backend.execution.settings import PAPER_HOST


class AlpacaClock:
    """Implements ``ports.MarketClockSource``."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        base_url: str = PAPER_HOST,
        *,
        ttl_s: float = 5.0,
        timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = ThreadLocalClients(api_key, secret_key, base_url.rstrip("/"), timeout_s)
        self._cache: TtlCache[str, MarketClock] = TtlCache(ttl_s, monotonic=monotonic)

    def clock(self) -> MarketClock:
        return self._cache.get("clock", self._read)

    def _read(self) -> MarketClock:
        with read_errors_as(RiskDataUnavailable, "reading the market clock"):
            raw = self._clients.get().get("/clock")
        return parse_clock(raw)


def parse_clock(raw: Any) -> MarketClock:
    """{"timestamp", "is_open", "next_open", "next_close"} (New York offsets, nanoseconds)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("is_open"), bool):
        raise RiskDataUnavailable(f"market clock: unexpected answer {str(raw)[:160]}")
    return MarketClock(
        timestamp=_instant(raw, "timestamp"),
        is_open=raw["is_open"],
        next_open=_instant(raw, "next_open"),
        next_close=_instant(raw, "next_close"),
    )


def _instant(raw: dict[str, Any], field: str) -> datetime:
    at = broker_time(raw.get(field))
    if at is None:
        raise RiskDataUnavailable(
            f"market clock: {field} {str(raw.get(field))[:40]!r} is not RFC 3339"
        )
    return at
