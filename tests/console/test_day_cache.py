"""The console's copy of the day's decisions: one full read, then top-ups from the oldest
record still undecided (or the newest seen), so a page never re-reads a whole busy day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from backend.audit.queries import Filters
from backend.services.execution_service.console.day_cache import OVERLAP, DayDecisions

T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
DAY = date(2026, 3, 10)


class Source:
    """The audit reader's decisions() over an in-memory list, recording each query."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.queries: list[tuple[date, datetime | None]] = []

    def add(self, n: int, seconds: float, status: str = "dry_run", day: date = DAY) -> None:
        self.rows[f"i-{n}"] = {"client_intent_id": f"i-{n}", "status": status,
                               "received_at": T0 + timedelta(seconds=seconds), "day": day}  # fmt: skip

    def decisions(
        self, filters: Filters, *, received_from: datetime | None = None
    ) -> list[dict[str, Any]]:
        self.queries.append((filters.trading_date, received_from))
        return [
            dict(r)
            for r in self.rows.values()
            if r["day"] == filters.trading_date
            and (received_from is None or r["received_at"] >= received_from)
        ]


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def statuses(cache: DayDecisions, day: date = DAY) -> dict[str, str]:
    return {r["client_intent_id"]: r["status"] for r in cache.records("paper-1", day)}


def test_the_first_read_takes_the_whole_day_and_later_reads_only_the_recent_part() -> None:
    source, clock = Source(), Clock()
    for n in range(5):
        source.add(n, seconds=60 * n)
    cache = DayDecisions(source, monotonic=clock)
    assert len(statuses(cache)) == 5
    clock.t += 2
    source.add(5, seconds=300)
    assert len(statuses(cache)) == 6
    assert source.queries == [(DAY, None), (DAY, T0 + timedelta(seconds=240) - OVERLAP)]


def test_a_record_decided_after_it_was_read_is_seen_decided() -> None:
    source, clock = Source(), Clock()
    source.add(1, seconds=0, status="in_progress")
    for n in range(2, 10):
        source.add(n, seconds=100 * n)
    cache = DayDecisions(source, monotonic=clock)
    assert statuses(cache)["i-1"] == "in_progress"
    source.rows["i-1"]["status"] = "rejected"
    clock.t += 2
    assert statuses(cache)["i-1"] == "rejected"
    assert source.queries[-1] == (DAY, T0 - OVERLAP)


def test_reads_within_the_interval_are_served_from_memory() -> None:
    source, clock = Source(), Clock()
    source.add(1, seconds=0)
    cache = DayDecisions(source, min_interval_s=1.0, monotonic=clock)
    statuses(cache)
    statuses(cache)
    assert len(source.queries) == 1


def test_another_day_starts_afresh() -> None:
    source, clock = Source(), Clock()
    source.add(1, seconds=0)
    source.add(2, seconds=0, day=date(2026, 3, 9))
    cache = DayDecisions(source, monotonic=clock)
    assert list(statuses(cache)) == ["i-1"]
    assert list(statuses(cache, date(2026, 3, 9))) == ["i-2"]
    assert source.queries[-1] == (date(2026, 3, 9), None)
