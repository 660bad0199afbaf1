"""Firestore adapter for decision records (``execution_intents``) and the trade ledger.

Atomicity rests only on ``create()`` preconditions (an atomic "insert if absent", which both real
Firestore and the test emulator enforce), never on transactions: of any number of concurrent
claims for one intent id, exactly one creates the record. Later attempts are claimed the same way,
by creating ``execution_intents/{id}/attempts/{n}``. See docs/LEDGER.md for the schema.
"""

from __future__ import annotations

import json
import socket
from datetime import date, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore

from backend.execution.clock import trading_date
from backend.execution.decisions import ExecutionResult, jsonable
from backend.execution.errors import LedgerUnavailable
from backend.execution.idempotency import (
    IN_PROGRESS,
    RETRY_PENDING,
    Claim,
    ClaimVerdict,
    IntentRecord,
    classify_existing,
    is_final,
)
from backend.execution.intent import OrderIntent
from backend.execution.vocabulary import Reason

INTENTS = "execution_intents"
LEDGER = "ledger_trades"
ATTEMPTS = "attempts"
# A takeover that keeps losing races is bounded; the caller is told the intent is in progress.
_MAX_TAKEOVER_STEPS = 8


class FirestoreLedger:
    """Implements the IntentLedger port."""

    def __init__(
        self, client: firestore.Client, *, timeout_s: float, instance_id: str | None = None
    ) -> None:
        self._db = client
        self._timeout = timeout_s
        self._read_retry = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=timeout_s)
        self._instance = instance_id or socket.gethostname()

    # -- IntentLedger ------------------------------------------------------------------------

    def claim(self, intent: OrderIntent, *, now: datetime, lease_s: float, source: str) -> Claim:
        ref = self._db.collection(INTENTS).document(intent.client_intent_id)
        lease_until = now + timedelta(seconds=lease_s)
        record = {
            **intent_fields(intent),
            "intent_fingerprint": intent.fingerprint(),
            "status": IN_PROGRESS,
            "attempt": 1,
            "lease_until": lease_until,
            "claimed_by": self._instance,
            "source": source,
            "trading_date": trading_date(now).isoformat(),
            "received_at": now,
            "updated_at": now,
        }
        try:
            # retry=None: a blind retry of a create whose first try landed would report our own
            # claim as someone else's.
            ref.create(record, retry=None, timeout=self._timeout)
            return Claim(ClaimVerdict.OWNED, attempt=1, lease_until=lease_until)
        except gexc.AlreadyExists:
            pass
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None
        return self._claim_existing(ref, now, lease_until, intent.fingerprint())

    def record_outcome(
        self,
        intent: OrderIntent,
        claim: Claim,
        result: ExecutionResult,
        *,
        trading_day: date,
        decided_at: datetime,
    ) -> None:
        status = result.status.value if is_final(result.reason) else RETRY_PENDING
        decision: dict[str, Any] = {
            "status": status,
            "reason": result.reason.value if result.reason else None,
            "retryable": result.retryable,
            "message": result.message,
            "checks": [check.to_dict() for check in result.checks],
            "broker_order_id": result.broker_order_id,
            "attempt": claim.attempt,
            "decided_at": decided_at,
            "updated_at": decided_at,
        }
        batch = self._db.batch()
        batch.set(
            self._db.collection(INTENTS).document(intent.client_intent_id), decision, merge=True
        )
        order = result.broker_order
        if order is not None and result.broker_order_id:
            entry = {
                **intent_fields(intent),
                "broker_order_id": order.broker_order_id,
                "broker": "alpaca",
                "trading_date": trading_day.isoformat(),
                "status": order.status,
                "filled_qty": format(order.filled_qty, "f"),
                "filled_avg_price": _str_or_none(order.filled_avg_price),
                "filled_at": order.filled_at,
                "submitted_at": order.submitted_at,
                "raw_broker_order": jsonable(dict(order.raw)),
                "created_at": decided_at,
                "updated_at": decided_at,
            }
            ledger_ref = self._db.collection(LEDGER).document(order.broker_order_id)
            batch.set(ledger_ref, entry, merge=True)
            # The order's event history starts here. A deterministic id and a full set (not
            # create, which would fail the whole batch if a retried commit had landed) keep a
            # replay from ever adding a second event.
            kind = "adopted" if result.adopted else "submitted"
            event_id = f"adopted-{claim.attempt}" if result.adopted else "submitted"
            event = {
                "type": kind,
                "at": order.submitted_at,
                "status": order.status,
                "qty": entry["qty"],
                "source": "execution",
                "attempt": claim.attempt,
                "recorded_at": decided_at,
            }
            batch.set(ledger_ref.collection("events").document(event_id), event)
        try:
            batch.commit(retry=self._read_retry, timeout=self._timeout)
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None

    def load(self, client_intent_id: str) -> IntentRecord | None:
        try:
            snapshot = (
                self._db.collection(INTENTS)
                .document(client_intent_id)
                .get(retry=self._read_retry, timeout=self._timeout)
            )
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None
        return _to_record(client_intent_id, snapshot.to_dict()) if snapshot.exists else None

    # -- takeover of an earlier attempt -------------------------------------------------------

    def _claim_existing(
        self,
        ref: firestore.DocumentReference,
        now: datetime,
        lease_until: datetime,
        fingerprint: str,
    ) -> Claim:
        existing = self.load(ref.id)
        if existing is None:  # deleted between our create and read: treat as busy, retry later
            return Claim(ClaimVerdict.IN_PROGRESS, attempt=0)
        verdict = classify_existing(existing, now, fingerprint)
        if verdict is not ClaimVerdict.OWNED:
            return Claim(verdict, attempt=existing.attempt, record=existing)
        attempt = existing.attempt + 1
        try:
            for _ in range(_MAX_TAKEOVER_STEPS):
                attempt_ref = ref.collection(ATTEMPTS).document(str(attempt))
                try:
                    attempt_ref.create(
                        {
                            "attempt": attempt,
                            "lease_until": lease_until,
                            "claimed_by": self._instance,
                            "claimed_at": now,
                        },
                        retry=None,
                        timeout=self._timeout,
                    )
                except gexc.AlreadyExists:
                    other = attempt_ref.get(retry=self._read_retry, timeout=self._timeout).to_dict()
                    other_lease = (other or {}).get("lease_until")
                    if isinstance(other_lease, datetime) and other_lease > now:
                        return Claim(ClaimVerdict.IN_PROGRESS, attempt=attempt, record=existing)
                    attempt += 1  # that attempt's owner died before finishing; move past it
                    continue
                ref.set(
                    {
                        "status": IN_PROGRESS,
                        "attempt": attempt,
                        "lease_until": lease_until,
                        "claimed_by": self._instance,
                        "updated_at": now,
                    },
                    merge=True,
                    retry=self._read_retry,
                    timeout=self._timeout,
                )
                return Claim(
                    ClaimVerdict.OWNED,
                    attempt=attempt,
                    record=existing,
                    resumes_earlier_attempt=True,
                    lease_until=lease_until,
                )
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None
        return Claim(ClaimVerdict.IN_PROGRESS, attempt=attempt, record=existing)


def intent_fields(intent: OrderIntent) -> dict[str, Any]:
    """The intent as stored: exact decimal strings; metadata as JSON text (any keys allowed)."""
    data = intent.summary()
    data["intent_created_at"] = data.pop("created_at")
    data["metadata_json"] = json.dumps(data.pop("metadata"), sort_keys=True, default=str)
    return data


def _to_record(client_intent_id: str, data: dict[str, Any] | None) -> IntentRecord:
    data = data or {}
    reason = data.get("reason")
    lease = data.get("lease_until")
    return IntentRecord(
        client_intent_id=client_intent_id,
        status=str(data.get("status", IN_PROGRESS)),
        attempt=int(data.get("attempt") or 1),
        lease_until=lease if isinstance(lease, datetime) else None,
        reason=Reason(reason) if isinstance(reason, str) and reason in set(Reason) else None,
        broker_order_id=data.get("broker_order_id"),
        message=str(data.get("message") or ""),
        checks=tuple(data.get("checks") or ()),
        fingerprint=data.get("intent_fingerprint"),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else format(value, "f")


def _describe(exc: Exception) -> str:
    return f"Firestore {type(exc).__name__}: {str(exc)[:200]}"
