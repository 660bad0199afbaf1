"""Kill-switch readings and the rules for interpreting them. Pure: the adapters do the reading.

Any configured source that says "on", or that cannot be read or understood, halts trading:
an operator who flips a switch at 3 a.m. must never be defeated by a typo or a missing file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.execution.decisions import CheckResult
from backend.execution.vocabulary import CheckOutcome, Reason

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class KillSwitchReading:
    source: str  # e.g. "env:EXECUTION_HALTED", "file:/etc/kill/EXECUTION_HALTED"
    halted: bool
    value: str | None = None
    # Set when the source could not be read or parsed; such a reading always halts.
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"source": self.source, "halted": self.halted}
        if self.value is not None:
            out["value"] = self.value
        if self.error is not None:
            out["error"] = self.error
        return out


def parse_switch_value(source: str, raw: str | None) -> KillSwitchReading:
    """Interprets a textual switch value (env var or the first line of a file)."""
    if raw is None:
        return KillSwitchReading(source, halted=True, error="source is missing")
    value = raw.strip().lower()
    if value in _ON:
        return KillSwitchReading(source, halted=True, value=value)
    if value in _OFF:
        return KillSwitchReading(source, halted=False, value=value)
    shown = value[:40] or "<empty>"
    return KillSwitchReading(
        source, halted=True, value=shown, error=f"unrecognised value {shown!r}"
    )


def unreadable(source: str, error: str) -> KillSwitchReading:
    return KillSwitchReading(source, halted=True, error=error)


def kill_switch_check(readings: Sequence[KillSwitchReading]) -> CheckResult:
    """One check over every configured source; it names the sources that halted."""
    halting = [r for r in readings if r.halted]
    inputs = {"sources": [r.to_dict() for r in readings]}
    if not halting:
        return CheckResult("kill_switch", CheckOutcome.PASSED, inputs)
    detail = "; ".join(
        f"{r.source} {'unreadable, treated as on: ' + r.error if r.error else 'is on'}"
        for r in halting
    )
    return CheckResult(
        "kill_switch", CheckOutcome.FAILED, inputs, Reason.KILL_SWITCH_ENABLED, detail
    )
