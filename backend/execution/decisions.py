"""Value objects for what the gateway decided and why.

Every gate and risk check yields a :class:`CheckResult` carrying its inputs, so a decision can be
explained (and audited) without re-running anything. They are plain frozen dataclasses: no I/O,
trivially serialisable with :func:`jsonable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from backend.execution.vocabulary import RETRYABLE_REASONS, CheckOutcome, Reason, Status


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: CheckOutcome
    inputs: Mapping[str, Any] = field(default_factory=dict)
    reason: Reason | None = None
    detail: str = ""

    @property
    def blocks(self) -> bool:
        """True when this check stops the intent (failed, or errored without fail-open)."""
        return self.outcome in (CheckOutcome.FAILED, CheckOutcome.ERROR)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "outcome": self.outcome.value}
        out["inputs"] = jsonable(dict(self.inputs))
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class PreTradeDecision:
    """The combined gate and risk verdict. ``reason`` is the first blocking check's reason."""

    checks: tuple[CheckResult, ...]

    @property
    def allowed(self) -> bool:
        return not any(check.blocks for check in self.checks)

    @property
    def reason(self) -> Reason | None:
        for check in self.checks:
            if check.blocks:
                return check.reason
        return None

    def plus(self, more: Iterable[CheckResult]) -> PreTradeDecision:
        return PreTradeDecision(self.checks + tuple(more))


# The name the original design documents use (``result.risk.allowed``).
RiskDecision = PreTradeDecision


@dataclass(frozen=True)
class BrokerOrder:
    """What the broker says about one order. Numbers stay exact decimal strings as received."""

    broker_order_id: str
    client_order_id: str
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    filled_at: str | None
    submitted_at: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    client_intent_id: str | None
    risk: PreTradeDecision = field(default_factory=lambda: PreTradeDecision(()))
    reason: Reason | None = None
    broker_order_id: str | None = None
    message: str = ""
    # For a duplicate: the status the intent's first decision reached.
    original_status: Status | None = None
    broker_order: BrokerOrder | None = None
    errors: tuple[Mapping[str, Any], ...] = ()
    # Seconds after which a retry may succeed (the remaining claim lease, for instance).
    retry_after_s: int | None = None
    # The order was found at the broker (placed by an earlier attempt) rather than sent now.
    adopted: bool = False

    @property
    def retryable(self) -> bool:
        return self.reason in RETRYABLE_REASONS

    @property
    def accepted(self) -> bool:
        return self.status in (Status.DRY_RUN, Status.SUBMITTED, Status.DUPLICATE)

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        return self.risk.checks

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status.value,
            "client_intent_id": self.client_intent_id,
            "retryable": self.retryable,
            "checks": [check.to_dict() for check in self.checks],
        }
        if self.broker_order_id is not None:
            out["broker_order_id"] = self.broker_order_id
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.original_status is not None:
            out["original_status"] = self.original_status.value
        if self.broker_order is not None:
            out["broker_status"] = self.broker_order.status
        if self.message:
            out["message"] = self.message
        if self.errors:
            out["errors"] = [dict(e) for e in self.errors]
        return out


def jsonable(value: Any) -> Any:
    """Converts decisions' inputs to JSON/Firestore-safe primitives; decimals become exact strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def check_from_dict(data: Mapping[str, Any]) -> CheckResult:
    """Rebuilds a stored check (for replaying a recorded decision)."""
    reason = data.get("reason")
    return CheckResult(
        name=str(data.get("name", "")),
        outcome=CheckOutcome(data.get("outcome", CheckOutcome.SKIPPED.value)),
        inputs=dict(data.get("inputs") or {}),
        reason=Reason(reason) if reason else None,
        detail=str(data.get("detail", "")),
    )
