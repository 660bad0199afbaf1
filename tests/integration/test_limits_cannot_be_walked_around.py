"""Every way a risk officer walked a limit around, through HTTP, on real Postgres, the Firestore
emulator, the Alpaca stand-in and the real fill sync. Each test got an order through on the
gateway before the order book (commit 7282971); each must now be refused, or released exactly
when the broker says so.

The file is self-contained on purpose (its own account and fixtures) so it can be run against
an older checkout to show each bypass.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.support.alpaca_standin import AlpacaStandIn


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def account() -> str:
    return unique("paper")


@pytest.fixture
def gateway(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    account: str,
    tmp_path: Path,
) -> Iterator[FlaskClient]:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        "EXEC_IO_TIMEOUT_S": "1",
        "EXEC_DRY_RUN": "0",
        "AGENT_MODE": "LIVE",
        "ALPACA_API_KEY": "key",
        "ALPACA_SECRET_KEY": "secret",
        "ALPACA_TRADING_HOST": alpaca.base_url,
        "ALPACA_DATA_HOST": alpaca.base_url,
        "EXEC_BROKER_TIMEOUT_S": "1",
        "EXEC_BROKER_ACCOUNT_ID": account,
        "EXECUTION_HALTED_FILE": str(switch),
        "EXEC_MAX_POSITION_QTY": "100",
        # Orders here are as large as the position limit: the per-order caps are not the subject.
        "EXEC_MAX_ORDER_QTY": "off",
        "EXEC_MAX_ORDER_NOTIONAL": "off",
        "EXEC_DUPLICATE_WAIT_S": "0",
        "EXEC_BROKER_MIN_INTERVAL_S": "0",
    }
    app = create_app(Settings.from_env(env))
    yield app.test_client()
    app.extensions["service_parts"].close()


Send = Callable[..., Any]


@pytest.fixture
def send(gateway: FlaskClient, account: str) -> Send:
    def _send(side: str = "buy", qty: str = "1", **fields: Any) -> Any:
        body = {
            "client_intent_id": unique("lim"),
            "strategy_id": "s",
            "broker_account_id": account,
            "symbol": "SPY",
            "side": side,
            "qty": qty,
            "order_type": "market",
        } | fields
        return gateway.post("/execute", json=body)

    return _send


def status_and_reason(response: Any) -> tuple[int, str | None]:
    return response.status_code, response.get_json().get("reason")


def sync(gateway: FlaskClient) -> dict[str, Any]:
    response = gateway.post("/sync-fills", json={})
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def place_directly(alpaca: AlpacaStandIn, client_order_id: str, qty: str) -> str:
    """Someone else (another tool, a person) places an order under our client_order_id."""
    body = {"symbol": "SPY", "qty": qty, "side": "buy", "type": "market", "time_in_force": "day"}
    response = requests.post(
        f"{alpaca.base_url}/v2/orders", json=body | {"client_order_id": client_order_id}, timeout=5
    )
    assert response.status_code == 200
    return str(response.json()["id"])


# -- one bound account ---------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["upper", "suffix", "trailing space"])
def test_another_spelling_of_the_bound_account_is_refused_and_acked_with_no_order(
    gateway: FlaskClient,
    send: Send,
    account: str,
    set_position: Any,
    alpaca: AlpacaStandIn,
    spelling: str,
) -> None:
    set_position(account, "SPY", "100")
    other = {"upper": account.upper(), "suffix": f"{account} x", "trailing space": f"{account} "}
    response = send(qty="100", broker_account_id=other[spelling])
    assert status_and_reason(response) == (409, "account_not_allowed")
    body = {
        "client_intent_id": unique("lim"),
        "strategy_id": "s",
        "broker_account_id": other[spelling],
        "symbol": "SPY",
        "side": "buy",
        "qty": "100",
        "order_type": "market",
    }
    envelope = {
        "message": {"data": base64.b64encode(json.dumps(body).encode()).decode(), "messageId": "m"}
    }
    pushed = gateway.post("/pubsub/push", json=envelope)
    assert (pushed.status_code, pushed.get_json()["reason"]) == (200, "account_not_allowed")
    assert alpaca.post_count() == 0


# -- working orders, each side on its own ------------------------------------------------------


def test_a_resting_sell_gives_no_headroom_to_a_buy(send: Send, alpaca: AlpacaStandIn) -> None:
    resting = send("sell", "100", order_type="limit", limit_price="1000")
    assert resting.status_code == 200, resting.get_json()
    assert status_and_reason(send("buy", "200")) == (409, "max_position_size_exceeded")
    assert alpaca.post_count() == 1


def test_a_working_buy_still_counts_after_the_position_sync_touches_the_row(
    send: Send, account: str, set_position: Any, alpaca: AlpacaStandIn
) -> None:
    set_position(account, "SPY", "0")
    assert send("buy", "100", order_type="limit", limit_price="1").status_code == 200
    set_position(account, "SPY", "0")  # the job runs again: the buy has not filled
    assert status_and_reason(send("buy", "100")) == (409, "max_position_size_exceeded")
    assert alpaca.post_count() == 1


def test_a_retry_placed_after_a_position_refresh_counts_its_order(
    gateway: FlaskClient, send: Send, account: str, set_position: Any, alpaca: AlpacaStandIn
) -> None:
    alpaca.fail_next_posts(503)  # the outcome is unknown: the slot stays reserved
    body = {
        "client_intent_id": unique("retried"),
        "strategy_id": "s",
        "broker_account_id": account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "100",
        "order_type": "market",
    }
    assert status_and_reason(gateway.post("/execute", json=body)) == (503, "broker_unavailable")
    set_position(account, "SPY", "0")
    retried = gateway.post("/execute", json=body)
    assert retried.status_code == 200 and retried.get_json()["status"] == "submitted"
    assert status_and_reason(send("buy", "1")) == (409, "max_position_size_exceeded")


def test_a_canceled_order_stops_counting_once_the_fill_sync_sees_it(
    gateway: FlaskClient, send: Send, alpaca: AlpacaStandIn
) -> None:
    first = send("buy", "100", order_type="limit", limit_price="1")
    assert status_and_reason(send("buy", "100")) == (409, "max_position_size_exceeded")
    alpaca.set_order_status(first.get_json()["broker_order_id"], "canceled")
    sync(gateway)
    assert send("buy", "100").status_code == 200


def test_a_partly_filled_then_expired_order_counts_only_its_fills(
    gateway: FlaskClient, send: Send, alpaca: AlpacaStandIn
) -> None:
    order_id = send("buy", "100").get_json()["broker_order_id"]
    alpaca.set_order_status(order_id, "partially_filled", "40", "101.5")
    alpaca.set_order_status(order_id, "expired")
    sync(gateway)
    assert status_and_reason(send("buy", "61")) == (409, "max_position_size_exceeded")
    assert send("buy", "60").status_code == 200


# -- risk-reducing orders ------------------------------------------------------------------------


def test_a_sell_from_over_the_limit_passes_and_one_past_the_other_side_is_refused(
    send: Send, account: str, set_position: Any
) -> None:
    set_position(account, "SPY", "150")
    assert send("sell", "10").status_code == 200
    assert status_and_reason(send("sell", "300")) == (409, "max_position_size_exceeded")
    assert status_and_reason(send("buy", "1")) == (409, "max_position_size_exceeded")


# -- adoption verifies the order ------------------------------------------------------------------


def test_a_foreign_order_under_the_intents_id_is_not_adopted_on_the_brokers_422(
    gateway: FlaskClient, account: str, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    intent_id = unique("taken")
    foreign = place_directly(alpaca, intent_id, qty="7")
    body = {
        "client_intent_id": intent_id,
        "strategy_id": "s",
        "broker_account_id": account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "5",
        "order_type": "market",
    }
    response = gateway.post("/execute", json=body)
    assert status_and_reason(response) == (409, "broker_order_mismatch")
    assert "qty: intent '5', broker '7'" in response.get_json()["message"]
    assert not firestore_client.collection("ledger_trades").document(foreign).get().exists
    assert gateway.post("/execute", json=body).get_json()["original_status"] == "rejected"


def test_a_foreign_order_under_the_intents_id_is_not_adopted_by_a_retry(
    gateway: FlaskClient, account: str, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    intent_id = unique("retry")
    body = {
        "client_intent_id": intent_id,
        "strategy_id": "s",
        "broker_account_id": account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "5",
        "order_type": "market",
    }
    alpaca.fail_next_posts(429)  # refused before any order was made: retryable
    assert gateway.post("/execute", json=body).status_code == 503
    foreign = place_directly(alpaca, intent_id, qty="9")
    assert status_and_reason(gateway.post("/execute", json=body)) == (409, "broker_order_mismatch")
    assert not firestore_client.collection("ledger_trades").document(foreign).get().exists


def test_the_fill_sync_never_adopts_a_foreign_order_under_an_intents_id(
    gateway: FlaskClient, account: str, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    intent_id = unique("sync")
    body = {
        "client_intent_id": intent_id,
        "strategy_id": "s",
        "broker_account_id": account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "5",
        "order_type": "market",
    }
    alpaca.fail_next_posts(429)
    assert gateway.post("/execute", json=body).status_code == 503  # a decision record exists
    foreign = place_directly(alpaca, intent_id, qty="9")
    report = sync(gateway)
    assert report["orders_adopted"] == 0
    assert not firestore_client.collection("ledger_trades").document(foreign).get().exists


# -- the keys' account must be the configured one ----------------------------------------------


def test_keys_of_another_account_route_nothing_until_the_account_number_matches(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> None:
    account = f"PA-{uuid.uuid4().hex[:8]}"  # verified: the bound id is the account number
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        "EXEC_DRY_RUN": "0",
        "AGENT_MODE": "LIVE",
        "ALPACA_API_KEY": "key",
        "ALPACA_SECRET_KEY": "secret",
        "ALPACA_TRADING_HOST": alpaca.base_url,
        "ALPACA_DATA_HOST": alpaca.base_url,
        "EXEC_BROKER_ACCOUNT_ID": account,
        "EXECUTION_HALTED_FILE": str(switch),
        "ALPACA_ACCOUNT_NUMBER": account,
        "ALPACA_ACCOUNT_CHECK_TTL_S": "0",
    }
    alpaca.set_account(account_number="PA-SOMEONE-ELSE")
    app = create_app(Settings.from_env(env))
    client = app.test_client()
    try:
        body = {
            "client_intent_id": unique("acctno"),
            "strategy_id": "s",
            "broker_account_id": account,
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
            "order_type": "market",
        }
        refused = client.post("/execute", json=body)
        assert status_and_reason(refused) == (503, "broker_account_unverified")
        assert "PA-SOMEONE-ELSE" in refused.get_json()["message"]
        assert refused.headers["Retry-After"]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "PA-SOMEONE-ELSE" in ready.get_json()["checks"]["broker_account"]
        assert alpaca.post_count() == 0

        alpaca.set_account(account_number=account)
        assert client.get("/readyz").status_code == 200
        placed = client.post("/execute", json=body)  # the same intent: it was only retryable
        assert placed.status_code == 200 and placed.get_json()["status"] == "submitted"
    finally:
        app.extensions["service_parts"].close()
