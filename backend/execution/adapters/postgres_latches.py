"""The repeated-execution latches (``public.execution_strategy_latches``), for operators.

The execution path sets a latch inside its check-and-reserve transaction (postgres_risk_book);
this adapter lists them and lifts one, recording who lifted it, when and why.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.adapters.postgres_schema import SchemaGuard
from backend.execution.errors import RiskDataUnavailable

_LATCHED = """
SELECT broker_account_id, strategy_id, latched_at, latch_detail, released_at, released_by,
       release_reason
FROM public.execution_strategy_latches
WHERE broker_account_id = %(account)s AND (released_at IS NULL OR %(all)s)
ORDER BY latched_at DESC
"""

_RELEASE = """
UPDATE public.execution_strategy_latches
SET released_at = now(), released_by = %(who)s, release_reason = %(reason)s
WHERE broker_account_id = %(account)s AND strategy_id = %(strategy)s AND released_at IS NULL
RETURNING latched_at, latch_detail, released_at
"""


class PostgresLatches:
    """Implements ``ports.LatchStore``."""

    def __init__(
        self, pool: ConnectionPool, *, timeout_s: float, schema: SchemaGuard | None = None
    ) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._schema = schema or SchemaGuard(pool, migrate=True, timeout_s=timeout_s)

    def latches(
        self, broker_account_id: str, *, include_released: bool = False
    ) -> list[dict[str, Any]]:
        rows = self._run(_LATCHED, {"account": broker_account_id, "all": include_released})
        keys = ("broker_account_id", "strategy_id", "latched_at", "latch_detail", "released_at",
                "released_by", "release_reason")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def release(
        self, broker_account_id: str, strategy_id: str, *, who: str, reason: str
    ) -> dict[str, Any] | None:
        """Lifts the latch; None when the strategy was not latched."""
        params = {"account": broker_account_id, "strategy": strategy_id, "who": who,
                  "reason": reason}  # fmt: skip
        rows = self._run(_RELEASE, params)
        if not rows:
            return None
        latched_at, detail, released_at = rows[0]
        return {"latched_at": latched_at, "latch_detail": detail, "released_at": released_at}

    def _run(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self._schema.ensure()
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                return list(conn.execute(statement.encode(), params).fetchall())
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"latches: {type(exc).__name__}: {str(exc)[:200]}") from None
