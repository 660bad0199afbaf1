"""The intent's age: from its own timestamp, else Pub/Sub's, else its first receipt here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.execution.freshness import intent_age_check
from backend.execution.vocabulary import CheckOutcome, Reason

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
MAX_AGE_S = 300.0


def test_an_intent_without_timestamps_is_not_aged_on_its_first_delivery() -> None:
    result = intent_age_check(None, None, NOW, MAX_AGE_S)
    assert result.outcome is CheckOutcome.SKIPPED


def test_a_retry_of_an_intent_without_timestamps_is_as_old_as_its_first_receipt() -> None:
    first_receipt = NOW - timedelta(hours=3)
    result = intent_age_check(None, None, NOW, MAX_AGE_S, first_received_at=first_receipt)
    assert (result.outcome, result.reason) == (CheckOutcome.FAILED, Reason.INTENT_EXPIRED)
    assert result.inputs["basis"] == "first_received_at"
    assert result.inputs["age_s"] == 3 * 3600
    assert "10800s old (first_received_at)" in result.detail


def test_a_prompt_retry_of_an_intent_without_timestamps_still_passes() -> None:
    result = intent_age_check(
        None, None, NOW, MAX_AGE_S, first_received_at=NOW - timedelta(seconds=20)
    )
    assert result.outcome is CheckOutcome.PASSED
    assert result.inputs["basis"] == "first_received_at"


def test_the_intents_own_timestamps_win_over_its_first_receipt() -> None:
    old_receipt = NOW - timedelta(hours=3)
    created = intent_age_check(NOW, None, NOW, MAX_AGE_S, first_received_at=old_receipt)
    published = intent_age_check(None, NOW, NOW, MAX_AGE_S, first_received_at=old_receipt)
    assert created.inputs["basis"] == "created_at" and created.outcome is CheckOutcome.PASSED
    assert published.inputs["basis"] == "publish_time" and published.outcome is CheckOutcome.PASSED


def test_a_first_receipt_stamped_ahead_by_another_instances_clock_is_not_the_producers_fault() -> (
    None
):
    ahead = NOW + timedelta(minutes=5)
    result = intent_age_check(None, None, NOW, MAX_AGE_S, first_received_at=ahead)
    assert result.outcome is CheckOutcome.PASSED
