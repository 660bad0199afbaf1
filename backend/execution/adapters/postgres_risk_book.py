"""Postgres adapter for the risk checks' data: positions and this service's own order book.

``public.broker_positions`` belongs to the position-sync job; this service only reads it.
``public.execution_risk_reservations`` is ours: every order the risk checks let through is
reserved there *in the same transaction* that read the data and under transaction-scoped
advisory locks, so no two concurrent checks (threads, processes, instances) can both spend the
last daily slot or the last shares of position headroom. See docs/EXACTLY_ONCE.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.errors import RiskDataUnavailable
from backend.execution.intent import OrderIntent
from backend.execution.risk import RiskSnapshot

# Lock order is fixed (day, then symbol) so two transactions can never wait on each other.
_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended('exec-day:' || %(account)s || ':' || %(day)s, 0)),
       pg_advisory_xact_lock(hashtextextended('exec-sym:' || %(account)s || ':' || %(symbol)s, 0))
"""

# One statement, so one snapshot, taken after the locks were granted.
_SNAPSHOT = """
WITH position AS (
    SELECT qty, updated_at FROM public.broker_positions
    WHERE broker_account_id = %(account)s AND symbol = %(symbol)s
)
SELECT
    (SELECT count(*) FROM public.execution_risk_reservations
      WHERE broker_account_id = %(account)s AND trading_date = %(day)s
        AND state <> 'released' AND client_intent_id <> %(intent)s),
    (SELECT qty FROM position),
    (SELECT updated_at FROM position),
    (SELECT coalesce(sum(signed_qty), 0) FROM public.execution_risk_reservations
      WHERE broker_account_id = %(account)s AND symbol = %(symbol)s
        AND state <> 'released' AND client_intent_id <> %(intent)s
        AND created_at > coalesce((SELECT updated_at FROM position), '-infinity'))
"""

# A retry of the same intent keeps its original created_at: its exposure dates from then.
_RESERVE = """
INSERT INTO public.execution_risk_reservations
    (client_intent_id, broker_account_id, symbol, trading_date, signed_qty, state)
VALUES (%(intent)s, %(account)s, %(symbol)s, %(day)s, %(signed_qty)s, 'reserved')
ON CONFLICT (client_intent_id) DO UPDATE SET state = 'reserved', updated_at = now()
"""

_SETTLE = """
INSERT INTO public.execution_risk_reservations
    (client_intent_id, broker_account_id, symbol, trading_date, signed_qty, state, broker_order_id)
VALUES (%(intent)s, %(account)s, %(symbol)s, %(day)s, %(signed_qty)s, %(state)s, %(order_id)s)
ON CONFLICT (client_intent_id) DO UPDATE
    SET state = EXCLUDED.state,
        broker_order_id = coalesce(EXCLUDED.broker_order_id,
                                   public.execution_risk_reservations.broker_order_id),
        updated_at = now()
"""


class _Hold:
    def __init__(
        self, conn: psycopg.Connection | None, params: dict[str, object], snapshot: RiskSnapshot
    ) -> None:
        self._conn = conn
        self._params = params
        self.snapshot = snapshot
        self.reserved = False

    def reserve(self) -> None:
        if self._conn is None:
            raise RuntimeError("a shared (non-exclusive) hold cannot reserve")
        # Queued in the pipeline: it travels with the COMMIT, and any error surfaces there.
        self._conn.execute(_RESERVE, self._params)
        self.reserved = True


class PostgresRiskBook:
    def __init__(self, pool: ConnectionPool, *, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s

    @contextmanager
    def hold(self, intent: OrderIntent, on: date, *, exclusive: bool) -> Iterator[_Hold]:
        """Two round trips when exclusive (BEGIN + locks + snapshot, then reserve + COMMIT, each
        pipelined into one flight); one when not (a lone snapshot in autocommit)."""
        params = _params(intent, on)
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                if not exclusive:
                    yield _Hold(None, params, _snapshot(conn.execute(_SNAPSHOT, params).fetchone()))
                    return
                with conn.pipeline() as flights:
                    conn.execute("BEGIN")
                    conn.execute(_LOCK, params)
                    cursor = conn.execute(_SNAPSHOT, params)
                    flights.sync()
                    hold = _Hold(conn, params, _snapshot(cursor.fetchone()))
                    try:
                        yield hold
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(
                f"risk book: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    def settle(
        self, intent: OrderIntent, on: date, *, routed: bool, broker_order_id: str | None
    ) -> None:
        params = _params(intent, on) | {
            "state": "routed" if routed else "released",
            "order_id": broker_order_id,
        }
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.execute(_SETTLE, params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(
                f"risk book: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    def ping(self) -> None:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                # Also proves the schema is there: a missing table would refuse every intent.
                conn.execute(
                    "SELECT 1 FROM public.execution_risk_reservations, public.broker_positions"
                    " LIMIT 0"
                )
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"postgres: {type(exc).__name__}") from None

    def close(self) -> None:
        self._pool.close()


def _params(intent: OrderIntent, on: date) -> dict[str, object]:
    return {
        "intent": intent.client_intent_id,
        "account": intent.broker_account_id,
        "symbol": intent.symbol,
        "day": on.isoformat(),
        "signed_qty": intent.signed_qty,
    }


def _snapshot(row: tuple[object, ...] | None) -> RiskSnapshot:
    assert row is not None  # a SELECT without FROM always yields one row
    return RiskSnapshot(
        trades_today=int(str(row[0])),
        position_qty=Decimal(str(row[1])) if row[1] is not None else Decimal(0),
        position_updated_at=_aware(row[2]),
        pending_qty=Decimal(str(row[3])),
    )


def _aware(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
