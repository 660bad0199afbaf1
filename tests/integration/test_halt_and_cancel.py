"""A kill switch that can cancel working orders (FIA 2024 §1.5, RTS 6 Art. 12): POST /halt sets
the Firestore document every instance reads, cancels the book's working orders at the broker
one DELETE each, and says what it cancelled and what it could not; POST /resume clears it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn

ADMIN = {"X-Exec-Agent-Key": "admin-key"}
Build = Callable[..., FlaskClient]


@pytest.fixture
def gateway(
    firestore_emulator: str, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn,
    firestore_client: Any,
) -> Iterator[Build]:  # fmt: skip
    built: list[Any] = []

    def build(**env: str) -> FlaskClient:
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXEC_AGENT_ADMIN_KEY": "admin-key",
            "EXECUTION_HALTED_DOC_TTL_S": "0",
            "EXEC_DUPLICATE_WAIT_S": "0",
        }
        values |= env
        if "EXECUTION_HALTED_FILE" not in values and "EXECUTION_HALTED_DOC" not in values:
            values["EXECUTION_HALTED_DOC"] = f"{unique('ops')}/kill_switch"
        if "EXECUTION_HALTED_DOC" in values:
            firestore_client.document(values["EXECUTION_HALTED_DOC"]).set({"enabled": False})
        app = create_app(Settings.from_env(values))
        built.append(app.extensions["service_parts"])
        return app.test_client()

    yield build
    for parts in built:
        parts.close()


def send(client: FlaskClient, **fields: Any) -> Any:
    return client.post("/execute", json=intent_body("halt", **fields))


def resting_buy(client: FlaskClient) -> str:
    response = send(client, order_type="limit", limit_price="395", strategy_id=unique("s"))
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["broker_order_id"])


def open_orders(alpaca: AlpacaStandIn) -> list[str]:
    return [o["id"] for o in alpaca.orders() if o["status"] not in ("canceled", "filled")]


def test_halt_with_cancel_stops_new_orders_and_cancels_every_working_one(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway()
    placed = {resting_buy(client) for _ in range(3)}
    response = client.post(
        "/halt",
        json={"reason": "runaway strategy", "cancel_working_orders": True},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.get_json()
    details = response.get_json()["details"]
    assert {c["broker_order_id"] for c in details["cancelled"]} == placed
    assert details["not_cancelled"] == []
    assert open_orders(alpaca) == []
    assert alpaca.delete_count() == 3

    refused = send(client)
    assert (refused.status_code, refused.get_json()["reason"]) == (409, "kill_switch_enabled")
    assert alpaca.post_count() == 3

    state = client.get("/state", headers=ADMIN).get_json()
    halt = state["operator_actions"][0]
    assert (halt["action"], halt["reason"], halt["who"]) == ("halt", "runaway strategy", "operator")
    assert len(halt["cancelled"]) == 3

    resumed = client.post("/resume", json={"reason": "fixed"}, headers=ADMIN)
    assert resumed.status_code == 200
    assert send(client).status_code == 200


def test_a_cancel_the_broker_does_not_answer_is_reported_as_not_cancelled(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway()
    first, second = resting_buy(client), resting_buy(client)
    alpaca.fail_next("cancel", 503)
    response = client.post(
        "/halt", json={"reason": "drill", "cancel_working_orders": True}, headers=ADMIN
    )
    details = response.get_json()["details"]
    assert [c["broker_order_id"] for c in details["not_cancelled"]] == [first]
    assert details["not_cancelled"][0]["status"] == "unavailable"
    assert [c["broker_order_id"] for c in details["cancelled"]] == [second]


def test_halt_without_cancel_leaves_working_orders_alone(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway()
    order = resting_buy(client)
    response = client.post("/halt", json={"reason": "pause"}, headers=ADMIN)
    assert response.status_code == 200
    assert "cancelled" not in response.get_json()["details"]
    assert open_orders(alpaca) == [order]


def test_reduce_only_from_the_halt_endpoint_lets_only_exits_through(
    gateway: Build, alpaca: AlpacaStandIn, set_position: Any
) -> None:
    set_position(current_account(), "SPY", "20")
    client = gateway()
    response = client.post("/halt", json={"reason": "wind down", "mode": "reduce_only"},
                           headers=ADMIN)  # fmt: skip
    assert response.status_code == 200
    entry = send(client, side="buy")
    assert (entry.status_code, entry.get_json()["reason"]) == (409, "reduce_only")
    assert send(client, side="sell", qty="20").status_code == 200
    state = client.get("/state", headers=ADMIN).get_json()
    assert state["reduce_only"].startswith("firestore:")


def test_reduce_only_written_in_the_kill_switch_file_lets_only_exits_through(
    gateway: Build, alpaca: AlpacaStandIn, set_position: Any, tmp_path: Path
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("reduce_only\n")
    set_position(current_account(), "SPY", "-5")
    client = gateway(EXECUTION_HALTED_FILE=str(switch))
    assert send(client, side="sell").get_json()["reason"] == "reduce_only"
    assert send(client, side="buy", qty="5").status_code == 200


def test_halt_needs_a_reason_and_the_admin_key(gateway: Build) -> None:
    client = gateway()
    assert client.post("/halt", json={}, headers=ADMIN).status_code == 400
    wrong = client.post("/halt", json={"reason": "x"}, headers={"X-Exec-Agent-Key": "nope"})
    assert (wrong.status_code, wrong.get_json()["reason"]) == (401, "unauthorized")


def test_without_the_firestore_kill_switch_there_is_no_halt_endpoint(
    gateway: Build, tmp_path: Path
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    client = gateway(EXECUTION_HALTED_FILE=str(switch))
    assert client.post("/halt", json={"reason": "x"}, headers=ADMIN).status_code == 404
