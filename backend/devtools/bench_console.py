"""Page timings of the console with a busy day behind it: ``make bench-console``.

Starts the real stack on loopback (Firestore emulator, Postgres, the Alpaca stand-in), the
service under gunicorn as the image runs it (2 workers, 8 threads), and fills the trading day
with ``--decisions`` decision records (10,000 by default). The records are copies of real ones:
a few intents go through the live service first (an order placed, refusals of several kinds),
and their stored records are cloned with new ids, times, strategies, symbols and outcomes. The
book, the ledger and the broker get ``--orders`` orders with fills and events.

Then it signs in and times each page, client side over loopback (request to last byte), for
``--rounds`` rounds, a little over a second apart so that every round of the Decisions page
also pays for topping up its copy of the day. The first load of the day into a worker is
reported on its own ("cold"): it happens once per worker process and trading day.

Prints a table and, with ``--json PATH``, writes the figures. Not a test: nothing fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import psycopg
import requests
from google.cloud import firestore

from backend.devtools import local_stack
from backend.devtools.service_process import ServiceProcess
from backend.execution.clock import TRADING_TIMEZONE, trading_date
from tests.support.alpaca_standin import AlpacaStandIn

ACCOUNT = "bench-console"
ADMIN_KEY = "bench-console-operator"
TARGET_MS = 300.0
PAGES = {
    "status": "/console/status",
    "status panel (auto-refresh)": "/console/api/status",
    "decisions": "/console/decisions",
    "decisions, filtered, page 3": "/console/decisions?status=rejected&page=3",
    "decisions CSV (all)": "/console/decisions.csv",
    "orders": "/console/orders",
    "reconcile (form)": "/console/reconcile",
    "reconcile (run)": "/console/reconcile?run=1",
    "actions": "/console/actions",
}
STRATEGIES = ("momentum", "meanrev", "pairs", "breakout", "carry")
SYMBOLS = ("SPY", "QQQ", "AAPL", "MSFT")
PRICES = {"SPY": "450.00", "QQQ": "380.00", "AAPL": "190.00", "MSFT": "410.00"}


def log(message: str) -> None:
    print(f"[bench-console] {message}", file=sys.stderr, flush=True)


@contextmanager
def stack() -> Iterator[tuple[Any, str, AlpacaStandIn]]:
    with local_stack.start_firestore_emulator() as emulator:
        admin = local_stack.ensure_postgres()
        name = f"bench_console_{uuid.uuid4().hex[:8]}"
        dsn = local_stack.create_database(admin, name)
        local_stack.apply_schema(dsn)
        broker = AlpacaStandIn().start()
        for symbol, price in PRICES.items():
            broker.set_latest_trade(symbol, price, at="live")
        try:
            yield emulator, dsn, broker
        finally:
            broker.stop()
            local_stack.drop_database(admin, name)


def start_service(emulator: Any, dsn: str, broker: AlpacaStandIn, project: str) -> ServiceProcess:
    env = {
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "GOOGLE_CLOUD_PROJECT": project,
        "EXEC_POSTGRES_DSN": dsn,
        "EXEC_DRY_RUN": "0",
        "AGENT_MODE": "LIVE",
        "EXEC_BROKER_ACCOUNT_ID": ACCOUNT,
        "ALPACA_API_KEY": "bench",
        "ALPACA_SECRET_KEY": "bench",
        "ALPACA_TRADING_HOST": broker.base_url,
        "ALPACA_DATA_HOST": broker.base_url,
        "EXEC_AGENT_ADMIN_KEY": ADMIN_KEY,
        "EXEC_AUDITOR_KEY": "bench-console-auditor",
        "EXECUTION_HALTED_DOC": "ops/bench-console-kill",
        "EXEC_MAX_DAILY_TRADES": "1000",
        "EXEC_MAX_POSITION_QTY": "10000",
        "EXEC_REPEAT_LIMIT": "off",
        "EXEC_MAX_ORDERS_PER_MINUTE": "off",
        "LOG_LEVEL": "WARNING",
    }
    return ServiceProcess(env, workers=2, threads=8).wait_healthy(timeout_s=60)


def templates(url: str, db: firestore.Client) -> list[dict[str, Any]]:
    """Real decision records: an order placed and refusals of three kinds."""
    bodies = [
        {"qty": "1"},
        {"qty": "500"},  # max_order_qty_exceeded
        {"qty": "1", "order_type": "limit", "limit_price": "600.00"},  # price_outside_collar
        {"qty": "1", "broker_account_id": "someone-else"},  # account_not_allowed
    ]
    ids = []
    for extra in bodies:
        body = {"client_intent_id": f"tpl-{uuid.uuid4().hex[:10]}", "strategy_id": "momentum",
                "broker_account_id": ACCOUNT, "symbol": "SPY", "side": "buy",
                "order_type": "market"} | extra  # fmt: skip
        requests.post(f"{url}/execute", json=body, timeout=30)
        ids.append(body["client_intent_id"])
    records = []
    for intent_id in ids:
        data = db.collection("execution_intents").document(intent_id).get().to_dict()
        if data and data.get("broker_account_id") == ACCOUNT:
            records.append(data)
    return records


def seed_decisions(db: firestore.Client, records: list[dict[str, Any]], count: int) -> None:
    """``count`` clones spread over the last 6.5 hours of today's New York trading date."""
    now = datetime.now(UTC)
    day = trading_date(now).isoformat()
    midnight = datetime.combine(trading_date(now), dtime(0), TRADING_TIMEZONE).astimezone(UTC)
    start = max(now - timedelta(hours=6.5), midnight)
    span = (now - start).total_seconds()
    rng = random.Random(7)
    batch = db.batch()
    for n in range(count):
        template = records[0] if rng.random() < 0.7 else rng.choice(records[1:])
        received = start + timedelta(seconds=span * n / count)
        record = dict(template) | {
            "client_intent_id": f"bench-{n:06d}",
            "strategy_id": rng.choice(STRATEGIES),
            "symbol": rng.choice(SYMBOLS),
            "trading_date": day,
            "received_at": received,
            "decided_at": received + timedelta(milliseconds=30),
            "updated_at": received + timedelta(milliseconds=30),
        }
        if rng.random() < 0.03:
            record |= {"status": "retry_pending", "reason": "risk_data_unavailable"}
        batch.set(db.collection("execution_intents").document(record["client_intent_id"]), record)
        if (n + 1) % 400 == 0:
            batch.commit()
            batch = db.batch()
    batch.commit()


def seed_orders(db: firestore.Client, dsn: str, broker: AlpacaStandIn, count: int) -> None:
    """Orders at the broker, in the book and in the ledger with a fill and two events each."""
    day = trading_date(datetime.now(UTC))
    session = requests.Session()
    session.headers.update({"APCA-API-KEY-ID": "bench", "APCA-API-SECRET-KEY": "bench"})
    with psycopg.connect(dsn, autocommit=True) as conn:
        for symbol in SYMBOLS:
            conn.execute(
                "INSERT INTO public.broker_positions (broker_account_id, symbol, qty)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (ACCOUNT, symbol, 40),
            )
        for n in range(count):
            intent, symbol = f"bench-order-{n:04d}", SYMBOLS[n % len(SYMBOLS)]
            order = session.post(
                f"{broker.base_url}/v2/orders",
                json={
                    "symbol": symbol,
                    "qty": "2",
                    "side": "buy",
                    "type": "market",
                    "time_in_force": "day",
                    "client_order_id": intent,
                },
                timeout=10,
            ).json()
            filled = n % 2 == 0
            if filled:
                order = broker.set_order_status(order["id"], "filled", "2", PRICES[symbol])
            conn.execute(
                "INSERT INTO public.execution_orders (client_intent_id, broker_account_id,"
                " strategy_id, symbol, side, qty, order_type, trading_date, state,"
                " broker_order_id, broker_status, filled_qty)"
                " VALUES (%s, %s, 'momentum', %s, 'buy', 2, 'market', %s, %s, %s, %s, %s)",
                (intent, ACCOUNT, symbol, day, "final" if filled else "working", order["id"],
                 order["status"], order["filled_qty"]),
            )  # fmt: skip
            ledger = db.collection("ledger_trades").document(order["id"])
            created = datetime.now(UTC)
            ledger.set({
                "broker_order_id": order["id"], "client_intent_id": intent,
                "strategy_id": "momentum", "broker_account_id": ACCOUNT, "symbol": symbol,
                "side": "buy", "qty": "2", "order_type": "market", "trading_date": day.isoformat(),
                "status": order["status"], "filled_qty": order["filled_qty"],
                "filled_avg_price": order["filled_avg_price"], "created_at": created,
                "raw_fills": {f"act-{n}": {"transaction_time": order["updated_at"], "qty": "2",
                                           "price": PRICES[symbol], "type": "fill"}}
                if filled else {},
            })  # fmt: skip
            ledger.collection("events").document("submitted").set(
                {"type": "submitted", "at": order["submitted_at"], "status": "accepted"}
            )
            if filled:
                ledger.collection("events").document(f"fill-act-{n}").set(
                    {"type": "fill", "at": order["updated_at"], "qty": "2"}
                )


def sign_in(url: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{url}/console/signin", data={"key": ADMIN_KEY}, timeout=30)
    if not re.search(r"/console/status$", answer.url):
        raise SystemExit(f"sign-in failed: {answer.status_code}")
    return session


def worker_rss_mb(master_pid: int) -> float:
    """The largest resident set of the gunicorn workers (children of the master)."""
    largest = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:
                status = (stat.parent / "status").read_text()
                rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
                largest = max(largest, rss_kb / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return round(largest, 1)


def time_pages(
    url: str, session: requests.Session, rounds: int, service_pid: int
) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for name, path in PAGES.items():
        started = time.perf_counter()
        first = session.get(f"{url}{path}", timeout=120)
        figures[name] = {
            "path": path,
            "first_ms": round((time.perf_counter() - started) * 1000, 1),
            "status": first.status_code,
            "bytes": len(first.content),
        }
    # Each worker reads the day once, in the background; wait until every answer is complete.
    started, complete_in_a_row = time.monotonic(), 0
    while complete_in_a_row < 10:
        page = session.get(f"{url}/console/decisions", timeout=120).text
        complete_in_a_row = 0 if "Loading the day" in page else complete_in_a_row + 1
        if time.monotonic() - started > 600:
            raise SystemExit("the day was not loaded within 10 minutes")
        time.sleep(0.2)
    figures["_day_loaded_s"] = {"seconds": round(time.monotonic() - started, 1)}
    samples: dict[str, list[float]] = {name: [] for name in PAGES}
    figures["_worker_rss_mb"] = {"max": worker_rss_mb(service_pid)}
    for _ in range(rounds):
        time.sleep(1.05)  # past the copy's refresh interval: every round tops it up
        for name, path in PAGES.items():
            started = time.perf_counter()
            answer = session.get(f"{url}{path}", timeout=120)
            samples[name].append((time.perf_counter() - started) * 1000)
            figures[name]["bytes"] = len(answer.content)
            if answer.status_code != 200:
                log(f"{path}: HTTP {answer.status_code}")
    for name, values in samples.items():
        if name.startswith("_"):
            continue
        values.sort()
        figures[name] |= {
            "median_ms": round(statistics.median(values), 1),
            "p90_ms": round(values[min(len(values) - 1, int(0.9 * len(values)))], 1),
            "max_ms": round(values[-1], 1),
        }
    return figures


def report(figures: dict[str, dict[str, Any]], decisions: int, orders: int) -> None:
    print(f"\nConsole page timings: {decisions} decisions and {orders} orders in the day, "
          f"2 gunicorn workers x 8 threads, client-side over loopback (ms)")  # fmt: skip
    header = f"{'page':32} {'first':>8} {'median':>8} {'p90':>8} {'max':>8} {'bytes':>9}"
    print(header)
    print("-" * len(header))
    for name, f in figures.items():
        if name.startswith("_"):
            continue
        flag = "" if f["max_ms"] < TARGET_MS else f"  over {TARGET_MS:g} ms"
        print(f"{name:32} {f['first_ms']:8.1f} {f['median_ms']:8.1f} {f['p90_ms']:8.1f} "
              f"{f['max_ms']:8.1f} {f['bytes']:9d}{flag}")  # fmt: skip
    print(f"first: the first request to each page; the Decisions page's first answers say "
          f"'Loading the day' until the background read is done: "
          f"{figures['_day_loaded_s']['seconds']} s here for both workers. Largest worker "
          f"RSS with the day loaded: {figures['_worker_rss_mb']['max']} MB")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-console", description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    project = f"demo-bench-console-{uuid.uuid4().hex[:6]}"
    with stack() as (emulator, dsn, broker):
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        db = firestore.Client(project=project)
        db.document("ops/bench-console-kill").set({"enabled": False})
        service = start_service(emulator, dsn, broker, project)
        try:
            log("recording real decision records to copy")
            records = templates(service.url, db)
            log(f"writing {args.decisions} decision records")
            started = time.monotonic()
            seed_decisions(db, records, args.decisions)
            log(f"  done in {time.monotonic() - started:.1f}s; {args.orders} orders")
            seed_orders(db, dsn, broker, args.orders)
            session = sign_in(service.url)
            figures = time_pages(service.url, session, args.rounds, service.process.pid)
        finally:
            service.stop()
    report(figures, args.decisions + len(records), args.orders)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"decisions": args.decisions + len(records), "orders": args.orders,
                       "pages": figures}, out, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
