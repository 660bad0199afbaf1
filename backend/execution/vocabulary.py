"""The stable words of the gateway's contract: outcome statuses, refusal reasons, check outcomes.

These strings are part of the HTTP contract, the decision log and the Firestore ledger, so
they never change meaning once released; add new members rather than renaming old ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Status(StrEnum):
    DRY_RUN = "dry_run"
    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Reason(StrEnum):
    INVALID_INTENT = "invalid_intent"
    MISSING_IDEMPOTENCY_KEY = "missing_idempotency_key"
    # The request is not an intent at all: not JSON, not an envelope, wrong method or path.
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    INTENT_EXPIRED = "intent_expired"
    # The intent names a broker account other than the one this deployment is bound to.
    ACCOUNT_NOT_ALLOWED = "account_not_allowed"
    KILL_SWITCH_ENABLED = "kill_switch_enabled"
    # A configured kill-switch source cannot be read or understood: trading halts, but the
    # gateway cannot tell whether the operator wants it halted, so the intent is retried.
    KILL_SWITCH_UNAVAILABLE = "kill_switch_unavailable"
    AGENT_MODE_NOT_LIVE = "agent_mode_not_live"
    AGENT_STATE_NOT_READY = "agent_state_not_ready"
    MAX_DAILY_TRADES_EXCEEDED = "max_daily_trades_exceeded"
    MAX_POSITION_SIZE_EXCEEDED = "max_position_size_exceeded"
    RISK_DATA_UNAVAILABLE = "risk_data_unavailable"
    # The pre-trade controls (docs/RISK_CONTROLS.md).
    SYMBOL_RESTRICTED = "symbol_restricted"
    MARKET_CLOSED = "market_closed"
    MAX_ORDER_QTY_EXCEEDED = "max_order_qty_exceeded"
    MAX_ORDER_NOTIONAL_EXCEEDED = "max_order_notional_exceeded"
    PRICE_OUTSIDE_COLLAR = "price_outside_collar"
    REFERENCE_PRICE_UNAVAILABLE = "reference_price_unavailable"
    REDUCE_ONLY = "reduce_only"
    ORDER_RATE_EXCEEDED = "order_rate_exceeded"
    STRATEGY_HALTED = "strategy_halted"
    BROKER_REJECTED = "broker_rejected"
    BROKER_UNAVAILABLE = "broker_unavailable"
    # Alpaca refused the keys (401, or a 403 that is not an order refusal): nothing was placed,
    # and the same intent may succeed once the keys are fixed.
    BROKER_AUTH_FAILED = "broker_auth_failed"
    # The broker has an order under this client_order_id whose fields differ from the intent.
    BROKER_ORDER_MISMATCH = "broker_order_mismatch"
    # ALPACA_ACCOUNT_NUMBER is set and the keys' account could not be confirmed to be it.
    BROKER_ACCOUNT_UNVERIFIED = "broker_account_unverified"
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
    # This instance received SIGTERM and takes no new work.
    SHUTTING_DOWN = "shutting_down"
    # The request's deadline (EXEC_REQUEST_DEADLINE_S) left no time for the next step, which
    # was not started: nothing was sent; a redelivery decides again.
    REQUEST_DEADLINE_EXCEEDED = "request_deadline_exceeded"


@dataclass(frozen=True)
class ReasonRule:
    """What one reason means to a caller. ``final``: a later attempt with the same intent
    cannot change it, so it is recorded, replayed and acked on Pub/Sub. Otherwise the gateway
    could not decide: nothing is recorded as final, /execute answers ``http_status`` with
    Retry-After and Pub/Sub gets a nack (redelivery), bounded by the intent's maximum age."""

    final: bool
    http_status: int

    @property
    def push_acked(self) -> bool:
        return self.final


_FINAL_400 = ReasonRule(final=True, http_status=400)
_FINAL_409 = ReasonRule(final=True, http_status=409)
_RETRY_503 = ReasonRule(final=False, http_status=503)

# The one declaration of every reason's finality and HTTP mapping; everything else reads it.
REASON_RULES: Mapping[Reason, ReasonRule] = MappingProxyType(
    {
        Reason.INVALID_INTENT: _FINAL_400,
        Reason.MISSING_IDEMPOTENCY_KEY: _FINAL_400,
        Reason.INVALID_REQUEST: _FINAL_400,
        Reason.UNAUTHORIZED: ReasonRule(final=True, http_status=401),
        Reason.INTENT_EXPIRED: _FINAL_409,
        Reason.ACCOUNT_NOT_ALLOWED: _FINAL_409,
        Reason.KILL_SWITCH_ENABLED: _FINAL_409,
        Reason.AGENT_MODE_NOT_LIVE: _FINAL_409,
        Reason.MAX_DAILY_TRADES_EXCEEDED: _FINAL_409,
        Reason.MAX_POSITION_SIZE_EXCEEDED: _FINAL_409,
        Reason.SYMBOL_RESTRICTED: _FINAL_409,
        Reason.MARKET_CLOSED: _FINAL_409,
        Reason.MAX_ORDER_QTY_EXCEEDED: _FINAL_409,
        Reason.MAX_ORDER_NOTIONAL_EXCEEDED: _FINAL_409,
        Reason.PRICE_OUTSIDE_COLLAR: _FINAL_409,
        Reason.REDUCE_ONLY: _FINAL_409,
        Reason.STRATEGY_HALTED: _FINAL_409,
        Reason.REFERENCE_PRICE_UNAVAILABLE: _RETRY_503,
        # Too many orders for the account this minute: the same intent may pass once the
        # window moves, so it is retryable, with Retry-After until a slot frees.
        Reason.ORDER_RATE_EXCEEDED: ReasonRule(final=False, http_status=429),
        Reason.BROKER_REJECTED: _FINAL_409,
        Reason.BROKER_ORDER_MISMATCH: _FINAL_409,
        Reason.IDEMPOTENCY_KEY_CONFLICT: _FINAL_409,
        # Being unable to decide is retryable: a kill-switch source that cannot be read, the
        # agent's error backoff or a stale heartbeat, broker keys refused.
        Reason.KILL_SWITCH_UNAVAILABLE: _RETRY_503,
        Reason.AGENT_STATE_NOT_READY: _RETRY_503,
        Reason.BROKER_AUTH_FAILED: _RETRY_503,
        Reason.RISK_DATA_UNAVAILABLE: _RETRY_503,
        Reason.BROKER_UNAVAILABLE: _RETRY_503,
        Reason.BROKER_ACCOUNT_UNVERIFIED: _RETRY_503,
        Reason.LEDGER_UNAVAILABLE: _RETRY_503,
        Reason.INTERNAL_ERROR: _RETRY_503,
        Reason.SHUTTING_DOWN: _RETRY_503,
        Reason.REQUEST_DEADLINE_EXCEEDED: _RETRY_503,
        # A duplicate still in progress is nacked, not acked: an ack would settle the message
        # for Pub/Sub, and if the attempt holding the claim then ended retryable, its own nack
        # would come too late and the intent would be lost. On /execute it is a 409 (the
        # caller's request conflicts with one in flight), still with Retry-After.
        Reason.DUPLICATE_IN_PROGRESS: ReasonRule(final=False, http_status=409),
    }
)


def rule_of(reason: Reason) -> ReasonRule:
    return REASON_RULES[reason]


def is_final(reason: Reason | None) -> bool:
    """An outcome without a reason (accepted) is final; a refusal is final if its rule says so."""
    return reason is None or REASON_RULES[reason].final


# Reasons for which a later attempt with the same intent may reach a different outcome.
RETRYABLE_REASONS: frozenset[Reason] = frozenset(
    r for r, rule in REASON_RULES.items() if not rule.final
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
    # Routes like LIVE, but only orders that reduce exposure (the reduce_only control).
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class AgentState(StrEnum):
    INIT = "INIT"
    READY = "READY"
    DEGRADED = "DEGRADED"
    HALTED = "HALTED"
    ERROR = "ERROR"
