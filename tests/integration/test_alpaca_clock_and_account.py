"""AlpacaClock and AlpacaAccount read /v2/clock and /v2/account through alpaca-py's real
TradingClient from the local Alpaca stand-in: cached, bounded, and fail-closed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backend.execution.adapters.alpaca_account import AlpacaAccount
from backend.execution.adapters.alpaca_clock import AlpacaClock
from backend.execution.broker_facts import BrokerAccount, MarketClock
from backend.execution.errors import BrokerUnavailable, RiskDataUnavailable
from tests.support.alpaca_standin import AlpacaStandIn


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keyed(alpaca: AlpacaStandIn) -> tuple[str, str, str]:
    alpaca.required_key_id, alpaca.required_secret = "key-id", "secret"
    return "key-id", "secret", alpaca.base_url


def fault_cases(route: str) -> dict[str, Any]:
    return {
        "html-5xx": lambda a: a.fail_next(route, 500),
        "401": lambda a: a.fail_next(route, 401),
        "429": lambda a: a.fail_next(route, 429),
        "504": lambda a: a.fail_next(route, 504),
        "malformed-json": lambda a: a.fail_next(route, 200, '{"is_open": tr'),
        "not-an-object": lambda a: a.fail_next(route, 200, "[]"),
        "dropped": lambda a: a.drop_next(route),
        "timeout": lambda a: a.delay_next(route, 3.0),
    }


def test_the_clock_reads_what_the_broker_says(alpaca: AlpacaStandIn) -> None:
    alpaca.set_clock(
        is_open=False,
        at=datetime(2024, 1, 2, 14, 29, 59, tzinfo=UTC),
        next_open=datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
        next_close=datetime(2024, 1, 2, 21, 0, tzinfo=UTC),
    )

    clock = AlpacaClock(*keyed(alpaca)).clock()

    assert clock == MarketClock(
        timestamp=datetime(2024, 1, 2, 14, 29, 59, tzinfo=UTC),
        is_open=False,
        next_open=datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
        next_close=datetime(2024, 1, 2, 21, 0, tzinfo=UTC),
    )
    assert clock.is_open_at(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))


def test_the_clock_is_cached_for_its_ttl_and_then_read_again(alpaca: AlpacaStandIn) -> None:
    monotonic = Monotonic()
    source = AlpacaClock(*keyed(alpaca), ttl_s=5.0, monotonic=monotonic)

    first = source.clock()
    alpaca.set_clock(is_open=False)
    monotonic.now += 4.9
    cached = source.clock()
    monotonic.now += 0.1
    fresh = source.clock()

    assert (first.is_open, cached.is_open, fresh.is_open) == (True, True, False)
    assert alpaca.request_count("GET", "/v2/clock") == 2


@pytest.mark.parametrize("inject", fault_cases("clock").values(), ids=fault_cases("clock").keys())
def test_an_unreadable_clock_raises_after_one_request_and_never_says_open(
    alpaca: AlpacaStandIn, inject: Any
) -> None:
    inject(alpaca)

    with pytest.raises(RiskDataUnavailable, match="market clock"):
        AlpacaClock(*keyed(alpaca), timeout_s=0.3).clock()

    assert alpaca.request_count("GET", "/v2/clock") == 1


def test_an_expired_clock_is_not_served_when_the_reread_fails(alpaca: AlpacaStandIn) -> None:
    monotonic = Monotonic()
    source = AlpacaClock(*keyed(alpaca), ttl_s=1.0, monotonic=monotonic)
    source.clock()
    monotonic.now += 1.0
    alpaca.fail_next("clock", 503)

    with pytest.raises(RiskDataUnavailable):
        source.clock()


def test_the_account_number_status_and_blocks_are_read(alpaca: AlpacaStandIn) -> None:
    alpaca.set_account(account_number="PA1234567", status="ACTIVE", trading_blocked=True)

    account = AlpacaAccount(*keyed(alpaca)).account()

    assert account == BrokerAccount("PA1234567", "ACTIVE", True, False)


def test_the_account_is_cached_for_its_ttl_so_a_change_shows_after_it(
    alpaca: AlpacaStandIn,
) -> None:
    monotonic = Monotonic()
    source = AlpacaAccount(*keyed(alpaca), ttl_s=30.0, monotonic=monotonic)

    before = source.account().account_number
    alpaca.set_account(account_number="PA-OTHER")
    monotonic.now += 29.9
    cached = source.account().account_number
    monotonic.now += 0.1
    after = source.account().account_number

    assert (before, cached, after) == ("PA3STANDIN00", "PA3STANDIN00", "PA-OTHER")
    assert alpaca.request_count("GET", "/v2/account") == 2


@pytest.mark.parametrize(
    "inject", fault_cases("account").values(), ids=fault_cases("account").keys()
)
def test_an_unreadable_account_is_broker_unavailable_after_one_request(
    alpaca: AlpacaStandIn, inject: Any
) -> None:
    inject(alpaca)

    with pytest.raises(BrokerUnavailable, match="broker account") as caught:
        AlpacaAccount(*keyed(alpaca), timeout_s=0.3).account()

    assert not caught.value.outcome_unknown
    assert alpaca.request_count("GET", "/v2/account") == 1


def test_an_account_without_a_usable_number_is_broker_unavailable(alpaca: AlpacaStandIn) -> None:
    alpaca.set_account(account_number=12345)

    with pytest.raises(BrokerUnavailable, match="account_number"):
        AlpacaAccount(*keyed(alpaca)).account()


def test_wrong_keys_make_the_account_unreadable_saying_401(alpaca: AlpacaStandIn) -> None:
    source = AlpacaAccount(*keyed(alpaca))
    alpaca.required_secret = "rotated"

    with pytest.raises(BrokerUnavailable, match="HTTP 401"):
        source.account()
