"""Review findings on the Postgres risk book (real Postgres, as the integration tests): the
daily cap across New York midnight, the order-rate and repeat windows around the advisory
locks, and a position row dated in the future."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from backend.execution import exposure
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_risk_book import PostgresRiskBook
from backend.execution.intent import OrderIntent
from tests.conftest import unique

MONDAY, TUESDAY = date(2026, 3, 9), date(2026, 3, 10)


@pytest.fixture
def book(pg_dsn: str) -> Iterator[PostgresRiskBook]:
    book = PostgresRiskBook(
        open_pool(pg_dsn, max_size=5, timeout_s=10), timeout_s=10, repeat_window_s=2
    )
    yield book
    book.close()


def intent(account: str, client_intent_id: str | None = None, qty: str = "1") -> OrderIntent:
    return OrderIntent(
        client_intent_id=client_intent_id or unique("rv"),
        strategy_id="s",
        broker_account_id=account,
        symbol="SPY",
        side="buy",
        qty=qty,
        order_type="market",
    )


def test_a_retry_after_new_york_midnight_counts_in_the_new_days_cap(
    book: PostgresRiskBook,
) -> None:
    """FINDING: a retry re-reserves its row (ON CONFLICT ... SET state = 'reserved') but keeps
    the row's first trading_date. An attempt released at 23:59 (a retryable refusal after the
    reservation) and retried at 00:01 is placed today but counted yesterday: today's cap has
    one more order than EXEC_MAX_DAILY_TRADES, once per such retry."""
    account = unique("acct")
    first = intent(account)
    with book.hold(first, MONDAY, exclusive=True) as hold:
        hold.reserve()
    book.release(first)  # e.g. the lease would have expired: nothing reached the broker
    with book.hold(first, TUESDAY, exclusive=True) as hold:  # the redelivery, after midnight
        assert hold.snapshot.trades_today == 0
        hold.reserve()
    with book.hold(intent(account), TUESDAY, exclusive=True) as hold:
        assert hold.snapshot.trades_today == 1


def test_an_order_that_waited_for_the_account_lock_counts_in_the_repeat_window_from_its_send(
    book: PostgresRiskBook, pg_dsn: str
) -> None:
    """FINDING: reserved_at and the windows' "now" are now(), the *transaction start*, taken
    before the advisory locks are granted. An order that waited 3 s for the account lock (a
    burst, a slow holder) is stamped 3 s in the past, so it leaves the order-rate and repeat
    windows up to 3 s early: with EXEC_REPEAT_LIMIT=1/2, a second order 0.2 s after the first
    was sent sees an empty window (nothing latches); the order rate leaks the same way."""
    account = unique("acct")
    key = f"exec-acct:{account}"
    with psycopg.connect(pg_dsn, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))

        def first_order() -> None:
            with book.hold(intent(account), TUESDAY, exclusive=True) as hold:
                hold.reserve()

        waiting = threading.Thread(target=first_order)
        waiting.start()
        time.sleep(3.0)  # the first intent's transaction has begun and waits for the lock
        blocker.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        waiting.join()
    time.sleep(0.2)
    with book.hold(intent(account), TUESDAY, exclusive=True) as hold:
        assert hold.snapshot.repeats_in_window == 1, "the order sent 0.2 s ago is not counted"
        assert hold.snapshot.orders_last_minute == 1


def test_a_position_row_dated_in_the_future_does_not_hide_a_fill_made_now(
    book: PostgresRiskBook, pg_dsn: str
) -> None:
    """FINDING: the exposure rule takes the row's updated_at as the moment the row is true, even
    when it lies in the future (the position-sync job's clock fast by an hour, a bad manual
    fix). Every fill before that moment is assumed to be in the row, so a fill of 100 made
    just now vanishes: with a limit of 100, another buy of 100 passes."""
    account, filled = unique("acct"), unique("filled")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.broker_positions (broker_account_id, symbol, qty, updated_at)"
            " VALUES (%s, 'SPY', 0, now() + interval '1 hour')",
            (account,),
        )
        conn.execute(
            "INSERT INTO public.execution_orders (client_intent_id, broker_account_id,"
            " strategy_id, symbol, side, qty, order_type, trading_date, state, broker_order_id,"
            " broker_status, filled_qty, fills_qty, last_fill_at, filled_as_of, final_at)"
            " VALUES (%s, %s, 's', 'SPY', 'buy', 100, 'market', %s, 'final', %s, 'filled',"
            " 100, 100, now(), now(), now())",
            (filled, account, TUESDAY, unique("order")),
        )
        conn.execute(
            "INSERT INTO public.execution_fills (activity_id, client_intent_id,"
            " broker_order_id, qty, price, transaction_time)"
            " SELECT %s, client_intent_id, broker_order_id, 100, 400, now()"
            " FROM public.execution_orders WHERE client_intent_id = %s",
            (unique("fill"), filled),
        )
    with book.hold(intent(account, qty="100"), TUESDAY, exclusive=False) as hold:
        seen = exposure.exposure(
            hold.snapshot.position, hold.snapshot.orders, skew=timedelta(seconds=10)
        )
    assert seen.worst_long == Decimal(100), seen
