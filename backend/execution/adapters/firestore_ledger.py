"""Firestore adapter for decision records (``execution_intents``) and the trade ledger.

Atomicity rests only on ``create()`` preconditions (an atomic "insert if absent", which both real
Firestore and the test emulator enforce), never on transactions or update preconditions:

- of any number of concurrent claims for one intent id, exactly one creates the record
  (attempt 1); a later attempt ``n`` is claimed by creating ``attempts/{n}``;
- each attempt ends exactly once, by creating ``outcomes/{n}``: with its outcome when it records
  one, or as ``abandoned`` by the attempt that takes over after its lease ran out. Whichever
  create comes second fails, so a slow attempt whose claim was taken over can never record;
- every write to the record itself rides in a batch behind one of those creates, as its first
  write. A batch is atomic on Firestore, and the emulator applies a batch in order and stops at
  the first failed write, so a batch whose create fails writes nothing on either. The record
  therefore only ever carries the latest attempt's claim and outcome: that is what a redelivery
  replays.

See docs/LEDGER.md for the schema and docs/EXACTLY_ONCE.md for the argument.
"""

from __future__ import annotations

import json
import socket
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore

from backend.execution.clock import trading_date
from backend.execution.decisions import ExecutionResult, jsonable
from backend.execution.errors import LedgerUnavailable
from backend.execution.idempotency import (
    ABANDONED,
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
OUTCOMES = "outcomes"
# A takeover that keeps losing races is bounded; the caller is told the intent is in progress.
_MAX_TAKEOVER_STEPS = 8


class FirestoreLedger:
    """Implements the IntentLedger port."""

    def __init__(
        self, client: firestore.Client, *, timeout_s: float, instance_id: str | None = None
    ) -> None:
        self._db = client
        self._timeout = timeout_s
        # Retries transient errors (UNAVAILABLE, ...) until timeout_s; each try also ends at
        # timeout_s, so a server that never answers costs one timeout, not a retry loop.
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
        try:
            return self._take_over(ref, now, lease_until, intent.fingerprint())
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None

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
        ref = self._db.collection(INTENTS).document(intent.client_intent_id)
        outcome_ref = ref.collection(OUTCOMES).document(str(claim.attempt))
        write_id = uuid.uuid4().hex
        batch = self._db.batch()
        # First, so that if this attempt was already closed (taken over after its lease ran
        # out) nothing of this batch is written: not the record, not the ledger.
        # The attempt's outcome without its checks: they are the intent record's, written in the
        # same batch. Encoding them twice cost more CPU than anything else the gateway does.
        outcome = {key: value for key, value in decision.items() if key != "checks"}
        batch.create(outcome_ref, outcome | {"recorded_by": self._instance, "write_id": write_id})
        batch.set(ref, decision, merge=True)
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
            # The order's event history starts here. A deterministic id and a full set keep a
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
        except gexc.AlreadyExists:
            # Either a retried commit whose first try landed (our own write), or this attempt
            # was closed by a later one: then its outcome must not count, and the caller is told
            # it was not recorded, so the next delivery replays the later attempt's outcome.
            if not self._is_own_write(outcome_ref, write_id):
                raise LedgerUnavailable(
                    f"attempt {claim.attempt} had already ended (taken over by a later attempt "
                    "after its lease ran out); its outcome was not recorded"
                ) from None
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

    def _take_over(
        self,
        ref: firestore.DocumentReference,
        now: datetime,
        lease_until: datetime,
        fingerprint: str,
    ) -> Claim:
        """Claims the next attempt of an intent whose record exists, if its state allows it."""
        existing = self.load(ref.id)
        target = existing.attempt + 1 if existing else 0
        for _ in range(_MAX_TAKEOVER_STEPS):
            if existing is None:  # deleted between our create and read: treat as busy
                return Claim(ClaimVerdict.IN_PROGRESS, attempt=0)
            verdict = classify_existing(existing, now, fingerprint)
            if verdict is not ClaimVerdict.OWNED:
                return Claim(verdict, attempt=existing.attempt, record=existing)
            batch = self._db.batch()
            if existing.status == IN_PROGRESS:
                # Its owner's lease ran out without an outcome: close that attempt, so that a
                # late outcome from it can no longer be recorded.
                batch.create(
                    ref.collection(OUTCOMES).document(str(existing.attempt)),
                    {
                        "status": ABANDONED,
                        "attempt": existing.attempt,
                        "closed_by": self._instance,
                        "closed_at": now,
                        "closed_for_attempt": target,
                    },
                )
            claim = {"lease_until": lease_until, "claimed_by": self._instance}
            batch.create(
                ref.collection(ATTEMPTS).document(str(target)),
                {"attempt": target, "claimed_at": now} | claim,
            )
            batch.set(
                ref,
                {"status": IN_PROGRESS, "attempt": target, "updated_at": now} | claim,
                merge=True,
            )
            try:
                # retry=None, as for the first claim: a retried create would look like a loss.
                batch.commit(retry=None, timeout=self._timeout)
                return Claim(
                    ClaimVerdict.OWNED,
                    attempt=target,
                    record=existing,
                    resumes_earlier_attempt=True,
                    lease_until=lease_until,
                )
            except gexc.AlreadyExists:
                pass
            latest = self.load(ref.id)
            if latest is not None and (latest.attempt, latest.status) == (
                existing.attempt,
                existing.status,
            ):
                # Nobody moved the record on, so attempts/{target} is a claim whose owner never
                # wrote the record (left by a version that claimed in two writes). Move past it
                # once its lease is over.
                orphan = ref.collection(ATTEMPTS).document(str(target))
                data = orphan.get(retry=self._read_retry, timeout=self._timeout).to_dict() or {}
                lease = data.get("lease_until")
                if not isinstance(lease, datetime) or lease > now:
                    return Claim(ClaimVerdict.IN_PROGRESS, attempt=target, record=existing)
                target += 1
                continue
            existing = latest
            target = existing.attempt + 1 if existing else 0
        return Claim(ClaimVerdict.IN_PROGRESS, attempt=target, record=existing)

    def _is_own_write(self, outcome_ref: firestore.DocumentReference, write_id: str) -> bool:
        try:
            snapshot = outcome_ref.get(retry=self._read_retry, timeout=self._timeout)
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(_describe(exc)) from None
        return (snapshot.to_dict() or {}).get("write_id") == write_id


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
    received = data.get("received_at")
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
        received_at=received if isinstance(received, datetime) else None,
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else format(value, "f")


def _describe(exc: Exception) -> str:
    return f"Firestore {type(exc).__name__}: {str(exc)[:200]}"
