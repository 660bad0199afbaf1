"""What to do with an intent id that has been seen before: pure rules over the stored record.

The claim itself (an atomic ``create()`` in Firestore) lives in the adapter; this module decides,
from what the store returned and the current time, whether the caller owns a fresh attempt,
must replay a final outcome, or must wait for an attempt that is still in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from backend.execution.vocabulary import Reason, Status, is_final

IN_PROGRESS = "in_progress"
# An attempt ended with a retryable outcome; the next delivery starts a new attempt.
RETRY_PENDING = "retry_pending"
# An attempt whose lease ran out without an outcome, closed by the attempt that took over.
# Stored only in that attempt's own outcome document, never as the intent's status.
ABANDONED = "abandoned"


@dataclass(frozen=True)
class IntentRecord:
    """The stored decision for one client_intent_id (Firestore ``execution_intents/{id}``)."""

    client_intent_id: str
    status: str
    attempt: int
    lease_until: datetime | None
    reason: Reason | None = None
    broker_order_id: str | None = None
    message: str = ""
    checks: tuple[dict[str, Any], ...] = ()
    # Digest of the order fields the id was first used with (OrderIntent.fingerprint()).
    fingerprint: str | None = None
    # When the intent was first received (its first claim); never rewritten. The intent's age
    # is measured from it when the intent carries no timestamp of its own.
    received_at: datetime | None = None

    @property
    def final_status(self) -> Status | None:
        try:
            return Status(self.status)
        except ValueError:
            return None


class ClaimVerdict(StrEnum):
    OWNED = "owned"  # this caller runs the attempt
    REPLAY = "replay"  # a final outcome exists; answer with it
    IN_PROGRESS = "in_progress"  # another caller holds a live lease
    CONFLICT = "conflict"  # the id was first used for an order with different fields


@dataclass(frozen=True)
class Claim:
    verdict: ClaimVerdict
    attempt: int
    record: IntentRecord | None = None
    # Earlier attempts may have reached the broker: look the order up before sending it.
    resumes_earlier_attempt: bool = False
    # Until when this caller owns the attempt; nothing may be sent after it could expire.
    lease_until: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        return self.verdict is ClaimVerdict.OWNED


def classify_existing(record: IntentRecord, now: datetime, fingerprint: str) -> ClaimVerdict:
    """Given the stored record of an intent we failed to create, what may this caller do?

    OWNED here means "may try to take over the next attempt"; the adapter still has to win the
    atomic create of that attempt before it owns anything. A conflicting request never takes
    anything over: the original intent's record stays as it was.
    """
    if conflicts(record, fingerprint):
        return ClaimVerdict.CONFLICT
    if record.final_status is not None:
        return ClaimVerdict.REPLAY
    if record.status == RETRY_PENDING:
        return ClaimVerdict.OWNED
    lease_live = record.lease_until is not None and record.lease_until > now
    return ClaimVerdict.IN_PROGRESS if lease_live else ClaimVerdict.OWNED


def conflicts(record: IntentRecord | None, fingerprint: str) -> bool:
    """True when the stored record was made for different order fields under the same id."""
    return record is not None and record.fingerprint not in (None, fingerprint)


__all__ = [
    "ABANDONED",
    "IN_PROGRESS",
    "RETRY_PENDING",
    "Claim",
    "ClaimVerdict",
    "IntentRecord",
    "classify_existing",
    "conflicts",
    "is_final",
]
