"""The HTTP contract end to end, in-process, on the real emulator, Postgres and Alpaca stand-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn

AppFactory = Callable[..., FlaskClient]
DEAD_PG = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
def make_client(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    alpaca: AlpacaStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppFactory]:
    engines: list[Any] = []
    # Live routing needs a kill switch an operator can flip: an "off" file unless a test
    # brings its own.
    switch_off = tmp_path_factory.mktemp("kill") / "EXECUTION_HALTED"
    switch_off.write_text("0\n")

    def build(live: bool = False, **env: str) -> FlaskClient:
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_IO_TIMEOUT_S": "1",
        }
        if live:
            values |= {
                "EXEC_DRY_RUN": "0",
                "AGENT_MODE": "LIVE",
                "ALPACA_API_KEY": "key",
                "ALPACA_SECRET_KEY": "secret",
                "ALPACA_TRADING_HOST": alpaca.base_url,
                "EXEC_BROKER_TIMEOUT_S": "1",
                "EXEC_BROKER_ACCOUNT_ID": current_account(),
            }
            if not {"EXECUTION_HALTED_FILE", "EXECUTION_HALTED_DOC"} & set(env):
                values["EXECUTION_HALTED_FILE"] = str(switch_off)
        app = create_app(Settings.from_env(values | env))
        engines.append(app.extensions["service_parts"])
        return app.test_client()

    yield build
    for parts in engines:
        parts.close()


def intent(**overrides: Any) -> dict[str, Any]:
    return intent_body("http", strategy_id="mean-reversion", qty="2") | overrides


def push(client: FlaskClient, data: Any, **message: Any) -> Any:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    envelope = {
        "message": {"data": base64.b64encode(raw).decode(), "messageId": unique("m"), **message},
        "subscription": "projects/p/subscriptions/intents",
    }
    return client.post("/pubsub/push", json=envelope)


def checks_by_name(response: Any) -> dict[str, Any]:
    return {c["name"]: c for c in response.get_json()["checks"]}


# -- the happy paths -----------------------------------------------------------------------


def test_by_default_an_intent_is_a_dry_run_with_every_check_explained(
    make_client: AppFactory, firestore_client: Any
) -> None:
    body = intent()
    response = make_client().post("/execute", json=body)
    assert response.status_code == 200
    payload = response.get_json()
    assert payload["status"] == "dry_run" and payload["retryable"] is False
    assert "broker_order_id" not in payload and "reason" not in payload
    assert set(checks_by_name(response)) == {
        "intent_age",
        "broker_account",
        "kill_switch",
        "agent_mode",
        "agent_state",
        "symbol_restricted",
        "market_hours",
        "max_order_qty",
        "reference_price",
        "max_order_notional",
        "price_collar",
        "operator_halt",
        "reduce_only",
        "max_daily_trades",
        "max_position_size",
        "order_rate",
        "repeated_execution",
    }
    record = firestore_client.collection("execution_intents").document(body["client_intent_id"])
    assert record.get().to_dict()["status"] == "dry_run"


def test_a_live_intent_is_placed_once_recorded_in_the_ledger_and_replayed_as_duplicate(
    make_client: AppFactory, firestore_client: Any, alpaca: AlpacaStandIn
) -> None:
    client, body = (
        make_client(live=True),
        intent(qty="1.25", order_type="limit", limit_price="401.5"),
    )
    first = client.post("/execute", json=body)
    assert first.status_code == 200, first.get_json()
    order_id = first.get_json()["broker_order_id"]
    assert first.get_json()["status"] == "submitted"

    entry = firestore_client.collection("ledger_trades").document(order_id).get().to_dict()
    assert entry["client_intent_id"] == body["client_intent_id"]
    assert (entry["qty"], entry["limit_price"], entry["filled_qty"]) == ("1.25", "401.5", "0")
    assert entry["status"] == "accepted"
    assert entry["raw_broker_order"]["id"] == order_id
    for field in (
        "broker_account_id",
        "strategy_id",
        "trading_date",
        "created_at",
        "updated_at",
        "filled_avg_price",
        "filled_at",
    ):
        assert field in entry

    second = client.post("/execute", json=body)
    assert second.status_code == 200
    assert second.get_json()["status"] == "duplicate"
    assert second.get_json()["broker_order_id"] == order_id
    assert len(alpaca.orders()) == 1


def test_a_pubsub_push_is_executed_and_acked(make_client: AppFactory) -> None:
    response = push(make_client(), intent(), publishTime=datetime.now(UTC).isoformat())
    assert response.status_code == 200
    assert response.get_json()["status"] == "dry_run"


# -- gate ------------------------------------------------------------------------------------


def test_the_kill_switch_file_is_read_fresh_for_every_intent(
    make_client: AppFactory, tmp_path: Path
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("1\n")
    client = make_client(EXECUTION_HALTED_FILE=str(switch))
    halted = client.post("/execute", json=intent())
    assert halted.status_code == 409
    assert halted.get_json()["reason"] == "kill_switch_enabled"
    assert str(switch) in checks_by_name(halted)["kill_switch"]["detail"]
    switch.write_text("0\n")
    assert client.post("/execute", json=intent()).status_code == 200


def test_a_missing_kill_switch_file_halts_and_asks_for_a_retry(
    make_client: AppFactory, tmp_path: Path
) -> None:
    switch = tmp_path / "absent"
    client = make_client(EXECUTION_HALTED_FILE=str(switch))
    response = client.post("/execute", json=intent())
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["reason"] == "kill_switch_unavailable"
    assert response.get_json()["retryable"] is True


def test_an_unreadable_kill_switch_is_nacked_and_the_intent_runs_once_the_switch_reads_off(
    make_client: AppFactory, alpaca: AlpacaStandIn, tmp_path: Path
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    client, body = make_client(live=True, EXECUTION_HALTED_FILE=str(switch)), intent()
    pushed = push(client, body)  # the file is not there (yet): nobody can say "off"
    assert pushed.status_code == 503  # nacked: Pub/Sub brings it back
    assert pushed.get_json()["reason"] == "kill_switch_unavailable"
    assert alpaca.orders() == []
    switch.write_text("0\n")
    again = push(client, body)  # the redelivery
    assert again.status_code == 200 and again.get_json()["status"] == "submitted"
    assert len(alpaca.orders()) == 1


def test_the_firestore_kill_switch_document_halts_and_a_missing_one_fails_closed(
    make_client: AppFactory, firestore_client: Any
) -> None:
    path = f"{unique('ops')}/execution_kill_switch"
    client = make_client(EXECUTION_HALTED_DOC=path, EXECUTION_HALTED_DOC_TTL_S="0")
    missing = client.post("/execute", json=intent())
    assert (missing.status_code, missing.get_json()["reason"]) == (503, "kill_switch_unavailable")
    firestore_client.document(path).set({"enabled": "yes"})  # present, but not a boolean
    assert client.post("/execute", json=intent()).get_json()["reason"] == (
        "kill_switch_unavailable"
    )
    firestore_client.document(path).set({"enabled": False})
    assert client.post("/execute", json=intent()).status_code == 200
    firestore_client.document(path).set({"enabled": True})
    halted = client.post("/execute", json=intent())
    assert halted.status_code == 409
    assert halted.get_json()["reason"] == "kill_switch_enabled"
    assert f"firestore:{path}" in checks_by_name(halted)["kill_switch"]["detail"]


def test_the_env_kill_switch_refuses_pubsub_intents_with_an_ack(make_client: AppFactory) -> None:
    response = push(make_client(EXECUTION_HALTED="true"), intent())
    assert response.status_code == 200
    assert response.get_json()["reason"] == "kill_switch_enabled"


def test_a_deprecated_kill_switch_alias_set_to_on_halts_even_when_the_new_name_says_off(
    make_client: AppFactory,
) -> None:
    client = make_client(EXECUTION_HALTED="0", EXEC_KILL_SWITCH="1")
    response = client.post("/execute", json=intent())
    assert response.status_code == 409
    assert response.get_json()["reason"] == "kill_switch_enabled"
    assert "env:EXEC_KILL_SWITCH is on" in checks_by_name(response)["kill_switch"]["detail"]


def test_live_routing_without_an_operator_kill_switch_refuses_to_start(
    firestore_emulator: str, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn
) -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        "EXEC_DRY_RUN": "false",
        "AGENT_MODE": "LIVE",
        "ALPACA_API_KEY": "key",
        "ALPACA_SECRET_KEY": "secret",
        "ALPACA_TRADING_HOST": alpaca.base_url,
        "EXEC_BROKER_ACCOUNT_ID": current_account(),
    }
    with pytest.raises(ConfigurationError, match="EXECUTION_HALTED_FILE or EXECUTION_HALTED_DOC"):
        create_app(Settings.from_env(env))


def test_database_url_and_firebase_project_id_are_enough_to_start_and_serve(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    firestore_client: Any,
    alpaca: AlpacaStandIn,
) -> None:
    env = standin_env(alpaca) | {"DATABASE_URL": pg_dsn, "FIREBASE_PROJECT_ID": firestore_project}
    app = create_app(Settings.from_env(env))
    try:
        body = intent()
        response = app.test_client().post("/execute", json=body)
        assert response.status_code == 200, response.get_json()
        assert app.test_client().get("/readyz").get_json()["checks"]["postgres"] == "ok"
    finally:
        app.extensions["service_parts"].close()
    # Recorded in FIREBASE_PROJECT_ID's Firestore project, not a default one.
    record = firestore_client.collection("execution_intents").document(body["client_intent_id"])
    assert record.get().exists


def test_live_routing_outside_agent_mode_live_is_refused(
    make_client: AppFactory, alpaca: AlpacaStandIn
) -> None:
    response = make_client(live=True, AGENT_MODE="PAPER").post("/execute", json=intent())
    assert response.status_code == 409
    assert response.get_json()["reason"] == "agent_mode_not_live"
    assert alpaca.orders() == []


def test_a_stale_market_data_heartbeat_blocks_live_routing(
    make_client: AppFactory, firestore_client: Any, alpaca: AlpacaStandIn
) -> None:
    path = f"{unique('marketdata')}/heartbeat"
    firestore_client.document(path).set({"ts": datetime.now(UTC) - timedelta(minutes=10)})
    client = make_client(live=True, MARKETDATA_HEARTBEAT_DOC=path, EXECUTION_HALTED_DOC_TTL_S="0")
    body = intent()
    response = client.post("/execute", json=body)
    assert response.get_json()["reason"] == "agent_state_not_ready"
    assert checks_by_name(response)["agent_state"]["inputs"]["agent_state"] == "DEGRADED"
    assert alpaca.orders() == []
    # Not deciding is not a refusal: retryable, and nacked on Pub/Sub.
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert push(client, body).status_code == 503
    firestore_client.document(path).set({"ts": datetime.now(UTC)})  # market data is back
    assert push(client, body).get_json()["status"] == "submitted"
    assert len(alpaca.orders()) == 1


def test_a_heartbeat_dated_in_the_future_blocks_live_routing(
    make_client: AppFactory, firestore_client: Any, alpaca: AlpacaStandIn
) -> None:
    path = f"{unique('marketdata')}/heartbeat"
    firestore_client.document(path).set({"ts": datetime.now(UTC) + timedelta(days=1)})
    client = make_client(live=True, MARKETDATA_HEARTBEAT_DOC=path)
    response = client.post("/execute", json=intent())
    assert response.get_json()["reason"] == "agent_state_not_ready"
    assert "future" in checks_by_name(response)["agent_state"]["detail"]
    assert alpaca.orders() == []


# -- risk ------------------------------------------------------------------------------------


def test_the_daily_trade_limit_counts_the_accounts_orders_in_the_ledger(
    make_client: AppFactory, alpaca: AlpacaStandIn
) -> None:
    client, account = make_client(live=True, EXEC_MAX_DAILY_TRADES="2"), current_account()
    codes = [
        client.post("/execute", json=intent(broker_account_id=account)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 409]
    assert len(alpaca.orders()) == 2


def test_the_position_limit_reads_the_position_from_postgres(
    make_client: AppFactory, set_position: Any
) -> None:
    body = intent(qty="5")
    set_position(body["broker_account_id"], "SPY", "98")
    response = make_client().post("/execute", json=body)
    assert response.status_code == 409
    assert response.get_json()["reason"] == "max_position_size_exceeded"
    assert checks_by_name(response)["max_position_size"]["inputs"]["position_row_qty"] == "98"


def test_unreachable_postgres_is_a_503_with_retry_after_and_no_order(
    make_client: AppFactory, alpaca: AlpacaStandIn
) -> None:
    response = make_client(live=True, EXEC_POSTGRES_DSN=DEAD_PG).post("/execute", json=intent())
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["reason"] == "risk_data_unavailable"
    assert response.get_json()["retryable"] is True
    assert alpaca.orders() == []


def test_a_retryable_pubsub_outcome_is_nacked(make_client: AppFactory) -> None:
    response = push(make_client(EXEC_POSTGRES_DSN=DEAD_PG), intent())
    assert response.status_code == 503


def test_fail_open_lets_unreadable_risk_data_through_with_a_warning(
    make_client: AppFactory,
) -> None:
    client = make_client(EXEC_POSTGRES_DSN=DEAD_PG, EXEC_RISK_FAIL_OPEN="true")
    response = client.post("/execute", json=intent())
    assert response.status_code == 200
    assert checks_by_name(response)["max_position_size"]["outcome"] == "warning"


# -- broker ----------------------------------------------------------------------------------


def test_a_broker_refusal_is_a_final_409(make_client: AppFactory, alpaca: AlpacaStandIn) -> None:
    alpaca.fail_next_posts(403, {"code": 40310000, "message": "insufficient buying power"})
    response = make_client(live=True).post("/execute", json=intent())
    assert response.status_code == 409
    assert response.get_json()["reason"] == "broker_rejected"
    assert "insufficient buying power" in response.get_json()["message"]


def test_broker_keys_that_stop_working_are_a_retryable_503_not_a_final_refusal(
    make_client: AppFactory, alpaca: AlpacaStandIn
) -> None:
    client, body = make_client(live=True), intent()
    alpaca.fail_next_posts(401, count=2)  # Alpaca answers 401 to our keys (rotated, revoked)
    refused = client.post("/execute", json=body)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert refused.get_json()["reason"] == "broker_auth_failed"
    pushed = push(client, body)
    assert pushed.status_code == 503  # nacked, so not lost
    assert pushed.get_json()["reason"] == "broker_auth_failed"
    # the keys work again
    assert client.post("/execute", json=body).get_json()["status"] == "submitted"
    assert len(alpaca.orders()) == 1


def test_a_lost_broker_answer_is_retryable_and_the_retry_adopts_the_order(
    make_client: AppFactory, alpaca: AlpacaStandIn
) -> None:
    client, body = make_client(live=True), intent()
    alpaca.fail_next_posts(500, accept_first=True)
    first = client.post("/execute", json=body)
    assert first.status_code == 503
    assert first.get_json()["reason"] == "broker_unavailable"
    second = client.post("/execute", json=body)
    assert second.status_code == 200
    assert second.get_json()["broker_order_id"] == alpaca.orders()[0]["id"]
    assert alpaca.post_count() == 1


# -- bad input -------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_400(make_client: AppFactory) -> None:
    response = make_client().post("/execute", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["reason"] == "invalid_intent"


def test_field_errors_are_listed_and_nothing_is_decided(make_client: AppFactory) -> None:
    response = make_client().post("/execute", json=intent(qty="-3", order_type="limit"))
    assert response.status_code == 400
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert "qty" in fields


def test_a_missing_idempotency_key_is_its_own_400(make_client: AppFactory) -> None:
    body = intent()
    del body["client_intent_id"]
    response = make_client().post("/execute", json=body)
    assert response.status_code == 400
    assert response.get_json()["reason"] == "missing_idempotency_key"


def test_a_non_json_content_type_is_a_415(make_client: AppFactory) -> None:
    response = make_client().post("/execute", data="qty=1", content_type="text/plain")
    assert response.status_code == 415


def test_an_oversized_body_is_a_413(make_client: AppFactory) -> None:
    body = intent(metadata={"blob": "x" * 70_000})
    assert make_client().post("/execute", json=body).status_code == 413


def test_a_poison_pubsub_message_is_acked_with_the_reason(make_client: AppFactory) -> None:
    response = push(make_client(), b"not json at all")
    assert response.status_code == 200
    assert response.get_json()["reason"] == "invalid_intent"


def test_an_oversized_pubsub_message_is_acked_as_poison(make_client: AppFactory) -> None:
    response = push(make_client(), intent(metadata={"blob": "x" * 70_000}))
    assert response.status_code == 200
    assert response.get_json()["reason"] == "invalid_intent"


def test_a_request_that_is_not_a_pubsub_envelope_is_a_400(make_client: AppFactory) -> None:
    assert make_client().post("/pubsub/push", json={"hello": "world"}).status_code == 400


def test_an_expired_pubsub_intent_is_a_final_acked_refusal(make_client: AppFactory) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    response = push(make_client(), intent(), publishTime=old)
    assert response.status_code == 200
    assert response.get_json()["reason"] == "intent_expired"


# -- probes and admin ------------------------------------------------------------------------


def test_liveness_and_readiness(make_client: AppFactory) -> None:
    assert make_client().get("/healthz").status_code == 200
    assert make_client().get("/readyz").get_json()["checks"] == {
        "firestore": "ok",
        "postgres": "ok",
    }
    assert make_client(EXEC_POSTGRES_DSN=DEAD_PG).get("/readyz").status_code == 503


def test_admin_endpoints_do_not_exist_without_a_key(make_client: AppFactory) -> None:
    assert make_client().get("/state").status_code == 404


def test_admin_endpoints_need_the_right_key(make_client: AppFactory, tmp_path: Path) -> None:
    switch = tmp_path / "halted"
    switch.write_text("1")
    client = make_client(EXEC_AGENT_ADMIN_KEY="s3cret-admin", EXECUTION_HALTED_FILE=str(switch))
    assert client.get("/state", headers={"X-Exec-Agent-Key": "wrong"}).status_code == 401
    state = client.get("/state", headers={"X-Exec-Agent-Key": "s3cret-admin"})
    assert state.status_code == 200
    assert state.get_json()["state"] == "HALTED"
    assert state.get_json()["inputs"]["kill_switch"][0]["halted"] is True
    recovered = client.post("/recover", headers={"X-Exec-Agent-Key": "s3cret-admin"})
    assert recovered.status_code == 200


def test_a_delivery_while_another_attempt_holds_the_claim_is_409_on_execute_and_nacked_on_push(
    make_client: AppFactory, firestore_client: Any
) -> None:
    from backend.execution.adapters.firestore_ledger import FirestoreLedger
    from backend.execution.intent import OrderIntent

    body = intent()
    in_flight = FirestoreLedger(firestore_client, timeout_s=2)
    in_flight.claim(OrderIntent(**body), now=datetime.now(UTC), lease_s=60, source="other")
    client = make_client(EXEC_DUPLICATE_WAIT_S="0")
    direct = client.post("/execute", json=body)
    assert direct.status_code == 409
    assert direct.get_json()["reason"] == "duplicate_in_progress"
    assert direct.get_json()["retryable"] is True
    assert direct.headers["Retry-After"]
    pushed = push(client, body)
    assert pushed.status_code == 503  # nacked: acking could lose the intent
    assert pushed.get_json()["reason"] == "duplicate_in_progress"


def test_sync_fills_merges_broker_fills_into_the_ledger(
    make_client: AppFactory, firestore_client: Any, alpaca: AlpacaStandIn
) -> None:
    client = make_client(live=True)
    order_id = client.post("/execute", json=intent(qty="3")).get_json()["broker_order_id"]
    alpaca.set_order_status(order_id, "filled", filled_qty="3", filled_avg_price="99.5")
    response = client.post("/sync-fills", json={})
    assert response.status_code == 200
    report = response.get_json()
    assert report["status"] == "complete" and report["fills_added"] >= 1
    entry = firestore_client.collection("ledger_trades").document(order_id).get().to_dict()
    assert (entry["status"], entry["filled_qty"], entry["filled_avg_price"]) == (
        "filled",
        "3",
        "99.5",
    )


def test_sync_fills_without_broker_credentials_says_it_is_not_configured(
    make_client: AppFactory,
) -> None:
    response = make_client(ALPACA_API_KEY="", ALPACA_SECRET_KEY="").post("/sync-fills", json={})
    assert response.status_code == 409
    assert response.get_json()["status"] == "not_configured"


def test_a_draining_instance_turns_new_intents_away_and_reports_not_ready(
    make_client: AppFactory,
) -> None:
    client = make_client()
    client.application.extensions["drain"].begin()
    for response in (client.post("/execute", json=intent()), push(client, intent())):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.get_json()["reason"] == "shutting_down"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
