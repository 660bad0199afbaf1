"""The operator's halt in Postgres (``public.execution_halts``, migration 0005).

Written under the account's advisory lock, which every live check-and-reserve also takes, so a
halt is exact across instances the moment it commits; the Firestore kill-switch document still
carries it to every instance's gate within its TTL, and is what a person can flip by hand.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.adapters.postgres_schema import SchemaGuard
from backend.execution.errors import RiskDataUnavailable

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('exec-acct:' || %(account)s, 0))"
_SET = """
INSERT INTO public.execution_halts (broker_account_id, state, set_at, set_by, reason)
VALUES (%(account)s, %(state)s, clock_timestamp(), %(who)s, %(reason)s)
ON CONFLICT (broker_account_id) DO UPDATE SET state = EXCLUDED.state, set_at = EXCLUDED.set_at,
    set_by = EXCLUDED.set_by, reason = EXCLUDED.reason
"""
_GET = """
SELECT state, set_at, set_by, reason FROM public.execution_halts
WHERE broker_account_id = %(account)s
"""


class PostgresHalts:
    """Implements ``ports.HaltStore``."""

    def __init__(
        self, pool: ConnectionPool, *, timeout_s: float, schema: SchemaGuard | None = None
    ) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._schema = schema or SchemaGuard(pool, migrate=True, timeout_s=timeout_s)

    def set(self, broker_account_id: str, state: str, *, who: str, reason: str) -> None:
        params = {"account": broker_account_id, "state": state, "who": who, "reason": reason}
        self._schema.ensure()
        try:
            with self._pool.connection(timeout=self._timeout) as conn, conn.transaction():
                conn.execute(_LOCK, params)
                conn.execute(_SET, params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"halt record: {type(exc).__name__}") from None

    def get(self, broker_account_id: str) -> dict[str, Any] | None:
        self._schema.ensure()
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                row = conn.execute(_GET, {"account": broker_account_id}).fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"halt record: {type(exc).__name__}") from None
        if row is None:
            return None
        return dict(zip(("state", "set_at", "set_by", "reason"), row, strict=True))
