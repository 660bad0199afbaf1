"""Current positions from Postgres ``public.broker_positions`` (owned by the position-sync job)."""

from __future__ import annotations

import math
from decimal import Decimal

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.errors import RiskDataUnavailable

_QUERY = "SELECT qty FROM public.broker_positions WHERE broker_account_id = %s AND symbol = %s"


def open_pool(dsn: str, *, max_size: int, timeout_s: float) -> ConnectionPool:
    """A lazily filled pool: start-up never waits for Postgres, a request waits at most timeout_s."""
    pool = ConnectionPool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        kwargs={
            "connect_timeout": max(1, math.ceil(timeout_s)),
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
            "application_name": "execution-gateway",
        },
    )
    pool.open(wait=False)
    return pool


class PostgresPositions:
    def __init__(self, pool: ConnectionPool, *, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s

    def current_qty(self, broker_account_id: str, symbol: str) -> Decimal:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                row = conn.execute(_QUERY, (broker_account_id, symbol)).fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(
                f"positions: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        if row is None:
            return Decimal(0)  # no row means flat
        return Decimal(row[0])

    def ping(self) -> None:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"postgres: {type(exc).__name__}") from None

    def close(self) -> None:
        self._pool.close()
