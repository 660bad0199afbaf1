"""Kill-switch drill: ``make drill`` (``python -m backend.devtools.kill_switch_drill``).

Runs the service locally in LIVE mode (gunicorn, the Firestore emulator, Postgres and the Alpaca
stand-in; all on loopback) under a steady stream of intents, flips a ConfigMap-style kill-switch
file halfway through, and reports:

- how long after the flip became visible (the atomic ``..data`` rename) the first refusal came;
- how many orders were routed for intents sent after the flip (must be 0; exit code 1 if not).

It stops by itself after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore

from backend.devtools import local_stack
from backend.devtools.configmap import ConfigMapDir
from backend.devtools.service_process import REPO_ROOT, ServiceProcess

# The one account the drill's service routes for (EXEC_BROKER_ACCOUNT_ID).
DRILL_ACCOUNT = "drill-paper"


@dataclass
class Sample:
    sent_at: float
    done_at: float
    http_status: int
    status: str
    reason: str | None


@dataclass
class DrillResult:
    rate: float
    sent: int
    flip_at: float
    samples: list[Sample]

    def report(self) -> dict[str, Any]:
        after = [s for s in self.samples if s.sent_at > self.flip_at]
        refused = [s for s in self.samples if s.reason == "kill_switch_enabled"]
        accepted = [s for s in self.samples if s.status == "submitted"]
        first_refusal = min((s.done_at for s in refused), default=None)
        return {
            "offered_rate_per_s": self.rate,
            "intents_sent": self.sent,
            "orders_routed_before_flip": sum(1 for s in accepted if s.sent_at <= self.flip_at),
            "orders_routed_for_intents_sent_after_flip": sum(
                1 for s in after if s.status == "submitted"
            ),
            "intents_sent_after_flip": len(after),
            "refused_kill_switch": len(refused),
            "first_refusal_after_flip_ms": None
            if first_refusal is None
            else round((first_refusal - self.flip_at) * 1000, 1),
            "other_outcomes": sorted(
                {f"{s.http_status}:{s.reason}" for s in self.samples if s.status != "submitted"}
                - {"409:kill_switch_enabled"}
            ),
            "latency_ms_p50_accepted": _p50_ms(accepted),
        }


def _p50_ms(samples: list[Sample]) -> float | None:
    if not samples:
        return None
    return round(statistics.median(s.done_at - s.sent_at for s in samples) * 1000, 1)


def drive(
    url: str,
    rate: float,
    duration_s: float,
    flip: Any,
    order: dict[str, str] | None = None,
    account: str = DRILL_ACCOUNT,
) -> DrillResult:
    """Sends ``rate`` intents/s for ``duration_s``; calls ``flip()`` halfway; bounded in time.
    ``order`` overrides the intent's order fields (a resting limit order, say)."""
    local = threading.local()
    samples: list[Sample] = []
    lock = threading.Lock()

    def send(_: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {
            "client_intent_id": f"drill-{uuid.uuid4().hex[:20]}",
            "strategy_id": "drill",
            "broker_account_id": account,
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
            "order_type": "market",
        } | (order or {})
        sent = time.time()
        try:
            response = session.post(f"{url}/execute", json=body, timeout=10)
            payload = response.json()
            sample = Sample(sent, time.time(), response.status_code,
                            payload.get("status", "?"), payload.get("reason"))  # fmt: skip
        except requests.RequestException as exc:
            sample = Sample(sent, time.time(), 0, "error", type(exc).__name__)
        with lock:
            samples.append(sample)

    total = int(rate * duration_s)
    start = time.monotonic()
    flip_at = 0.0
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in range(total):
            due = start + n / rate
            if not flip_at and n >= total // 2:
                flip_at = flip()
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, n)
    return DrillResult(rate, total, flip_at, samples)


# A buy far enough below the stand-in's 450.00 to rest, inside the 5 % collar.
RESTING = {"order_type": "limit", "limit_price": "440", "time_in_force": "day"}


def open_drill_orders(broker_url: str) -> int:
    listing = requests.get(f"{broker_url}/v2/orders", params={"status": "open", "limit": 500},
                           timeout=5).json()  # fmt: skip
    return sum(1 for o in listing if str(o.get("client_order_id", "")).startswith("drill-"))


def cancel_drill(url: str, broker_url: str, rate: float, duration_s: float, resting: int,
                 admin_key: str) -> dict[str, Any]:  # fmt: skip
    """Working orders rest at the broker while intents keep coming; halfway, POST /halt with
    cancel. Reports how long until the broker holds no open order of this gateway, and how many
    orders were routed for intents sent after the halt answered (must be 0)."""
    for _ in range(resting):
        body = {
            "client_intent_id": f"drill-{uuid.uuid4().hex[:20]}",
            "strategy_id": "drill",
            "broker_account_id": DRILL_ACCOUNT,
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
        }
        requests.post(f"{url}/execute", json=body | RESTING, timeout=10).raise_for_status()
    timings: dict[str, Any] = {"open_orders_before_halt": open_drill_orders(broker_url)}

    def halt() -> None:
        started = time.time()
        answer = requests.post(
            f"{url}/halt", json={"reason": "cancel drill", "cancel_working_orders": True},
            headers={"X-Exec-Agent-Key": admin_key}, timeout=30,
        ).json()  # fmt: skip
        timings["halt_answered_at"] = time.time()
        timings["halt_call_ms"] = round((timings["halt_answered_at"] - started) * 1000, 1)
        details = answer.get("details", {})
        timings["cancelled"] = len(details.get("cancelled", []))
        timings["already_final"] = len(details.get("already_final", []))
        timings["not_cancelled"] = details.get("not_cancelled", [])
        deadline = started + 30
        while open_drill_orders(broker_url) and time.time() < deadline:
            time.sleep(0.02)
        timings["ms_until_broker_has_no_open_order"] = round((time.time() - started) * 1000, 1)

    worker = threading.Thread(target=halt)

    def flip() -> float:
        worker.start()
        return time.time()

    result = drive(url, rate, duration_s, flip, RESTING)
    worker.join(40)
    answered = timings.pop("halt_answered_at", float("inf"))
    routed = [s for s in result.samples if s.status == "submitted"]
    return timings | {
        "offered_rate_per_s": rate,
        "intents_sent": result.sent,
        "orders_routed_while_halting": sum(
            1 for s in routed if result.flip_at < s.sent_at <= answered
        ),
        "orders_routed_for_intents_sent_after_halt_answered": sum(
            1 for s in routed if s.sent_at > answered
        ),
        "open_orders_at_the_end": open_drill_orders(broker_url),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="intents per second")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--cancel", action="store_true",
        help="the cancel drill: POST /halt with cancel_working_orders under load",
    )  # fmt: skip
    parser.add_argument("--resting", type=int, default=20, help="working orders before the halt")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="kill-switch-drill-"))
    switch = ConfigMapDir(work / "execution-kill-switch")
    switch.publish(EXECUTION_HALTED="0\n")
    admin = local_stack.ensure_postgres()
    database = f"drill_{uuid.uuid4().hex[:8]}"
    dsn = local_stack.create_database(admin, database)
    local_stack.apply_schema(dsn)
    standin_log = (work / "alpaca-standin.log").open("wb")
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.support.alpaca_standin", "--price", "SPY=450.00"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=standin_log, text=True,
    )  # fmt: skip
    service = None
    try:
        assert standin.stdout is not None
        broker_url = standin.stdout.readline().strip()
        with local_stack.start_firestore_emulator() as emulator:
            project = f"demo-drill-{uuid.uuid4().hex[:6]}"
            kill_switch_env = {"EXECUTION_HALTED_FILE": str(switch.path("EXECUTION_HALTED"))}
            if args.cancel:
                kill_switch_env = {"EXECUTION_HALTED_DOC": "ops/execution_kill_switch",
                                   "EXEC_AGENT_ADMIN_KEY": "drill-admin"}  # fmt: skip
                os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
                firestore.Client(project=project).document("ops/execution_kill_switch").set(
                    {"enabled": False}
                )
            service = ServiceProcess(
                {
                    "FIRESTORE_EMULATOR_HOST": emulator.host,
                    "GOOGLE_CLOUD_PROJECT": project,
                    "EXEC_POSTGRES_DSN": dsn,
                    "EXEC_DRY_RUN": "0",
                    "AGENT_MODE": "LIVE",
                    "ALPACA_API_KEY": "drill",
                    "ALPACA_SECRET_KEY": "drill",
                    "ALPACA_TRADING_HOST": broker_url,
                    **kill_switch_env,
                    "EXEC_MAX_DAILY_TRADES": "1000000",
                    "EXEC_MAX_POSITION_QTY": "1000000000",
                    # Thousands of alike orders a minute: the throttles would refuse them all.
                    "EXEC_MAX_ORDERS_PER_MINUTE": "off",
                    "EXEC_REPEAT_LIMIT": "off",
                    "ALPACA_DATA_HOST": broker_url,
                    "EXEC_BROKER_ACCOUNT_ID": DRILL_ACCOUNT,
                    "LOG_LEVEL": "WARNING",
                },
                workers=2,
                threads=8,
            ).wait_healthy()
            print(f"[drill] live service at {service.url}; {args.rate:g}/s for {args.duration:g}s",
                  file=sys.stderr)  # fmt: skip
            if args.cancel:
                cancel_report = cancel_drill(service.url, broker_url, args.rate, args.duration,
                                             args.resting, "drill-admin")  # fmt: skip
            else:
                result = drive(
                    service.url, args.rate, args.duration,
                    lambda: switch.publish(EXECUTION_HALTED="1\n"),
                )  # fmt: skip
    finally:
        if service is not None:
            service.stop()
        standin.terminate()
        standin.wait(10)
        standin_log.close()
        local_stack.drop_database(admin, database)

    if args.cancel:
        print(json.dumps(cancel_report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(cancel_report, indent=2))
        failed = (
            cancel_report["orders_routed_for_intents_sent_after_halt_answered"]
            or cancel_report["open_orders_at_the_end"]
        )
        verdict = "FAILED" if failed else "passed"
        print(f"[drill] cancel drill {verdict}", file=sys.stderr)
        return 1 if failed else 0
    report = result.report()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    leaked = report["orders_routed_for_intents_sent_after_flip"]
    if leaked:
        print(f"[drill] FAILED: {leaked} orders routed after the flip", file=sys.stderr)
        return 1
    print("[drill] passed: no order routed for an intent sent after the flip", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
