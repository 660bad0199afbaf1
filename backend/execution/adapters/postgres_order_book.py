"""The fill sync's side of the order book (``public.execution_orders`` and ``execution_fills``).

The execution path writes a row when an order passes the limits; this adapter keeps the row
true to the broker: its status, its cumulative filled quantity, and each fill with its time.
A row is only ever updated with data of the same order: the broker order must carry the row's
client_order_id, symbol, side and quantity, or the update does not apply (see
:mod:`backend.execution.adoption` for the same rule on the execution path).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.adapters.postgres_schema import SchemaGuard
from backend.execution.book import BookRow
from backend.execution.errors import RiskDataUnavailable
from backend.execution.fills import FINAL_STATUSES, broker_time, decimal_or_none

# The broker's snapshot of one order, applied only to the row of the same order: its
# client_order_id, symbol, side, quantity, type and prices (a row carried over from version 1
# knows no type or prices). Quantities only grow and a final state never reverts, so
# a stale or repeated snapshot changes nothing. A reserved row becomes working once the broker
# shows it has the order; so does a released one (fail closed: the broker's word wins).
_APPLY_ORDER = """
UPDATE public.execution_orders SET
    broker_order_id = %(order_id)s,
    broker_status = CASE WHEN state = 'final' THEN broker_status ELSE %(status)s END,
    filled_as_of = CASE WHEN %(filled_qty)s >= filled_qty
                        THEN greatest(filled_as_of, %(updated_at)s) ELSE filled_as_of END,
    filled_qty = greatest(filled_qty, %(filled_qty)s),
    state = CASE WHEN state = 'final' THEN 'final'
                 WHEN %(final)s THEN 'final' ELSE 'working' END,
    final_at = CASE WHEN state <> 'final' AND %(final)s THEN now() ELSE final_at END,
    updated_at = now()
WHERE client_intent_id = %(client_order_id)s
  AND (broker_order_id IS NULL OR broker_order_id = %(order_id)s)
  AND symbol = %(symbol)s AND side = %(side)s AND qty = %(qty)s
  AND (migrated_from IS NOT NULL OR (order_type = %(type)s
       AND limit_price IS NOT DISTINCT FROM %(limit_price)s
       AND stop_price IS NOT DISTINCT FROM %(stop_price)s))
  AND (%(account)s::text IS NULL OR broker_account_id = %(account)s)
RETURNING client_intent_id
"""

# One FILL activity, recorded once (its id is the key); the order's running totals move with
# it in the same statement.
_APPLY_FILL = """
WITH fill AS (
    INSERT INTO public.execution_fills
        (activity_id, client_intent_id, broker_order_id, qty, price, transaction_time)
    SELECT %(activity_id)s, o.client_intent_id, %(order_id)s, %(qty)s, %(price)s, %(at)s
    FROM public.execution_orders o WHERE o.broker_order_id = %(order_id)s
      AND (%(account)s::text IS NULL OR o.broker_account_id = %(account)s)
    ON CONFLICT (activity_id) DO NOTHING
    RETURNING client_intent_id, qty, transaction_time
)
UPDATE public.execution_orders o SET
    fills_qty = o.fills_qty + fill.qty,
    last_fill_at = greatest(o.last_fill_at, fill.transaction_time),
    updated_at = now()
FROM fill WHERE o.client_intent_id = fill.client_intent_id
RETURNING o.client_intent_id
"""

_ROWS = """
SELECT client_intent_id, broker_account_id, symbol, side, qty::text, state, broker_order_id,
       broker_status, filled_qty::text, working_qty::text, reserved_at, updated_at
FROM public.execution_orders WHERE {where} ORDER BY reserved_at
"""

# A reservation whose attempt is long over and whose order the broker does not have. The
# reserved_at condition makes it a no-op if an attempt re-reserved the row meanwhile.
_RELEASE_STALE = """
UPDATE public.execution_orders SET state = 'released', updated_at = now()
WHERE client_intent_id = %(intent)s AND state = 'reserved' AND reserved_at = %(reserved_at)s
"""


class PostgresOrderBook:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        timeout_s: float,
        schema: SchemaGuard | None = None,
        broker_account_id: str | None = None,
    ) -> None:
        # The deployment's bound account: several deployments may share one database, and the
        # fill sync of one account must never touch another's rows.
        self._account = broker_account_id
        self._pool = pool
        self._timeout = timeout_s
        self._schema = schema or SchemaGuard(pool, migrate=True, timeout_s=timeout_s)

    def apply_orders(self, orders: Iterable[Mapping[str, Any]]) -> set[str]:
        """Applies broker order snapshots; returns the client_order_ids of rows they updated."""
        params = [
            p | {"account": self._account} for p in map(_order_params, orders) if p is not None
        ]
        if not params:
            return set()
        updated: set[str] = set()

        def run(conn: psycopg.Connection) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_APPLY_ORDER, params, returning=True)
                while True:
                    updated.update(str(row[0]) for row in cursor.fetchall())
                    if not cursor.nextset():
                        break

        self._run(run)
        return updated

    def apply_fills(self, activities: Iterable[Mapping[str, Any]]) -> int:
        """Records FILL activities of the book's orders; returns how many were new."""
        params = [
            p | {"account": self._account} for p in map(_fill_params, activities) if p is not None
        ]
        if not params:
            return 0
        added = 0

        def run(conn: psycopg.Connection) -> None:
            nonlocal added
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_APPLY_FILL, params, returning=True)
                while True:
                    added += len(cursor.fetchall())
                    if not cursor.nextset():
                        break

        self._run(run)
        return added

    def open_rows(self, broker_account_id: str | None = None) -> list[BookRow]:
        """Rows still reserved or working, oldest first: of the given account, else of the
        bound one, else (an unbound auditor's read) of every account."""
        broker_account_id = broker_account_id or self._account
        where = "state IN ('reserved', 'working')"
        if broker_account_id:
            where += " AND broker_account_id = %(account)s"
        rows: list[tuple[Any, ...]] = []

        def run(conn: psycopg.Connection) -> None:
            query = _ROWS.format(where=where)
            rows.extend(conn.execute(query.encode(), {"account": broker_account_id}).fetchall())

        self._run(run)
        return [_row(r) for r in rows]

    def rows_for(self, client_intent_ids: Iterable[str]) -> list[BookRow]:
        """The rows of these intents, whatever their state."""
        ids = list(dict.fromkeys(client_intent_ids))
        if not ids:
            return []
        rows: list[tuple[Any, ...]] = []

        def run(conn: psycopg.Connection) -> None:
            query = _ROWS.format(where="client_intent_id = ANY(%(ids)s)")
            rows.extend(conn.execute(query.encode(), {"ids": ids}).fetchall())

        self._run(run)
        return [_row(r) for r in rows]

    def release_stale(self, row: BookRow) -> bool:
        """Releases a reservation the broker never received, unless it was re-reserved."""
        released = False

        def run(conn: psycopg.Connection) -> None:
            nonlocal released
            params = {"intent": row.client_intent_id, "reserved_at": row.reserved_at}
            released = conn.execute(_RELEASE_STALE, params).rowcount == 1

        self._run(run)
        return released

    def close(self) -> None:
        self._pool.close()

    def _run(self, action: Any) -> None:
        self._schema.ensure()
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                action(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(
                f"order book: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None


def _row(r: tuple[Any, ...]) -> BookRow:
    return BookRow(
        client_intent_id=str(r[0]),
        broker_account_id=str(r[1]),
        symbol=str(r[2]),
        side=str(r[3]),
        qty=Decimal(r[4]),
        state=str(r[5]),
        broker_order_id=r[6],
        broker_status=r[7],
        filled_qty=Decimal(r[8]),
        working_qty=Decimal(r[9]),
        reserved_at=r[10],
        updated_at=r[11],
    )


def _order_params(order: Mapping[str, Any]) -> dict[str, object] | None:
    qty = decimal_or_none(order.get("qty"))
    client_order_id = order.get("client_order_id")
    if qty is None or not client_order_id or not order.get("id"):
        return None  # a notional order, or not one of ours: no row can match
    if order.get("extended_hours") or order.get("order_class") not in (None, "", "simple"):
        return None  # the gateway never sends these: not the row's order
    status = str(order.get("status") or "")
    return {
        "order_id": str(order["id"]),
        "client_order_id": str(client_order_id),
        "symbol": order.get("symbol"),
        "side": order.get("side"),
        "qty": qty,
        "type": order.get("type") or order.get("order_type"),
        "limit_price": decimal_or_none(order.get("limit_price")),
        "stop_price": decimal_or_none(order.get("stop_price")),
        "status": status,
        "final": status in FINAL_STATUSES,
        "filled_qty": decimal_or_none(order.get("filled_qty")) or Decimal(0),
        # When that quantity was true at the broker (its clock); absent, nothing is assumed.
        "updated_at": broker_time(order.get("updated_at")),
    }


def _fill_params(activity: Mapping[str, Any]) -> dict[str, object] | None:
    qty, at = decimal_or_none(activity.get("qty")), broker_time(activity.get("transaction_time"))
    if qty is None or qty <= 0 or at is None or not activity.get("id"):
        return None
    return {
        "activity_id": str(activity["id"]),
        "order_id": str(activity.get("order_id")),
        "qty": qty,
        "price": decimal_or_none(activity.get("price")),
        "at": at,
    }
