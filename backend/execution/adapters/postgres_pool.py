"""The Postgres connection pool every Postgres adapter shares: bounded, lazily filled."""

from __future__ import annotations

import math

from psycopg_pool import ConnectionPool


def open_pool(dsn: str, *, max_size: int, timeout_s: float) -> ConnectionPool:
    """A lazily filled pool: start-up never waits for Postgres, a request waits at most timeout_s.

    Connections are in autocommit: a lone statement is one round trip, and the one transaction
    we need is opened explicitly, so its BEGIN can travel with the first statements.
    """
    pool = ConnectionPool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        kwargs={
            "autocommit": True,
            "connect_timeout": max(1, math.ceil(timeout_s)),
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
            "application_name": "execution-gateway",
        },
    )
    pool.open(wait=False)
    return pool
