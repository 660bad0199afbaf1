"""Kill-switch values: on halts for good, off passes, and anything else halts until it is known."""

from __future__ import annotations

import pytest

from backend.execution.kill_switch import (
    KillSwitchReading,
    kill_switch_check,
    parse_switch_value,
    unreadable,
)
from backend.execution.vocabulary import CheckOutcome, Reason, is_final


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
            parse_switch_value("file:/k", "1"),
        ]
    )
    assert result.outcome is CheckOutcome.FAILED
    assert "firestore:ops/kill" in result.detail and "file:/k is on" in result.detail
    assert "env:" not in result.detail


def test_a_source_that_is_on_halts_with_a_final_refusal() -> None:
    result = kill_switch_check([parse_switch_value("file:/k", "on")])
    assert result.reason is Reason.KILL_SWITCH_ENABLED and is_final(result.reason)


@pytest.mark.parametrize(
    "reading",
    [
        unreadable("firestore:ops/kill", "unreadable: DeadlineExceeded"),
        unreadable("firestore:ops/kill", "document does not exist"),
        unreadable("file:/k", "file does not exist"),
        parse_switch_value("file:/k", ""),
        parse_switch_value("file:/k", "halt"),
    ],
)
def test_a_source_that_cannot_be_read_or_understood_halts_but_asks_for_a_retry(
    reading: KillSwitchReading,
) -> None:
    result = kill_switch_check([parse_switch_value("env:EXECUTION_HALTED", "0"), reading])
    assert result.outcome is CheckOutcome.FAILED
    assert result.reason is Reason.KILL_SWITCH_UNAVAILABLE and not is_final(result.reason)


def test_an_explicit_on_wins_over_an_unreadable_source() -> None:
    result = kill_switch_check(
        [unreadable("firestore:ops/kill", "unreadable"), parse_switch_value("env:EXEC_X", "1")]
    )
    assert result.reason is Reason.KILL_SWITCH_ENABLED


def test_no_configured_source_means_not_halted() -> None:
    assert kill_switch_check([]).outcome is CheckOutcome.PASSED
