"""The SQL an operator copies from docs/RUNBOOK.md runs on the schema the migrations build, and
the two queries whose answer decides what the operator does say what the code does: the fill
sync lock's holder, and the carried-over fills that still count as working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_risk_book import PostgresRiskBook
from backend.execution.adapters.postgres_sync_lock import PostgresSyncLock
from backend.execution.exposure import exposure
from backend.execution.intent import OrderIntent
from tests.conftest import current_account, unique

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"
SKEW_S = 10  # EXEC_POSITION_SKEW_S, as the runbook's query spells it


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), flags=re.S)


def block_with(marker: str) -> str:
    found = [block for block in sql_blocks() if marker in block]
    assert len(found) == 1, f"{len(found)} SQL blocks of RUNBOOK.md contain {marker!r}"
    return found[0]


def filled_in(sql: str, **values: str) -> str:
    """The operator's placeholders: '<broker_account_id>' and the like, and bare <numbers>."""
    for name, value in values.items():
        sql = sql.replace(f"<{name}>", value)
    sql = re.sub(r"'<[A-Za-z][^<>\n]*>'", "'placeholder'", sql)
    return re.sub(r"<[A-Za-z][^<>\n]*>", "0", sql)


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize("sql", sql_blocks(), ids=lambda sql: sql.split("\n", 1)[0][:40])
def test_every_sql_block_of_the_runbook_runs_on_the_migrated_schema(
    conn: psycopg.Connection, sql: str
) -> None:
    with pytest.raises(_RolledBack), conn.transaction():
        conn.execute(filled_in(sql).encode())
        raise _RolledBack  # the UPDATEs among them must change nothing here


class _RolledBack(Exception):
    pass


def test_the_runbooks_lock_query_finds_the_fill_sync_of_the_account(
    pg_dsn: str, conn: psycopg.Connection
) -> None:
    pool = open_pool(pg_dsn, max_size=1, timeout_s=5)
    try:
        with PostgresSyncLock(
            pool, timeout_s=5, broker_account_id=current_account()
        ).hold() as held:
            assert held
            sql = filled_in(block_with("pg_locks"), broker_account_id=current_account())
            assert len(conn.execute(sql.encode()).fetchall()) == 1
            other = filled_in(block_with("pg_locks"), broker_account_id=unique("acct"))
            assert conn.execute(other.encode()).fetchall() == []
    finally:
        pool.close()


def test_the_check_for_fills_without_a_time_lists_a_carried_over_order_until_the_sweep_dates_it(
    pg_dsn: str, conn: psycopg.Connection
) -> None:
    account, intent_id = current_account(), unique("old")
    conn.execute(
        "INSERT INTO public.broker_positions (broker_account_id, symbol, qty, updated_at)"
        " VALUES (%s, 'SPY', 10, now())",
        (account,),
    )
    # As migration 0002 carries a filled order over, once the sweep has seen it final.
    conn.execute(
        "INSERT INTO public.execution_orders (client_intent_id, broker_account_id, symbol, side,"
        " qty, trading_date, state, broker_order_id, broker_status, filled_qty, migrated_from)"
        " VALUES (%s, %s, 'SPY', 'buy', 10, current_date, 'final', %s, 'filled', 10,"
        " 'execution_risk_reservations')",
        (intent_id, account, unique("order")),
    )
    check = filled_in(block_with("fills_without_time"), broker_account_id=account)

    listed = conn.execute(check.encode()).fetchall()
    assert [(row[0], row[3]) for row in listed] == [(intent_id, 10)]
    assert working_buys(pg_dsn, account) == 10  # what the position check counts agrees

    conn.execute(
        "UPDATE public.execution_orders SET filled_as_of = now() - make_interval(secs => %s)"
        " WHERE client_intent_id = %s",
        (SKEW_S + 50, intent_id),
    )
    assert conn.execute(check.encode()).fetchall() == []
    assert working_buys(pg_dsn, account) == 0


def working_buys(pg_dsn: str, account: str) -> object:
    pool = open_pool(pg_dsn, max_size=1, timeout_s=5)
    book = PostgresRiskBook(pool, timeout_s=5, position_skew_s=SKEW_S)
    probe = OrderIntent(
        client_intent_id=unique("probe"), strategy_id="s", broker_account_id=account,
        symbol="SPY", side="buy", qty=1, order_type="market",
    )  # fmt: skip
    try:
        with book.hold(probe, date.today(), exclusive=False) as hold:
            snapshot = hold.snapshot
        return exposure(
            snapshot.position, snapshot.orders, skew=timedelta(seconds=SKEW_S)
        ).working_buy
    finally:
        pool.close()
