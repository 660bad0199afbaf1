"""The I/O floor: the Firestore, Postgres and broker calls one intent needs, made directly.

No service, no HTTP, no validation, no logging: just the round trips, back to back, so the
service's latency can be compared with the least it could possibly cost on this machine. The
documents written are the service's own, field for field, so the client library's encoding
cost counts in the floor too.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import requests
from google.cloud import firestore

from backend.execution.adapters.firestore_ledger import intent_fields
from backend.execution.adapters.postgres_risk_book import (
    _LOCK,
    _PLACED,
    _RESERVE,
    _SNAPSHOT,
    _params,
)
from backend.execution.intent import OrderIntent

# A decision record carries six checks with their inputs; this one is typical in size.
_CHECK = {
    "name": "max_position_size",
    "outcome": "passed",
    "inputs": {
        "broker_account_id": "bench-0123456789",
        "symbol": "SPY",
        "position_row_qty": "0",
        "position_as_of": None,
        "position": "0",
        "working_buy": "0",
        "working_sell": "0",
        "order_side": "buy",
        "order_qty": "1",
        "projected_worst": "1",
        "limit": "100",
    },
}
_ORDER_BODY = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


def measure(
    *,
    firestore_client: firestore.Client,
    pg_dsn: str,
    broker_url: str | None,
    data_url: str | None,
    iterations: int,
) -> dict[str, Any]:
    """Per-intent latency of the bare calls; live (broker_url set) or dry-run."""
    session = requests.Session()
    samples: list[float] = []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for _ in range(iterations):
            samples.append(_one_intent(firestore_client, conn, session, broker_url, data_url))
    samples.sort()
    return {
        "iterations": iterations,
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 2),
    }


def _one_intent(
    db: firestore.Client,
    conn: psycopg.Connection,
    session: requests.Session,
    broker_url: str | None,
    data_url: str | None,
) -> float:
    intent_id = f"floor-{uuid.uuid4().hex[:20]}"
    account = f"floor-{uuid.uuid4().hex[:8]}"
    intent = OrderIntent(
        client_intent_id=intent_id,
        strategy_id="bench",
        broker_account_id=account,
        symbol="SPY",
        side="buy",
        qty="1",
        order_type="market",
    )
    params = _params(intent, date(2026, 11, 21)) | {"skew": 10.0, "repeat_s": 60}
    started = time.perf_counter()
    now = datetime.now(UTC)
    claim = db.collection("execution_intents").document(intent_id)
    claim.create(
        intent_fields(intent)
        | {
            "intent_fingerprint": intent.fingerprint(),
            "status": "in_progress",
            "attempt": 1,
            "lease_until": now + timedelta(seconds=45),
            "claimed_by": "floor",
            "source": "execute",
            "trading_date": "2026-11-21",
            "received_at": now,
            "updated_at": now,
        }
    )
    order: dict[str, Any] | None = None
    if data_url is not None:
        # The reference price for the notional and collar controls: one market-data read.
        query = {"symbols": "SPY", "feed": "iex"}
        session.get(f"{data_url}/v2/stocks/snapshots", params=query, timeout=5).json()
    if broker_url is None:
        conn.execute(_SNAPSHOT, params).fetchone()
    else:
        # Check-and-reserve needs two flights at least: lock and read, then decide and write
        # (the decision needs the row it read).
        with conn.pipeline() as flights:
            conn.execute("BEGIN")
            conn.execute(_LOCK, params)
            snapshot = conn.execute(_SNAPSHOT, params)
            flights.sync()
            snapshot.fetchone()
            conn.execute(_RESERVE, params)
            conn.execute("COMMIT")
        body = _ORDER_BODY | {"client_order_id": intent_id}
        order = session.post(f"{broker_url}/v2/orders", json=body, timeout=5).json()
        placed = {"state": "working", "order_id": order["id"], "broker_status": order["status"]}
        conn.execute(_PLACED, params | placed)
    batch = db.batch()
    batch.set(
        claim,
        {
            "status": "submitted" if order else "dry_run",
            "reason": None,
            "retryable": False,
            "message": "m",
            # The sixteen checks a passing intent records (gate and controls table).
            "checks": [_CHECK] * 16,
            "broker_order_id": order["id"] if order else None,
            "attempt": 1,
            "decided_at": now,
            "updated_at": now,
        },
        merge=True,
    )
    if order is not None:
        ledger = db.collection("ledger_trades").document(order["id"])
        batch.set(
            ledger,
            intent_fields(intent)
            | {
                "broker_order_id": order["id"],
                "broker": "alpaca",
                "trading_date": "2026-11-21",
                "status": order["status"],
                "filled_qty": order["filled_qty"],
                "filled_avg_price": None,
                "filled_at": None,
                "submitted_at": order["submitted_at"],
                "raw_broker_order": order,
                "created_at": now,
                "updated_at": now,
            },
            merge=True,
        )
        batch.set(
            ledger.collection("events").document("submitted"),
            {
                "type": "submitted",
                "at": order["submitted_at"],
                "status": order["status"],
                "qty": "1",
                "source": "execution",
                "attempt": 1,
                "recorded_at": now,
            },
        )
    batch.commit()
    return time.perf_counter() - started
