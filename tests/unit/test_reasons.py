"""Every reason is declared once, with its finality and HTTP mapping, and every answer reads it."""

from __future__ import annotations

import pytest

from backend.execution.decisions import ExecutionResult
from backend.execution.vocabulary import REASON_RULES, RETRYABLE_REASONS, Reason, Status, is_final
from backend.services.execution_service import contract


def test_every_reason_has_exactly_one_rule() -> None:
    assert set(REASON_RULES) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_each_reason_maps_consistently_on_every_path(reason: Reason) -> None:
    rule = REASON_RULES[reason]
    result = ExecutionResult(Status.REJECTED, "i", reason=reason, retry_after_s=3)
    assert contract.execute_status(result) == rule.http_status
    assert contract.push_status(result) == (200 if rule.final else 503)
    assert result.retryable is (not rule.final) is (reason in RETRYABLE_REASONS)
    assert is_final(reason) is rule.final
    assert result.to_dict()["retryable"] is (not rule.final)
    assert bool(contract.retry_after(result)) is (not rule.final)


@pytest.mark.parametrize("reason", list(Reason))
def test_a_final_refusal_is_never_a_server_error_and_a_retryable_one_never_a_client_error(
    reason: Reason,
) -> None:
    rule = REASON_RULES[reason]
    if rule.final:
        assert 400 <= rule.http_status < 500
    else:
        assert rule.http_status in (409, 429, 503)


def test_an_accepted_outcome_is_final_and_acked() -> None:
    result = ExecutionResult(Status.SUBMITTED, "i")
    assert is_final(None)
    assert contract.execute_status(result) == contract.push_status(result) == 200
