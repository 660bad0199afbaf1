"""The stable words of the gateway's contract: outcome statuses, refusal reasons, check outcomes.

These strings are part of the HTTP contract, the decision log and the Firestore ledger, so
they never change meaning once released; add new members rather than renaming old ones.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    DRY_RUN = "dry_run"
    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Reason(StrEnum):
    INVALID_INTENT = "invalid_intent"
    MISSING_IDEMPOTENCY_KEY = "missing_idempotency_key"
    INTENT_EXPIRED = "intent_expired"
    KILL_SWITCH_ENABLED = "kill_switch_enabled"
    AGENT_MODE_NOT_LIVE = "agent_mode_not_live"
    AGENT_STATE_NOT_READY = "agent_state_not_ready"
    MAX_DAILY_TRADES_EXCEEDED = "max_daily_trades_exceeded"
    MAX_POSITION_SIZE_EXCEEDED = "max_position_size_exceeded"
    RISK_DATA_UNAVAILABLE = "risk_data_unavailable"
    BROKER_REJECTED = "broker_rejected"
    BROKER_UNAVAILABLE = "broker_unavailable"
    # Another delivery of the same intent holds the claim and has not finished yet.
    DUPLICATE_IN_PROGRESS = "duplicate_in_progress"
    # The client_intent_id was already used for an order with different fields.
    IDEMPOTENCY_KEY_CONFLICT = "idempotency_key_conflict"
    # The intent store (Firestore) could not be read or written, so idempotency cannot be
    # guaranteed (before the broker call) or the placed order could not be recorded (after).
    LEDGER_UNAVAILABLE = "ledger_unavailable"
    # An unexpected exception: a bug or an unclassified failure. The attempt is left retryable;
    # the next one looks the order up at the broker first, in case it was placed.
    INTERNAL_ERROR = "internal_error"


# Reasons for which a later attempt with the same intent may reach a different outcome.
RETRYABLE_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.RISK_DATA_UNAVAILABLE,
        Reason.BROKER_UNAVAILABLE,
        Reason.LEDGER_UNAVAILABLE,
        Reason.INTERNAL_ERROR,
        Reason.DUPLICATE_IN_PROGRESS,
    }
)


class CheckOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The check could not read its data; fail-closed unless EXEC_RISK_FAIL_OPEN is set.
    ERROR = "error"
    # Passed only because EXEC_RISK_FAIL_OPEN let an unreadable check through.
    WARNING = "warning"
    SKIPPED = "skipped"


class AgentMode(StrEnum):
    DISABLED = "DISABLED"
    WARMUP = "WARMUP"
    PAPER = "PAPER"
    LIVE = "LIVE"
    HALTED = "HALTED"


class AgentState(StrEnum):
    INIT = "INIT"
    READY = "READY"
    DEGRADED = "DEGRADED"
    HALTED = "HALTED"
    ERROR = "ERROR"
