"""The console's action rules: the reason on record, and what to flip without a document."""

from __future__ import annotations

from backend.execution.operator import ActionResult
from backend.execution.settings import Settings
from backend.services.execution_service.console.actions import (
    fallback_switches,
    flashed,
    reason_problem,
)
from backend.services.execution_service.console.known import Known


def test_a_reason_is_required_printable_and_at_most_500_characters() -> None:
    assert reason_problem("drill at 3 a.m.") is None
    assert reason_problem("") == 'a "Reason" is required: say why, for the record'
    assert reason_problem("x" * 501) is not None
    assert reason_problem("two\nlines") is not None


def test_without_a_document_the_file_and_the_variable_to_flip_are_named() -> None:
    settings = Settings.from_env(
        {"EXECUTION_HALTED_FILE": "/etc/kill/EXECUTION_HALTED", "EXECUTION_HALTED": "0"}
    )
    ways = fallback_switches(settings)
    assert any("EXECUTION_HALTED_FILE=/etc/kill/EXECUTION_HALTED" in way for way in ways)
    assert any("EXECUTION_HALTED=1" in way and "restart" in way for way in ways)


def test_without_any_switch_the_page_says_agent_mode_halted_and_a_restart() -> None:
    (way,) = fallback_switches(Settings.from_env({}))
    assert "AGENT_MODE=HALTED" in way and "EXECUTION_HALTED_DOC" in way


def test_the_summary_of_a_result_lists_the_orders_left_working_and_stays_small() -> None:
    left = [{"client_intent_id": f"i{n}", "status": "unavailable", "why": "503"} for n in range(25)]
    result = ActionResult(True, "halted; 3 cancelled, 25 not", {"not_cancelled": left}, "a1")
    shown = flashed("Halt trading", Known(value=result))
    assert (shown["ok"], shown["action_id"], len(shown["not_cancelled"]), shown["more"]) == (
        True, "a1", 10, 15,
    )  # fmt: skip


def test_an_action_that_raised_is_shown_as_not_done() -> None:
    shown = flashed("Resume trading", Known(error="LedgerUnavailable: deadline"))
    assert shown["ok"] is False and "LedgerUnavailable" in shown["message"]
