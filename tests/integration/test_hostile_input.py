"""Input a hostile or careless client sends: refused as invalid (400, or an acked poison message
on Pub/Sub), never a 500, never a retryable answer that would repeat forever, never an order,
and never a reason for the next valid intent to be refused (issue 10, findings 1 to 3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn


@pytest.fixture
def client(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> Iterator[FlaskClient]:
    """A live gateway routing to the Alpaca stand-in, bound to the test's account, with an
    operator's kill switch (a file) that is off."""
    alpaca.set_latest_trade("SPY", "450.25", at="live")
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    settings = Settings.from_env(
        standin_env(alpaca)
        | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_IO_TIMEOUT_S": "1",
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_TIMEOUT_S": "1",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(switch),
        }
    )
    app = create_app(settings)
    yield app.test_client()
    app.extensions["service_parts"].close()


@pytest.fixture
def dry_run_client(
    firestore_emulator: str, firestore_project: str, pg_dsn: str
) -> Iterator[FlaskClient]:
    """A dry-run gateway bound to no account: every account reaches the risk book."""
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            # No market data here: the controls that need a price are switched off.
            "EXEC_MAX_ORDER_NOTIONAL": "off",
            "EXEC_PRICE_COLLAR_PCT": "off",
        }
    )
    app = create_app(settings)
    yield app.test_client()
    app.extensions["service_parts"].close()


def push_raw(client: FlaskClient, data: bytes) -> Any:
    envelope = {
        "message": {"data": base64.b64encode(data).decode(), "messageId": unique("m")},
        "subscription": "projects/p/subscriptions/intents",
    }
    return client.post("/pubsub/push", json=envelope)


def post_raw(client: FlaskClient, data: bytes) -> Any:
    return client.post("/execute", data=data, content_type="application/json")


def nested_metadata(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels - 1):
        node["a"] = {}
        node = node["a"]
    return root


def assert_refused_as_invalid(response: Any, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["reason"] == "invalid_intent" and body["retryable"] is False


def test_a_deeply_nested_json_body_is_a_400_not_a_500(client: FlaskClient) -> None:
    assert_refused_as_invalid(post_raw(client, b"[" * 5000), 400)


def test_a_deeply_nested_json_message_is_acked_as_poison_not_redelivered(
    client: FlaskClient,
) -> None:
    assert_refused_as_invalid(push_raw(client, b"[" * 5000), 200)


def test_an_unreadable_number_is_a_400_not_a_500(client: FlaskClient) -> None:
    raw = json.dumps(intent_body()).replace('"1"', "1e-99999999999999999999").encode()
    assert_refused_as_invalid(post_raw(client, raw), 400)


def test_deep_metadata_is_refused_and_the_next_valid_intent_is_still_placed(
    client: FlaskClient, alpaca: AlpacaStandIn
) -> None:
    poison = intent_body("deep", metadata=nested_metadata(300))
    assert_refused_as_invalid(client.post("/execute", json=poison), 400)
    assert_refused_as_invalid(push_raw(client, json.dumps(poison).encode()), 200)
    after = client.post("/execute", json=intent_body("after"))
    assert after.status_code == 200, after.get_json()
    assert after.get_json()["status"] == "submitted"
    assert alpaca.post_count() == 1


def test_a_nul_in_the_broker_account_is_a_final_400_not_a_retryable_503_forever(
    dry_run_client: FlaskClient,
) -> None:
    # Postgres refuses NUL in text: before, this was risk_data_unavailable on every delivery.
    body = intent_body("nul", broker_account_id="acct\x00")
    response = dry_run_client.post("/execute", json=body)
    assert_refused_as_invalid(response, 400)
    assert response.get_json()["errors"][0]["field"] == "broker_account_id"
    assert_refused_as_invalid(push_raw(dry_run_client, json.dumps(body).encode()), 200)


@pytest.mark.parametrize("reserved", [".", "..", "__x__"])
def test_an_id_firestore_cannot_store_is_refused_before_anything_runs(
    client: FlaskClient, alpaca: AlpacaStandIn, reserved: str
) -> None:
    response = client.post("/execute", json=intent_body(client_intent_id=reserved))
    assert_refused_as_invalid(response, 400)
    assert response.get_json()["errors"][0]["field"] == "client_intent_id"
    assert alpaca.post_count() == 0


def test_an_unexpected_exception_outside_the_engine_is_a_retryable_internal_error(
    dry_run_client: FlaskClient,
) -> None:
    app = dry_run_client.application

    @app.post("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    response = dry_run_client.post("/boom", json={})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["reason"] == "internal_error"
    assert response.get_json()["retryable"] is True
