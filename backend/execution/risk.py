"""Pre-trade risk checks as pure functions of their data.

The engine reads the data (and catches read failures); these functions only decide. A check
whose data could not be read fails closed with ``risk_data_unavailable``, unless the operator
set EXEC_RISK_FAIL_OPEN, in which case it passes with a recorded warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from backend.execution.decisions import CheckResult
from backend.execution.exposure import BookOrder, Exposure, PositionRow, Untouched
from backend.execution.intent import Side
from backend.execution.vocabulary import CheckOutcome, Reason


@dataclass(frozen=True)
class RiskSnapshot:
    """The data the checks need, read under the locks that make check-and-reserve atomic.

    ``orders`` are this gateway's own orders for the account and symbol that may still matter
    to exposure (see :mod:`backend.execution.exposure`). Counts and orders exclude the intent
    being checked, so a retry of the same intent does not compete with itself.
    """

    trades_today: int
    position: PositionRow | None
    orders: tuple[BookOrder, ...] = ()
    # Working orders with no fill at all, summed by side (see exposure.exposure).
    untouched: Untouched = field(default_factory=Untouched)
    # Orders reserved for the account in the last 60 s, and when the oldest leaves the window.
    orders_last_minute: int = 0
    rate_frees_in_s: float | None = None
    # Orders of the intent's strategy, symbol and side within the repeat window.
    repeats_in_window: int = 0
    # (latched_at, detail) while the intent's strategy is halted by the repeat latch.
    latched: tuple[datetime, str] | None = None
    # ("halted" | "reduce_only", who/when/why) while an operator's halt is recorded in the book.
    halt: tuple[str, str] | None = None


def data_unavailable(
    name: str, inputs: Mapping[str, Any], error: str, *, fail_open: bool
) -> CheckResult:
    if fail_open:
        return CheckResult(
            name,
            CheckOutcome.WARNING,
            inputs,
            detail=f"data unavailable ({error}); passed because EXEC_RISK_FAIL_OPEN is set",
        )
    return CheckResult(
        name,
        CheckOutcome.ERROR,
        inputs,
        Reason.RISK_DATA_UNAVAILABLE,
        f"data unavailable, refusing (fail closed): {error}",
    )


def max_daily_trades_check(
    broker_account_id: str, on: date, trades_today: int, limit: int
) -> CheckResult:
    """One more order is allowed while fewer than ``limit`` were routed today."""
    inputs = {
        "broker_account_id": broker_account_id,
        "trading_date": on,
        "trades_today": trades_today,
        "limit": limit,
    }
    if trades_today < limit:
        return CheckResult("max_daily_trades", CheckOutcome.PASSED, inputs)
    return CheckResult(
        "max_daily_trades",
        CheckOutcome.FAILED,
        inputs,
        Reason.MAX_DAILY_TRADES_EXCEEDED,
        f"{trades_today} orders already routed for {broker_account_id} on {on}; limit {limit}",
    )


def max_position_check(
    broker_account_id: str,
    symbol: str,
    side: Side,
    qty: Decimal,
    limit: Decimal,
    *,
    position: PositionRow | None,
    current: Exposure,
) -> CheckResult:
    """Position plus working orders, each side on its own (FIA 2024 §1.2): a buy must keep the
    worst-case long (position + working buys + this order) at or below the limit, a sell the
    worst-case short (position - working sells - this order) at or above minus the limit.
    A working order never gives headroom to the other side. An order that reduces exposure
    passes even from beyond the limit, as long as it does not cross past the other side's."""
    after = current.with_order(side, qty)
    if side is Side.BUY:
        projected, within, bound = after.worst_long, after.worst_long <= limit, limit
    else:
        projected, within, bound = after.worst_short, after.worst_short >= -limit, -limit
    inputs = {
        "broker_account_id": broker_account_id,
        "symbol": symbol,
        "position_row_qty": position.qty if position else None,
        "position_as_of": position.as_of if position else None,
        "position": current.position,
        "working_buy": current.working_buy,
        "working_sell": current.working_sell,
        "order_side": side.value,
        "order_qty": qty,
        "projected_worst": projected,
        "limit": limit,
    }
    if within:
        return CheckResult("max_position_size", CheckOutcome.PASSED, inputs)
    worst = "long" if side is Side.BUY else "short"
    return CheckResult(
        "max_position_size",
        CheckOutcome.FAILED,
        inputs,
        Reason.MAX_POSITION_SIZE_EXCEEDED,
        f"worst-case {worst} {_plain(projected)} in {symbol} would pass the limit "
        f"{_plain(bound)}: position {_plain(current.position)}, working buys "
        f"{_plain(current.working_buy)}, working sells {_plain(current.working_sell)}, "
        f"this {side.value} {_plain(qty)}",
    )


def _plain(value: Decimal) -> str:
    return format(value, "f")
