"""The TTL cache in front of broker reads: fresh costs nothing, stale is never served."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from backend.execution.adapters.ttl_cache import TtlCache


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self, *values: object) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value


def test_a_fresh_entry_costs_no_load_and_an_expired_one_is_reloaded() -> None:
    clock, load = Monotonic(), Loader("a", "b")
    cache: TtlCache[str, object] = TtlCache(2.0, monotonic=clock)

    assert cache.get("k", load) == "a"
    clock.now += 1.999
    assert cache.get("k", load) == "a"
    clock.now += 0.001
    assert cache.get("k", load) == "b"
    assert load.calls == 2


def test_the_ttl_counts_from_when_the_load_started() -> None:
    clock = Monotonic()
    cache: TtlCache[str, str] = TtlCache(2.0, monotonic=clock)

    def slow_load() -> str:
        clock.now += 1.5  # the answer took 1.5 s to arrive
        return "a"

    cache.get("k", slow_load)
    clock.now += 0.5
    assert cache.get("k", lambda: "b") == "b"


def test_a_failed_reload_raises_instead_of_serving_the_expired_value() -> None:
    clock, load = Monotonic(), Loader("old", RuntimeError("broker down"), "new")
    cache: TtlCache[str, object] = TtlCache(1.0, monotonic=clock)
    cache.get("k", load)
    clock.now += 5

    with pytest.raises(RuntimeError, match="broker down"):
        cache.get("k", load)
    assert cache.get("k", load) == "new"  # the failure was not cached either
    assert load.calls == 3


def test_keys_are_cached_apart() -> None:
    cache: TtlCache[str, str] = TtlCache(10.0, monotonic=Monotonic())

    assert (cache.get("SPY", lambda: "spy"), cache.get("QQQ", lambda: "qqq")) == ("spy", "qqq")
    assert cache.get("SPY", lambda: "other") == "spy"


def test_a_zero_ttl_loads_every_time() -> None:
    load = Loader("a", "b")
    cache: TtlCache[str, object] = TtlCache(0.0, monotonic=Monotonic())

    assert (cache.get("k", load), cache.get("k", load)) == ("a", "b")


class CountingMonotonic(Monotonic):
    """Counts the callers that entered get(): each reads the clock once, under the cache's lock,
    and has by then either started the load or joined the one in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.readers = threading.Semaphore(0)

    def __call__(self) -> float:
        self.readers.release()
        return self.now


def run_concurrently(
    cache: TtlCache[str, str],
    clock: CountingMonotonic,
    load: Callable[[], str],
    n: int,
    release: threading.Event,
) -> list[object]:
    outcomes: list[object] = []

    def read() -> None:
        try:
            outcomes.append(cache.get("k", load))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=read) for _ in range(n)]
    for thread in threads:
        thread.start()
    for _ in range(n):
        assert clock.readers.acquire(timeout=5)
    release.set()  # every reader is in: one is loading, the others wait for it
    for thread in threads:
        thread.join(5)
    return outcomes


def test_concurrent_misses_share_one_load_and_its_result() -> None:
    clock, release, calls = CountingMonotonic(), threading.Event(), []
    cache: TtlCache[str, str] = TtlCache(10.0, monotonic=clock)

    def load() -> str:
        calls.append(1)
        release.wait(5)
        return "value"

    outcomes = run_concurrently(cache, clock, load, 5, release)

    assert (len(calls), outcomes) == (1, ["value"] * 5)


def test_concurrent_misses_share_one_failure_and_the_next_call_loads_again() -> None:
    clock, release, calls = CountingMonotonic(), threading.Event(), []
    cache: TtlCache[str, str] = TtlCache(10.0, monotonic=clock)

    def failing_load() -> str:
        calls.append(1)
        release.wait(5)
        raise TimeoutError("no answer")

    outcomes = run_concurrently(cache, clock, failing_load, 4, release)

    assert len(calls) == 1 and all(isinstance(o, TimeoutError) for o in outcomes)
    assert len(outcomes) == 4
    assert cache.get("k", lambda: "ok") == "ok"


def test_the_oldest_entries_go_when_the_cache_is_full() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0, monotonic=Monotonic(), max_entries=2)
    for key in ("a", "b", "c"):
        cache.get(key, lambda key=key: key)

    assert cache.get("a", lambda: "reloaded") == "reloaded"
    assert cache.get("c", lambda: "reloaded") == "c"
