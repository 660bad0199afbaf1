"""Controls that read the gateway's book of orders, decided under the advisory locks so they
are exact across instances (FIA 2024 §1.2, §1.5, §3.2, §3.4; RTS 6 Art. 12, 15(1)(d), 15(3)).
Pure: each is a function of the intent, the book context and the settings."""

from __future__ import annotations

import math

from backend.execution import risk
from backend.execution.controls.context import BookContext, ControlContext
from backend.execution.decisions import CheckResult
from backend.execution.intent import OrderIntent, Side
from backend.execution.settings import Settings
from backend.execution.vocabulary import CheckOutcome, Reason

RATE_WINDOW_S = 60


def operator_halt(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """POST /halt, as the book records it under the account lock: exact on every instance,
    even before its Firestore document reaches the instance's gate (FIA 2024 §1.5)."""
    halt = _book(ctx).halt
    if halt is None or halt[0] != "halted":
        return CheckResult(
            "operator_halt", CheckOutcome.PASSED, {"halt": halt[0] if halt else None}
        )
    return CheckResult(
        "operator_halt",
        CheckOutcome.FAILED,
        {"halt": halt[0], "recorded": halt[1]},
        Reason.KILL_SWITCH_ENABLED,
        f"trading is halted ({halt[1]})",
    )


def max_daily_trades(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    book = _book(ctx)
    return risk.max_daily_trades_check(
        intent.broker_account_id, book.day, book.trades_today, settings.max_daily_trades
    )


def max_position_size(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    book = _book(ctx)
    return risk.max_position_check(
        intent.broker_account_id,
        intent.symbol,
        intent.side,
        intent.qty,
        settings.max_position_qty,
        position=book.position,
        current=book.exposure,
    )


def reduce_only(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """Only orders that move the worst-case exposure toward zero without crossing it: a sell
    must leave position - working sells - qty at or above 0, a buy position + working buys +
    qty at or below 0. So nothing opens or adds, even counting what is already working."""
    source = ctx.order.reduce_only
    halt = _book(ctx).halt
    if source is None and halt is not None and halt[0] == "reduce_only":
        source = f"POST /halt mode=reduce_only ({halt[1]})"
    if source is None:
        return CheckResult("reduce_only", CheckOutcome.SKIPPED, {}, detail="not in reduce-only")
    after = _book(ctx).exposure.with_order(intent.side, intent.qty)
    worst = after.worst_long if intent.side is Side.BUY else after.worst_short
    reduces = worst <= 0 if intent.side is Side.BUY else worst >= 0
    inputs = {"source": source, "order_side": intent.side.value, "order_qty": intent.qty,
              "position": after.position, "projected_worst": worst}  # fmt: skip
    if reduces:
        return CheckResult("reduce_only", CheckOutcome.PASSED, inputs)
    return CheckResult(
        "reduce_only",
        CheckOutcome.FAILED,
        inputs,
        Reason.REDUCE_ONLY,
        f"reduce-only ({source}): this {intent.side.value} would take the worst-case position "
        f"in {intent.symbol} to {format(worst, 'f')}, away from or across zero",
    )


def order_rate(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """At most EXEC_MAX_ORDERS_PER_MINUTE orders per account in any 60 s, across instances.
    Retryable: the same intent may pass once the window has moved (Retry-After says when)."""
    limit = settings.max_orders_per_minute
    assert limit is not None
    book = _book(ctx)
    inputs = {"orders_last_60s": book.orders_last_minute, "limit": limit}
    if book.orders_last_minute < limit:
        return CheckResult("order_rate", CheckOutcome.PASSED, inputs)
    wait = max(1, math.ceil(book.rate_frees_in_s or RATE_WINDOW_S))
    return CheckResult(
        "order_rate",
        CheckOutcome.FAILED,
        inputs | {"retry_after_s": wait},
        Reason.ORDER_RATE_EXCEEDED,
        f"{book.orders_last_minute} orders in the last 60 s for {intent.broker_account_id}; "
        f"limit {limit} (EXEC_MAX_ORDERS_PER_MINUTE); a slot frees in {wait}s",
    )


def repeated_execution(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """N orders of one strategy, symbol and side within M seconds latch the strategy off until
    a person re-enables it (FIA 2024 §3.2, RTS 6 Art. 15(3)). The (N+1)th is refused and trips
    the latch; while latched, every intent of the strategy is refused."""
    limit = settings.repeat_limit
    assert limit is not None
    book = _book(ctx)
    inputs: dict[str, object] = {
        "strategy_id": intent.strategy_id,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "orders_in_window": book.repeats_in_window,
        "limit": str(limit),
    }
    if book.latch is not None:
        return CheckResult(
            "repeated_execution",
            CheckOutcome.FAILED,
            inputs | {"latched_at": book.latch.latched_at},
            Reason.STRATEGY_HALTED,
            f"strategy {intent.strategy_id} is halted since {book.latch.latched_at.isoformat()} "
            f"({book.latch.detail}); an operator must re-enable it",
        )
    if book.repeats_in_window < limit.orders:
        return CheckResult("repeated_execution", CheckOutcome.PASSED, inputs)
    return CheckResult(
        "repeated_execution",
        CheckOutcome.FAILED,
        inputs | {"trips_latch": True},
        Reason.STRATEGY_HALTED,
        f"{book.repeats_in_window} {intent.side.value} orders of {intent.symbol} by strategy "
        f"{intent.strategy_id} within {limit.within_s}s (limit {limit}): the strategy is now "
        "halted until an operator re-enables it",
    )


def trips_latch(check: CheckResult) -> bool:
    """True for the refusal that must latch its strategy (not one already latched)."""
    return check.name == "repeated_execution" and bool(check.inputs.get("trips_latch"))


def _book(ctx: ControlContext) -> BookContext:
    assert ctx.book is not None, "a book control ran without the book"
    return ctx.book
