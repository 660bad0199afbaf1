"""The Firestore ledger adapter against the emulator: atomic claims, exact records, counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.adapters.firestore_ledger import LEDGER, FirestoreLedger
from backend.execution.clock import trading_date
from backend.execution.decisions import BrokerOrder, ExecutionResult
from backend.execution.idempotency import ClaimVerdict
from backend.execution.intent import OrderIntent
from backend.execution.vocabulary import Reason, Status
from tests.conftest import unique

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
