"""One fill sync at a time, across every instance: a Postgres session advisory lock.

Concurrent syncs would each read a ledger document and write what they fetched; without
isolation (Firestore transactions are not relied on) an older snapshot could land last. The
lock is tied to a connection, so a crashed instance's lock goes away with its connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.errors import RiskDataUnavailable

_KEY = "SELECT hashtextextended('exec-fill-sync:' || %(scope)s, 0)"


class PostgresSyncLock:
    def __init__(
        self, pool: ConnectionPool, *, timeout_s: float, broker_account_id: str | None = None
    ) -> None:
        self._pool = pool
        self._timeout = timeout_s
        # One sync at a time per account: deployments of other accounts sharing the database
        # run their own syncs side by side.
        self._params = {"scope": broker_account_id or ""}

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Yields True while this caller holds the lock, False if another sync has it."""
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.autocommit = True
                row = conn.execute(
                    f"SELECT pg_try_advisory_lock(({_KEY}))", self._params
                ).fetchone()
                held = bool(row and row[0])
                try:
                    yield held
                finally:
                    if held:
                        conn.execute(f"SELECT pg_advisory_unlock(({_KEY}))", self._params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"sync lock: {type(exc).__name__}") from None
