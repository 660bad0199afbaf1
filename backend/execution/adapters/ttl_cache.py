"""A small thread-safe cache with a time-to-live, for broker reads on the intent path.

A fresh entry costs no I/O. Concurrent misses on one key share one load: the others wait for its
result or its error, so a burst costs one request and an outage costs each caller one bounded
wait, not a queue of them. A failed load is never cached, and an entry older than the TTL is
never served, not even when the reload fails. The TTL counts from when the load started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 1024,
    ) -> None:
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}
        self._loads: dict[K, Future[V]] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value if it is younger than the TTL, else ``load()``'s, or its error."""
        with self._lock:
            started = self._monotonic()
            hit = self._entries.get(key)
            if hit is not None and started - hit[0] < self._ttl:
                return hit[1]
            pending = self._loads.get(key)
            if pending is None:
                mine: Future[V] = Future()
                self._loads[key] = mine
        if pending is not None:
            return pending.result()  # the loader's value, or its exception raised here too
        try:
            value = load()
        except BaseException as exc:
            with self._lock:
                del self._loads[key]
                self._entries.pop(key, None)  # expired anyway: never an answer again
            mine.set_exception(exc)
            raise
        with self._lock:
            del self._loads[key]
            self._store(key, started, value)
        mine.set_result(value)
        return value

    def _store(self, key: K, started: float, value: V) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            now = self._monotonic()
            for old in [k for k, (t, _) in self._entries.items() if now - t >= self._ttl]:
                del self._entries[old]
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest insertion
        self._entries[key] = (started, value)
