"""AlpacaBroker drives alpaca-py's real TradingClient against the local Alpaca stand-in."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from backend.execution.adapters.alpaca_broker import AlpacaBroker
from backend.execution.errors import (
    BrokerAuthFailed,
    BrokerRejected,
    BrokerUnavailable,
    ConfigurationError,
    DuplicateClientOrderId,
)
from backend.execution.intent import OrderIntent
from tests.conftest import unique
from tests.support.alpaca_standin import AlpacaStandIn


def make_intent(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "client_intent_id": unique("ab"),
        "strategy_id": "s",
        "broker_account_id": "a",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "0.1",
        "order_type": "limit",
        "limit_price": "187.31",
    }
    return OrderIntent(**(fields | overrides))


def broker_for(alpaca: AlpacaStandIn, timeout_s: float = 2.0) -> AlpacaBroker:
    alpaca.required_key_id, alpaca.required_secret = "key-id", "secret"
    return AlpacaBroker("key-id", "secret", alpaca.base_url, timeout_s=timeout_s)


def test_an_order_is_sent_with_exact_decimal_strings_and_the_intent_id(
    alpaca: AlpacaStandIn,
) -> None:
    intent = make_intent()
    placed = broker_for(alpaca).submit(intent)
    sent = alpaca.orders()[0]
    assert (sent["qty"], sent["limit_price"]) == ("0.1", "187.31")
    assert sent["client_order_id"] == intent.client_intent_id
    assert placed.broker_order_id == sent["id"]
    assert placed.filled_qty == Decimal(0)


def test_a_reused_client_order_id_becomes_a_duplicate_error(alpaca: AlpacaStandIn) -> None:
    broker, intent = broker_for(alpaca), make_intent()
    broker.submit(intent)
    with pytest.raises(DuplicateClientOrderId):
        broker.submit(intent)
    assert len(alpaca.orders()) == 1


def test_a_4xx_is_a_final_rejection_with_the_brokers_message(alpaca: AlpacaStandIn) -> None:
    alpaca.fail_next_posts(403, {"code": 40310000, "message": "insufficient buying power"})
    with pytest.raises(BrokerRejected, match="insufficient buying power") as caught:
        broker_for(alpaca).submit(make_intent())
    assert not isinstance(caught.value, DuplicateClientOrderId)


@pytest.mark.parametrize(
    "body",
    [
        {"code": 40310000, "message": "insufficient qty available for order (requested: 5)"},
        {"code": 40310000, "message": "not enough shares to sell"},
    ],
)
def test_a_403_order_refusal_from_alpaca_stays_a_final_rejection(
    alpaca: AlpacaStandIn, body: dict[str, Any]
) -> None:
    alpaca.fail_next_posts(403, body)
    with pytest.raises(BrokerRejected) as caught:
        broker_for(alpaca).submit(make_intent())
    assert not isinstance(caught.value, BrokerUnavailable)


def test_keys_the_broker_does_not_accept_are_an_auth_failure_not_a_rejection(
    alpaca: AlpacaStandIn,
) -> None:
    broker = broker_for(alpaca)
    alpaca.required_secret = "rotated"  # the keys we hold no longer work: Alpaca answers 401
    with pytest.raises(BrokerAuthFailed, match="HTTP 401") as caught:
        broker.submit(make_intent())
    assert not caught.value.outcome_unknown  # refused at the door: nothing was placed
    assert alpaca.orders() == []


@pytest.mark.parametrize(
    "body", [{"message": "forbidden."}, "<html><body>403 Forbidden</body></html>"]
)
def test_a_403_that_is_not_an_order_refusal_is_an_auth_failure(
    alpaca: AlpacaStandIn, body: Any
) -> None:
    alpaca.fail_next_posts(403, body)
    with pytest.raises(BrokerAuthFailed, match="HTTP 403"):
        broker_for(alpaca).submit(make_intent())


def test_an_html_5xx_after_acceptance_is_an_unknown_outcome(alpaca: AlpacaStandIn) -> None:
    alpaca.fail_next_posts(502, accept_first=True)
    with pytest.raises(BrokerUnavailable) as caught:
        broker_for(alpaca).submit(make_intent())
    assert caught.value.outcome_unknown


@pytest.mark.parametrize("status", [429, 504])
def test_alpaca_pys_automatic_retries_are_off(alpaca: AlpacaStandIn, status: int) -> None:
    alpaca.fail_next_posts(status, count=3)
    with pytest.raises(BrokerUnavailable):
        broker_for(alpaca).submit(make_intent())
    assert alpaca.post_count() == 1


def test_a_slow_broker_is_cut_off_and_the_outcome_treated_as_unknown(alpaca: AlpacaStandIn) -> None:
    alpaca.delay_next_posts(3.0, accept_first=True)
    with pytest.raises(BrokerUnavailable) as caught:
        broker_for(alpaca, timeout_s=0.3).submit(make_intent())
    assert caught.value.outcome_unknown
    assert alpaca.post_count() == 1


def test_a_dropped_connection_is_an_unknown_outcome(alpaca: AlpacaStandIn) -> None:
    alpaca.drop_next_posts(accept_first=True)
    with pytest.raises(BrokerUnavailable) as caught:
        broker_for(alpaca).submit(make_intent())
    assert caught.value.outcome_unknown


def test_an_order_is_found_by_its_client_order_id_and_a_missing_one_is_none(
    alpaca: AlpacaStandIn,
) -> None:
    broker, intent = broker_for(alpaca), make_intent()
    placed = broker.submit(intent)
    found = broker.find_by_client_order_id(intent.client_intent_id)
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert broker.find_by_client_order_id(unique("never-sent")) is None


def test_alpacas_live_host_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ConfigurationError, match="live host"):
        AlpacaBroker("k", "s", "https://api.alpaca.markets")
    AlpacaBroker("k", "s", "https://api.alpaca.markets", allow_live=True)


def test_nothing_listening_is_broker_unavailable() -> None:
    broker = AlpacaBroker("k", "s", "http://127.0.0.1:1", timeout_s=0.5)
    with pytest.raises(BrokerUnavailable):
        broker.submit(make_intent())


def test_each_thread_gets_its_own_client_and_session(alpaca: AlpacaStandIn) -> None:
    broker = broker_for(alpaca)
    clients: list[Any] = []

    def grab() -> None:
        clients.append(broker._client())

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in clients}) == 3
    assert len({id(c._session) for c in clients}) == 3
