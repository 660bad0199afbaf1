"""Reading a reference price out of Alpaca's market data: exact decimals, exact midpoints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from backend.execution.adapters.alpaca_market_data import (
    midpoint,
    quote_midpoint,
    reference_from_snapshots,
    trade_price,
)
from backend.execution.broker_facts import ReferencePrice
from backend.execution.errors import RiskDataUnavailable

T = "2024-01-02T15:04:05.123456789Z"
AT = datetime(2024, 1, 2, 15, 4, 5, 123456, tzinfo=UTC)


def answer(text: str) -> Any:
    """A market-data answer parsed as the adapter's session parses it."""
    return json.loads(text, parse_float=Decimal)


def snapshot(trade: str | None = None, quote: str | None = None) -> Any:
    return answer(
        f'{{"SPY": {{"latestTrade": {trade or "null"}, "latestQuote": {quote or "null"},'
        ' "minuteBar": null, "dailyBar": null, "prevDailyBar": null}}'
    )


def test_a_trade_price_sent_as_a_json_number_keeps_every_digit() -> None:
    raw = snapshot(trade=f'{{"p": 187.2500000001, "s": 100, "t": "{T}"}}')

    price = reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex")

    assert price == ReferencePrice("SPY", Decimal("187.2500000001"), AT, "trade", "iex")


def test_a_price_with_more_digits_than_a_float_holds_is_kept_exactly() -> None:
    raw = snapshot(trade=f'{{"p": 187.25000000000000001, "t": "{T}"}}')

    price = reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex").price

    assert price == Decimal("187.25000000000000001")
    assert float("187.25000000000000001") == 187.25  # what a float would have kept


def test_one_tenth_is_one_tenth_and_the_midpoint_of_point_1_and_point_2_is_point_15() -> None:
    raw = snapshot(quote=f'{{"bp": 0.1, "ap": 0.2, "bs": 1, "as": 1, "t": "{T}"}}')

    price = reference_from_snapshots(raw, "SPY", prefer="quote_mid", feed="sip")

    assert (price.price, price.source, price.feed) == (Decimal("0.15"), "quote_mid", "sip")
    assert (0.1 + 0.2) / 2 != 0.15  # the float arithmetic this avoids


def test_the_midpoint_of_long_prices_keeps_every_digit() -> None:
    bid, ask = Decimal("187.2500000001"), Decimal("187.2500000002")

    assert midpoint(bid, ask) == Decimal("187.25000000015")
    assert midpoint(Decimal("1" + "0" * 40 + ".1"), Decimal("0.2")) == Decimal(
        "5" + "0" * 39 + ".15"
    )


def test_a_nanosecond_timestamp_is_kept_to_the_microsecond_a_datetime_holds() -> None:
    assert trade_price({"p": 1, "t": "2024-01-02T15:04:05.999999999Z"}) == (
        Decimal(1),
        datetime(2024, 1, 2, 15, 4, 5, 999999, tzinfo=UTC),
    )


def test_an_integer_price_and_a_string_price_are_read_exactly_too() -> None:
    assert trade_price(answer(f'{{"p": 450, "t": "{T}"}}')) == (Decimal(450), AT)
    assert trade_price({"p": "450.01", "t": T}) == (Decimal("450.01"), AT)


def test_without_a_trade_the_quote_midpoint_is_the_reference() -> None:
    raw = snapshot(quote=f'{{"bp": 100, "ap": 101, "t": "{T}"}}')

    price = reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex")

    assert (price.price, price.source) == (Decimal("100.5"), "quote_mid")


def test_quote_mid_preferred_uses_the_quote_even_when_a_trade_exists() -> None:
    raw = snapshot(
        trade='{"p": 99, "t": "2024-01-02T15:00:00Z"}',
        quote=f'{{"bp": 100, "ap": 102, "t": "{T}"}}',
    )

    price = reference_from_snapshots(raw, "SPY", prefer="quote_mid", feed="iex")

    assert (price.price, price.source, price.at) == (Decimal(101), "quote_mid", AT)


@pytest.mark.parametrize(
    ("bid", "ask"),
    [(0, 101), (100, 0), (0, 0), (101, 100)],
    ids=["no-bid", "no-ask", "none", "crossed"],
)
def test_a_one_sided_or_crossed_quote_has_no_midpoint_so_the_trade_is_used(
    bid: int, ask: int
) -> None:
    raw = snapshot(
        trade=f'{{"p": 99.5, "t": "{T}"}}', quote=f'{{"bp": {bid}, "ap": {ask}, "t": "{T}"}}'
    )

    assert quote_midpoint(raw["SPY"]["latestQuote"]) is None
    price = reference_from_snapshots(raw, "SPY", prefer="quote_mid", feed="iex")
    assert (price.price, price.source) == (Decimal("99.5"), "trade")


def test_a_locked_quote_has_its_price_as_midpoint() -> None:
    assert quote_midpoint({"bp": Decimal("10.01"), "ap": Decimal("10.01"), "t": T}) == (
        Decimal("10.01"),
        AT,
    )


def test_no_trade_and_no_two_sided_quote_is_unavailable() -> None:
    raw = snapshot(quote=f'{{"bp": 0, "ap": 101, "t": "{T}"}}')

    with pytest.raises(RiskDataUnavailable, match="no trade and no two-sided quote for SPY"):
        reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex")


def test_a_symbol_missing_from_the_answer_is_unavailable() -> None:
    with pytest.raises(RiskDataUnavailable, match="no trade or quote for QQQ on iex"):
        reference_from_snapshots(
            snapshot(trade=f'{{"p": 1, "t": "{T}"}}'), "QQQ", prefer="trade", feed="iex"
        )


@pytest.mark.parametrize(
    "trade",
    [
        f'{{"p": "abc", "t": "{T}"}}',
        f'{{"p": true, "t": "{T}"}}',
        f'{{"t": "{T}"}}',
        f'{{"p": 0, "t": "{T}"}}',
        f'{{"p": -1.5, "t": "{T}"}}',
        f'{{"p": "NaN", "t": "{T}"}}',
        '{"p": 1.5}',
        '{"p": 1.5, "t": "yesterday"}',
        "[1.5]",
    ],
)
def test_a_malformed_trade_is_unavailable_rather_than_a_fallback_to_the_quote(trade: str) -> None:
    raw = snapshot(trade=trade, quote=f'{{"bp": 100, "ap": 101, "t": "{T}"}}')

    with pytest.raises(RiskDataUnavailable):
        reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex")


@pytest.mark.parametrize("raw", [None, [], "SPY", {"SPY": [1]}])
def test_an_answer_of_the_wrong_shape_is_unavailable(raw: Any) -> None:
    with pytest.raises(RiskDataUnavailable):
        reference_from_snapshots(raw, "SPY", prefer="trade", feed="iex")


def test_a_reference_price_knows_its_age() -> None:
    price = ReferencePrice("SPY", Decimal(1), AT, "trade", "iex")

    assert price.age_s(datetime(2024, 1, 2, 15, 5, 5, 123456, tzinfo=UTC)) == 60.0
