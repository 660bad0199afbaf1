"""The market clock's reading, the account's fields and their parsing: pure, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.execution.adapters.alpaca_account import parse_account
from backend.execution.adapters.alpaca_clock import parse_clock
from backend.execution.broker_facts import BrokerAccount, MarketClock
from backend.execution.errors import BrokerUnavailable, RiskDataUnavailable

OPEN_AT = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # 09:30 in New York
CLOSE_AT = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # 16:00
NEXT_DAY_OPEN = OPEN_AT + timedelta(days=1)
SECOND = timedelta(seconds=1)


def test_an_open_reading_is_open_until_the_close_and_closed_from_the_bell() -> None:
    clock = MarketClock(OPEN_AT + SECOND, True, NEXT_DAY_OPEN, CLOSE_AT)

    assert clock.is_open_at(CLOSE_AT - SECOND)
    assert not clock.is_open_at(CLOSE_AT)


def test_a_closed_reading_opens_at_the_bell_and_closes_at_the_next_close() -> None:
    clock = MarketClock(OPEN_AT - 60 * SECOND, False, OPEN_AT, CLOSE_AT)

    assert not clock.is_open_at(OPEN_AT - SECOND)
    assert clock.is_open_at(OPEN_AT)
    assert not clock.is_open_at(CLOSE_AT)


def test_a_clock_in_new_york_time_with_nanoseconds_is_parsed_to_utc_instants() -> None:
    clock = parse_clock(
        {
            "timestamp": "2024-01-02T09:29:59.999999999-05:00",
            "is_open": False,
            "next_open": "2024-01-02T09:30:00-05:00",
            "next_close": "2024-01-02T16:00:00-05:00",
        }
    )

    assert clock == MarketClock(OPEN_AT - timedelta(microseconds=1), False, OPEN_AT, CLOSE_AT)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {
            "is_open": "true",
            "timestamp": "2024-01-02T10:00:00Z",
            "next_open": "2024-01-03T14:30:00Z",
            "next_close": "2024-01-02T21:00:00Z",
        },
        {
            "is_open": True,
            "timestamp": "2024-01-02T10:00:00Z",
            "next_close": "2024-01-02T21:00:00Z",
        },
        {
            "is_open": True,
            "timestamp": "now",
            "next_open": "2024-01-03T14:30:00Z",
            "next_close": "2024-01-02T21:00:00Z",
        },
    ],
    ids=["null", "list", "is_open-as-text", "no-next_open", "bad-timestamp"],
)
def test_a_malformed_clock_is_unreadable_never_open(raw: Any) -> None:
    with pytest.raises(RiskDataUnavailable):
        parse_clock(raw)


ACCOUNT = {
    "id": "0f9a7b9e-6f0c-4a3e-9c1d-5a7f3b2e1d00",
    "account_number": "PA3STANDIN00",
    "status": "ACTIVE",
    "trading_blocked": False,
    "account_blocked": False,
    "buying_power": "200000",
}


def test_the_account_number_status_and_blocks_are_read() -> None:
    assert parse_account(ACCOUNT) == BrokerAccount("PA3STANDIN00", "ACTIVE", False, False)


@pytest.mark.parametrize(
    "change",
    [
        {"account_number": None},
        {"account_number": ""},
        {"account_number": 123},
        {"status": None},
        {"trading_blocked": "false"},
        {"account_blocked": None},
    ],
)
def test_an_account_with_a_missing_or_mistyped_field_is_unreadable(change: dict[str, Any]) -> None:
    with pytest.raises(BrokerUnavailable) as caught:
        parse_account(ACCOUNT | change)

    assert not caught.value.outcome_unknown


def test_an_account_answer_that_is_not_an_object_is_unreadable() -> None:
    with pytest.raises(BrokerUnavailable):
        parse_account(["PA3STANDIN00"])
