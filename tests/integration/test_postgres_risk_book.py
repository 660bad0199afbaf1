"""The Postgres risk book: exact data, fail-closed errors, and check-and-reserve that holds
under real concurrency (threads on separate connections, as separate instances would be)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from backend.execution import exposure, risk
from backend.execution.adapters.postgres_console_reads import PostgresConsoleReads
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_risk_book import PostgresRiskBook
from backend.execution.decisions import BrokerOrder
from backend.execution.errors import RiskDataUnavailable
from backend.execution.intent import OrderIntent
from backend.execution.risk import RiskSnapshot
from tests.conftest import unique

DAY = date(2026, 3, 10)
SKEW = timedelta(seconds=10)


@pytest.fixture
def book(pg_dsn: str) -> Iterator[PostgresRiskBook]:
    book = PostgresRiskBook(open_pool(pg_dsn, max_size=25, timeout_s=5), timeout_s=5)
    yield book
    book.close()


def order(account: str, qty: str = "5", side: str = "buy", symbol: str = "SPY") -> OrderIntent:
    return OrderIntent(
        client_intent_id=unique("rb"),
        strategy_id="s",
        broker_account_id=account,
        symbol=symbol,
        side=side,
        qty=qty,
        order_type="market",
    )


def check_and_reserve(
    book: PostgresRiskBook, intent: OrderIntent, max_trades: int, max_qty: str, think_s: float = 0
) -> bool:
    """What the engine does: both checks on the held snapshot, reserve only if both pass.

    ``think_s`` stalls between reading and reserving, as a slow instance (a GC pause, a busy
    CPU) would: the race window that a missing lock leaves open is then always hit.
    """
    with book.hold(intent, DAY, exclusive=True) as hold:
        snap = hold.snapshot
        time.sleep(think_s)
        checks = [
            risk.max_daily_trades_check(
                intent.broker_account_id, DAY, snap.trades_today, max_trades
            ),
            position_check(snap, intent, max_qty),
        ]
        allowed = not any(c.blocks for c in checks)
        if allowed:
            hold.reserve()
    return allowed


def position_check(snap: RiskSnapshot, intent: OrderIntent, max_qty: str) -> Any:
    current = exposure.exposure(snap.position, snap.orders, skew=SKEW, untouched=snap.untouched)
    return risk.max_position_check(
        intent.broker_account_id,
        intent.symbol,
        intent.side,
        intent.qty,
        Decimal(max_qty),
        position=snap.position,
        current=current,
    )


def current_exposure(book: PostgresRiskBook, account: str, symbol: str = "SPY") -> Any:
    with book.hold(order(account, symbol=symbol), DAY, exclusive=False) as hold:
        snap = hold.snapshot
        return exposure.exposure(snap.position, snap.orders, skew=SKEW, untouched=snap.untouched)


def placed(intent: OrderIntent, order_id: str, status: str = "new") -> BrokerOrder:
    return BrokerOrder(order_id, intent.client_intent_id, status, Decimal(0), None, None, None, {})


def race(book: PostgresRiskBook, intents: list[OrderIntent], max_trades: int, max_qty: str) -> int:
    """Starts every check at once (a barrier) and counts how many were let through."""
    start = threading.Barrier(len(intents))

    def attempt(intent: OrderIntent) -> bool:
        start.wait(10)
        return check_and_reserve(book, intent, max_trades, max_qty, think_s=0.02)

    with ThreadPoolExecutor(len(intents)) as pool:
        return list(pool.map(attempt, intents)).count(True)


def test_a_stored_position_is_read_as_an_exact_decimal(
    book: PostgresRiskBook, set_position: Any
) -> None:
    account = unique("acct")
    set_position(account, "SPY", "-12.000000001")
    with book.hold(order(account), DAY, exclusive=False) as hold:
        assert hold.snapshot.position is not None
        assert hold.snapshot.position.qty == Decimal("-12.000000001")
    with book.hold(order(account, symbol="QQQ"), DAY, exclusive=False) as hold:
        assert hold.snapshot.position is None  # no row means flat


def test_an_unreachable_database_raises_risk_data_unavailable() -> None:
    dead = PostgresRiskBook(
        open_pool("postgresql://postgres@127.0.0.1:1/x", max_size=1, timeout_s=0.5), timeout_s=0.5
    )
    try:
        with pytest.raises(RiskDataUnavailable, match="PoolTimeout"):
            with dead.hold(order("a"), DAY, exclusive=True):
                pass
    finally:
        dead.close()


def test_concurrent_checks_never_exceed_the_daily_cap(book: PostgresRiskBook) -> None:
    account = unique("acct")
    assert race(book, [order(account, qty="1") for _ in range(20)], 5, "1000") == 5


def test_concurrent_buys_never_exceed_the_position_limit(
    book: PostgresRiskBook, set_position: Any
) -> None:
    account = unique("acct")
    set_position(account, "SPY", "90")
    assert race(book, [order(account, qty="5") for _ in range(10)], 100, "100") == 2


def test_a_released_slot_is_available_again_and_a_retry_does_not_count_itself(
    book: PostgresRiskBook,
) -> None:
    account = unique("acct")
    first, second = order(account), order(account)
    assert check_and_reserve(book, first, 1, "100")
    assert check_and_reserve(book, first, 1, "100")  # the same intent again: its own slot
    assert not check_and_reserve(book, second, 1, "100")
    book.release(first)
    assert check_and_reserve(book, second, 1, "100")


def test_an_order_the_broker_has_is_never_released(book: PostgresRiskBook) -> None:
    account = unique("acct")
    first = order(account, qty="60")
    assert check_and_reserve(book, first, 100, "100")
    book.record_placed(first, DAY, placed(first, unique("o")))
    book.release(first)  # a late, wrong release from a stale attempt
    assert current_exposure(book, account).working_buy == Decimal("60")


def test_a_resting_sell_gives_no_headroom_to_buys(book: PostgresRiskBook) -> None:
    account = unique("acct")
    resting_sell = order(account, qty="100", side="sell")
    assert check_and_reserve(book, resting_sell, 100, "100")
    book.record_placed(resting_sell, DAY, placed(resting_sell, unique("o")))
    assert not check_and_reserve(book, order(account, qty="200"), 100, "100")
    assert check_and_reserve(book, order(account, qty="100"), 100, "100")


def test_a_position_refresh_does_not_forget_a_working_order(
    book: PostgresRiskBook, set_position: Any
) -> None:
    account = unique("acct")
    set_position(account, "SPY", "0")
    resting_buy = order(account, qty="100")
    assert check_and_reserve(book, resting_buy, 100, "100")
    book.record_placed(resting_buy, DAY, placed(resting_buy, unique("o")))
    set_position(account, "SPY", "0")  # the position-sync job runs; nothing has filled
    assert not check_and_reserve(book, order(account, qty="100"), 100, "100")


def test_a_retry_after_a_position_refresh_counts_its_order_again(
    book: PostgresRiskBook, set_position: Any
) -> None:
    account = unique("acct")
    retried = order(account, qty="100")
    assert check_and_reserve(book, retried, 100, "100")
    set_position(account, "SPY", "0")
    assert check_and_reserve(book, retried, 100, "100")  # the retry re-reserves its row
    assert not check_and_reserve(book, order(account, qty="1"), 100, "100")


def test_the_hold_serialises_checks_for_the_same_account(
    book: PostgresRiskBook, pg_dsn: str
) -> None:
    account = unique("acct")
    inside, release = threading.Event(), threading.Event()

    def hold_open() -> None:
        with book.hold(order(account), DAY, exclusive=True):
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold_open)
    holder.start()
    assert inside.wait(5)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('exec-acct:' || %s, 0))",
                (account,),
            )
    release.set()
    holder.join()


def test_an_error_inside_the_hold_rolls_the_reservation_back_and_frees_the_locks(
    book: PostgresRiskBook,
) -> None:
    account = unique("acct")
    doomed = order(account)
    with pytest.raises(ZeroDivisionError), book.hold(doomed, DAY, exclusive=True) as hold:
        hold.reserve()
        raise ZeroDivisionError
    with book.hold(order(account), DAY, exclusive=True) as hold:  # not blocked by a stale lock
        assert hold.snapshot.trades_today == 0  # the reservation never committed


def test_the_console_sees_the_same_exposure_as_the_limit(
    book: PostgresRiskBook, set_position: Any, pg_dsn: str
) -> None:
    account = unique("acct")
    set_position(account, "SPY", "40")
    working = order(account, qty="30")
    assert check_and_reserve(book, working, 100, "1000")
    book.record_placed(working, DAY, placed(working, unique("o")))
    carried = order(account, qty="20", side="sell")
    assert check_and_reserve(book, carried, 100, "1000")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # filled long before the row's time
        conn.execute(
            "UPDATE public.execution_orders SET state = 'final', filled_qty = 20,"
            " filled_as_of = now() - interval '1 hour' WHERE client_intent_id = %s",
            (carried.client_intent_id,),
        )
    console = PostgresConsoleReads(book._pool, timeout_s=5, position_skew_s=10)
    seen = console.exposure_inputs(account, DAY)
    shown = exposure.exposure(seen.positions["SPY"], seen.orders.get("SPY", []), skew=SKEW)
    assert shown == current_exposure(book, account)
    assert (shown.position, shown.working_buy, shown.working_sell) == (40, 30, 0)


def test_many_resting_orders_cost_one_summed_row_not_one_row_each(book: PostgresRiskBook) -> None:
    account = unique("acct")
    for _ in range(40):
        resting = order(account, qty="2")
        assert check_and_reserve(book, resting, 1000, "1000")
        book.record_placed(resting, DAY, placed(resting, unique("o")))
    with book.hold(order(account), DAY, exclusive=False) as hold:
        assert hold.snapshot.orders == ()
        assert hold.snapshot.untouched.buy == Decimal(80)
    assert current_exposure(book, account).working_buy == Decimal(80)
