"""No secret ever appears in a log line or a response body, on the happy path or any error path."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import requests

from backend.devtools.service_process import ServiceProcess
from tests.conftest import current_account, intent_body
from tests.support.alpaca_standin import AlpacaStandIn

SECRETS = {
    "ALPACA_API_KEY": "AKLEAKCANARY0000001",
    "ALPACA_SECRET_KEY": "sk-leak-canary-secret-0000002",
    "EXEC_AGENT_ADMIN_KEY": "admin-leak-canary-0000003",
}
PG_PASSWORD = "pg-leak-canary-0000004"
BEARER = "eyJhbGciOiJSUzI1NiJ9.leak-canary-token-0000005.c2ln"


def intent() -> dict[str, Any]:
    return intent_body("leak")


def test_no_key_password_or_token_appears_in_any_log_line_or_response(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    alpaca.required_key_id = SECRETS["ALPACA_API_KEY"]
    alpaca.required_secret = SECRETS["ALPACA_SECRET_KEY"]
    # Trust auth ignores the password, but it is in the DSN the service holds.
    dsn_with_password = pg_dsn.replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)
    assert PG_PASSWORD in dsn_with_password
    service = ServiceProcess(
        {
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": dsn_with_password,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(switch),
            "ALPACA_TRADING_HOST": alpaca.base_url,
            "ALPACA_DATA_HOST": alpaca.base_url,
            "PUBSUB_PUSH_AUDIENCE": "https://gateway.example/pubsub/push",
            "EXEC_OIDC_CERTS_URL": "http://127.0.0.1:1/certs",  # unreachable: verify fails
            "LOG_LEVEL": "DEBUG",
            **SECRETS,
        }
    ).wait_healthy()
    bodies: list[str] = []
    try:
        url = service.url

        def keep(response: requests.Response) -> requests.Response:
            bodies.append(response.text + json.dumps(dict(response.headers)))
            return response

        assert keep(requests.post(f"{url}/execute", json=intent(), timeout=10)).status_code == 200
        alpaca.required_secret = "rotated-elsewhere"  # the broker now answers 401
        keep(requests.post(f"{url}/execute", json=intent(), timeout=10))
        alpaca.fail_next_posts(500, accept_first=False)
        keep(requests.post(f"{url}/execute", json=intent(), timeout=10))
        keep(requests.post(f"{url}/execute", json=intent() | {"qty": "-1"}, timeout=10))
        data = base64.b64encode(json.dumps(intent()).encode()).decode()
        envelope = {"message": {"data": data, "messageId": "m"}, "subscription": "s"}
        for auth in (f"Bearer {BEARER}", SECRETS["EXEC_AGENT_ADMIN_KEY"]):
            keep(requests.post(f"{url}/pubsub/push", json=envelope,
                               headers={"Authorization": auth}, timeout=10))  # fmt: skip
            keep(requests.post(f"{url}/sync-fills", headers={"Authorization": auth}, timeout=10))
        for key in ("wrong-key", SECRETS["EXEC_AGENT_ADMIN_KEY"]):
            keep(requests.get(f"{url}/state", headers={"X-Exec-Agent-Key": key}, timeout=10))
            keep(requests.post(f"{url}/recover", headers={"X-Exec-Agent-Key": key}, timeout=10))
        keep(requests.get(f"{url}/readyz", timeout=10))
    finally:
        service.stop()

    logs = service.output()
    assert '"execution.decision"' in logs  # the logs did record the traffic
    everything = logs + "\n".join(bodies)
    for name, secret in (*SECRETS.items(), ("pg password", PG_PASSWORD), ("token", BEARER)):
        assert secret not in everything, f"{name} leaked"
