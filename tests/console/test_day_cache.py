"""The console's copy of the day's decisions: read in the background, once in full and then
only what was written since, so a page renders from memory and never waits on a whole day."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from backend.audit.queries import Filters
from backend.services.execution_service.console.day_cache import (
    OVERLAP,
    DayDecisions,
    compact,
    with_checks,
)

T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
Keep = Callable[[dict[str, Any]], dict[str, Any]]
DAY = date(2026, 3, 10)


class Source:
    """The audit reader's two queries over an in-memory list, recording each one."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.queries: list[tuple[date, datetime | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def write(self, n: int, seconds: float, status: str = "dry_run", day: date = DAY) -> None:
        at = T0 + timedelta(seconds=seconds)
        received = self.rows.get(f"i-{n}", {}).get("received_at", at)
        self.rows[f"i-{n}"] = {"client_intent_id": f"i-{n}", "status": status,
                               "received_at": received, "updated_at": at,
                               "trading_date": day.isoformat(),
                               "checks": [{"name": "kill_switch", "outcome": "passed"}]}  # fmt: skip

    def decisions(self, filters: Filters, *, keep: Keep | None = None) -> list[dict[str, Any]]:
        return self._read(filters, None, keep or dict)

    def decisions_changed_since(
        self, filters: Filters, since: datetime, *, keep: Keep | None = None
    ) -> list[dict[str, Any]]:
        return self._read(filters, since, keep or dict)

    def _read(self, filters: Filters, since: datetime | None, keep: Keep) -> list[dict[str, Any]]:
        self.gate.wait(5)
        if self.fail is not None:
            raise self.fail
        self.queries.append((filters.trading_date, since))
        return [
            keep(dict(r))
            for r in list(self.rows.values())
            if r["trading_date"] == filters.trading_date.isoformat()
            and (since is None or r["updated_at"] >= since)
        ]


@pytest.fixture
def cache() -> Iterator[Callable[..., DayDecisions]]:
    made: list[DayDecisions] = []

    def make(source: Source, **timing: float) -> DayDecisions:
        made.append(DayDecisions(source, **({"interval_s": 0.01, "keep_s": 0.5} | timing)))
        return made[-1]

    yield make
    time.sleep(0.6)  # let every reader notice it is no longer wanted


def statuses(cache: DayDecisions, day: date = DAY) -> dict[str, str]:
    return {r["client_intent_id"]: r["status"] for r in cache.snapshot("paper-1", day).records}


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 3
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_first_page_waits_for_the_whole_day_and_later_reads_take_only_new_writes(
    cache: Callable[..., DayDecisions],
) -> None:
    source = Source()
    for n in range(5):
        source.write(n, seconds=60 * n)
    day = cache(source)
    assert len(statuses(day)) == 5
    assert source.queries[0] == (DAY, None)
    source.write(5, seconds=300)
    assert eventually(lambda: len(statuses(day)) == 6)
    assert (DAY, T0 + timedelta(seconds=240) - OVERLAP) in source.queries


def test_a_record_decided_long_after_it_was_received_is_seen_decided(
    cache: Callable[..., DayDecisions],
) -> None:
    source = Source()
    source.write(1, seconds=0, status="retry_pending")
    for n in range(2, 10):
        source.write(n, seconds=100 * n)
    day = cache(source)
    assert statuses(day)["i-1"] == "retry_pending"
    source.write(1, seconds=2000, status="rejected")  # redelivered and decided much later
    assert eventually(lambda: statuses(day)["i-1"] == "rejected")
    # Only the recent past was read again, never the day since the record was received.
    assert all(since is None or since >= T0 for _, since in source.queries)


def test_a_day_that_takes_long_to_read_is_shown_as_loading_not_as_empty(
    cache: Callable[..., DayDecisions],
) -> None:
    source = Source()
    source.write(1, seconds=0)
    source.gate.clear()
    day = cache(source, wait_s=0.05)
    loading = day.snapshot("paper-1", DAY)
    assert (loading.complete, loading.records) == (False, [])
    source.gate.set()
    assert eventually(lambda: day.snapshot("paper-1", DAY).complete)


def test_a_failed_read_is_reported_and_retried(cache: Callable[..., DayDecisions]) -> None:
    source = Source()
    source.write(1, seconds=0)
    source.fail = RuntimeError("deadline exceeded")
    day = cache(source, wait_s=0.2)
    failed = day.snapshot("paper-1", DAY)
    assert not failed.complete and failed.error == "RuntimeError: deadline exceeded"
    source.fail = None
    assert eventually(lambda: day.snapshot("paper-1", DAY).complete)
    assert day.snapshot("paper-1", DAY).error is None


def test_the_reader_stops_when_no_page_asks_and_resumes_with_a_top_up(
    cache: Callable[..., DayDecisions],
) -> None:
    source = Source()
    source.write(1, seconds=0)
    day = cache(source, keep_s=0.05, fresh_s=0.05)
    statuses(day)
    time.sleep(0.3)
    asked = len(source.queries)
    time.sleep(0.2)
    assert len(source.queries) == asked  # stopped
    source.write(2, seconds=10)
    assert set(statuses(day)) == {"i-1", "i-2"}  # stale, so the page waited for the top-up
    assert source.queries[-1][1] is not None


def test_another_day_starts_afresh(cache: Callable[..., DayDecisions]) -> None:
    source = Source()
    source.write(1, seconds=0)
    source.write(2, seconds=0, day=date(2026, 3, 9))
    day = cache(source)
    assert list(statuses(day)) == ["i-1"]
    assert list(statuses(day, date(2026, 3, 9))) == ["i-2"]


def test_a_kept_record_holds_its_checks_as_json_and_gives_them_back_as_stored() -> None:
    checks = [{"name": "max_order_qty", "outcome": "failed", "detail": "too big",
               "inputs": {"qty": "5", "limit": 1.5}}]  # fmt: skip
    record = {"client_intent_id": "i", "status": "rejected", "intent_fingerprint": "f",
              "received_at": T0, "checks": checks}  # fmt: skip
    kept = compact(record)
    assert "intent_fingerprint" not in kept and "checks" not in kept
    assert kept["_checks_summary"] == "max_order_qty=failed (too big)"
    assert kept["_received_minute"] == int(T0.timestamp() // 60)
    assert with_checks(kept) == {k: v for k, v in record.items() if k != "intent_fingerprint"}
