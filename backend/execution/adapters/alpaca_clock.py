"""Alpaca's market clock (``GET /v2/clock``), for the trading-hours control. Fail-closed.

Cached briefly (``ttl_s``): the answer only changes at the open and the close, and
``MarketClock.is_open_at`` flips at the bell from the cached reading's next_open/next_close.
An unreadable or malformed clock raises RiskDataUnavailable, never answers "open".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from datetime import time as dt_time
from typing import Any

from backend.execution.adapters.alpaca_client import ThreadLocalClients, read_errors_as
from backend.execution.adapters.ttl_cache import TtlCache
from backend.execution.broker_facts import MarketClock, TradingSession
from backend.execution.clock import TRADING_TIMEZONE
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


class AlpacaCalendar:
    """Today's session from ``GET /v2/calendar`` (extended hours included), for
    EXEC_TRADING_HOURS=extended: the clock only knows the regular session. Implements
    ``ports.TradingCalendar``. Cached per New York date; unreadable raises RiskDataUnavailable."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        base_url: str = PAPER_HOST,
        *,
        ttl_s: float = 300.0,
        timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = ThreadLocalClients(api_key, secret_key, base_url.rstrip("/"), timeout_s)
        self._cache: TtlCache[date, tuple[TradingSession, ...]] = TtlCache(
            ttl_s, monotonic=monotonic
        )

    def sessions_on(self, day: date) -> tuple[TradingSession, ...]:
        """The day's session, or none on a holiday or weekend."""
        return self._cache.get(day, lambda: self._read(day))

    def _read(self, day: date) -> tuple[TradingSession, ...]:
        params = {"start": day.isoformat(), "end": day.isoformat()}
        with read_errors_as(RiskDataUnavailable, "reading the trading calendar"):
            raw = self._clients.get().get("/calendar", params)
        return parse_calendar(raw, day)


def parse_calendar(raw: Any, day: date) -> tuple[TradingSession, ...]:
    """[{"date": "2026-03-10", "session_open": "0400", "session_close": "2000", ...}]."""
    if not isinstance(raw, list):
        raise RiskDataUnavailable(f"trading calendar: unexpected answer {str(raw)[:160]}")
    sessions = []
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("date") != day.isoformat():
            continue
        try:
            start, end = (
                _new_york(day, entry["session_open"]),
                _new_york(day, entry["session_close"]),
            )
        except (KeyError, ValueError):
            raise RiskDataUnavailable(
                f"trading calendar: malformed day {str(entry)[:160]}"
            ) from None
        sessions.append(TradingSession(day, start, end))
    return tuple(sessions)


def _new_york(day: date, hhmm: Any) -> datetime:
    text = str(hhmm).replace(":", "")
    if len(text) != 4 or not text.isdigit():
        raise ValueError(hhmm)
    return datetime.combine(day, dt_time(int(text[:2]), int(text[2:])), TRADING_TIMEZONE)
