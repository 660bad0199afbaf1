"""Time, injected: the core never calls ``datetime.now()`` itself, so tests can pin it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

# US equities trade on New York time; a trade at 23:30 UTC in winter belongs to that NY day.
TRADING_TIMEZONE = ZoneInfo("America/New_York")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stays where it is put; for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def trading_date(at: datetime) -> date:
    """The US trading date an instant belongs to."""
    return at.astimezone(TRADING_TIMEZONE).date()
