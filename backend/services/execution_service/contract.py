"""Outcome -> HTTP, in one table, for both entry points.

/execute speaks to a caller that reads status codes. /pubsub/push speaks to Pub/Sub, for which
any 2xx is an ack and anything else a redelivery: every final outcome is acked (200), only
outcomes a later attempt could change are nacked (503).
"""

from __future__ import annotations

from backend.execution.decisions import ExecutionResult
from backend.execution.vocabulary import Reason

EXECUTE_STATUS: dict[Reason | None, int] = {
    None: 200,
    Reason.INVALID_INTENT: 400,
    Reason.MISSING_IDEMPOTENCY_KEY: 400,
    Reason.INTENT_EXPIRED: 409,
    Reason.KILL_SWITCH_ENABLED: 409,
    Reason.AGENT_MODE_NOT_LIVE: 409,
    Reason.AGENT_STATE_NOT_READY: 409,
    Reason.MAX_DAILY_TRADES_EXCEEDED: 409,
    Reason.MAX_POSITION_SIZE_EXCEEDED: 409,
    Reason.BROKER_REJECTED: 409,
    Reason.DUPLICATE_IN_PROGRESS: 409,
    Reason.IDEMPOTENCY_KEY_CONFLICT: 409,
    Reason.RISK_DATA_UNAVAILABLE: 503,
    Reason.BROKER_UNAVAILABLE: 503,
    Reason.LEDGER_UNAVAILABLE: 503,
    Reason.INTERNAL_ERROR: 503,
}

# Pub/Sub: ack unless a redelivery could turn out differently. A duplicate still in progress
# is nacked, not acked: an ack would settle the message for Pub/Sub, and if the attempt holding
# the claim then ended retryable, its own nack would come too late and the intent would be lost.
PUSH_NACKED: frozenset[Reason] = frozenset(
    {
        Reason.DUPLICATE_IN_PROGRESS,
        Reason.RISK_DATA_UNAVAILABLE,
        Reason.BROKER_UNAVAILABLE,
        Reason.LEDGER_UNAVAILABLE,
        Reason.INTERNAL_ERROR,
    }
)


def execute_status(result: ExecutionResult) -> int:
    return EXECUTE_STATUS[result.reason]


def push_status(result: ExecutionResult) -> int:
    return 503 if result.reason in PUSH_NACKED else 200


def retry_after(result: ExecutionResult) -> dict[str, str]:
    """``Retry-After`` on every retryable answer that knows how long to wait."""
    if result.retryable and result.retry_after_s:
        return {"Retry-After": str(result.retry_after_s)}
    return {}
