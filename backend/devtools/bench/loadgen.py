"""Open-loop load generator, run as its own process:
``python -m backend.devtools.bench.loadgen URL --rate R --duration S [--prefix P]``.

Requests go out on a fixed schedule whatever the answers do (open loop), and each latency is
measured from the moment the request was *due*, so a backed-up service cannot hide its queueing
(no coordinated omission). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

# The account the benchmark's service is bound to (EXEC_BROKER_ACCOUNT_ID).
BENCH_ACCOUNT = "bench-paper"


def intent(prefix: str) -> dict[str, Any]:
    return {
        "client_intent_id": f"{prefix}-{uuid.uuid4().hex[:24]}",
        "strategy_id": "bench",
        "broker_account_id": BENCH_ACCOUNT,
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }


def run(url: str, rate: float, duration_s: float, prefix: str, threads: int) -> dict[str, Any]:
    local = threading.local()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def send(due: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        try:
            response = session.post(f"{url}/execute", json=intent(prefix), timeout=10)
            key = f"{response.status_code}:{response.json().get('status')}"
        except (requests.RequestException, ValueError) as exc:
            key = f"error:{type(exc).__name__}"
        elapsed = time.monotonic() - due
        with lock:
            latencies.append(elapsed)
            statuses[key] = statuses.get(key, 0) + 1

    total = max(1, int(rate * duration_s))
    start = time.monotonic() + 0.05
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for n in range(total):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, due)
    wall = time.monotonic() - start
    return {
        "offered_rate": rate,
        "sent": total,
        "wall_s": round(wall, 3),
        "latencies_s": latencies,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(run(args.url, args.rate, args.duration, args.prefix, args.threads)))


if __name__ == "__main__":
    main()
