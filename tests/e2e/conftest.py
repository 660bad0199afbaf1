"""Shared by the end-to-end tests: live services under gunicorn against one emulator project,
one database and the Alpaca stand-in, and ways to hit them all at once."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.devtools.service_process import ServiceProcess
from tests.conftest import current_account, intent_body, unique
from tests.support.alpaca_standin import AlpacaStandIn

# Short leases and timeouts keep the crash test quick; the settings validator still holds:
# lease >= 4 x broker timeout + 6 x io timeout + 1.
LIVE_ENV = {
    "EXEC_DRY_RUN": "0",
    "AGENT_MODE": "LIVE",
    "ALPACA_API_KEY": "key",
    "ALPACA_SECRET_KEY": "secret",
    "EXEC_BROKER_TIMEOUT_S": "1.5",
    "EXEC_IO_TIMEOUT_S": "0.5",
    "EXEC_CLAIM_LEASE_S": "10",
}


@pytest.fixture
def start_service(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> Iterator[Any]:
    started: list[ServiceProcess] = []
    switch = tmp_path / "EXECUTION_HALTED"  # live routing needs an operator's kill switch
    switch.write_text("0\n")

    def start(**env: str) -> ServiceProcess:
        service = ServiceProcess(
            {
                "FIRESTORE_EMULATOR_HOST": firestore_emulator,
                "GOOGLE_CLOUD_PROJECT": firestore_project,
                "EXEC_POSTGRES_DSN": pg_dsn,
                "ALPACA_TRADING_HOST": alpaca.base_url,
                "ALPACA_DATA_HOST": alpaca.base_url,
                **LIVE_ENV,
                "EXEC_BROKER_ACCOUNT_ID": current_account(),
                "EXECUTION_HALTED_FILE": str(switch),
                **env,
            },
            threads=8,
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def two_instances(start_service: Any, **env: str) -> list[ServiceProcess]:
    services = [start_service(**env), start_service(**env)]
    return [service.wait_healthy() for service in services]


def intent(**overrides: Any) -> dict[str, Any]:
    return intent_body("x1", **overrides)


def deliver(service: ServiceProcess, body: dict[str, Any], via: str = "execute") -> Any:
    if via == "execute":
        return requests.post(f"{service.url}/execute", json=body, timeout=30)
    data = base64.b64encode(json.dumps(body).encode()).decode()
    envelope = {"message": {"data": data, "messageId": unique("m")}, "subscription": "s"}
    return requests.post(f"{service.url}/pubsub/push", json=envelope, timeout=30)


def fire_together(calls: list[Any]) -> list[Any]:
    """Runs every call at the same moment (a barrier), each on its own thread."""
    start = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        start.wait(10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))
