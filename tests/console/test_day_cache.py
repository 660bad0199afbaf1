"""The console's copy of the day's decisions: one full read, then only the records written
since the newest write it has seen, so a page never re-reads a whole busy day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from backend.audit.queries import Filters
from backend.services.execution_service.console.day_cache import OVERLAP, DayDecisions

T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
DAY = date(2026, 3, 10)


class Source:
    """The audit reader's two queries over an in-memory list, recording each one."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.queries: list[tuple[date, datetime | None]] = []

    def write(self, n: int, seconds: float, status: str = "dry_run", day: date = DAY) -> None:
        at = T0 + timedelta(seconds=seconds)
        received = self.rows.get(f"i-{n}", {}).get("received_at", at)
        self.rows[f"i-{n}"] = {"client_intent_id": f"i-{n}", "status": status,
                               "received_at": received, "updated_at": at, "day": day}  # fmt: skip

    def decisions(self, filters: Filters) -> list[dict[str, Any]]:
        self.queries.append((filters.trading_date, None))
        return [dict(r) for r in self.rows.values() if r["day"] == filters.trading_date]

    def decisions_changed_since(self, filters: Filters, since: datetime) -> list[dict[str, Any]]:
        self.queries.append((filters.trading_date, since))
        return [
            dict(r)
            for r in self.rows.values()
            if r["day"] == filters.trading_date and r["updated_at"] >= since
        ]


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def statuses(cache: DayDecisions, day: date = DAY) -> dict[str, str]:
    return {r["client_intent_id"]: r["status"] for r in cache.records("paper-1", day)}


def test_the_first_read_takes_the_whole_day_and_later_reads_only_what_was_written_since() -> None:
    source, clock = Source(), Clock()
    for n in range(5):
        source.write(n, seconds=60 * n)
    cache = DayDecisions(source, monotonic=clock)
    assert len(statuses(cache)) == 5
    clock.t += 2
    source.write(5, seconds=300)
    assert len(statuses(cache)) == 6
    assert source.queries == [(DAY, None), (DAY, T0 + timedelta(seconds=240) - OVERLAP)]


def test_a_record_decided_long_after_it_was_received_is_seen_decided() -> None:
    source, clock = Source(), Clock()
    source.write(1, seconds=0, status="retry_pending")
    for n in range(2, 10):
        source.write(n, seconds=100 * n)
    cache = DayDecisions(source, monotonic=clock)
    assert statuses(cache)["i-1"] == "retry_pending"
    source.write(1, seconds=2000, status="rejected")  # redelivered and decided much later
    clock.t += 2
    assert statuses(cache)["i-1"] == "rejected"
    # Only the recent past was read again, not the day since the record was received.
    assert source.queries[-1] == (DAY, T0 + timedelta(seconds=900) - OVERLAP)


def test_reads_within_the_interval_are_served_from_memory() -> None:
    source, clock = Source(), Clock()
    source.write(1, seconds=0)
    cache = DayDecisions(source, min_interval_s=1.0, monotonic=clock)
    statuses(cache)
    statuses(cache)
    assert len(source.queries) == 1


def test_another_day_starts_afresh() -> None:
    source, clock = Source(), Clock()
    source.write(1, seconds=0)
    source.write(2, seconds=0, day=date(2026, 3, 9))
    cache = DayDecisions(source, monotonic=clock)
    assert list(statuses(cache)) == ["i-1"]
    assert list(statuses(cache, date(2026, 3, 9))) == ["i-2"]
    assert source.queries[-1] == (date(2026, 3, 9), None)
