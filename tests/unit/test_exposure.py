"""Exposure: the position plus working orders, each side on its own, every case a sentence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from backend.execution.exposure import BookOrder, Exposure, Fill, PositionRow, Untouched, exposure
from backend.execution.intent import Side
from backend.execution.risk import max_position_check
from backend.execution.vocabulary import CheckOutcome, Reason

AS_OF = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
SKEW = timedelta(seconds=10)
LIMIT = Decimal(100)


def row(qty: str) -> PositionRow:
    return PositionRow(Decimal(qty), AS_OF)


def order(
    side: str,
    qty: str,
    *,
    filled: str = "0",
    fills: tuple[tuple[str, int], ...] = (),
    working: bool = True,
) -> BookOrder:
    """``fills`` are (qty, seconds relative to the position row's as_of)."""
    return BookOrder(
        client_intent_id=f"{side}-{qty}",
        side=Side(side),
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        fills=tuple(Fill(Decimal(q), AS_OF + timedelta(seconds=s)) for q, s in fills),
        working=working,
    )


def of(position: PositionRow | None, *orders: BookOrder) -> Exposure:
    return exposure(position, orders, skew=SKEW)


def check(current: Exposure, side: str, qty: str, position: PositionRow | None = None) -> object:
    return max_position_check(
        "acct", "SPY", Side(side), Decimal(qty), LIMIT, position=position, current=current
    )


def passes(current: Exposure, side: str, qty: str) -> bool:
    result = check(current, side, qty)
    return result.outcome is CheckOutcome.PASSED  # type: ignore[attr-defined]


# -- what counts, and where -------------------------------------------------------------------


def test_a_flat_book_with_no_orders_has_no_exposure() -> None:
    assert of(None) == Exposure(Decimal(0), Decimal(0), Decimal(0))


def test_a_working_buy_counts_only_on_the_long_side() -> None:
    current = of(row("0"), order("buy", "40"))
    assert (current.worst_long, current.worst_short) == (40, 0)


def test_a_working_sell_counts_only_on_the_short_side() -> None:
    current = of(row("0"), order("sell", "40"))
    assert (current.worst_long, current.worst_short) == (0, -40)


def test_a_partly_filled_working_order_counts_its_unfilled_rest_as_working() -> None:
    current = of(row("0"), order("buy", "40", filled="15", fills=(("15", 60),)))
    assert (current.position, current.working_buy) == (15, 25)


def test_a_fill_before_the_position_row_is_already_in_it_and_not_counted_again() -> None:
    current = of(row("15"), order("buy", "40", filled="15", fills=(("15", -60),)))
    assert (current.position, current.working_buy) == (15, 25)


def test_a_fill_after_the_position_row_is_added_to_the_position() -> None:
    current = of(row("0"), order("buy", "40", filled="40", fills=(("40", 60),), working=False))
    assert (current.position, current.working_buy) == (40, 0)


def test_a_fill_close_to_the_rows_time_counts_as_working_on_its_side_only() -> None:
    current = of(row("0"), order("buy", "40", filled="40", fills=(("40", 3),), working=False))
    assert (current.position, current.working_buy, current.working_sell) == (0, 40, 0)


def test_a_fill_the_sync_has_not_timed_yet_counts_as_working_on_its_side() -> None:
    current = of(row("0"), order("sell", "40", filled="40", working=False))
    assert (current.position, current.working_sell) == (0, 40)


def test_without_a_position_row_every_fill_is_position() -> None:
    current = of(None, order("buy", "40", filled="30", fills=(("10", -600),)))
    assert (current.position, current.working_buy) == (30, 10)


def test_a_canceled_order_counts_only_what_it_filled() -> None:
    current = of(row("0"), order("buy", "40", filled="10", fills=(("10", 60),), working=False))
    assert (current.position, current.working_buy) == (10, 0)


def test_an_order_whose_outcome_is_unknown_counts_in_full() -> None:
    assert of(row("0"), order("buy", "40")).working_buy == 40


# -- the position limit ----------------------------------------------------------------------


def test_a_buy_exactly_at_the_limit_passes_and_one_share_more_is_refused() -> None:
    current = of(row("60"), order("buy", "20"))
    assert passes(current, "buy", "20")
    assert not passes(current, "buy", "20.000000001")


def test_a_sell_exactly_at_the_short_limit_passes_and_one_share_more_is_refused() -> None:
    current = of(row("-60"), order("sell", "20"))
    assert passes(current, "sell", "20")
    assert not passes(current, "sell", "21")


def test_a_resting_sell_gives_no_headroom_to_a_buy() -> None:
    assert not passes(of(row("0"), order("sell", "100")), "buy", "200")


def test_a_resting_buy_gives_no_headroom_to_a_sell() -> None:
    assert not passes(of(row("0"), order("buy", "100")), "sell", "200")


def test_a_sell_that_reduces_a_position_over_the_limit_passes() -> None:
    assert passes(of(row("150")), "sell", "10")


def test_a_sell_that_crosses_past_the_short_limit_is_refused_even_from_over_the_limit() -> None:
    assert not passes(of(row("150")), "sell", "300")


def test_a_buy_that_covers_a_short_over_the_limit_passes() -> None:
    assert passes(of(row("-150")), "buy", "10")


def test_a_buy_from_a_long_over_the_limit_is_refused() -> None:
    assert not passes(of(row("150")), "buy", "1")


def test_a_refusal_says_which_side_and_every_part_of_the_exposure() -> None:
    result = check(of(row("50"), order("buy", "30"), order("sell", "5")), "buy", "30", row("50"))
    assert result.reason is Reason.MAX_POSITION_SIZE_EXCEEDED  # type: ignore[attr-defined]
    assert result.detail == (  # type: ignore[attr-defined]
        "worst-case long 110 in SPY would pass the limit 100: position 50, working buys 30, "
        "working sells 5, this buy 30"
    )
    assert result.inputs["projected_worst"] == 110  # type: ignore[attr-defined]


def test_fills_of_unknown_time_reported_before_the_rows_horizon_are_in_the_row() -> None:
    reported_long_ago = BookOrder(
        "carried-over", Side.BUY, Decimal(40), Decimal(40), (), working=False,
        filled_as_of=AS_OF - timedelta(hours=1),
    )  # fmt: skip
    assert of(row("40"), reported_long_ago) == Exposure(Decimal(40), Decimal(0), Decimal(0))


def test_fills_of_unknown_time_reported_after_the_rows_horizon_stay_working() -> None:
    reported_just_now = BookOrder(
        "late", Side.BUY, Decimal(40), Decimal(40), (), working=False,
        filled_as_of=AS_OF + timedelta(seconds=5),
    )  # fmt: skip
    assert of(row("0"), reported_just_now).working_buy == 40


def test_working_orders_without_fills_summed_by_the_store_count_as_if_listed() -> None:
    listed = [order("buy", "30"), order("sell", "12"), order("buy", "5")]
    summed = exposure(row("7"), [], skew=SKEW, untouched=Untouched(Decimal(35), Decimal(12)))
    assert summed == of(row("7"), *listed)
