"""Read-only Postgres queries for the console: exposure per symbol, today's count, the book.

Nothing here takes a lock or writes: the console shows what the limits see, it never decides.
The exposure rows have the shape the risk book reads under its locks (a position row and the
orders whose quantity may still count, each with its fills), for every symbol of the account in
one statement, so the page and the limit apply :func:`backend.execution.exposure.exposure` to the
same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.adapters.postgres_risk_book import book_order_from_json, json_list
from backend.execution.errors import RiskDataUnavailable
from backend.execution.exposure import BookOrder, PositionRow

# Every symbol with a position row or an order that may still count. Per order: its fills after
# the symbol's horizon (the position row's time minus the skew) one by one, and those before it
# as one total, exactly as postgres_risk_book's snapshot does for one symbol.
_EXPOSURE = """
WITH positions AS (
    SELECT symbol, qty, least(updated_at, clock_timestamp()) AS updated_at
    FROM public.broker_positions
    WHERE broker_account_id = %(account)s
), orders AS (
    SELECT o.client_intent_id, o.symbol, o.side, o.qty, o.filled_qty, o.state, o.filled_as_of,
           o.last_fill_at, o.fills_qty,
           coalesce(p.updated_at - make_interval(secs => %(skew)s),
                    '-infinity'::timestamptz) AS horizon
    FROM public.execution_orders o
    LEFT JOIN positions p ON p.symbol = o.symbol
    WHERE o.broker_account_id = %(account)s AND o.state <> 'released'
)
SELECT
    (SELECT coalesce(json_agg(json_build_array(symbol, qty::text, updated_at)), '[]'::json)
     FROM positions),
    (SELECT coalesce(json_agg(json_build_object(
        'id', o.client_intent_id, 'symbol', o.symbol, 'side', o.side, 'qty', o.qty::text,
        'filled_qty', o.filled_qty::text, 'working', o.state IN ('reserved', 'working'),
        'filled_as_of', o.filled_as_of,
        'recent', (SELECT coalesce(json_agg(json_build_array(f.qty::text, f.transaction_time)),
                                   '[]'::json)
                   FROM public.execution_fills f
                   WHERE f.client_intent_id = o.client_intent_id
                     AND f.transaction_time > o.horizon),
        'older', (SELECT json_build_array(sum(f.qty)::text, max(f.transaction_time))
                  FROM public.execution_fills f
                  WHERE f.client_intent_id = o.client_intent_id
                    AND f.transaction_time <= o.horizon)
    )), '[]'::json) FROM orders o
     WHERE o.state IN ('reserved', 'working') OR o.last_fill_at > o.horizon
        OR (o.filled_qty > o.fills_qty AND coalesce(o.filled_as_of > o.horizon, true))),
    (SELECT count(*) FROM public.execution_orders
     WHERE broker_account_id = %(account)s AND trading_date = %(day)s AND state <> 'released')
"""

_COLUMNS = """
SELECT client_intent_id, strategy_id, symbol, side, qty::text, order_type, limit_price::text,
       state, broker_order_id, broker_status, filled_qty::text, working_qty::text,
       trading_date, reserved_at, updated_at, final_at
FROM public.execution_orders
"""
# The book as the Orders page lists it: the day's rows, and rows of any day still working.
_BOOK = (
    _COLUMNS
    + """WHERE broker_account_id = %(account)s
  AND (trading_date = %(day)s OR state IN ('reserved', 'working'))
ORDER BY reserved_at DESC
LIMIT %(limit)s
"""
)
_ONE = _COLUMNS + "WHERE broker_account_id = %(account)s AND client_intent_id = %(intent)s"


@dataclass(frozen=True)
class ExposureInputs:
    """What the exposure rule reads for each symbol, and the day's count for the daily cap."""

    positions: dict[str, PositionRow]
    orders: dict[str, list[BookOrder]]
    trades_today: int

    @property
    def symbols(self) -> list[str]:
        return sorted(self.positions.keys() | self.orders.keys())


@dataclass(frozen=True)
class ConsoleBookRow:
    client_intent_id: str
    strategy_id: str | None
    symbol: str
    side: str
    qty: Decimal
    order_type: str | None
    limit_price: str | None
    state: str
    broker_order_id: str | None
    broker_status: str | None
    filled_qty: Decimal
    working_qty: Decimal
    trading_date: date
    reserved_at: datetime
    updated_at: datetime
    final_at: datetime | None


class PostgresConsoleReads:
    def __init__(self, pool: ConnectionPool, *, timeout_s: float, position_skew_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self._skew = position_skew_s

    def exposure_inputs(self, broker_account_id: str, day: date) -> ExposureInputs:
        params = {"account": broker_account_id, "skew": self._skew, "day": day}
        (positions, orders, trades), *_ = self._run(_EXPOSURE, params)
        by_symbol: dict[str, list[BookOrder]] = {}
        for item in json_list(orders):
            by_symbol.setdefault(str(item["symbol"]), []).append(book_order_from_json(item))
        return ExposureInputs(
            positions={
                str(symbol): PositionRow(Decimal(qty), _time(at))
                for symbol, qty, at in json_list(positions)
            },
            orders=by_symbol,
            trades_today=int(trades),
        )

    def book_rows(self, broker_account_id: str, day: date, *, limit: int) -> list[ConsoleBookRow]:
        rows = self._run(_BOOK, {"account": broker_account_id, "day": day, "limit": limit})
        return [_book_row(r) for r in rows]

    def book_row(self, broker_account_id: str, client_intent_id: str) -> ConsoleBookRow | None:
        params = {"account": broker_account_id, "intent": client_intent_id}
        rows = self._run(_ONE, params)
        return _book_row(rows[0]) if rows else None

    def _run(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                return list(conn.execute(statement.encode(), params).fetchall())
        except (psycopg.Error, PoolTimeout) as exc:
            raise RiskDataUnavailable(
                f"console reads: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None


def _book_row(r: tuple[Any, ...]) -> ConsoleBookRow:
    return ConsoleBookRow(
        client_intent_id=str(r[0]),
        strategy_id=r[1],
        symbol=str(r[2]),
        side=str(r[3]),
        qty=Decimal(r[4]),
        order_type=r[5],
        limit_price=r[6],
        state=str(r[7]),
        broker_order_id=r[8],
        broker_status=r[9],
        filled_qty=Decimal(r[10]),
        working_qty=Decimal(r[11]),
        trading_date=r[12],
        reserved_at=r[13],
        updated_at=r[14],
        final_at=r[15],
    )


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
