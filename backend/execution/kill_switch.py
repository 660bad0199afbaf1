"""Kill-switch readings and the rules for interpreting them. Pure: the adapters do the reading.

Every configured source counts, and any one that halts stops trading. A source halts in two
different ways, and the difference decides what happens to the intent:

- it says **on**: an explicit policy decision, so the refusal is final (``kill_switch_enabled``,
  recorded, acked on Pub/Sub);
- it **cannot be read or understood** (a failed read, a missing file or document, a value that
  is neither on nor off): trading still halts, but the gateway cannot tell what the operator
  wants, so the refusal is retryable (``kill_switch_unavailable``) and the intent is decided
  again once the source answers on or off, within the intent's maximum age.

When one source is on and another cannot be read, the explicit "on" wins: the refusal is final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.execution.decisions import CheckResult
from backend.execution.vocabulary import CheckOutcome, Reason

ON_VALUES = frozenset({"1", "true", "yes", "on"})
OFF_VALUES = frozenset({"0", "false", "no", "off"})
# Not halted, but only orders that reduce exposure may pass (the reduce_only control).
REDUCE_ONLY_VALUES = frozenset({"reduce_only"})


@dataclass(frozen=True)
class KillSwitchReading:
    source: str  # e.g. "env:EXECUTION_HALTED", "file:/etc/kill/EXECUTION_HALTED"
    halted: bool
    value: str | None = None
    # Set when the source could not be read or understood; such a reading always halts.
    error: str | None = None
    # The source says "reduce_only": trading goes on, but only to reduce exposure.
    reduce_only: bool = False

    @property
    def is_on(self) -> bool:
        """The source explicitly says "halt" (as opposed to: it could not be read)."""
        return self.halted and self.error is None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"source": self.source, "halted": self.halted}
        if self.value is not None:
            out["value"] = self.value
        if self.error is not None:
            out["error"] = self.error
        if self.reduce_only:
            out["reduce_only"] = True
        return out


def is_switch_value(raw: str) -> bool:
    """True for a value the switch understands (on or off, trimmed, any case)."""
    return raw.strip().lower() in ON_VALUES | OFF_VALUES | REDUCE_ONLY_VALUES


def parse_switch_value(source: str, raw: str | None) -> KillSwitchReading:
    """Interprets a textual switch value (env var or the first line of a file)."""
    if raw is None:
        return KillSwitchReading(source, halted=True, error="source is missing")
    value = raw.strip().lower()
    if value in ON_VALUES:
        return KillSwitchReading(source, halted=True, value=value)
    if value in OFF_VALUES:
        return KillSwitchReading(source, halted=False, value=value)
    if value in REDUCE_ONLY_VALUES:
        return KillSwitchReading(source, halted=False, value=value, reduce_only=True)
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
        f"{r.source} is on"
        if r.is_on
        else f"{r.source} is unreadable ({r.error}): halted until it reads on or off"
        for r in halting
    )
    explicit = any(r.is_on for r in halting)
    reason = Reason.KILL_SWITCH_ENABLED if explicit else Reason.KILL_SWITCH_UNAVAILABLE
    return CheckResult("kill_switch", CheckOutcome.FAILED, inputs, reason, detail)
