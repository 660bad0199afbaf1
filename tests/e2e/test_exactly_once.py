"""Exactly-once placement and race-free limits across two service processes.

Two gunicorn masters (separate processes, several threads each) share one Firestore project and
one Postgres database and route to one Alpaca stand-in, as two Cloud Run instances would.
Deliveries are fired concurrently at both. See docs/EXACTLY_ONCE.md for the design under test.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import requests

from tests.conftest import current_account
from tests.e2e.conftest import deliver, fire_together, intent, two_instances
from tests.support.alpaca_standin import AlpacaStandIn


def test_concurrent_deliveries_of_one_intent_on_two_instances_place_one_order(
    start_service: Any, alpaca: AlpacaStandIn
) -> None:
    services = two_instances(start_service)
    body = intent()
    alpaca.delay_next_posts(0.5, count=1)  # keep the first attempt in flight a while
    calls = [
        (lambda s=services[n % 2], via=("execute", "push")[n // 2 % 2]: deliver(s, body, via))
        for n in range(16)
    ]
    responses = fire_together(calls)

    assert alpaca.post_count() == 1
    payloads = [r.json() for r in responses]
    submitted = [p for p in payloads if p["status"] == "submitted"]
    assert len(submitted) == 1
    for payload in payloads:
        assert payload["status"] in ("submitted", "duplicate") or (
            payload.get("reason") == "duplicate_in_progress"
        ), payload
    again = deliver(services[1], body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["broker_order_id"] == submitted[0]["broker_order_id"]


def test_the_daily_cap_is_exact_across_instances(start_service: Any, alpaca: AlpacaStandIn) -> None:
    services = two_instances(start_service, EXEC_MAX_DAILY_TRADES="5")
    account = current_account()
    bodies = [intent(broker_account_id=account) for _ in range(30)]
    responses = fire_together(
        [lambda b=b, n=n: deliver(services[n % 2], b) for n, b in enumerate(bodies)]
    )
    assert len(alpaca.orders()) == 5
    reasons = [r.json().get("reason") for r in responses]
    assert reasons.count(None) == 5
    assert reasons.count("max_daily_trades_exceeded") == 25


def test_the_position_limit_holds_under_concurrent_buys_across_instances(
    start_service: Any, alpaca: AlpacaStandIn, set_position: Any
) -> None:
    services = two_instances(start_service, EXEC_MAX_POSITION_QTY="100")
    account = current_account()
    set_position(account, "SPY", "90")
    bodies = [intent(broker_account_id=account, qty="5") for _ in range(10)]
    fire_together([lambda b=b, n=n: deliver(services[n % 2], b) for n, b in enumerate(bodies)])
    routed = sum(Decimal(order["qty"]) for order in alpaca.orders())
    assert routed == Decimal(10)


def test_a_broker_answer_lost_after_acceptance_is_adopted_by_the_next_attempt(
    start_service: Any, alpaca: AlpacaStandIn
) -> None:
    first, second = two_instances(start_service)
    body = intent()
    alpaca.delay_next_posts(3.0, accept_first=True)  # longer than EXEC_BROKER_TIMEOUT_S
    lost = deliver(first, body)
    assert lost.status_code == 503
    assert lost.json()["reason"] == "broker_unavailable"
    adopted = deliver(second, body)
    assert adopted.status_code == 200, adopted.json()
    assert adopted.json()["broker_order_id"] == alpaca.orders()[0]["id"]
    assert alpaca.post_count() == 1


def test_a_slot_whose_outcome_is_unknown_stays_taken_and_a_refused_one_is_given_back(
    start_service: Any, alpaca: AlpacaStandIn
) -> None:
    (service,) = [start_service(EXEC_MAX_DAILY_TRADES="1").wait_healthy()]
    account = current_account()
    alpaca.fail_next_posts(403, {"code": 40310000, "message": "insufficient buying power"})
    refused = deliver(service, intent(broker_account_id=account))
    assert refused.json()["reason"] == "broker_rejected"
    alpaca.fail_next_posts(500, accept_first=False)
    unknown = deliver(service, intent(broker_account_id=account))
    assert unknown.json()["reason"] == "broker_unavailable"
    blocked = deliver(service, intent(broker_account_id=account))
    assert blocked.json()["reason"] == "max_daily_trades_exceeded"


def test_a_process_killed_mid_submission_leaves_exactly_one_order_per_intent_after_redelivery(
    start_service: Any, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    doomed, survivor = two_instances(start_service)
    # One strategy each: sixteen alike from one strategy would trip the repeat latch (10/60).
    bodies = [intent(strategy_id=f"s{n}") for n in range(16)]
    # Every order is accepted at once but answered slowly, so the kill lands mid-submission.
    alpaca.delay_next_posts(1.0, count=len(bodies), accept_first=True)

    def first_delivery(n: int) -> None:
        try:
            deliver((doomed, survivor)[n % 2], bodies[n])
        except requests.RequestException:
            pass  # the doomed instance's connections die with it

    with ThreadPoolExecutor(len(bodies)) as pool:
        pending = [pool.submit(first_delivery, n) for n in range(len(bodies))]
        time.sleep(0.5)
        doomed.kill()
        for future in pending:
            future.result()

    # Pub/Sub redelivers every unacked message until one attempt is final; so do we.
    final: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while len(final) < len(bodies) and time.monotonic() < deadline:
        for body in bodies:
            if body["client_intent_id"] in final:
                continue
            response = deliver(survivor, body, via="push")
            if response.status_code == 200 and response.json()["status"] in (
                "submitted",
                "duplicate",
            ):
                final[body["client_intent_id"]] = response.json()
        time.sleep(0.5)
    assert len(final) == len(bodies), "some intents never reached a final outcome"

    orders = alpaca.orders()
    client_ids = [order["client_order_id"] for order in orders]
    assert sorted(client_ids) == sorted(b["client_intent_id"] for b in bodies)
    for order in orders:
        entry = firestore_client.collection("ledger_trades").document(order["id"]).get()
        assert entry.exists, f"order {order['id']} is not in the ledger"
        assert final[order["client_order_id"]]["broker_order_id"] == order["id"]
