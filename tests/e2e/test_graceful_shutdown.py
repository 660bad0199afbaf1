"""SIGTERM while a broker call is in flight: the order is placed, answered and recorded; new
intents are turned away with a retryable answer (or never reach the draining instance)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import requests

from backend.devtools.service_process import ServiceProcess
from tests.conftest import current_account, intent_body
from tests.support.alpaca_standin import AlpacaStandIn


def body() -> dict[str, Any]:
    return intent_body("term")


def test_sigterm_during_a_slow_broker_call_lets_it_finish_and_turns_new_intents_away(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    firestore_client: Any,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"  # live routing needs an operator's kill switch
    switch.write_text("0\n")
    service = ServiceProcess(
        {
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(switch),
            "ALPACA_API_KEY": "key",
            "ALPACA_SECRET_KEY": "secret",
            "ALPACA_TRADING_HOST": alpaca.base_url,
            "ALPACA_DATA_HOST": alpaca.base_url,
            "EXEC_BROKER_TIMEOUT_S": "3",
            "EXEC_IO_TIMEOUT_S": "0.5",
            "EXEC_CLAIM_LEASE_S": "20",
            "GUNICORN_GRACEFUL_TIMEOUT": "8",
        }
    ).wait_healthy()
    try:
        alpaca.delay_next_posts(2.0, accept_first=True)
        in_flight: dict[str, Any] = {}
        slow = body()

        def send() -> None:
            in_flight["response"] = requests.post(f"{service.url}/execute", json=slow, timeout=15)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.7)  # the POST is now waiting on the broker
        os.kill(service.process.pid, signal.SIGTERM)
        time.sleep(0.3)

        try:
            late = requests.post(f"{service.url}/execute", json=body(), timeout=5)
            assert late.status_code == 503, late.text
            assert late.json()["reason"] == "shutting_down" and late.json()["retryable"]
        except requests.ConnectionError:
            pass  # the listener is already closed: the client retries elsewhere

        sender.join(15)
        response = in_flight["response"]
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "submitted"
        order_id = response.json()["broker_order_id"]
        assert firestore_client.collection("ledger_trades").document(order_id).get().exists
        assert [o["client_order_id"] for o in alpaca.orders()] == [slow["client_intent_id"]]
        assert service.process.wait(timeout=15) == 0
        assert '"service.draining"' in service.output()
    finally:
        service.stop()
