"""Pre-trade risk checks as pure functions of their data.

The engine reads the data (and catches read failures); these functions only decide. A check
whose data could not be read fails closed with ``risk_data_unavailable``, unless the operator
set EXEC_RISK_FAIL_OPEN, in which case it passes with a recorded warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from backend.execution.decisions import CheckResult
from backend.execution.vocabulary import CheckOutcome, Reason


@dataclass(frozen=True)
class RiskSnapshot:
    """The data both checks need, read under the locks that make check-and-reserve atomic.

    ``pending_qty`` is this service's own exposure that ``broker_positions`` cannot reflect yet:
    orders let through after the position row was last updated. Counts exclude the intent
    being checked, so a retry of the same intent does not compete with itself.
    """

    trades_today: int
    position_qty: Decimal
    position_updated_at: datetime | None
    pending_qty: Decimal


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
    current_qty: Decimal,
    signed_qty: Decimal,
    limit: Decimal,
    *,
    pending_qty: Decimal = Decimal(0),
    position_updated_at: datetime | None = None,
) -> CheckResult:
    """|current + pending + signed qty| must stay within the limit, long or short."""
    projected = current_qty + pending_qty + signed_qty
    inputs = {
        "broker_account_id": broker_account_id,
        "symbol": symbol,
        "current_qty": current_qty,
        "position_updated_at": position_updated_at,
        "pending_qty": pending_qty,
        "order_signed_qty": signed_qty,
        "projected_qty": projected,
        "limit": limit,
    }
    if abs(projected) <= limit:
        return CheckResult("max_position_size", CheckOutcome.PASSED, inputs)
    return CheckResult(
        "max_position_size",
        CheckOutcome.FAILED,
        inputs,
        Reason.MAX_POSITION_SIZE_EXCEEDED,
        f"projected position {projected} in {symbol} exceeds limit {limit}",
    )
