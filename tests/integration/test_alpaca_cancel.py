"""AlpacaBroker.cancel_order: one bounded DELETE against the local Alpaca stand-in, never
retried, every answer turned into an outcome the kill switch can report."""

from __future__ import annotations

from typing import Any

import pytest

from backend.execution.adapters.alpaca_broker import AlpacaBroker
from backend.execution.broker_facts import CancelOutcome, CancelStatus
from backend.execution.intent import OrderIntent
from tests.conftest import unique
from tests.support.alpaca_standin import AlpacaStandIn


def broker_for(alpaca: AlpacaStandIn, timeout_s: float = 2.0) -> AlpacaBroker:
    alpaca.required_key_id, alpaca.required_secret = "key-id", "secret"
    return AlpacaBroker("key-id", "secret", alpaca.base_url, timeout_s=timeout_s)


def working_order(broker: AlpacaBroker) -> str:
    intent = OrderIntent(
        client_intent_id=unique("cx"),
        strategy_id="s",
        broker_account_id="a",
        symbol="AAPL",
        side="buy",
        qty="1",
        order_type="limit",
        limit_price="100.00",
    )
    return broker.submit(intent).broker_order_id


def test_an_open_order_is_canceled_with_one_delete(alpaca: AlpacaStandIn) -> None:
    broker = broker_for(alpaca)
    order_id = working_order(broker)

    outcome = broker.cancel_order(order_id)

    assert outcome == CancelOutcome(order_id, CancelStatus.CANCELED)
    assert alpaca.orders()[0]["status"] == "canceled"
    assert alpaca.delete_count() == 1


@pytest.mark.parametrize("final", ["filled", "canceled", "expired", "rejected"])
def test_an_order_already_final_cannot_be_canceled(alpaca: AlpacaStandIn, final: str) -> None:
    broker = broker_for(alpaca)
    order_id = working_order(broker)
    alpaca.set_order_status(order_id, final)

    outcome = broker.cancel_order(order_id)

    assert outcome.status is CancelStatus.ALREADY_FINAL
    assert f'"{final}"' in outcome.detail and "422" in outcome.detail
    assert alpaca.orders()[0]["status"] == final


def test_an_unknown_order_is_not_found(alpaca: AlpacaStandIn) -> None:
    outcome = broker_for(alpaca).cancel_order("00000000-0000-4000-8000-000000000000")

    assert outcome.status is CancelStatus.NOT_FOUND


@pytest.mark.parametrize("order_id", ["", "../positions", "a/b", "x?cancel_orders=true", "."])
def test_an_id_that_is_no_order_id_is_never_sent(alpaca: AlpacaStandIn, order_id: str) -> None:
    broker = broker_for(alpaca)
    working = working_order(broker)

    outcome = broker.cancel_order(order_id)

    # "" would have been DELETE /v2/orders/ (cancel every open order?), "../positions" is
    # DELETE /v2/positions once the client normalises the path: close every position.
    assert outcome.status is CancelStatus.NOT_FOUND
    assert alpaca.request_count("DELETE") == 0
    assert alpaca.orders()[0]["id"] == working and alpaca.orders()[0]["status"] == "accepted"


FAULTS = {
    "html-5xx": lambda a: a.fail_next("cancel", 500),
    "5xx-after-cancel": lambda a: a.fail_next("cancel", 502, accept_first=True),
    "401": lambda a: a.fail_next("cancel", 401),
    "403": lambda a: a.fail_next("cancel", 403),
    "429": lambda a: a.fail_next("cancel", 429),
    "504": lambda a: a.fail_next("cancel", 504),
    "dropped": lambda a: a.drop_next("cancel", accept_first=True),
    "timeout": lambda a: a.delay_next("cancel", 3.0),
}


@pytest.mark.parametrize("inject", FAULTS.values(), ids=FAULTS.keys())
def test_no_definitive_answer_is_unavailable_after_exactly_one_delete(
    alpaca: AlpacaStandIn, inject: Any
) -> None:
    broker = broker_for(alpaca, timeout_s=0.3)
    order_id = working_order(broker)
    inject(alpaca)

    outcome = broker.cancel_order(order_id)

    assert outcome.status is CancelStatus.UNAVAILABLE and outcome.detail
    # alpaca-py on its own would retry a 429 or a 504 three times, 3 s apart.
    assert alpaca.delete_count() == 1


def test_nothing_listening_is_unavailable() -> None:
    broker = AlpacaBroker("k", "s", "http://127.0.0.1:1", timeout_s=0.5)

    assert broker.cancel_order("00000000-0000-4000-8000-000000000000").status is (
        CancelStatus.UNAVAILABLE
    )
