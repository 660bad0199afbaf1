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


def drive(url: str, rate: float, duration_s: float, flip: Any) -> DrillResult:
    """Sends ``rate`` intents/s for ``duration_s``; calls ``flip()`` halfway; bounded in time."""
    local = threading.local()
    samples: list[Sample] = []
    lock = threading.Lock()

    def send(_: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {
            "client_intent_id": f"drill-{uuid.uuid4().hex[:20]}",
            "strategy_id": "drill",
            "broker_account_id": DRILL_ACCOUNT,
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
            "order_type": "market",
        }
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="intents per second")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load")
    parser.add_argument("--json", type=Path, help="also write the report here")
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
        [sys.executable, "-m", "tests.support.alpaca_standin"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=standin_log, text=True,
    )  # fmt: skip
    service = None
    try:
        assert standin.stdout is not None
        broker_url = standin.stdout.readline().strip()
        with local_stack.start_firestore_emulator() as emulator:
            service = ServiceProcess(
                {
                    "FIRESTORE_EMULATOR_HOST": emulator.host,
                    "GOOGLE_CLOUD_PROJECT": f"demo-drill-{uuid.uuid4().hex[:6]}",
                    "EXEC_POSTGRES_DSN": dsn,
                    "EXEC_DRY_RUN": "0",
                    "AGENT_MODE": "LIVE",
                    "ALPACA_API_KEY": "drill",
                    "ALPACA_SECRET_KEY": "drill",
                    "ALPACA_TRADING_HOST": broker_url,
                    "EXECUTION_HALTED_FILE": str(switch.path("EXECUTION_HALTED")),
                    "EXEC_MAX_DAILY_TRADES": "1000000",
                    "EXEC_MAX_POSITION_QTY": "1000000000",
                    "EXEC_BROKER_ACCOUNT_ID": DRILL_ACCOUNT,
                    "LOG_LEVEL": "WARNING",
                },
                workers=2,
                threads=8,
            ).wait_healthy()
            print(f"[drill] live service at {service.url}; {args.rate:g}/s for {args.duration:g}s",
                  file=sys.stderr)  # fmt: skip
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
