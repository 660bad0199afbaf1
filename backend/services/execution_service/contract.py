"""Outcome -> HTTP for both entry points, read from the one declaration of every reason
(``vocabulary.REASON_RULES``).

/execute speaks to a caller that reads status codes. /pubsub/push speaks to Pub/Sub, for which
any 2xx is an ack and anything else a redelivery: every final outcome is acked (200), only
outcomes a later attempt could change are nacked (503).
"""

from __future__ import annotations

from typing import Any

from backend.execution.decisions import ExecutionResult
from backend.execution.vocabulary import Reason, rule_of


def execute_status(result: ExecutionResult) -> int:
    return 200 if result.reason is None else rule_of(result.reason).http_status


def push_status(result: ExecutionResult) -> int:
    return 200 if result.reason is None or rule_of(result.reason).push_acked else 503


def retry_after(result: ExecutionResult) -> dict[str, str]:
    """``Retry-After`` on every retryable answer that knows how long to wait."""
    if result.retryable and result.retry_after_s:
        return {"Retry-After": str(result.retry_after_s)}
    return {}


def refusal(reason: Reason, message: str) -> tuple[dict[str, Any], int]:
    """A refusal outside the engine (the HTTP layer), shaped and mapped like the engine's."""
    rule = rule_of(reason)
    body = {"status": "rejected", "reason": reason.value, "retryable": not rule.final,
            "message": message}  # fmt: skip
    return body, rule.http_status
