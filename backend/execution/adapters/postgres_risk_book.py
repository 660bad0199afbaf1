"""Postgres adapter for the risk checks' data: positions and this gateway's own book of orders.

``public.broker_positions`` belongs to the position-sync job; this service only reads it.
``public.execution_orders`` is ours (backend/db/migrations/0002_order_book.sql): every order the
checks let through is written there *in the same transaction* that read the data and under
transaction-scoped advisory locks, so no two concurrent checks (threads, processes, instances)
can both spend the last daily slot or the last shares of headroom. See docs/EXACTLY_ONCE.md.

This module only fetches rows and writes states; what the rows mean for exposure is decided in
:mod:`backend.execution.exposure`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.adapters.postgres_schema import SchemaGuard
from backend.execution.decisions import BrokerOrder
from backend.execution.errors import RiskDataUnavailable
from backend.execution.exposure import BookOrder, Fill, PositionRow, Untouched
from backend.execution.fills import FINAL_STATUSES, broker_time
from backend.execution.intent import OrderIntent, Side
from backend.execution.risk import RiskSnapshot

# Lock order is fixed (account, then symbol) so two transactions can never wait on each other.
# The account lock serialises every check that counts per account (the daily cap, the order
# rate, a latch); the symbol lock every check on exposure. Windows that cross New York midnight
# stay exact because the account lock does not depend on the day.
_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended('exec-acct:' || %(account)s, 0)),
       pg_advisory_xact_lock(hashtextextended('exec-sym:' || %(account)s || ':' || %(symbol)s, 0))
"""

# One statement, so one snapshot, taken after the locks were granted. It returns the rows the
# exposure rule needs: orders that may still fill or whose fills the position row may not
# include yet, each with its fills after the horizon and the total of those before it.
_SNAPSHOT = """
WITH position AS (
    -- A row dated in the future (a fast clock) is as of now at most: later fills still count.
    SELECT qty, least(updated_at, clock_timestamp()) AS updated_at FROM public.broker_positions
    WHERE broker_account_id = %(account)s AND symbol = %(symbol)s
), horizon AS (
    SELECT coalesce((SELECT updated_at FROM position) - make_interval(secs => %(skew)s),
                    '-infinity'::timestamptz) AS t
), orders AS (
    SELECT o.client_intent_id, o.side, o.qty, o.filled_qty, o.state, o.filled_as_of,
           -- Working and without any fill (fills_qty moves with every recorded fill): counts
           -- in full on its side, so it is summed rather than listed.
           (o.state IN ('reserved', 'working') AND o.filled_qty = 0 AND o.fills_qty = 0)
               AS untouched
    FROM public.execution_orders o, horizon h
    WHERE o.broker_account_id = %(account)s AND o.symbol = %(symbol)s
      AND o.client_intent_id <> %(intent)s AND o.state <> 'released'
      AND (o.state IN ('reserved', 'working') OR o.last_fill_at > h.t
           OR (o.filled_qty > o.fills_qty AND coalesce(o.filled_as_of > h.t, true)))
)
SELECT
    (SELECT count(*) FROM public.execution_orders
      WHERE broker_account_id = %(account)s AND trading_date = %(day)s
        AND state <> 'released' AND client_intent_id <> %(intent)s),
    (SELECT qty::text FROM position),
    (SELECT updated_at FROM position),
    (SELECT coalesce(json_agg(json_build_object(
        'id', o.client_intent_id, 'side', o.side, 'qty', o.qty::text,
        'filled_qty', o.filled_qty::text, 'working', o.state IN ('reserved', 'working'),
        'filled_as_of', o.filled_as_of,
        'recent', (SELECT coalesce(json_agg(json_build_array(f.qty::text, f.transaction_time)),
                                   '[]'::json)
                   FROM public.execution_fills f, horizon h
                   WHERE f.client_intent_id = o.client_intent_id AND f.transaction_time > h.t),
        'older', (SELECT json_build_array(sum(f.qty)::text, max(f.transaction_time))
                  FROM public.execution_fills f, horizon h
                  WHERE f.client_intent_id = o.client_intent_id AND f.transaction_time <= h.t)
    )), '[]'::json) FROM orders o WHERE NOT o.untouched),
    (SELECT json_build_array(
        coalesce(sum(o.qty) FILTER (WHERE o.side = 'buy'), 0)::text,
        coalesce(sum(o.qty) FILTER (WHERE o.side = 'sell'), 0)::text)
     FROM orders o WHERE o.untouched),
    (SELECT json_build_array(count(*),
                             extract(epoch FROM min(reserved_at) + interval '60 s' - clock_timestamp()))
     FROM public.execution_orders
     WHERE broker_account_id = %(account)s AND reserved_at > clock_timestamp() - interval '60 s'
       AND client_intent_id <> %(intent)s),
    (SELECT count(*) FROM public.execution_orders
     WHERE broker_account_id = %(account)s AND strategy_id = %(strategy)s
       AND symbol = %(symbol)s AND side = %(side)s AND state <> 'released'
       AND reserved_at > clock_timestamp() - make_interval(secs => %(repeat_s)s)
       -- An operator who re-enables a strategy starts its count afresh.
       AND reserved_at > coalesce((SELECT released_at FROM public.execution_strategy_latches
                                   WHERE broker_account_id = %(account)s
                                     AND strategy_id = %(strategy)s), '-infinity')
       AND client_intent_id <> %(intent)s),
    (SELECT json_build_array(latched_at, latch_detail) FROM public.execution_strategy_latches
     WHERE broker_account_id = %(account)s AND strategy_id = %(strategy)s
       AND released_at IS NULL),
    (SELECT json_build_array(state, set_at, set_by, reason) FROM public.execution_halts
     WHERE broker_account_id = %(account)s AND state <> 'off')
"""

# The repeated-execution control tripped: the strategy is halted on every instance until an
# operator lifts it. Committed with the check's transaction.
_LATCH = """
INSERT INTO public.execution_strategy_latches (broker_account_id, strategy_id, latch_detail)
VALUES (%(account)s, %(strategy)s, %(detail)s)
ON CONFLICT (broker_account_id, strategy_id) DO UPDATE SET
    latched_at = now(), latch_detail = EXCLUDED.latch_detail,
    released_at = NULL, released_by = NULL, release_reason = NULL
"""

_ORDER_COLUMNS = """
    (client_intent_id, broker_account_id, strategy_id, symbol, side, qty, order_type,
     limit_price, stop_price, trading_date, state, broker_order_id, broker_status, filled_qty,
     filled_as_of, final_at, reserved_at)
VALUES (%(intent)s, %(account)s, %(strategy)s, %(symbol)s, %(side)s, %(qty)s, %(order_type)s,
        %(limit_price)s, %(stop_price)s, %(day)s, %(state)s, %(order_id)s, %(broker_status)s,
        %(filled_qty)s, %(filled_as_of)s, CASE WHEN %(state)s = 'final' THEN now() END,
        clock_timestamp())
"""

# A retry re-reserves its own row: it counts again from now, on today's New York date, whatever
# happened to the position row meanwhile. A row the broker already has (working, final) is
# never demoted. Stamps use clock_timestamp(), the moment after the locks were granted, not the
# transaction's start: an order that waited for the lock must not leave the windows early.
_RESERVE = f"""
INSERT INTO public.execution_orders {_ORDER_COLUMNS}
ON CONFLICT (client_intent_id) DO UPDATE SET state = 'reserved',
    reserved_at = clock_timestamp(), trading_date = EXCLUDED.trading_date, updated_at = now()
WHERE public.execution_orders.state IN ('reserved', 'released')
"""

# The broker has the order (placed or adopted). A final state is never reverted, quantities
# never decrease: a late settle cannot undo what the fill sync already recorded.
_PLACED = f"""
INSERT INTO public.execution_orders AS o {_ORDER_COLUMNS}
ON CONFLICT (client_intent_id) DO UPDATE SET
    state = CASE WHEN o.state = 'final' THEN 'final' ELSE EXCLUDED.state END,
    broker_order_id = EXCLUDED.broker_order_id,
    broker_status = CASE WHEN o.state = 'final' THEN o.broker_status
                         ELSE EXCLUDED.broker_status END,
    filled_as_of = CASE WHEN EXCLUDED.filled_qty >= o.filled_qty
                        THEN greatest(o.filled_as_of, EXCLUDED.filled_as_of)
                        ELSE o.filled_as_of END,
    filled_qty = greatest(o.filled_qty, EXCLUDED.filled_qty),
    final_at = coalesce(o.final_at, EXCLUDED.final_at),
    updated_at = now()
"""

# Only a reservation can be given back: an order the broker has is never released.
_RELEASE = """
UPDATE public.execution_orders SET state = 'released', updated_at = now()
WHERE client_intent_id = %(intent)s AND state = 'reserved'
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

    def latch(self, detail: str) -> None:
        """Halts the intent's strategy (a shared hold, in dry-run, writes nothing)."""
        if self._conn is not None:
            self._conn.execute(_LATCH, self._params | {"detail": detail})


class PostgresRiskBook:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        timeout_s: float,
        position_skew_s: float = 10.0,
        repeat_window_s: int = 60,
        schema: SchemaGuard | None = None,
    ) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._skew = position_skew_s
        self._repeat_window_s = repeat_window_s
        self._schema = schema or SchemaGuard(pool, migrate=True, timeout_s=timeout_s)

    @contextmanager
    def hold(self, intent: OrderIntent, on: date, *, exclusive: bool) -> Iterator[_Hold]:
        """Two round trips when exclusive (BEGIN + locks + snapshot, then reserve + COMMIT, each
        pipelined into one flight); one when not (a lone snapshot in autocommit)."""
        self._schema.ensure()
        params = _params(intent, on) | {"skew": self._skew, "repeat_s": self._repeat_window_s}
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
            raise _unavailable(exc) from None

    def record_placed(self, intent: OrderIntent, on: date, order: BrokerOrder) -> None:
        final = order.status in FINAL_STATUSES
        params = _params(intent, on) | {
            "state": "final" if final else "working",
            "order_id": order.broker_order_id,
            "broker_status": order.status,
            "filled_qty": order.filled_qty,
            "filled_as_of": broker_time(order.raw.get("updated_at")),
        }
        self._write(_PLACED, params)

    def release(self, intent: OrderIntent) -> None:
        self._write(_RELEASE, {"intent": intent.client_intent_id})

    def ping(self) -> None:
        self._schema.ensure()
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(f"postgres: {type(exc).__name__}") from None

    def close(self) -> None:
        self._pool.close()

    def _write(self, statement: str, params: dict[str, object]) -> None:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                conn.execute(statement, params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise _unavailable(exc) from None


def _params(intent: OrderIntent, on: date) -> dict[str, object]:
    return {
        "intent": intent.client_intent_id,
        "account": intent.broker_account_id,
        "strategy": intent.strategy_id,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "qty": intent.qty,
        "order_type": intent.order_type.value,
        "limit_price": intent.limit_price,
        "stop_price": intent.stop_price,
        "day": on.isoformat(),
        "state": "reserved",
        "order_id": None,
        "broker_status": None,
        "filled_qty": Decimal(0),
        "filled_as_of": None,
    }


def _snapshot(row: tuple[object, ...] | None) -> RiskSnapshot:
    assert row is not None  # a SELECT without FROM always yields one row
    trades, qty, as_of, orders, untouched, rate, repeats, latch, halt = row
    position = (
        PositionRow(Decimal(str(qty)), as_of)
        if qty is not None and isinstance(as_of, datetime)
        else None
    )
    recent, frees_in = json_list(rate) if rate is not None else [0, None]
    latched = json_list(latch) if latch is not None else None
    return RiskSnapshot(
        trades_today=int(str(trades)),
        position=position,
        orders=tuple(book_order_from_json(item) for item in json_list(orders)),
        untouched=Untouched(*(Decimal(total) for total in json_list(untouched))),
        orders_last_minute=int(recent or 0),
        rate_frees_in_s=float(frees_in) if frees_in is not None else None,
        repeats_in_window=int(str(repeats)),
        latched=(_time(latched[0]), str(latched[1])) if latched else None,
        halt=_halt(halt),
    )


def _halt(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    state, set_at, set_by, reason = json_list(value)
    return str(state), f"by {set_by} at {set_at}: {reason}"


def book_order_from_json(item: dict[str, Any]) -> BookOrder:
    """One order of a snapshot's JSON (also the console's): its fills after the horizon one by
    one, and those before it as one total."""
    fills = [Fill(Decimal(qty), _time(at)) for qty, at in item["recent"]]
    older = item.get("older")
    if older and older[0] is not None:
        fills.append(Fill(Decimal(older[0]), _time(older[1])))
    return BookOrder(
        client_intent_id=item["id"],
        side=Side(item["side"]),
        qty=Decimal(item["qty"]),
        filled_qty=Decimal(item["filled_qty"]),
        fills=tuple(fills),
        working=bool(item["working"]),
        filled_as_of=_time(item["filled_as_of"]) if item.get("filled_as_of") else None,
    )


def json_list(value: object) -> list[Any]:
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    return list(parsed) if isinstance(parsed, list) else []


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _unavailable(exc: Exception) -> RiskDataUnavailable:
    return RiskDataUnavailable(f"risk book: {type(exc).__name__}: {str(exc)[:200]}")
