"""Each pre-trade control as a sentence, with its edges: exactly at the limit, one cent over,
a missing or stale reference price, a market closed by the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.broker_facts import MarketClock, ReferencePrice, TradingSession
from backend.execution.clock import TRADING_TIMEZONE
from backend.execution.controls import book_rules, order_rules
from backend.execution.controls.context import (
    BookContext,
    ControlContext,
    Latch,
    OrderContext,
    Reading,
    Stage,
)
from backend.execution.controls.table import CONTROLS, facts_needed, run_stage
from backend.execution.decisions import CheckResult
from backend.execution.exposure import Exposure
from backend.execution.intent import OrderIntent
from backend.execution.settings import RepeatLimit, Settings
from backend.execution.vocabulary import CheckOutcome, Reason

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 11:00 in New York, a Tuesday
OPEN = MarketClock(NOW, True, NOW + timedelta(hours=18), NOW + timedelta(hours=5))
CLOSED = MarketClock(NOW, False, NOW + timedelta(hours=1), NOW + timedelta(hours=7))


def intent(**fields: Any) -> OrderIntent:
    base = {"client_intent_id": "i-1", "strategy_id": "s", "broker_account_id": "acct",
            "symbol": "SPY", "side": "buy", "qty": "10", "order_type": "market"}  # fmt: skip
    return OrderIntent(**(base | fields))


def price(value: str, age_s: float = 1.0) -> Reading[ReferencePrice]:
    return Reading(
        ReferencePrice("SPY", Decimal(value), NOW - timedelta(seconds=age_s), "trade", "iex")
    )


def order_ctx(**fields: Any) -> ControlContext:
    base: dict[str, Any] = {
        "now": NOW,
        "reference": price("400"),
        "market": Reading(OPEN),
        "session": Reading(()),
        "restricted": Reading(frozenset[str]()),
    }
    return ControlContext(OrderContext(**(base | fields)))


def book_ctx(
    *, reduce_only: str | None = None, position: str = "0", buys: str = "0", sells: str = "0",
    **fields: Any,
) -> ControlContext:  # fmt: skip
    base: dict[str, Any] = {
        "day": date(2026, 3, 10),
        "trades_today": 0,
        "position": None,
        "exposure": Exposure(Decimal(position), Decimal(buys), Decimal(sells)),
        "orders_last_minute": 0,
        "rate_frees_in_s": None,
        "repeats_in_window": 0,
        "latch": None,
    }
    order = order_ctx(reduce_only=reduce_only).order
    return ControlContext(order, BookContext(**(base | fields)))


def settings(**fields: Any) -> Settings:
    return Settings(**fields)


def outcome(result: CheckResult) -> tuple[CheckOutcome, Reason | None]:
    return result.outcome, result.reason


PASSED = (CheckOutcome.PASSED, None)


# -- max order quantity --------------------------------------------------------------------------


def test_an_order_exactly_at_the_max_quantity_passes_and_a_fraction_more_is_refused() -> None:
    limit = settings(max_order_qty=Decimal(100))
    assert outcome(order_rules.max_order_qty(intent(qty="100"), order_ctx(), limit)) == PASSED
    over = order_rules.max_order_qty(intent(qty="100.000000001"), order_ctx(), limit)
    assert outcome(over) == (CheckOutcome.FAILED, Reason.MAX_ORDER_QTY_EXCEEDED)
    assert over.detail == "order quantity 100.000000001 exceeds EXEC_MAX_ORDER_QTY 100"


# -- max notional --------------------------------------------------------------------------------


def test_a_notional_exactly_at_the_limit_passes_and_one_cent_over_is_refused() -> None:
    limit = settings(max_order_notional=Decimal("4000"))
    at = order_rules.max_order_notional(intent(qty="10"), order_ctx(reference=price("400")), limit)
    assert outcome(at) == PASSED
    over = order_rules.max_order_notional(
        intent(qty="10"), order_ctx(reference=price("400.001")), limit
    )
    assert outcome(over) == (CheckOutcome.FAILED, Reason.MAX_ORDER_NOTIONAL_EXCEEDED)
    assert over.inputs["notional"] == Decimal("4000.010")


def test_a_buy_is_valued_at_its_limit_price_when_that_is_higher_than_the_reference() -> None:
    limit = settings(max_order_notional=Decimal("4000"))
    buy = intent(qty="10", order_type="limit", limit_price="400.01")
    result = order_rules.max_order_notional(buy, order_ctx(reference=price("399")), limit)
    assert outcome(result)[1] is Reason.MAX_ORDER_NOTIONAL_EXCEEDED
    assert result.inputs["price"] == Decimal("400.01")


def test_a_sell_is_valued_at_the_reference_even_with_a_higher_limit_price() -> None:
    limit = settings(max_order_notional=Decimal("4000"))
    sell = intent(side="sell", qty="10", order_type="limit", limit_price="500")
    assert outcome(order_rules.max_order_notional(sell, order_ctx(), limit)) == PASSED


# -- reference price -----------------------------------------------------------------------------


def test_a_missing_reference_price_is_a_retryable_refusal() -> None:
    result = order_rules.reference_price(
        intent(), order_ctx(reference=Reading(error="HTTP 503")), settings()
    )
    assert outcome(result) == (CheckOutcome.ERROR, Reason.REFERENCE_PRICE_UNAVAILABLE)
    assert "HTTP 503" in result.detail


def test_a_reference_price_older_than_the_maximum_while_the_market_is_open_is_refused() -> None:
    stale = order_rules.reference_price(
        intent(), order_ctx(reference=price("400", age_s=60.5)), settings()
    )
    assert outcome(stale) == (CheckOutcome.ERROR, Reason.REFERENCE_PRICE_UNAVAILABLE)
    fresh = order_rules.reference_price(intent(), order_ctx(reference=price("400", 60)), settings())
    assert outcome(fresh) == PASSED


def test_an_old_reference_price_is_accepted_while_the_market_is_closed() -> None:
    overnight = order_ctx(reference=price("400", age_s=50_000), market=Reading(CLOSED))
    assert outcome(order_rules.reference_price(intent(), overnight, settings())) == PASSED


def test_an_unreadable_clock_counts_as_open_so_an_old_price_is_refused() -> None:
    blind = order_ctx(reference=price("400", age_s=600), market=Reading(error="timeout"))
    assert outcome(order_rules.reference_price(intent(), blind, settings()))[1] is (
        Reason.REFERENCE_PRICE_UNAVAILABLE
    )


# -- price collar --------------------------------------------------------------------------------


def test_a_buy_limit_exactly_at_the_collar_passes_and_one_cent_above_is_refused() -> None:
    collar = settings(price_collar_pct=Decimal(5))
    at = intent(order_type="limit", limit_price="420")
    assert outcome(order_rules.price_collar(at, order_ctx(), collar)) == PASSED
    above = order_rules.price_collar(
        intent(order_type="limit", limit_price="420.01"), order_ctx(), collar
    )
    assert outcome(above) == (CheckOutcome.FAILED, Reason.PRICE_OUTSIDE_COLLAR)
    assert above.detail == ("buy price 420.01 is more than 5% above the reference 400 (bound 420)")


def test_a_sell_stop_one_cent_below_the_collar_is_refused() -> None:
    collar = settings(price_collar_pct=Decimal(5))
    sell = intent(side="sell", order_type="stop", stop_price="379.99")
    assert outcome(order_rules.price_collar(sell, order_ctx(), collar))[1] is (
        Reason.PRICE_OUTSIDE_COLLAR
    )
    at = intent(side="sell", order_type="stop", stop_price="380")
    assert outcome(order_rules.price_collar(at, order_ctx(), collar)) == PASSED


def test_a_buy_limit_far_below_the_market_is_not_an_erroneous_price() -> None:
    low = intent(order_type="limit", limit_price="1")
    assert outcome(order_rules.price_collar(low, order_ctx(), settings())) == PASSED


def test_a_market_order_has_no_price_for_the_collar_to_check() -> None:
    result = order_rules.price_collar(intent(), order_ctx(), settings())
    assert result.outcome is CheckOutcome.SKIPPED and result.detail == "a market order"


# -- restricted symbols --------------------------------------------------------------------------


def test_a_restricted_symbol_is_refused_and_others_pass() -> None:
    listed = order_ctx(restricted=Reading(frozenset({"GME"})))
    gme = order_rules.restricted_symbol(intent(symbol="GME"), listed, settings())
    assert outcome(gme) == (CheckOutcome.FAILED, Reason.SYMBOL_RESTRICTED)
    assert outcome(order_rules.restricted_symbol(intent(), listed, settings())) == PASSED


def test_with_an_allow_list_any_other_symbol_is_refused() -> None:
    only_spy = settings(allowed_symbols=frozenset({"SPY"}))
    aapl = order_rules.restricted_symbol(intent(symbol="AAPL"), order_ctx(), only_spy)
    assert outcome(aapl) == (CheckOutcome.FAILED, Reason.SYMBOL_RESTRICTED)
    assert outcome(order_rules.restricted_symbol(intent(), order_ctx(), only_spy)) == PASSED


def test_an_unreadable_restricted_list_fails_closed() -> None:
    unreadable = order_ctx(restricted=Reading(error="ops/restricted does not exist"))
    result = order_rules.restricted_symbol(intent(), unreadable, settings())
    assert outcome(result) == (CheckOutcome.ERROR, Reason.RISK_DATA_UNAVAILABLE)


# -- trading hours -------------------------------------------------------------------------------


def test_a_market_closed_by_the_clock_refuses_in_regular_hours_mode() -> None:
    regular = settings(trading_hours="regular")
    closed = order_rules.market_hours(intent(), order_ctx(market=Reading(CLOSED)), regular)
    assert outcome(closed) == (CheckOutcome.FAILED, Reason.MARKET_CLOSED)
    assert outcome(order_rules.market_hours(intent(), order_ctx(), regular)) == PASSED


def test_a_cached_clock_reading_flips_at_the_bell() -> None:
    read_before_open = MarketClock(NOW - timedelta(hours=1), False, NOW, NOW + timedelta(hours=6))
    result = order_rules.market_hours(
        intent(), order_ctx(market=Reading(read_before_open)), settings(trading_hours="regular")
    )
    assert outcome(result) == PASSED


def test_extended_hours_follow_todays_session_from_the_calendar() -> None:
    day = date(2026, 3, 10)
    session = TradingSession(
        day,
        datetime(2026, 3, 10, 4, 0, tzinfo=TRADING_TIMEZONE),
        datetime(2026, 3, 10, 20, 0, tzinfo=TRADING_TIMEZONE),
    )
    extended = settings(trading_hours="extended")
    premarket = NOW.replace(hour=9)  # 05:00 in New York
    inside = order_ctx(now=premarket, session=Reading((session,)), market=Reading(CLOSED))
    assert outcome(order_rules.market_hours(intent(), inside, extended)) == PASSED
    late = order_ctx(now=NOW.replace(hour=23) + timedelta(hours=2), session=Reading((session,)))
    assert outcome(order_rules.market_hours(intent(), late, extended))[1] is Reason.MARKET_CLOSED
    holiday = order_ctx(session=Reading(()))
    assert order_rules.market_hours(intent(), holiday, extended).detail == (
        "the market does not open today"
    )


def test_an_unreadable_clock_refuses_rather_than_assume_the_market_is_open() -> None:
    result = order_rules.market_hours(
        intent(), order_ctx(market=Reading(error="timeout")), settings(trading_hours="regular")
    )
    assert outcome(result) == (CheckOutcome.ERROR, Reason.RISK_DATA_UNAVAILABLE)


# -- reduce-only ---------------------------------------------------------------------------------


def test_in_reduce_only_a_sell_that_shrinks_a_long_passes_and_one_that_crosses_zero_is_refused() -> (
    None
):
    long = book_ctx(reduce_only="AGENT_MODE=REDUCING", position="50")
    assert (
        outcome(book_rules.reduce_only(intent(side="sell", qty="50"), long, settings())) == PASSED
    )
    crossing = book_rules.reduce_only(intent(side="sell", qty="51"), long, settings())
    assert outcome(crossing) == (CheckOutcome.FAILED, Reason.REDUCE_ONLY)


def test_in_reduce_only_working_sells_count_so_a_second_exit_cannot_overshoot() -> None:
    exiting = book_ctx(reduce_only="file:/k", position="50", sells="40")
    assert outcome(book_rules.reduce_only(intent(side="sell", qty="11"), exiting, settings()))[
        1
    ] is (Reason.REDUCE_ONLY)


def test_in_reduce_only_a_buy_from_flat_is_refused_and_a_buy_covering_a_short_passes() -> None:
    flat = book_ctx(reduce_only="AGENT_MODE=REDUCING")
    assert (
        outcome(book_rules.reduce_only(intent(qty="1"), flat, settings()))[1] is Reason.REDUCE_ONLY
    )
    short = book_ctx(reduce_only="AGENT_MODE=REDUCING", position="-30")
    assert outcome(book_rules.reduce_only(intent(qty="30"), short, settings())) == PASSED


def test_outside_reduce_only_the_control_is_skipped() -> None:
    assert book_rules.reduce_only(intent(), book_ctx(), settings()).outcome is CheckOutcome.SKIPPED


# -- order rate ----------------------------------------------------------------------------------


def test_the_order_rate_passes_below_the_limit_and_refuses_at_it_with_a_retry_after() -> None:
    limit = settings(max_orders_per_minute=30)
    below = book_rules.order_rate(intent(), book_ctx(orders_last_minute=29), limit)
    assert outcome(below) == PASSED
    at = book_rules.order_rate(
        intent(), book_ctx(orders_last_minute=30, rate_frees_in_s=12.2), limit
    )
    assert outcome(at) == (CheckOutcome.FAILED, Reason.ORDER_RATE_EXCEEDED)
    assert at.inputs["retry_after_s"] == 13


# -- repeated execution --------------------------------------------------------------------------


def test_the_repeat_limit_lets_n_orders_through_and_latches_on_the_next() -> None:
    limit = settings(repeat_limit=RepeatLimit(10, 60))
    ninth = book_rules.repeated_execution(intent(), book_ctx(repeats_in_window=9), limit)
    assert outcome(ninth) == PASSED and not book_rules.trips_latch(ninth)
    eleventh = book_rules.repeated_execution(intent(), book_ctx(repeats_in_window=10), limit)
    assert outcome(eleventh) == (CheckOutcome.FAILED, Reason.STRATEGY_HALTED)
    assert book_rules.trips_latch(eleventh)


def test_a_latched_strategy_is_refused_whatever_it_sends_and_does_not_latch_again() -> None:
    latched = book_ctx(latch=Latch(NOW, "10 buy orders of SPY"))
    result = book_rules.repeated_execution(intent(symbol="AAPL", side="sell"), latched, settings())
    assert outcome(result) == (CheckOutcome.FAILED, Reason.STRATEGY_HALTED)
    assert not book_rules.trips_latch(result)


# -- the table -----------------------------------------------------------------------------------


def test_every_control_is_in_the_table_once_and_the_order_stage_comes_first() -> None:
    names = [c.name for c in CONTROLS]
    assert len(names) == len(set(names))
    stages = [c.stage for c in CONTROLS]
    assert stages == sorted(stages, key=lambda s: s is Stage.BOOK)


def test_a_switched_off_control_is_listed_as_skipped_naming_the_variable() -> None:
    off = settings(max_order_qty=None)
    results = run_stage(Stage.ORDER, intent(qty="1000000"), order_ctx(), off)
    qty = next(r for r in results if r.name == "max_order_qty")
    assert (
        qty.outcome is CheckOutcome.SKIPPED and qty.detail == "switched off: EXEC_MAX_ORDER_QTY=off"
    )


def test_market_data_is_read_only_when_a_control_that_needs_it_is_on() -> None:
    assert "reference_price" in facts_needed(settings())
    none = settings(max_order_notional=None, price_collar_pct=None)
    assert facts_needed(none) == {"restricted_list"}
    assert "trading_session" in facts_needed(settings(trading_hours="extended"))
