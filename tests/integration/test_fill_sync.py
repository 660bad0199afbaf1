"""The fill sync against the emulator and the Alpaca stand-in: exact, idempotent, monotonic,
bounded and resumable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import requests

from backend.execution.adapters.alpaca_reader import AlpacaReader
from backend.execution.adapters.firestore_fill_store import FirestoreFillStore, cursor_path
from backend.execution.adapters.postgres_order_book import PostgresOrderBook
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_sync_lock import PostgresSyncLock
from backend.execution.clock import SystemClock
from backend.execution.engine import ExecutionEngine, OrderIntent
from backend.execution.errors import BrokerUnavailable
from backend.execution.fill_sync import FillSync
from backend.execution.settings import Settings
from tests.conftest import current_account, unique
from tests.support.alpaca_standin import AlpacaStandIn


@pytest.fixture
def engine(
    firestore_emulator: str, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn
) -> Iterator[ExecutionEngine]:
    settings = Settings(
        dry_run=False, agent_mode="LIVE", alpaca_api_key="k", alpaca_secret_key="s",
        broker_account_id=current_account(),
        alpaca_trading_host=alpaca.base_url, alpaca_data_host=alpaca.base_url,
        gcp_project=firestore_project,
        postgres_dsn=pg_dsn, duplicate_wait_s=0, allow_no_kill_switch=True,
    )  # fmt: skip
    built = ExecutionEngine(settings=settings)
    yield built
    built.close()


@pytest.fixture
def make_sync(firestore_client: Any, pg_dsn: str, alpaca: AlpacaStandIn) -> Iterator[Any]:
    pool = open_pool(pg_dsn, max_size=4, timeout_s=2)
    state_path = f"{unique('sync')}/fills"  # each test its own cursor

    def build(**overrides: Any) -> FillSync:
        options: dict[str, Any] = {
            "budget_s": 20,
            "overlap_s": 300,
            "min_call_interval_s": 0,
            "book": PostgresOrderBook(pool, timeout_s=2, broker_account_id=current_account()),
            "reservation_grace_s": 60,
        }
        history = overrides.pop("history", None) or AlpacaReader("k", "s", alpaca.base_url)
        store = FirestoreFillStore(firestore_client, timeout_s=5, state_path=state_path)
        lock = overrides.pop("lock", None) or PostgresSyncLock(pool, timeout_s=2)
        return FillSync(
            history,
            store,
            lock,
            SystemClock(),
            **(options | overrides),
        )

    yield build
    pool.close()


def place(engine: ExecutionEngine, qty: str = "10") -> str:
    intent = OrderIntent(
        client_intent_id=unique("fs"), strategy_id="s", broker_account_id=current_account(),
        symbol="SPY", side="buy", qty=qty, order_type="market",
    )  # fmt: skip
    result = engine.execute_intent(intent)
    assert result.broker_order_id, result
    return result.broker_order_id


def ledger(firestore_client: Any, order_id: str) -> dict[str, Any]:
    return firestore_client.collection("ledger_trades").document(order_id).get().to_dict()


def events(firestore_client: Any, order_id: str) -> dict[str, dict[str, Any]]:
    ref = firestore_client.collection("ledger_trades").document(order_id).collection("events")
    return {snap.id: snap.to_dict() for snap in ref.stream()}


def test_a_partial_then_full_fill_merge_into_one_document_with_the_right_average_price(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_id = place(engine, qty="10")
    alpaca.set_order_status(order_id, "partially_filled", filled_qty="4", filled_avg_price="100")
    first = make_sync().run()
    assert (first.status, first.documents_changed, first.fills_added) == ("complete", 1, 1)
    entry = ledger(firestore_client, order_id)
    assert (entry["status"], entry["filled_qty"], entry["filled_avg_price"]) == (
        "partially_filled",
        "4",
        "100",
    )

    alpaca.set_order_status(order_id, "filled", filled_qty="10", filled_avg_price="100.6")
    second = make_sync().run()
    assert (second.documents_changed, second.fills_added) == (1, 1)
    entry = ledger(firestore_client, order_id)
    assert (entry["status"], entry["filled_qty"], entry["filled_avg_price"]) == (
        "filled",
        "10",
        "100.6",
    )
    fills = sorted(entry["raw_fills"].values(), key=lambda f: f["transaction_time"])
    assert [(f["qty"], f["price"]) for f in fills] == [("4", "100"), ("6", "101")]
    total = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills) / Decimal(10)
    assert total == Decimal(entry["filled_avg_price"])
    kinds = sorted(e["type"] for e in events(firestore_client, order_id).values())
    assert kinds == ["fill", "filled", "partial_fill", "submitted"]


def test_a_second_sync_changes_nothing(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_id = place(engine)
    alpaca.set_order_status(order_id, "filled", filled_qty="10", filled_avg_price="50.25")
    sync = make_sync()
    sync.run()
    before = ledger(firestore_client, order_id)
    again = sync.run()
    assert (again.documents_changed, again.fills_added, again.orders_adopted) == (0, 0, 0)
    assert again.orders_seen >= 1 and again.fills_seen >= 1  # it did look
    assert ledger(firestore_client, order_id) == before
    assert len(events(firestore_client, order_id)) == 3  # submitted, fill, filled


class StaleHistory:
    """Serves broker data captured earlier, as a delayed or reordered listing would."""

    def __init__(self, orders: list[dict[str, Any]], fills: list[dict[str, Any]]) -> None:
        self.orders, self.fills = orders, fills

    def list_orders(self, *, after: Any, until: Any = None, limit: int = 500) -> list[Any]:
        return self.orders

    def get_order(self, broker_order_id: str) -> dict[str, Any] | None:
        return None

    def list_fills(
        self, *, after: Any, page_token: Any = None, until: Any = None, page_size: int = 100
    ) -> list[Any]:
        return self.fills


def test_stale_or_reordered_broker_data_never_moves_the_ledger_backwards(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_id = place(engine)
    reader = AlpacaReader("k", "s", alpaca.base_url)
    alpaca.set_order_status(order_id, "partially_filled", filled_qty="3", filled_avg_price="20")
    partial = reader.get_order(order_id)
    alpaca.set_order_status(order_id, "filled", filled_qty="10", filled_avg_price="20.7")
    make_sync().run()
    done = ledger(firestore_client, order_id)

    stale = make_sync(history=StaleHistory([partial], [])).run()  # type: ignore[list-item]
    assert stale.documents_changed == 0
    assert ledger(firestore_client, order_id) == done
    assert (done["status"], done["filled_qty"]) == ("filled", "10")


def test_a_sync_cut_short_by_its_budget_finishes_on_the_next_call(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_ids = [place(engine, qty="1") for _ in range(5)]
    for order_id in order_ids:
        alpaca.set_order_status(order_id, "filled", filled_qty="1", filled_avg_price="10")
    ticks = iter(range(1000))  # a clock that advances one second per reading

    short = make_sync(budget_s=1.5, page_size=2, monotonic=lambda: float(next(ticks))).run()
    assert short.status == "budget_exhausted"
    assert 0 < short.documents_changed < 5
    assert short.cursor["orders_resume_after"] is not None

    rest = make_sync(page_size=2).run()
    assert rest.status == "complete"
    assert short.documents_changed + rest.documents_changed == 5
    assert rest.fills_added == 5
    for order_id in order_ids:
        assert ledger(firestore_client, order_id)["status"] == "filled"


def test_fills_sharing_one_transaction_time_across_a_page_boundary_are_all_recorded(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_id = place(engine, qty="7")
    alpaca.fill_at_once(order_id, ["1"] * 7, price="10")  # seven fills, one transaction_time

    report = make_sync(fills_page_size=3).run()

    assert (report.status, report.fills_seen, report.fills_added) == ("complete", 7, 7)
    assert len(ledger(firestore_client, order_id)["raw_fills"]) == 7
    assert report.cursor["fills_resume_after_id"] is None  # the pass is complete


class FailingFillPage:
    """Alpaca's real history, except that one listing of fills fails (a 5xx, a timeout)."""

    def __init__(self, reader: AlpacaReader, fail_on_call: int) -> None:
        self.reader, self.fail_on_call = reader, fail_on_call
        self.fill_listings: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:  # every other read goes to Alpaca as is
        return getattr(self.reader, name)

    def list_fills(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.fill_listings.append(kwargs)
        if len(self.fill_listings) == self.fail_on_call:
            raise BrokerUnavailable("HTTP 503 while listing fills", outcome_unknown=False)
        return self.reader.list_fills(**kwargs)


def test_a_fills_pass_stopped_inside_a_group_of_one_timestamp_resumes_after_the_last_fill_read(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    order_id = place(engine, qty="7")
    alpaca.fill_at_once(order_id, ["1"] * 7, price="10")
    reader = AlpacaReader("k", "s", alpaca.base_url)
    flaky = FailingFillPage(reader, fail_on_call=2)

    stopped = make_sync(history=flaky, fills_page_size=3).run()
    assert (stopped.status, stopped.fills_added) == ("failed", 3)
    third_fill = sorted(ledger(firestore_client, order_id)["raw_fills"])[-1]
    assert stopped.cursor["fills_resume_after_id"] == third_fill

    resumed = FailingFillPage(reader, fail_on_call=0)
    rest = make_sync(history=resumed, fills_page_size=3).run()
    assert (rest.status, rest.fills_seen, rest.fills_added) == ("complete", 4, 4)
    assert resumed.fill_listings[0]["page_token"] == third_fill  # by id, not by time
    assert len(ledger(firestore_client, order_id)["raw_fills"]) == 7


def test_an_order_missing_from_the_ledger_is_adopted_from_its_decision_record(
    engine: ExecutionEngine, make_sync: Any, firestore_client: Any
) -> None:
    order_id = place(engine)
    firestore_client.collection("ledger_trades").document(order_id).delete()
    report = make_sync().run()
    assert report.orders_adopted == 1
    entry = ledger(firestore_client, order_id)
    assert entry["broker_order_id"] == order_id and entry["qty"] == "10"
    assert "adopted-by-sync" in events(firestore_client, order_id)


def test_orders_of_other_services_are_left_alone(
    make_sync: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    other = AlpacaReader("k", "s", alpaca.base_url)._clients.get().post(
        "/orders", {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market",
                    "time_in_force": "day", "client_order_id": unique("manual")},
    )  # fmt: skip
    report = make_sync().run()
    assert report.orders_seen == 1 and report.documents_changed == 0
    assert not firestore_client.collection("ledger_trades").document(other["id"]).get().exists


def test_only_one_sync_runs_at_a_time(make_sync: Any, pg_dsn: str) -> None:
    holder = make_sync()
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder._lock.hold() as held:
            assert held
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(5)
    assert make_sync().run().status == "busy"
    release.set()
    thread.join()
    assert make_sync().run().status == "complete"


def test_the_cursor_is_saved_with_the_oldest_open_order_as_low_water(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn
) -> None:
    open_order, done_order = place(engine), place(engine)
    alpaca.set_order_status(done_order, "filled", filled_qty="10", filled_avg_price="1")
    report = make_sync().run()
    submitted = AlpacaReader("k", "s", alpaca.base_url).get_order(open_order)
    assert submitted is not None
    low_water: datetime = report.cursor["orders_low_water"]
    assert low_water.isoformat()[:26] == submitted["submitted_at"][:26]


def test_an_unreachable_lock_or_store_ends_the_run_as_failed_not_as_an_exception(
    make_sync: Any,
) -> None:
    dead_pool = open_pool("postgresql://postgres@127.0.0.1:1/x", max_size=1, timeout_s=0.5)
    try:
        report = make_sync(lock=PostgresSyncLock(dead_pool, timeout_s=0.5)).run()
    finally:
        dead_pool.close()
    assert report.status == "failed"
    assert "sync lock" in (report.error or "")


def test_another_tools_open_order_does_not_hold_the_low_water_mark_back(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn
) -> None:
    foreign = AlpacaReader("k", "s", alpaca.base_url)._clients.get().post(
        "/orders",
        {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market",
         "time_in_force": "day", "client_order_id": unique("manual")},
    )  # fmt: skip
    ours = place(engine)
    alpaca.set_order_status(ours, "filled", filled_qty="10", filled_avg_price="1")
    report = make_sync().run()
    low_water: datetime = report.cursor["orders_low_water"]
    assert low_water.isoformat()[:26] > foreign["submitted_at"][:26]


# -- the order book -----------------------------------------------------------------------------


def book_row(pg_dsn: str, intent_id: str) -> tuple[Any, ...]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state, broker_order_id, broker_status, filled_qty::text, fills_qty::text"
            " FROM public.execution_orders WHERE client_intent_id = %s",
            (intent_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def insert_row(
    pg_dsn: str, intent_id: str, state: str, *, order_id: str | None = None, migrated: bool = False
) -> None:
    """A row as an attempt that died left it, or (``migrated``) as migration 0002 carried it
    over from the first release, which kept no order type or strategy."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.execution_orders (client_intent_id, broker_account_id, symbol,"
            " side, qty, order_type, trading_date, state, broker_order_id, reserved_at,"
            " updated_at, migrated_from)"
            " VALUES (%s, %s, 'SPY', 'buy', 3, %s, current_date, %s, %s,"
            " now() - interval '1 hour', now() - interval '1 hour', %s)",
            (
                intent_id,
                current_account(),
                None if migrated else "market",
                state,
                order_id,
                "execution_risk_reservations" if migrated else None,
            ),
        )


def place_directly(alpaca: AlpacaStandIn, client_order_id: str, qty: str = "3") -> str:
    body = {"symbol": "SPY", "qty": qty, "side": "buy", "type": "market", "time_in_force": "day"}
    response = requests.post(
        f"{alpaca.base_url}/v2/orders", json=body | {"client_order_id": client_order_id}, timeout=5
    )
    response.raise_for_status()
    return str(response.json()["id"])


def test_the_sync_records_status_fills_and_their_times_in_the_book(
    engine: ExecutionEngine, make_sync: Any, alpaca: AlpacaStandIn, pg_dsn: str
) -> None:
    order_id = place(engine, qty="10")
    alpaca.set_order_status(order_id, "partially_filled", "4", "100")
    alpaca.set_order_status(order_id, "filled", "10", "100.6")
    assert make_sync().run().status == "complete"
    intent_id = alpaca.orders()[-1]["client_order_id"]
    assert book_row(pg_dsn, intent_id) == ("final", order_id, "filled", "10", "10")


def test_a_reservation_whose_attempt_died_before_the_broker_call_is_released(
    make_sync: Any, pg_dsn: str
) -> None:
    intent_id = unique("dead")
    insert_row(pg_dsn, intent_id, "reserved")
    report = make_sync().run()
    assert report.book_rows_released == 1
    assert book_row(pg_dsn, intent_id)[0] == "released"


def test_a_reservation_whose_order_reached_the_broker_becomes_working_not_released(
    make_sync: Any, alpaca: AlpacaStandIn, pg_dsn: str
) -> None:
    intent_id = unique("lost")
    insert_row(pg_dsn, intent_id, "reserved")
    order_id = place_directly(alpaca, intent_id)
    make_sync().run()
    assert book_row(pg_dsn, intent_id)[:3] == ("working", order_id, "accepted")


def test_a_working_row_older_than_the_listing_is_settled_by_a_lookup(
    make_sync: Any, alpaca: AlpacaStandIn, pg_dsn: str
) -> None:
    intent_id = unique("carried")
    order_id = place_directly(alpaca, intent_id)
    alpaca.set_order_status(order_id, "canceled")
    place_directly(alpaca, unique("later"))  # the cursor moves past the first order
    # No overlap: once listed, the first order is behind the cursor and never listed again.
    assert make_sync(overlap_s=0).run().status == "complete"
    insert_row(pg_dsn, intent_id, "working", order_id=order_id, migrated=True)
    report = make_sync(overlap_s=0).run()
    assert report.book_rows_refreshed == 1
    assert book_row(pg_dsn, intent_id)[:3] == ("final", order_id, "canceled")


def test_deployments_of_two_accounts_sync_side_by_side_but_one_account_syncs_once(
    pg_dsn: str,
) -> None:
    pool = open_pool(pg_dsn, max_size=4, timeout_s=2)
    try:
        first, second = unique("acct"), unique("acct")
        lock = PostgresSyncLock(pool, timeout_s=2, broker_account_id=first)
        other = PostgresSyncLock(pool, timeout_s=2, broker_account_id=second)
        same = PostgresSyncLock(pool, timeout_s=2, broker_account_id=first)
        with lock.hold() as held, other.hold() as other_held, same.hold() as same_held:
            assert (held, other_held, same_held) == (True, True, False)
    finally:
        pool.close()


def test_each_account_keeps_its_own_sync_cursor() -> None:
    assert cursor_path("paper-1") == "execution_sync/fills-paper-1"
    assert cursor_path(None) == "execution_sync/fills"
    odd = cursor_path("paper/1 x")
    assert odd.startswith("execution_sync/fills-sha256-") and odd.count("/") == 1
