"""The auditor's CLI end to end, in-process, on the real emulator, Postgres and Alpaca stand-in.

Orders and decisions are made the way production makes them: through ExecutionEngine with the
real FirestoreLedger, PostgresRiskBook, AlpacaBroker and a file kill switch; fills reach the
ledger through the real fill sync.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from backend.audit.broker_side import orders_submitted_on
from backend.audit.cli import main
from backend.audit.queries import DECISIONS, TRADES, Filters, LedgerReader, query_shapes
from backend.execution.adapters.alpaca_broker import AlpacaBroker
from backend.execution.adapters.alpaca_reader import AlpacaReader
from backend.execution.adapters.dry_run_broker import DryRunBroker
from backend.execution.adapters.firestore_fill_store import FirestoreFillStore
from backend.execution.adapters.firestore_ledger import FirestoreLedger
from backend.execution.adapters.local_kill_switches import FileKillSwitch
from backend.execution.adapters.postgres_order_book import PostgresOrderBook
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_risk_book import PostgresRiskBook
from backend.execution.adapters.postgres_sync_lock import PostgresSyncLock
from backend.execution.clock import FixedClock, SystemClock, trading_date
from backend.execution.decisions import ExecutionResult
from backend.execution.engine import ExecutionEngine, OrderIntent
from backend.execution.fill_sync import FillSync
from backend.execution.settings import ENV_NAMES, Settings
from tests.conftest import unique
from tests.support.alpaca_standin import AlpacaStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 3, 10)
AT = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 11:00 in New York


# -- the gateway, as production runs it ------------------------------------------------------


@dataclass
class Gateway:
    # One deployment per broker account, as in production (EXEC_BROKER_ACCOUNT_ID).
    live_for: Callable[[str], ExecutionEngine]
    dry: ExecutionEngine
    clock: FixedClock
    kill_file: Path

    def place(
        self,
        account: str,
        *,
        at: datetime = AT,
        dry_run: bool = False,
        halted: bool = False,
        **fields: Any,
    ) -> ExecutionResult:
        self.clock.at = at
        self.kill_file.write_text("1\n" if halted else "0\n")
        intent = OrderIntent(
            **{
                "client_intent_id": unique("audit"),
                "strategy_id": "mean-reversion",
                "broker_account_id": account,
                "symbol": "SPY",
                "side": "buy",
                "qty": "2",
                "order_type": "market",
            }
            | fields
        )
        return (self.dry if dry_run else self.live_for(account)).execute_intent(intent)


@pytest.fixture
def gateway(
    firestore_client: Any,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> Iterator[Gateway]:
    clock = FixedClock(AT)
    kill_file = tmp_path / "EXECUTION_HALTED"
    book = PostgresRiskBook(open_pool(pg_dsn, max_size=4, timeout_s=5), timeout_s=5)
    common: dict[str, Any] = {
        "gcp_project": firestore_project,
        "duplicate_wait_s": 0,
        "alpaca_api_key": "key",
        "alpaca_secret_key": "secret",
        "alpaca_trading_host": alpaca.base_url,
        "alpaca_data_host": alpaca.base_url,
        # The ledger's listings are the subject: orders as large as the position limit pass the
        # per-order caps, and many alike in a row do not latch their strategy.
        "max_order_qty": None,
        "max_order_notional": None,
        # The gateway's clock is pinned to a past day here: live market data would be "future".
        "price_collar_pct": None,
        "repeat_limit": None,
    }

    def engine(settings: Settings, broker: Any) -> ExecutionEngine:
        return ExecutionEngine(
            broker=broker,
            settings=settings,
            ledger=FirestoreLedger(firestore_client, timeout_s=5),
            risk_book=book,
            kill_switches=[FileKillSwitch(str(kill_file))],
            clock=clock,
        )

    live: dict[str, Any] = {
        "dry_run": False,
        "agent_mode": "LIVE",
        "alpaca_api_key": "key",
        "alpaca_secret_key": "secret",
        "alpaca_trading_host": alpaca.base_url,
    }
    routing: dict[str, ExecutionEngine] = {}

    def live_for(account: str) -> ExecutionEngine:
        if account not in routing:
            settings = Settings(**(common | live | {"broker_account_id": account}))
            broker = AlpacaBroker("key", "secret", alpaca.base_url, timeout_s=5)
            routing[account] = engine(settings, broker)
        return routing[account]

    dry = engine(Settings(**(common | {"dry_run": True})), DryRunBroker())
    yield Gateway(live_for, dry, clock, kill_file)
    for built in (*routing.values(), dry):
        built.close()
    book.close()


@pytest.fixture
def sync_fills(firestore_client: Any, pg_dsn: str, alpaca: AlpacaStandIn) -> Iterator[Any]:
    """Runs the real fill sync once (with a cursor of its own), as Cloud Scheduler would."""
    pool = open_pool(pg_dsn, max_size=2, timeout_s=5)
    state_path = f"{unique('sync')}/fills"

    def run() -> None:
        report = FillSync(
            AlpacaReader("key", "secret", alpaca.base_url),
            FirestoreFillStore(firestore_client, timeout_s=5, state_path=state_path),
            PostgresSyncLock(pool, timeout_s=5),
            SystemClock(),
            # Several accounts here, as several deployments sharing one database: no sweep.
            book=PostgresOrderBook(pool, timeout_s=5),
            sweep_book=False,
            budget_s=20,
            overlap_s=300,
            min_call_interval_s=0,
        ).run()
        assert report.status == "complete", report

    yield run
    pool.close()


def place_at_broker_directly(alpaca: AlpacaStandIn, client_order_id: str) -> dict[str, Any]:
    """An order some other tool placed on the same Alpaca account."""
    body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    response = requests.post(
        f"{alpaca.base_url}/v2/orders", json=body | {"client_order_id": client_order_id}, timeout=5
    )
    response.raise_for_status()
    order: dict[str, Any] = response.json()
    return order


# -- running the CLI -------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


CLI = Callable[..., Run]


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch,
    firestore_emulator: str,
    firestore_project: str,
    alpaca: AlpacaStandIn,
    pg_dsn: str,
) -> pytest.MonkeyPatch:
    """The CLI reads os.environ by design: give it exactly the gateway's variables."""
    for names in ENV_NAMES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", firestore_project)
    monkeypatch.setenv("ALPACA_API_KEY", "key")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret")
    monkeypatch.setenv("ALPACA_TRADING_HOST", alpaca.base_url)
    monkeypatch.setenv("EXEC_IO_TIMEOUT_S", "2")
    monkeypatch.setenv("EXEC_BROKER_TIMEOUT_S", "2")
    monkeypatch.setenv("EXEC_POSTGRES_DSN", pg_dsn)
    return monkeypatch


@pytest.fixture
def cli(cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CLI:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def line_with(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- trades ----------------------------------------------------------------------------------


@dataclass
class TradingDay:
    account: str
    limit_order: ExecutionResult  # SPY, mean-reversion, 1.25 @ 401.5, filled in two parts
    odd_lot: ExecutionResult  # AAPL, momentum, 0.123456789, created earlier, unfilled
    other_day: ExecutionResult
    other_account: ExecutionResult


@pytest.fixture
def trading_day(gateway: Gateway, alpaca: AlpacaStandIn, sync_fills: Any) -> TradingDay:
    account = unique("acct")
    # Placed first but created later on the gateway's clock: the listing must follow the clock.
    limit_order = gateway.place(
        account, at=AT + timedelta(minutes=5), qty="1.25", order_type="limit", limit_price="401.5"
    )
    odd_lot = gateway.place(
        account, at=AT, qty="0.123456789", symbol="AAPL", strategy_id="momentum"
    )
    other_day = gateway.place(account, at=AT + timedelta(days=1))
    other_account = gateway.place(unique("acct"), at=AT)
    alpaca.set_order_status(limit_order.broker_order_id or "", "partially_filled", "0.5", "401.25")
    alpaca.set_order_status(limit_order.broker_order_id or "", "filled", "1.25", "401.4")
    sync_fills()
    return TradingDay(account, limit_order, odd_lot, other_day, other_account)


def test_trades_table_lists_the_days_orders_by_creation_with_exact_decimals_and_their_fills(
    cli: CLI, trading_day: TradingDay
) -> None:
    run = cli("trades", "--account", trading_day.account, "--date", "2026-03-10")

    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split() == [
        "created_at", "order", "intent", "strategy", "symbol", "side", "qty", "type", "limit",
        "stop", "status", "filled", "avg_price",
    ]  # fmt: skip
    odd = line_with(run.out, trading_day.odd_lot.broker_order_id or "")
    filled = line_with(run.out, trading_day.limit_order.broker_order_id or "")
    assert odd == 1 and filled == 2
    assert lines[odd].split()[6] == "0.123456789"
    assert lines[filled].split()[6:] == [
        "1.25", "limit", "401.5", "-", "filled", "1.25", "401.4",
    ]  # fmt: skip
    assert lines[3].startswith("    partial_fill ") and "qty=0.5 price=401.25" in lines[3]
    assert "cum_qty=0.5 leaves_qty=0.75" in lines[3]
    assert lines[4].startswith("    fill ") and "qty=0.75 price=401.5 cum_qty=1.25" in lines[4]
    assert lines[5] == "2 orders, 2 fills"
    assert len(lines) == 6
    for excluded in (trading_day.other_day, trading_day.other_account):
        assert (excluded.broker_order_id or "?") not in run.out
    assert "read 2 ledger rows…" in run.err


def test_trades_csv_has_one_row_per_order_with_its_fill_count(
    cli: CLI, trading_day: TradingDay
) -> None:
    run = cli("trades", "--account", trading_day.account, "--date", "2026-03-10", "--format", "csv")

    assert run.code == 0, run.err
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert [r["broker_order_id"] for r in rows] == [
        trading_day.odd_lot.broker_order_id,
        trading_day.limit_order.broker_order_id,
    ]
    assert [(r["qty"], r["fills"], r["filled_avg_price"]) for r in rows] == [
        ("0.123456789", "0", ""),
        ("1.25", "2", "401.4"),
    ]
    assert {r["trading_date"] for r in rows} == {"2026-03-10"}
    assert rows[0]["created_at"] == "2026-03-10T15:00:00Z"


def test_trades_jsonl_carries_every_stored_field_and_the_fills_in_time_order(
    cli: CLI, trading_day: TradingDay
) -> None:
    run = cli(
        "trades", "--account", trading_day.account, "--date", "2026-03-10", "--format", "jsonl"
    )

    assert run.code == 0, run.err
    odd_lot, limit_order = (json.loads(line) for line in run.out.splitlines())
    assert odd_lot["qty"] == "0.123456789" and odd_lot["fills"] == []
    assert odd_lot["created_at"] == "2026-03-10T15:00:00Z"
    assert "raw_fills" not in limit_order and "raw_broker_order" in limit_order
    fills = limit_order["fills"]
    assert [(f["type"], f["qty"], f["price"], f["cum_qty"]) for f in fills] == [
        ("partial_fill", "0.5", "401.25", "0.5"),
        ("fill", "0.75", "401.5", "1.25"),
    ]
    assert all(f["activity_id"] == f["id"] for f in fills)
    assert fills[0]["transaction_time"] < fills[1]["transaction_time"]


def test_trades_can_be_narrowed_to_one_strategy_or_one_symbol_in_any_case(
    cli: CLI, trading_day: TradingDay
) -> None:
    scope = ("--account", trading_day.account, "--date", "2026-03-10", "--format", "jsonl")

    by_strategy = cli("trades", *scope, "--strategy", "momentum")
    by_symbol = cli("trades", *scope, "--symbol", "spy")
    neither = cli("trades", *scope, "--strategy", "momentum", "--symbol", "SPY")

    assert [json.loads(x)["symbol"] for x in by_strategy.out.splitlines()] == ["AAPL"]
    assert [json.loads(x)["strategy_id"] for x in by_symbol.out.splitlines()] == ["mean-reversion"]
    assert neither.code == 0 and neither.out == ""


def test_trades_of_a_day_without_orders_print_only_the_header_and_a_zero_count(cli: CLI) -> None:
    run = cli("trades", "--account", unique("acct"), "--date", "2026-03-10")

    assert run.code == 0
    assert run.out.splitlines()[1:] == ["0 orders, 0 fills"]


# -- intents ---------------------------------------------------------------------------------


@pytest.fixture
def decisions(gateway: Gateway) -> dict[str, Any]:
    account = unique("acct")
    made = {
        "submitted": gateway.place(account, at=AT),
        "halted": gateway.place(account, at=AT + timedelta(minutes=1), halted=True),
        "too_big": gateway.place(account, at=AT + timedelta(minutes=2), qty="1000"),
        "dry_run": gateway.place(account, at=AT + timedelta(minutes=3), dry_run=True, qty="0.5"),
        "other_day": gateway.place(account, at=AT + timedelta(days=1), dry_run=True),
    }
    assert [r.status.value for r in made.values()] == [
        "submitted", "rejected", "rejected", "dry_run", "dry_run",
    ]  # fmt: skip
    return {"account": account, **made}


def test_intents_show_every_decision_of_the_day_with_reasons_and_checks(
    cli: CLI, decisions: dict[str, Any], gateway: Gateway
) -> None:
    run = cli("intents", "--account", decisions["account"], "--date", "2026-03-10")

    assert run.code == 0, run.err
    rows = [line.split() for line in run.out.splitlines() if not line.startswith(" ")]
    assert rows[0][:3] == ["received_at", "intent", "strategy"]
    body = rows[1:-1]
    assert [row[1] for row in body] == [
        decisions[k].client_intent_id for k in ("submitted", "halted", "too_big", "dry_run")
    ]
    assert [row[8:10] for row in body] == [
        ["submitted", "-"],
        ["rejected", "kill_switch_enabled"],
        ["rejected", "max_position_size_exceeded"],
        ["dry_run", "-"],
    ]
    assert body[0][10] == decisions["submitted"].broker_order_id
    assert body[3][5] == "0.5"
    assert run.out.splitlines()[-1] == "4 decisions (dry_run 1, rejected 2, submitted 1)"
    assert decisions["other_day"].client_intent_id not in run.out

    halted_checks = run.out.splitlines()[
        line_with(run.out, decisions["halted"].client_intent_id) + 2
    ]
    assert halted_checks.startswith(
        "    checks: intent_age=skipped, broker_account=passed, kill_switch=failed (file:"
    )
    assert f"{gateway.kill_file} is on)" in halted_checks
    too_big = run.out.splitlines()[line_with(run.out, decisions["too_big"].client_intent_id) + 2]
    assert "max_daily_trades=passed" in too_big
    assert (
        "max_position_size=failed (worst-case long 1002 in SPY would pass the limit 100" in too_big
    )


def test_intents_jsonl_includes_every_check_in_full(cli: CLI, decisions: dict[str, Any]) -> None:
    run = cli(
        "intents", "--account", decisions["account"], "--date", "2026-03-10", "--format", "jsonl"
    )

    records = {r["client_intent_id"]: r for r in map(json.loads, run.out.splitlines())}
    refused = records[decisions["too_big"].client_intent_id]
    position = next(c for c in refused["checks"] if c["name"] == "max_position_size")
    assert position["outcome"] == "failed"
    assert position["inputs"]["projected_worst"] == "1002" and position["inputs"]["limit"] == "100"
    assert refused["qty"] == "1000" and refused["retryable"] is False
    assert refused["received_at"] == "2026-03-10T15:02:00Z"


def test_intents_can_be_narrowed_to_one_or_more_statuses(
    cli: CLI, decisions: dict[str, Any]
) -> None:
    scope = ("--account", decisions["account"], "--date", "2026-03-10", "--format", "csv")

    refused = cli("intents", *scope, "--status", "rejected")
    refused_or_dry = cli("intents", *scope, "--status", "rejected", "dry_run")
    repeated = cli("intents", *scope, "--status", "dry_run", "--status", "submitted")

    def ids(run: Run) -> list[str]:
        return [row["client_intent_id"] for row in csv.DictReader(io.StringIO(run.out))]

    assert ids(refused) == [decisions[k].client_intent_id for k in ("halted", "too_big")]
    assert ids(refused_or_dry) == [
        decisions[k].client_intent_id for k in ("halted", "too_big", "dry_run")
    ]
    assert ids(repeated) == [decisions[k].client_intent_id for k in ("submitted", "dry_run")]
    first = next(csv.DictReader(io.StringIO(refused.out)))
    assert first["reason"] == "kill_switch_enabled" and first["retryable"] == "false"
    assert "kill_switch=failed (file:" in first["checks"]


def test_the_listing_pages_past_many_rows_sharing_one_timestamp(
    gateway: Gateway, firestore_client: Any
) -> None:
    account = unique("acct")
    placed = [gateway.place(account, at=AT, dry_run=True) for _ in range(3)]
    placed += [gateway.place(account, at=AT + timedelta(seconds=1), dry_run=True) for _ in range(2)]
    pages: list[str] = []
    reader = LedgerReader(firestore_client, timeout_s=5, page_size=2, progress=pages.append)

    rows = reader.decisions(Filters(account, DAY))

    assert sorted(r["client_intent_id"] for r in rows) == sorted(
        str(p.client_intent_id) for p in placed
    )
    assert [r["received_at"] for r in rows] == sorted(r["received_at"] for r in rows)
    assert len(pages) > 2 and pages[-1] == "read 5 decision records…"


# -- reconcile -------------------------------------------------------------------------------


@pytest.fixture
def today(gateway: Gateway) -> datetime:
    """Reconcile lists the broker's orders by the stand-in's real submitted_at: trade today."""
    now = datetime.now(UTC)
    gateway.clock.at = now
    return now


def reconcile_args(account: str, now: datetime) -> tuple[str, ...]:
    return ("reconcile", "--account", account, "--date", trading_date(now).isoformat())


def test_a_ledger_that_matches_the_broker_reconciles_clean_and_nothing_is_written(
    cli: CLI,
    gateway: Gateway,
    alpaca: AlpacaStandIn,
    firestore_client: Any,
    today: datetime,
    sync_fills: Any,
) -> None:
    account = unique("acct")
    filled = gateway.place(account, at=today)
    open_order = gateway.place(account, at=today, qty="1.5", order_type="limit", limit_price="10")
    gateway.place(unique("acct"), at=today)  # same Alpaca account, another broker_account_id
    place_at_broker_directly(alpaca, unique("manual"))  # not placed by the gateway at all
    alpaca.set_order_status(filled.broker_order_id or "", "filled", "2.0", "401.50")
    sync_fills()
    documents = [
        firestore_client.collection("ledger_trades").document(r.broker_order_id or "")
        for r in (filled, open_order)
    ] + [
        firestore_client.collection("execution_intents").document(r.client_intent_id or "")
        for r in (filled, open_order)
    ]
    before = [d.get().update_time for d in documents]

    run = cli(*reconcile_args(account, today))

    assert run.code == 0, run.out + run.err
    assert run.out.splitlines()[1:] == [
        "summary: 2 orders compared (2 in the ledger, 2 at the broker), 0 discrepancies - clean",
        "order book: 1 working row in the book, 1 open order of ours at the broker, "
        "0 discrepancies - clean",
    ]
    assert [d.get().update_time for d in documents] == before
    assert "fetched 4 broker orders…" in run.err


def test_a_fill_at_the_broker_not_yet_in_the_ledger_is_reported_and_exits_1(
    cli: CLI, gateway: Gateway, alpaca: AlpacaStandIn, today: datetime
) -> None:
    account = unique("acct")
    order = gateway.place(account, at=today, qty="2")
    alpaca.set_order_status(order.broker_order_id or "", "filled", "2", "401.5")

    run = cli(*reconcile_args(account, today))

    assert run.code == 1
    ids = f"order={order.broker_order_id} intent={order.client_intent_id}"
    assert run.out.splitlines()[1:] == [
        f"filled_qty mismatch: {ids} ledger=0 broker=2",
        f"filled_avg_price mismatch: {ids} ledger=null broker=401.5",
        f"status mismatch: {ids} ledger=accepted broker=filled",
        "summary: 1 order compared (1 in the ledger, 1 at the broker), 3 discrepancies",
        f"working in book, closed at broker: intent={order.client_intent_id} "
        f"order={order.broker_order_id} book=(working,buy 2,working 2) "
        "broker=(filled,buy 2,filled 2)",
        "order book: 1 working row in the book, 0 open orders of ours at the broker, 1 discrepancy",
    ]


def test_an_order_open_at_the_broker_that_the_book_does_not_count_is_reported(
    cli: CLI, gateway: Gateway, today: datetime, pg_dsn: str
) -> None:
    account = unique("acct")
    order = gateway.place(account, at=today, qty="2")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a book row lost to a bad hand edit
        conn.execute(
            "UPDATE public.execution_orders SET state = 'released' WHERE client_intent_id = %s",
            (order.client_intent_id,),
        )

    run = cli(*reconcile_args(account, today))

    assert run.code == 1
    assert (
        f"open at broker, not working in book: intent={order.client_intent_id} "
        f"order={order.broker_order_id} book=(released,buy 2,working 0) "
        "broker=(accepted,buy 2,filled 0)"
    ) in run.out.splitlines()


def test_an_open_order_of_ours_with_no_book_row_at_all_is_reported(
    cli: CLI, gateway: Gateway, today: datetime, pg_dsn: str
) -> None:
    account = unique("acct")
    order = gateway.place(account, at=today, qty="2")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # as if its settle write was lost
        conn.execute(
            "DELETE FROM public.execution_orders WHERE client_intent_id = %s",
            (order.client_intent_id,),
        )

    run = cli(*reconcile_args(account, today))

    assert run.code == 1
    assert (
        f"open at broker, not in book: intent={order.client_intent_id} "
        f"order={order.broker_order_id} book=absent broker=(accepted,buy 2,filled 0)"
    ) in run.out.splitlines()


def test_reconcile_fails_before_the_fill_sync_and_passes_after_it(
    cli: CLI, gateway: Gateway, alpaca: AlpacaStandIn, today: datetime, sync_fills: Any
) -> None:
    account = unique("acct")
    order = gateway.place(account, at=today, qty="2")
    alpaca.set_order_status(order.broker_order_id or "", "partially_filled", "1", "400")
    alpaca.set_order_status(order.broker_order_id or "", "filled", "2", "401")
    before = cli(*reconcile_args(account, today))
    assert before.code == 1
    assert "filled_qty mismatch" in before.out

    sync_fills()

    after = cli(*reconcile_args(account, today))
    assert after.code == 0, after.out
    assert all(line.endswith("0 discrepancies - clean") for line in after.out.splitlines()[1:])


def test_an_order_at_the_broker_missing_from_the_ledger_is_reported_and_exits_1(
    cli: CLI, gateway: Gateway, firestore_client: Any, today: datetime
) -> None:
    account = unique("acct")
    kept = gateway.place(account, at=today)
    lost = gateway.place(account, at=today, qty="3")
    firestore_client.collection("ledger_trades").document(lost.broker_order_id or "").delete()

    run = cli(*reconcile_args(account, today))

    assert run.code == 1
    missing = run.out.splitlines()[1]
    assert missing.startswith(
        f"missing from ledger: order={lost.broker_order_id} intent={lost.client_intent_id} "
        "ledger=absent broker=(status:accepted,symbol:SPY,side:buy,qty:3,filled_qty:0,"
    )
    assert (kept.broker_order_id or "?") not in run.out
    assert run.out.splitlines()[-2].startswith("summary: 2 orders compared (1 in the ledger, 2 at")


def test_a_ledger_order_the_broker_does_not_know_is_reported_and_exits_1(
    cli: CLI, gateway: Gateway, firestore_client: Any, today: datetime
) -> None:
    account = unique("acct")
    real = gateway.place(account, at=today)
    ledger = firestore_client.collection("ledger_trades")
    ghost_id = str(uuid.uuid4())
    row = ledger.document(real.broker_order_id or "").get().to_dict()
    ledger.document(ghost_id).set(row | {"broker_order_id": ghost_id})

    run = cli(*reconcile_args(account, today))

    assert run.code == 1
    assert run.out.splitlines()[1].startswith(
        f"unknown to broker: order={ghost_id} intent={real.client_intent_id} "
        "ledger=(status:accepted,symbol:SPY,side:buy,qty:2,filled_qty:0,"
    )
    assert run.out.splitlines()[1].endswith(" broker=absent")


def test_an_order_recorded_under_the_next_trading_date_is_matched_not_called_missing(
    cli: CLI, gateway: Gateway, firestore_client: Any, today: datetime
) -> None:
    account = unique("acct")
    adopted = gateway.place(account, at=today)
    next_day = (trading_date(today) + timedelta(days=1)).isoformat()
    firestore_client.collection("ledger_trades").document(adopted.broker_order_id or "").update(
        {"trading_date": next_day}
    )

    run = cli(*reconcile_args(account, today))

    assert run.code == 0, run.out
    assert "1 order compared (1 in the ledger, 1 at the broker)" in run.out


def test_the_broker_listing_pages_by_submitted_at_until_a_short_page(
    alpaca: AlpacaStandIn,
) -> None:
    placed = [place_at_broker_directly(alpaca, unique("page"))["id"] for _ in range(5)]
    reader = AlpacaReader("key", "secret", alpaca.base_url, timeout_s=5)
    pages: list[str] = []

    orders = orders_submitted_on(
        reader, trading_date(datetime.now(UTC)), limit=2, progress=pages.append
    )

    assert [o["id"] for o in orders] == placed
    assert pages[-1] == "fetched 5 broker orders…" and len(pages) >= 3
    listings = [path for method, path in alpaca.requests() if path.startswith("/v2/orders?")]
    assert len(listings) == len(pages)


# -- failures: one line, exit 2, never a traceback -------------------------------------------


def test_an_unreachable_firestore_fails_within_seconds_with_one_line_and_exit_2(
    cli_env: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    cli_env.setenv("FIRESTORE_EMULATOR_HOST", dead)  # read when the CLI builds its client
    cli_env.setenv("EXEC_IO_TIMEOUT_S", "1")
    capfd.readouterr()

    started = time.monotonic()
    code = main(["trades", "--account", "a", "--date", "2026-03-10"])
    elapsed = time.monotonic() - started

    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert elapsed < 10
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("audit: cannot read the Firestore ledger (project ")
    assert f"emulator at {dead}" in err and "FIRESTORE_EMULATOR_HOST" in err
    assert "GOOGLE_CLOUD_PROJECT" in err and "Traceback" not in err


def test_reconcile_without_alpaca_keys_names_the_missing_variables_and_exits_2(
    cli: CLI, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.delenv("ALPACA_SECRET_KEY")
    only_secret = cli("reconcile", "--account", "a", "--date", "2026-03-10")
    cli_env.delenv("ALPACA_API_KEY")
    both = cli("reconcile", "--account", "a", "--date", "2026-03-10")

    assert only_secret.code == both.code == 2
    assert only_secret.err == "audit: reconcile reads Alpaca and needs ALPACA_SECRET_KEY\n"
    assert (
        both.err == "audit: reconcile reads Alpaca and needs ALPACA_API_KEY and ALPACA_SECRET_KEY\n"
    )
    assert only_secret.out == both.out == ""


def test_an_unreachable_broker_fails_with_one_line_naming_the_host_and_exits_2(
    cli: CLI, cli_env: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    cli_env.setenv("ALPACA_TRADING_HOST", dead)

    run = cli("reconcile", "--account", unique("acct"), "--date", "2026-03-10")

    assert run.code == 2
    failure = run.err.splitlines()[-1]
    assert failure.startswith(f"audit: cannot read orders from Alpaca at {dead}: ")
    assert "ALPACA_TRADING_HOST" in failure and "Traceback" not in run.err


def test_missing_project_and_invalid_settings_are_one_line_errors_with_exit_2(
    cli: CLI, cli_env: pytest.MonkeyPatch
) -> None:
    cli_env.setenv("EXEC_IO_TIMEOUT_S", "soon")
    invalid = cli("intents", "--account", "a", "--date", "2026-03-10")
    cli_env.setenv("EXEC_IO_TIMEOUT_S", "2")
    cli_env.delenv("GOOGLE_CLOUD_PROJECT")
    no_project = cli("trades", "--account", "a", "--date", "2026-03-10")

    assert invalid.code == no_project.code == 2
    assert invalid.err.startswith("audit: invalid configuration: EXEC_IO_TIMEOUT_S: ")
    assert no_project.err == "audit: GOOGLE_CLOUD_PROJECT is not set: name the ledger's project\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["trades", "--account", "a", "--date", "2026-3-10"],
        ["trades", "--account", "a", "--date", "2026-02-30"],
        ["trades", "--account", "a", "--date", "2026-03-10", "--format", "xml"],
        ["intents", "--account", "a", "--date", "2026-03-10", "--status", "done"],
        ["reconcile", "--date", "2026-03-10"],
        ["audit-everything"],
    ],
)
def test_malformed_arguments_are_usage_errors_with_exit_2(cli: CLI, argv: list[str]) -> None:
    run = cli(*argv)

    assert run.code == 2 and run.out == ""
    assert "usage: python -m backend.audit" in run.err and "error:" in run.err


# -- indexes ---------------------------------------------------------------------------------


def test_firestore_indexes_json_declares_exactly_the_query_shapes_the_cli_issues() -> None:
    declared = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    assert declared["fieldOverrides"] == []
    covered = set()
    for index in declared["indexes"]:
        assert index["queryScope"] == "COLLECTION"
        assert {f["order"] for f in index["fields"]} == {"ASCENDING"}
        *equalities, order = (f["fieldPath"] for f in index["fields"])
        covered.add((index["collectionGroup"], frozenset(equalities), order))
    needed = {(s.collection, frozenset(s.equality_fields), s.order_field) for s in query_shapes()}
    assert covered == needed
    assert len(needed) == 12  # 4 ledger_trades listings, 8 execution_intents listings


@pytest.mark.parametrize("strategy", [None, "s"])
@pytest.mark.parametrize("symbol", [None, "SPY"])
@pytest.mark.parametrize("statuses", [(), ("rejected",), ("rejected", "dry_run")])
def test_every_filter_combination_maps_to_a_declared_query_shape(
    strategy: str | None, symbol: str | None, statuses: tuple[str, ...]
) -> None:
    filters = Filters("acct", DAY, strategy, symbol, statuses)
    assert DECISIONS.shape_for(filters) in query_shapes()
    if not statuses:
        assert TRADES.shape_for(filters) in query_shapes()
    else:
        with pytest.raises(ValueError):
            TRADES.shape_for(filters)
