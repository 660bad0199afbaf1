"""Is the intent still fresh enough to act on? A stale intent is refused, never executed late."""

from __future__ import annotations

from datetime import datetime

from backend.execution.decisions import CheckResult
from backend.execution.vocabulary import CheckOutcome, Reason

# Producers' clocks drift; a timestamp a little in the future is tolerated, a lot is an error
# (it would otherwise make the intent immune to expiry).
FUTURE_TOLERANCE_S = 60.0


def intent_age_check(
    created_at: datetime | None,
    publish_time: datetime | None,
    now: datetime,
    max_age_s: float,
    *,
    first_received_at: datetime | None = None,
) -> CheckResult:
    """The age is measured from the intent's ``created_at``, else Pub/Sub's ``publishTime``,
    else the moment this gateway first received the intent (its first claim).

    The last one bounds retries of an intent that carries no timestamp: a redelivery or a
    retried request hours later is as old as its first receipt, not as fresh as its request.
    On a first delivery there is nothing earlier to measure from, so the check is skipped.
    """
    stamp, basis = (created_at, "created_at") if created_at else (publish_time, "publish_time")
    if stamp is None and first_received_at is not None:
        stamp, basis = first_received_at, "first_received_at"
    if stamp is None:
        return CheckResult(
            "intent_age",
            CheckOutcome.SKIPPED,
            {"max_age_s": max_age_s},
            detail="no created_at or publishTime: the intent is as fresh as its request",
        )
    age = (now - stamp).total_seconds()
    inputs = {"basis": basis, "timestamp": stamp, "age_s": round(age, 3), "max_age_s": max_age_s}
    if age > max_age_s:
        detail = f"intent is {age:.0f}s old ({basis}); maximum age is {max_age_s:g}s"
        return CheckResult("intent_age", CheckOutcome.FAILED, inputs, Reason.INTENT_EXPIRED, detail)
    # Our own first receipt, stamped by another instance's clock, is never the producer's fault.
    if -age > FUTURE_TOLERANCE_S and basis != "first_received_at":
        detail = f"{basis} is {-age:.0f}s in the future; check the producer's clock"
        return CheckResult("intent_age", CheckOutcome.FAILED, inputs, Reason.INVALID_INTENT, detail)
    return CheckResult("intent_age", CheckOutcome.PASSED, inputs)
