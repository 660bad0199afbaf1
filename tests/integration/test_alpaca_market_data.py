"""AlpacaMarketData reads reference prices through alpaca-py's real StockHistoricalDataClient
from the local Alpaca stand-in: exact decimals off the wire, one request per fresh read."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from backend.execution.adapters.alpaca_client import _ExactJsonSession
from backend.execution.adapters.alpaca_market_data import AlpacaMarketData
from backend.execution.errors import ConfigurationError, RiskDataUnavailable
from tests.support.alpaca_standin import AlpacaStandIn

DATA = "/v2/stocks/"


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def market_data_for(alpaca: AlpacaStandIn, **options: Any) -> AlpacaMarketData:
    alpaca.required_key_id, alpaca.required_secret = "key-id", "secret"
    return AlpacaMarketData("key-id", "secret", alpaca.base_url, **({"timeout_s": 2.0} | options))


def test_a_trade_price_arrives_with_every_digit_alpaca_py_models_would_round(
    alpaca: AlpacaStandIn,
) -> None:
    alpaca.set_latest_trade("AAPL", "187.25000000000000001", at="2024-01-02T15:04:05.123456789Z")

    price = market_data_for(alpaca).reference_price("AAPL")

    assert price.price == Decimal("187.25000000000000001")
    assert (price.source, price.feed, price.symbol) == ("trade", "iex", "AAPL")
    assert price.at == datetime(2024, 1, 2, 15, 4, 5, 123456, tzinfo=UTC)


def test_the_quote_midpoint_of_point_1_and_point_2_is_exactly_point_15(
    alpaca: AlpacaStandIn,
) -> None:
    alpaca.set_latest_quote("PENNY", bid=0.1, ask=0.2)

    price = market_data_for(alpaca, prefer="quote_mid").reference_price("PENNY")

    assert (price.price, price.source) == (Decimal("0.15"), "quote_mid")


def test_without_a_trade_the_quote_midpoint_comes_in_the_same_single_request(
    alpaca: AlpacaStandIn,
) -> None:
    alpaca.set_latest_quote("THIN", bid="10.01", ask="10.04")

    price = market_data_for(alpaca).reference_price("THIN")

    assert (price.price, price.source) == (Decimal("10.025"), "quote_mid")
    assert alpaca.request_count("GET", DATA) == 1


def test_one_request_per_read_names_the_symbol_and_the_configured_feed(
    alpaca: AlpacaStandIn,
) -> None:
    alpaca.set_latest_trade("SPY", 450)

    market_data_for(alpaca).reference_price("SPY")
    market_data_for(alpaca, feed="sip").reference_price("SPY")

    assert alpaca.requests() == [
        ("GET", "/v2/stocks/snapshots?symbols=SPY&feed=iex"),
        ("GET", "/v2/stocks/snapshots?symbols=SPY&feed=sip"),
    ]


def test_a_cached_price_costs_no_request_until_its_ttl_has_passed(alpaca: AlpacaStandIn) -> None:
    clock = Monotonic()
    market_data = market_data_for(alpaca, ttl_s=2.0, monotonic=clock)
    alpaca.set_latest_trade("SPY", "450.01")

    first = market_data.reference_price("SPY")
    alpaca.set_latest_trade("SPY", "451.02")
    clock.now += 1.9
    cached = market_data.reference_price("SPY")
    clock.now += 0.1
    fresh = market_data.reference_price("SPY")

    assert (first.price, cached.price, fresh.price) == (
        Decimal("450.01"), Decimal("450.01"), Decimal("451.02"),
    )  # fmt: skip
    assert alpaca.request_count("GET", DATA) == 2


def test_symbols_are_cached_apart(alpaca: AlpacaStandIn) -> None:
    market_data = market_data_for(alpaca, ttl_s=60.0, monotonic=Monotonic())
    alpaca.set_latest_trade("SPY", 450)
    alpaca.set_latest_trade("QQQ", 380)

    prices = [market_data.reference_price(s).price for s in ("SPY", "QQQ", "SPY", "QQQ")]

    assert prices == [450, 380, 450, 380]
    assert alpaca.request_count("GET", DATA) == 2


def test_a_failed_read_after_the_ttl_raises_instead_of_serving_the_old_price(
    alpaca: AlpacaStandIn,
) -> None:
    clock = Monotonic()
    market_data = market_data_for(alpaca, ttl_s=1.0, monotonic=clock)
    alpaca.set_latest_trade("SPY", 450)
    market_data.reference_price("SPY")
    clock.now += 1.0
    alpaca.fail_next("data", 503)

    with pytest.raises(RiskDataUnavailable, match="HTTP 503"):
        market_data.reference_price("SPY")
    assert market_data.reference_price("SPY").price == 450  # the next read tries again
    assert alpaca.request_count("GET", DATA) == 3


FAULTS = {
    "html-5xx": lambda a: a.fail_next("data", 502),
    "401": lambda a: a.fail_next("data", 401),
    "403-feed": lambda a: a.fail_next(
        "data", 403, {"message": "subscription does not permit querying recent SIP data"}
    ),
    "429": lambda a: a.fail_next("data", 429),
    "504": lambda a: a.fail_next("data", 504),
    "malformed-json": lambda a: a.fail_next("data", 200, '{"SPY": {"latestTrade": {"p": 4'),
    "empty-body": lambda a: a.fail_next("data", 200, ""),
    "dropped": lambda a: a.drop_next("data"),
    "timeout": lambda a: a.delay_next("data", 3.0),
}


@pytest.mark.parametrize("inject", FAULTS.values(), ids=FAULTS.keys())
def test_every_failure_is_risk_data_unavailable_after_exactly_one_request(
    alpaca: AlpacaStandIn, inject: Any
) -> None:
    alpaca.set_latest_trade("SPY", 450)
    inject(alpaca)

    with pytest.raises(RiskDataUnavailable, match="SPY"):
        market_data_for(alpaca, timeout_s=0.3).reference_price("SPY")

    # alpaca-py on its own would retry a 429 or a 504 three times, 3 s apart.
    assert alpaca.request_count("GET", DATA) == 1


def test_wrong_keys_are_risk_data_unavailable_saying_401(alpaca: AlpacaStandIn) -> None:
    alpaca.set_latest_trade("SPY", 450)
    market_data = market_data_for(alpaca)
    alpaca.required_key_id = "another-key"

    with pytest.raises(RiskDataUnavailable, match="HTTP 401"):
        market_data.reference_price("SPY")


def test_a_symbol_without_data_is_risk_data_unavailable(alpaca: AlpacaStandIn) -> None:
    with pytest.raises(RiskDataUnavailable, match="no trade or quote for NODATA"):
        market_data_for(alpaca).reference_price("NODATA")


def test_nothing_listening_is_risk_data_unavailable() -> None:
    market_data = AlpacaMarketData("k", "s", "http://127.0.0.1:1", timeout_s=0.5)

    with pytest.raises(RiskDataUnavailable):
        market_data.reference_price("SPY")


def test_an_unknown_feed_or_source_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="feed"):
        AlpacaMarketData("k", "s", feed="nasdaq")
    with pytest.raises(ConfigurationError, match="source"):
        AlpacaMarketData("k", "s", prefer="vwap")  # type: ignore[arg-type]


def test_each_thread_gets_its_own_bounded_exact_client(alpaca: AlpacaStandIn) -> None:
    market_data = market_data_for(alpaca)
    clients: list[Any] = []
    threads = [
        threading.Thread(target=lambda: clients.append(market_data._clients.get()))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(c) for c in clients}) == 3
    assert all(isinstance(c._session, _ExactJsonSession) for c in clients)
    assert {(c._retry, tuple(c._retry_codes)) for c in clients} == {(0, ())}
