"""Review findings on the kill switch with cancel and on the repeated-execution latch, driven
through HTTP against real Firestore (emulator), Postgres and the Alpaca stand-in."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from backend.execution.errors import ConfigurationError
from tests.conftest import intent_body
from tests.review.conftest import ADMIN, BuildApp
from tests.support.alpaca_standin import AlpacaStandIn


def open_orders(alpaca: AlpacaStandIn) -> list[dict[str, Any]]:
    return [o for o in alpaca.orders() if o["status"] not in ("canceled", "filled", "expired")]


def test_an_intent_past_the_gate_but_slow_on_market_data_is_placed_after_halt_with_cancel(
    live_app: BuildApp, alpaca: AlpacaStandIn
) -> None:
    """FINDING: the cancel pass reads the book once, TTL + 0.5 s after setting the switch. An
    intent that read the switch as off just before, and then spent longer than that reading
    the reference price (bounded only by EXEC_BROKER_TIMEOUT_S, 5 s), reserves and submits
    after the book was read: the halt answers "0 cancelled, 0 not cancelled" while an order
    it never saw is placed and left working at the broker."""
    app = live_app()
    alpaca.delay_next("data", 3.0)  # under the 5 s market-data timeout: a slow, not failed, read
    answers: dict[str, Any] = {}

    def route() -> None:
        body = intent_body("inflight", order_type="limit", limit_price="395")
        answers["intent"] = app.test_client().post("/execute", json=body)

    intent = threading.Thread(target=route)
    intent.start()
    time.sleep(0.7)  # the intent has passed the gate and waits on market data
    halted = app.test_client().post(
        "/halt", json={"reason": "runaway", "cancel_working_orders": True}, headers=ADMIN
    )
    intent.join()
    assert halted.status_code == 200, halted.get_json()
    # The halt is over and said nothing is left working; the broker must agree.
    assert open_orders(alpaca) == [], (
        f"halt answered {halted.get_json()['details']} but the intent answered "
        f"{answers['intent'].status_code} and the broker holds {open_orders(alpaca)}"
    )


def test_a_halt_does_not_report_an_order_the_broker_had_already_filled_as_cancelled(
    live_app: BuildApp, alpaca: AlpacaStandIn
) -> None:
    """FINDING (reporting): the book still shows a filled order as working until the fill
    sync runs; its DELETE gets a 422 ("already filled") which the halt files under
    "cancelled" and counts in "N working orders cancelled". An operator reading the answer
    believes that exposure is gone, when it is now a position."""
    client = live_app().test_client()
    placed = client.post(
        "/execute", json=intent_body("fill", order_type="limit", limit_price="395")
    ).get_json()
    alpaca.set_order_status(placed["broker_order_id"], "filled", "1", "395")
    halted = client.post(
        "/halt", json={"reason": "runaway", "cancel_working_orders": True}, headers=ADMIN
    ).get_json()
    cancelled_ids = [c["broker_order_id"] for c in halted["details"]["cancelled"]]
    assert placed["broker_order_id"] not in cancelled_ids, halted
    assert "1 working orders cancelled" not in halted["message"], halted["message"]


def test_re_enabling_a_latched_strategy_lets_its_next_order_through(
    live_app: BuildApp, alpaca: AlpacaStandIn
) -> None:
    """FINDING (stuck control): the repeat count reads every order in the window, including
    the ones from before the operator lifted the latch. Re-enabling within the window is
    undone by the very next intent, which is refused and latches the strategy again."""
    client = live_app(EXEC_REPEAT_LIMIT="2/60").test_client()
    assert [client.post("/execute", json=intent_body("r")).status_code for _ in range(2)] == [
        200,
        200,
    ]
    assert client.post("/execute", json=intent_body("r")).get_json()["reason"] == "strategy_halted"
    enabled = client.post("/strategies/s/enable", json={"reason": "checked"}, headers=ADMIN)
    assert enabled.status_code == 200, enabled.get_json()

    after = client.post("/execute", json=intent_body("r"))
    assert after.status_code == 200, after.get_json()


def test_a_strategy_whose_id_holds_a_slash_can_be_re_enabled(
    live_app: BuildApp, alpaca: AlpacaStandIn
) -> None:
    """FINDING (stuck control): strategy_id accepts any characters, '/' included, and such a
    strategy latches like any other; but /strategies/<strategy_id>/enable cannot route a
    slash (encoded or not), so only a hand-written SQL UPDATE can lift that latch."""
    client = live_app(EXEC_REPEAT_LIMIT="1/60").test_client()
    strategy = "desk/alpha"
    assert client.post("/execute", json=intent_body("x", strategy_id=strategy)).status_code == 200
    tripped = client.post("/execute", json=intent_body("x", strategy_id=strategy))
    assert tripped.get_json()["reason"] == "strategy_halted"
    enabled = client.post("/strategies/desk%2Falpha/enable", json={"reason": "ok"}, headers=ADMIN)
    assert enabled.status_code == 200, (enabled.status_code, enabled.get_data(as_text=True)[:200])


def test_two_deployments_for_one_verified_alpaca_account_share_one_position_limit(
    live_app: BuildApp, alpaca: AlpacaStandIn
) -> None:
    """FINDING (operator mistake, limit doubled): ALPACA_ACCOUNT_NUMBER proves which Alpaca
    account the keys trade, yet the book was keyed by the free-text EXEC_BROKER_ACCOUNT_ID. Two
    deployments with the same keys and account number but different labels each got a full
    position limit. FIX: with ALPACA_ACCOUNT_NUMBER set, the bound id must be that number, so
    one verified Alpaca account is one set of limits."""
    alpaca.set_account(account_number="PA-ONE")
    with pytest.raises(ConfigurationError, match="ALPACA_ACCOUNT_NUMBER"):
        live_app(ALPACA_ACCOUNT_NUMBER="PA-ONE", EXEC_BROKER_ACCOUNT_ID="second-label")
    same = {"ALPACA_ACCOUNT_NUMBER": "PA-ONE", "EXEC_BROKER_ACCOUNT_ID": "PA-ONE",
            "EXEC_MAX_POSITION_QTY": "100"}  # fmt: skip
    first, second = live_app(**same), live_app(**same)
    order = {
        "qty": "100",
        "order_type": "limit",
        "limit_price": "395",
        "broker_account_id": "PA-ONE",
    }
    a = first.test_client().post("/execute", json=intent_body("a", **order))
    b = second.test_client().post("/execute", json=intent_body("b", **order))
    assert a.status_code == 200, a.get_json()
    assert (b.status_code, b.get_json()["reason"]) == (409, "max_position_size_exceeded")
    working = sum(int(o["qty"]) for o in open_orders(alpaca) if o["side"] == "buy")
    assert working == 100


def test_a_halt_with_cancel_while_the_book_is_unreadable_still_answers_and_is_recorded(
    live_app: BuildApp, alpaca: AlpacaStandIn, firestore_client: Any
) -> None:
    """FINDING: with Postgres unreachable from the instance that takes POST /halt, the switch
    is set but reading the book raises out of OperatorActions.halt: the operator gets a bare
    500 (shaped as "invalid_request"), the resting orders are neither cancelled nor listed,
    and the halt is never recorded in execution_operator_actions (no who, no why)."""
    placing = live_app().test_client()
    for _ in range(2):
        body = intent_body("rest", order_type="limit", limit_price="395")
        assert placing.post("/execute", json=body).status_code == 200
    # Another instance of the same deployment whose Postgres is down (nothing listens there).
    cut_off = live_app(EXEC_POSTGRES_DSN="postgresql://postgres@127.0.0.1:1/none").test_client()
    halted = cut_off.post(
        "/halt", json={"reason": "db outage drill", "cancel_working_orders": True}, headers=ADMIN
    )
    recorded = [
        a for a in placing.get("/state", headers=ADMIN).get_json()["operator_actions"]
        if a.get("reason") == "db outage drill"
    ]  # fmt: skip
    assert halted.status_code == 200 and recorded, (
        halted.status_code,
        halted.get_data(as_text=True)[:300],
        f"{len(open_orders(alpaca))} orders still open",
    )
