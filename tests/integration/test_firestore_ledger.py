"""The Firestore ledger adapter against the emulator: atomic claims, exact records, counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from backend.execution.adapters.firestore_ledger import LEDGER, FirestoreLedger
from backend.execution.clock import trading_date
from backend.execution.decisions import BrokerOrder, ExecutionResult
from backend.execution.errors import LedgerUnavailable
from backend.execution.idempotency import ClaimVerdict
from backend.execution.intent import OrderIntent
from backend.execution.vocabulary import Reason, Status
from tests.conftest import unique
from tests.support.fakes import InMemoryLedger

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def make_intent(**overrides: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "client_intent_id": unique("fs"),
        "strategy_id": "s",
        "broker_account_id": unique("acct"),
        "symbol": "SPY",
        "side": "buy",
        "qty": "0.123456789",
        "order_type": "limit",
        "limit_price": "412.17",
        "metadata": {"": "empty keys are fine as JSON", "nested": {"a": [1, 2]}},
    }
    return OrderIntent(**(fields | overrides))


def order(order_id: str, client_id: str) -> BrokerOrder:
    raw = {"id": order_id, "client_order_id": client_id, "status": "accepted", "qty": "0.123456789"}
    return BrokerOrder(order_id, client_id, "accepted", Decimal(0), None, None, None, raw)


def test_of_many_concurrent_claims_for_one_intent_exactly_one_owns_it(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()

    def claim(_: int) -> ClaimVerdict:
        return ledger.claim(intent, now=NOW, lease_s=30, source="test").verdict

    with ThreadPoolExecutor(16) as pool:
        verdicts = list(pool.map(claim, range(32)))
    assert verdicts.count(ClaimVerdict.OWNED) == 1
    assert verdicts.count(ClaimVerdict.IN_PROGRESS) == 31


def test_a_submitted_order_is_merged_into_the_ledger_with_exact_decimals(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()
    claim = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    broker_order = order(unique("ord"), intent.client_intent_id)
    result = ExecutionResult(
        Status.SUBMITTED,
        intent.client_intent_id,
        broker_order_id=broker_order.broker_order_id,
        broker_order=broker_order,
    )
    ledger.record_outcome(intent, claim, result, trading_day=trading_date(NOW), decided_at=NOW)

    entry = firestore_client.collection(LEDGER).document(broker_order.broker_order_id).get()
    data = entry.to_dict()
    assert data["qty"] == "0.123456789"
    assert data["limit_price"] == "412.17"
    assert data["client_intent_id"] == intent.client_intent_id
    assert data["trading_date"] == "2026-03-10"
    assert data["raw_broker_order"]["qty"] == "0.123456789"
    assert data["filled_qty"] == "0"
    record = ledger.load(intent.client_intent_id)
    assert record is not None and record.status == "submitted"
    assert record.broker_order_id == broker_order.broker_order_id


def test_a_final_outcome_is_replayed_and_a_retryable_one_is_claimed_again(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    refused, retry = make_intent(), make_intent()
    for intent, reason in (
        (refused, Reason.KILL_SWITCH_ENABLED),
        (retry, Reason.BROKER_UNAVAILABLE),
    ):
        claim = ledger.claim(intent, now=NOW, lease_s=30, source="test")
        result = ExecutionResult(Status.REJECTED, intent.client_intent_id, reason=reason)
        ledger.record_outcome(intent, claim, result, trading_day=trading_date(NOW), decided_at=NOW)

    replay = ledger.claim(refused, now=NOW, lease_s=30, source="test")
    assert replay.verdict is ClaimVerdict.REPLAY
    assert replay.record is not None and replay.record.reason is Reason.KILL_SWITCH_ENABLED
    again = ledger.claim(retry, now=NOW, lease_s=30, source="test")
    assert (again.verdict, again.attempt, again.resumes_earlier_attempt) == (
        ClaimVerdict.OWNED,
        2,
        True,
    )


def test_an_abandoned_claim_is_taken_over_by_exactly_one_caller_after_its_lease(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()
    ledger.claim(intent, now=NOW, lease_s=30, source="dead-process")
    later = NOW + timedelta(seconds=31)

    def claim(_: int) -> tuple[ClaimVerdict, int]:
        result = ledger.claim(intent, now=later, lease_s=30, source="test")
        return result.verdict, result.attempt

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(16)))
    owners = [o for o in outcomes if o[0] is ClaimVerdict.OWNED]
    assert owners == [(ClaimVerdict.OWNED, 2)]
    still_live = ledger.claim(intent, now=NOW + timedelta(seconds=40), lease_s=30, source="t")
    assert still_live.verdict is ClaimVerdict.IN_PROGRESS


def outcome(intent: OrderIntent, status: Status, reason: Reason | None = None) -> ExecutionResult:
    return ExecutionResult(status, intent.client_intent_id, reason=reason)


def test_a_late_outcome_from_an_attempt_that_was_taken_over_is_never_what_is_replayed(
    firestore_client: Any,
) -> None:
    slow, fast = (FirestoreLedger(firestore_client, timeout_s=5, instance_id=i) for i in "ab")
    intent = make_intent()
    first = slow.claim(intent, now=NOW, lease_s=30, source="test")
    # Attempt 1 stalls past its lease; attempt 2 takes over, places the order and records it.
    later = NOW + timedelta(seconds=31)
    second = fast.claim(intent, now=later, lease_s=30, source="test")
    assert (second.verdict, second.attempt) == (ClaimVerdict.OWNED, 2)
    broker_order = order(unique("ord"), intent.client_intent_id)
    placed = ExecutionResult(
        Status.SUBMITTED,
        intent.client_intent_id,
        broker_order_id=broker_order.broker_order_id,
        broker_order=broker_order,
    )
    fast.record_outcome(intent, second, placed, trading_day=NOW.date(), decided_at=later)

    # Attempt 1 wakes up and writes its (now stale) refusal after attempt 2 did.
    stale = outcome(intent, Status.REJECTED, Reason.BROKER_REJECTED)
    with pytest.raises(LedgerUnavailable, match="taken over"):
        slow.record_outcome(intent, first, stale, trading_day=NOW.date(), decided_at=later)

    record = fast.load(intent.client_intent_id)
    assert record is not None
    assert (record.status, record.attempt, record.reason) == ("submitted", 2, None)
    assert record.broker_order_id == broker_order.broker_order_id
    replay = fast.claim(intent, now=later + timedelta(seconds=1), lease_s=30, source="test")
    assert replay.verdict is ClaimVerdict.REPLAY
    assert replay.record is not None and replay.record.status == "submitted"
    outcomes = intents_ref(firestore_client, intent).collection("outcomes")
    assert outcomes.document("1").get().to_dict()["status"] == "abandoned"
    assert outcomes.document("2").get().to_dict()["status"] == "submitted"


def test_a_late_outcome_cannot_land_while_the_attempt_that_took_over_is_still_running(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()
    first = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    ledger.claim(intent, now=NOW + timedelta(seconds=31), lease_s=30, source="test")

    stale = outcome(intent, Status.REJECTED, Reason.BROKER_REJECTED)
    with pytest.raises(LedgerUnavailable):
        ledger.record_outcome(intent, first, stale, trading_day=NOW.date(), decided_at=NOW)

    record = ledger.load(intent.client_intent_id)
    assert record is not None and (record.status, record.attempt) == ("in_progress", 2)
    duplicate = ledger.claim(intent, now=NOW + timedelta(seconds=32), lease_s=30, source="t")
    assert duplicate.verdict is ClaimVerdict.IN_PROGRESS


def test_an_attempt_that_records_before_its_lease_is_taken_over_keeps_its_outcome(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()
    first = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    done = outcome(intent, Status.REJECTED, Reason.MAX_DAILY_TRADES_EXCEEDED)
    ledger.record_outcome(intent, first, done, trading_day=NOW.date(), decided_at=NOW)

    # A delivery after the lease finds a final outcome: it replays it, and takes nothing over.
    late = ledger.claim(intent, now=NOW + timedelta(seconds=31), lease_s=30, source="test")
    assert late.verdict is ClaimVerdict.REPLAY
    assert late.record is not None and late.record.reason is Reason.MAX_DAILY_TRADES_EXCEEDED


def test_each_attempt_keeps_its_own_outcome_and_the_record_shows_the_latest(
    firestore_client: Any,
) -> None:
    ledger = FirestoreLedger(firestore_client, timeout_s=5)
    intent = make_intent()
    first = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    busy = outcome(intent, Status.REJECTED, Reason.BROKER_UNAVAILABLE)
    ledger.record_outcome(intent, first, busy, trading_day=NOW.date(), decided_at=NOW)
    second = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    dry = outcome(intent, Status.DRY_RUN)
    ledger.record_outcome(intent, second, dry, trading_day=NOW.date(), decided_at=NOW)

    outcomes = intents_ref(firestore_client, intent).collection("outcomes")
    assert outcomes.document("1").get().to_dict()["status"] == "retry_pending"
    assert outcomes.document("2").get().to_dict()["status"] == "dry_run"
    record = ledger.load(intent.client_intent_id)
    assert record is not None and (record.status, record.attempt) == ("dry_run", 2)
    assert record.received_at == NOW


def test_a_batch_whose_first_write_is_a_failing_create_writes_nothing(
    firestore_client: Any,
) -> None:
    # The fence the ledger relies on: atomic on Firestore; in order, stopping at the first
    # failed write, on the emulator. Either way the writes behind the create never land.
    taken = firestore_client.collection("fence-test").document(unique("taken"))
    taken.create({"n": 1})
    behind = firestore_client.collection("fence-test").document(unique("behind"))
    batch = firestore_client.batch()
    batch.create(taken, {"n": 2})
    batch.set(behind, {"n": 3}, merge=True)
    with pytest.raises(gexc.AlreadyExists):
        batch.commit()
    assert not behind.get().exists
    assert taken.get().to_dict() == {"n": 1}


def intents_ref(firestore_client: Any, intent: OrderIntent) -> Any:
    return firestore_client.collection("execution_intents").document(intent.client_intent_id)


@pytest.mark.parametrize("kind", ["firestore", "in-memory fake"])
def test_the_fake_ledger_keeps_the_same_contract_for_stale_attempts_as_firestore(
    firestore_client: Any, kind: str
) -> None:
    ledger: Any = (
        FirestoreLedger(firestore_client, timeout_s=5) if kind == "firestore" else InMemoryLedger()
    )
    intent = make_intent()
    first = ledger.claim(intent, now=NOW, lease_s=30, source="test")
    later = NOW + timedelta(seconds=31)
    second = ledger.claim(intent, now=later, lease_s=30, source="test")
    assert (second.verdict, second.attempt, second.resumes_earlier_attempt) == (
        ClaimVerdict.OWNED,
        2,
        True,
    )
    assert second.record is not None and second.record.received_at == NOW
    ledger.record_outcome(
        intent, second, outcome(intent, Status.DRY_RUN), trading_day=NOW.date(), decided_at=later
    )
    with pytest.raises(LedgerUnavailable):
        ledger.record_outcome(
            intent,
            first,
            outcome(intent, Status.REJECTED, Reason.BROKER_REJECTED),
            trading_day=NOW.date(),
            decided_at=later,
        )
    with pytest.raises(LedgerUnavailable):  # an attempt ends once, even its own second write
        ledger.record_outcome(
            intent,
            second,
            outcome(intent, Status.DRY_RUN),
            trading_day=NOW.date(),
            decided_at=later,
        )
    record = ledger.load(intent.client_intent_id)
    assert (record.status, record.attempt, record.received_at) == ("dry_run", 2, NOW)
