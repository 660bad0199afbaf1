"""Kill-switch values: on, off, and everything else means halted."""

from __future__ import annotations

import pytest

from backend.execution.kill_switch import kill_switch_check, parse_switch_value, unreadable
from backend.execution.vocabulary import CheckOutcome, Reason


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes\n", "on"])
def test_on_values_halt(raw: str) -> None:
    assert parse_switch_value("env:X", raw).halted


@pytest.mark.parametrize("raw", ["0", "false", "No", "off\n"])
def test_off_values_do_not_halt(raw: str) -> None:
    reading = parse_switch_value("env:X", raw)
    assert not reading.halted and reading.error is None


@pytest.mark.parametrize("raw", ["", "halt", "2", None])
def test_anything_unrecognised_or_missing_halts_with_an_error(raw: str | None) -> None:
    reading = parse_switch_value("file:/k", raw)
    assert reading.halted and reading.error


def test_the_check_names_every_source_that_halted() -> None:
    result = kill_switch_check(
        [
            parse_switch_value("env:EXECUTION_HALTED", "0"),
            unreadable("firestore:ops/kill", "document does not exist"),
        ]
    )
    assert result.outcome is CheckOutcome.FAILED
    assert result.reason is Reason.KILL_SWITCH_ENABLED
    assert "firestore:ops/kill" in result.detail and "env:" not in result.detail


def test_no_configured_source_means_not_halted() -> None:
    assert kill_switch_check([]).outcome is CheckOutcome.PASSED
