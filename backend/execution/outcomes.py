"""How each kind of outcome is expressed as an ExecutionResult. Pure constructors, no I/O."""

from __future__ import annotations

from datetime import datetime

from backend.execution.decisions import (
    BrokerOrder,
    ExecutionResult,
    PreTradeDecision,
    check_from_dict,
)
from backend.execution.idempotency import IntentRecord
from backend.execution.intent import OrderIntent
from backend.execution.vocabulary import Reason, Status, is_final

# A retryable refusal with no better estimate suggests this wait.
DEFAULT_RETRY_AFTER_S = 5


def submitted(
    intent: OrderIntent, decision: PreTradeDecision, order: BrokerOrder, *, adopted: bool = False
) -> ExecutionResult:
    return ExecutionResult(
        Status.SUBMITTED,
        intent.client_intent_id,
        decision,
        broker_order_id=order.broker_order_id,
        broker_order=order,
        message=f"order {order.broker_order_id} is {order.status} at the broker",
        adopted=adopted,
    )


def dry_run(intent: OrderIntent, decision: PreTradeDecision) -> ExecutionResult:
    return ExecutionResult(
        Status.DRY_RUN, intent.client_intent_id, decision, message="dry run: not routed"
    )


def rejected_by_checks(intent: OrderIntent, decision: PreTradeDecision) -> ExecutionResult:
    """Refused by a gate or risk check: the first blocking check explains it."""
    blocking = next(check for check in decision.checks if check.blocks)
    # Every retryable refusal says when to come back; a final one never invites a retry.
    retry_after = None
    if not is_final(decision.reason):
        retry_after = int(blocking.inputs.get("retry_after_s") or DEFAULT_RETRY_AFTER_S)
    return ExecutionResult(
        Status.REJECTED,
        intent.client_intent_id,
        decision,
        decision.reason,
        message=blocking.detail,
        retry_after_s=retry_after,
    )


def refused(
    intent: OrderIntent,
    reason: Reason,
    message: str,
    decision: PreTradeDecision | None = None,
    retry_after_s: int | None = DEFAULT_RETRY_AFTER_S,
) -> ExecutionResult:
    return ExecutionResult(
        Status.REJECTED,
        intent.client_intent_id,
        decision or PreTradeDecision(()),
        reason,
        message=message,
        retry_after_s=retry_after_s,
    )


def in_progress(intent: OrderIntent, record: IntentRecord | None, now: datetime) -> ExecutionResult:
    lease_until = record.lease_until if record else None
    wait = max(1, int((lease_until - now).total_seconds()) + 1) if lease_until else 1
    return refused(
        intent,
        Reason.DUPLICATE_IN_PROGRESS,
        "another delivery of this intent is being processed; ask again for its outcome",
        retry_after_s=wait,
    )


def key_conflict(intent: OrderIntent) -> ExecutionResult:
    return refused(
        intent,
        Reason.IDEMPOTENCY_KEY_CONFLICT,
        "this client_intent_id was already used for an order with different fields; "
        "use a new id for a new order",
        retry_after_s=None,
    )


def replay(intent: OrderIntent, record: IntentRecord) -> ExecutionResult:
    """Answers a repeated intent with the decision already recorded for it."""
    original = record.final_status
    decision = PreTradeDecision(tuple(check_from_dict(c) for c in record.checks))
    if original in (Status.SUBMITTED, Status.DRY_RUN, Status.DUPLICATE):
        return ExecutionResult(
            Status.DUPLICATE,
            intent.client_intent_id,
            decision,
            broker_order_id=record.broker_order_id,
            original_status=original,
            message="duplicate delivery: this intent was already decided; nothing new was sent",
        )
    return ExecutionResult(
        Status.REJECTED,
        intent.client_intent_id,
        decision,
        record.reason,
        broker_order_id=record.broker_order_id,
        original_status=original,
        message=f"duplicate delivery of a refused intent: {record.message}",
    )


def internal_error(intent: OrderIntent, exc: BaseException, retry_after_s: int) -> ExecutionResult:
    return refused(
        intent,
        Reason.INTERNAL_ERROR,
        f"unexpected {type(exc).__name__}; retry later",
        retry_after_s=retry_after_s,
    )
