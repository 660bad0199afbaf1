"""Each pre-trade control through HTTP, live, against the Alpaca stand-in's market data, clock
and calendar, on real Postgres and the Firestore emulator. Every refusal places no order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from backend.execution.clock import TRADING_TIMEZONE
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn

Build = Callable[..., FlaskClient]


@pytest.fixture
def gateway(
    firestore_emulator: str, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> Iterator[Build]:  # fmt: skip
    built: list[Any] = []
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")

    def build(**env: str) -> FlaskClient:
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(switch),
            "EXEC_DUPLICATE_WAIT_S": "0",
        }
        app = create_app(Settings.from_env(values | env))
        built.append(app.extensions["service_parts"])
        return app.test_client()

    yield build
    for parts in built:
        parts.close()


def send(client: FlaskClient, **fields: Any) -> Any:
    return client.post("/execute", json=intent_body("ctl", **fields))


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.get_json().get("reason")


def check(response: Any, name: str) -> dict[str, Any]:
    return next(c for c in response.get_json()["checks"] if c["name"] == name)


def test_an_order_over_the_max_quantity_is_refused(gateway: Build, alpaca: AlpacaStandIn) -> None:
    client = gateway(EXEC_MAX_ORDER_QTY="10")
    assert send(client, qty="10").status_code == 200
    assert refused(send(client, qty="10.5")) == (409, "max_order_qty_exceeded")
    assert alpaca.post_count() == 1


def test_the_notional_uses_the_exact_market_data_price(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    alpaca.set_latest_trade("SPY", "400.000000001", at="live")
    client = gateway(EXEC_MAX_ORDER_NOTIONAL="4000")
    response = send(client, qty="10")
    assert refused(response) == (409, "max_order_notional_exceeded")
    assert check(response, "max_order_notional")["inputs"]["notional"] == "4000.00000001"
    assert alpaca.post_count() == 0


def test_a_limit_price_outside_the_collar_is_refused_and_one_inside_is_placed(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_PRICE_COLLAR_PCT="5")
    outside = send(client, order_type="limit", limit_price="420.01")
    assert refused(outside) == (409, "price_outside_collar")
    assert send(client, order_type="limit", limit_price="420").status_code == 200
    assert alpaca.post_count() == 1


def test_market_data_down_is_a_retryable_refusal_with_no_order(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway()
    alpaca.fail_next("data", 503)
    response = send(client)
    assert refused(response) == (503, "reference_price_unavailable")
    assert response.headers["Retry-After"]
    assert alpaca.post_count() == 0


def test_a_stale_reference_price_while_the_market_is_open_is_refused(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    alpaca.set_latest_trade("SPY", "400", at=datetime.now(UTC) - timedelta(minutes=5))
    alpaca.set_clock(is_open=True)
    response = send(gateway())
    assert refused(response) == (503, "reference_price_unavailable")
    assert "old while the market is open" in response.get_json()["message"]


def test_with_the_controls_that_need_a_price_off_nothing_is_read_from_market_data(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_MAX_ORDER_NOTIONAL="off", EXEC_PRICE_COLLAR_PCT="off")
    assert send(client).status_code == 200
    assert alpaca.request_count("GET", "/v2/stocks") == 0


def test_a_cached_price_serves_the_next_intent_without_a_market_data_call(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_REFERENCE_PRICE_CACHE_S="30")
    assert send(client).status_code == 200
    assert send(client).status_code == 200
    assert alpaca.request_count("GET", "/v2/stocks") == 1


def test_a_restricted_symbol_from_the_firestore_list_is_refused(
    gateway: Build, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    path = f"{unique('compliance')}/restricted"
    firestore_client.document(path).set({"symbols": ["aapl"]})
    client = gateway(EXEC_RESTRICTED_DOC=path, EXEC_RESTRICTED_SYMBOLS="QQQ")
    assert refused(send(client, symbol="AAPL")) == (409, "symbol_restricted")
    assert refused(send(client, symbol="QQQ")) == (409, "symbol_restricted")
    assert send(client, symbol="SPY").status_code == 200
    assert alpaca.post_count() == 1


def test_a_missing_restricted_list_document_refuses_everything_retryably(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_RESTRICTED_DOC=f"{unique('compliance')}/missing")
    assert refused(send(client)) == (503, "risk_data_unavailable")
    assert alpaca.post_count() == 0


def test_regular_hours_refuse_while_the_clock_says_closed(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    alpaca.set_clock(is_open=False)
    response = send(gateway(EXEC_TRADING_HOURS="regular"))
    assert refused(response) == (409, "market_closed")
    alpaca.set_clock(is_open=True)
    assert send(gateway(EXEC_TRADING_HOURS="regular")).status_code == 200


def test_the_order_rate_refuses_with_retry_after_once_the_minute_is_full(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_MAX_ORDERS_PER_MINUTE="3", EXEC_REPEAT_LIMIT="off")
    assert [send(client).status_code for _ in range(3)] == [200, 200, 200]
    throttled = send(client)
    assert refused(throttled) == (429, "order_rate_exceeded")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert alpaca.post_count() == 3


def test_repeated_orders_latch_the_strategy_until_an_operator_re_enables_it(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    client = gateway(EXEC_REPEAT_LIMIT="2/60", EXEC_AGENT_ADMIN_KEY="admin")
    assert [send(client).status_code for _ in range(2)] == [200, 200]
    tripped = send(client)
    assert refused(tripped) == (409, "strategy_halted")
    other_symbol = send(client, symbol="QQQ", side="sell")
    assert refused(other_symbol) == (409, "strategy_halted")  # the whole strategy is off
    assert send(client, strategy_id="another").status_code == 200

    state = client.get("/state", headers={"X-Exec-Agent-Key": "admin"}).get_json()
    assert [s["strategy_id"] for s in state["latched_strategies"]] == ["s"]
    no_reason = client.post("/strategies/s/enable", json={}, headers={"X-Exec-Agent-Key": "admin"})
    assert no_reason.status_code == 400
    enabled = client.post(
        "/strategies/s/enable",
        json={"reason": "checked the strategy's signal feed"},
        headers={"X-Exec-Agent-Key": "admin"},
    )
    assert enabled.status_code == 200, enabled.get_json()
    state = client.get("/state", headers={"X-Exec-Agent-Key": "admin"}).get_json()
    assert state["latched_strategies"] == []
    action = state["operator_actions"][0]
    assert (action["action"], action["strategy_id"], action["who"]) == (
        "enable_strategy",
        "s",
        "operator",
    )
    assert action["reason"] == "checked the strategy's signal feed"
    assert alpaca.post_count() == 3


def test_reduce_only_mode_lets_an_exit_through_and_refuses_an_entry(
    gateway: Build, alpaca: AlpacaStandIn, set_position: Any
) -> None:
    set_position(current_account(), "SPY", "30")
    client = gateway(AGENT_MODE="REDUCING")
    assert refused(send(client, side="buy")) == (409, "reduce_only")
    assert send(client, side="sell", qty="30").status_code == 200
    assert refused(send(client, side="sell", qty="1")) == (409, "reduce_only")  # 30 working
    assert alpaca.post_count() == 1


def test_extended_hours_follow_the_brokers_calendar_for_today(
    gateway: Build, alpaca: AlpacaStandIn
) -> None:
    today = datetime.now(TRADING_TIMEZONE)
    minute = today.hour * 60 + today.minute
    inside = (f"{max(0, minute - 60) // 60:02d}{max(0, minute - 60) % 60:02d}", "2359")
    alpaca.set_clock(is_open=False)  # the regular session is closed: only extended hours count
    alpaca.set_calendar(today.date().isoformat(), inside)
    assert send(gateway(EXEC_TRADING_HOURS="extended")).status_code == 200
    alpaca.set_calendar(today.date().isoformat(), None)  # a holiday
    response = send(gateway(EXEC_TRADING_HOURS="extended"))
    assert refused(response) == (409, "market_closed")
    assert response.get_json()["message"] == "the market does not open today"
