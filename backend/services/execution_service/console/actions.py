"""The operator's actions as the console offers them: what each button does, the reason rule,
the call through ``parts.operator`` (the admin endpoints' code path), the small summary of its
result that the page shows, and what to flip when there is no Firestore kill switch."""

from __future__ import annotations

import re
from typing import Any

from backend.execution.decisions import jsonable
from backend.execution.operator import ActionResult, Operator, OperatorActions
from backend.execution.settings import Settings
from backend.services.execution_service.admin import MAX_REASON
from backend.services.execution_service.console.known import Known

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# What each action button does, in words for the confirmation step.
ACTIONS = {
    "halt": ("Halt trading", "Every instance refuses every new intent within the kill-switch "
             "document's TTL."),
    "reduce-only": ("Reduce only", "Every instance accepts only orders that reduce exposure "
                    "within the kill-switch document's TTL."),
    "resume": ("Resume trading", "The kill-switch document is switched off; other sources "
               "(file, environment) still halt if they are on."),
    "enable-strategy": ("Re-enable strategy", "The strategy's repeated-execution latch is "
                        "lifted; its intents are decided again."),
}  # fmt: skip


def perform(
    operator: OperatorActions, name: str, who: Operator, reason: str, cancel: bool, strategy: str
) -> ActionResult:
    """One confirmed action, as the admin endpoints would carry it out."""
    if name == "halt":
        return operator.halt(reason=reason, who=who, cancel_working_orders=cancel, mode="halt")
    if name == "reduce-only":
        return operator.halt(
            reason=reason, who=who, cancel_working_orders=False, mode="reduce_only"
        )
    if name == "resume":
        return operator.resume(reason=reason, who=who)
    if name == "enable-strategy":
        return operator.enable_strategy(strategy, reason=reason, who=who)
    raise ValueError(f"no action {name!r}")


# The result travels in the session cookie (Post/Redirect/Get), so it is kept small: the full
# details are in the operator action's record (execution_operator_actions).
FLASHED_ORDERS = 10


def flashed(action: str, outcome: Known[ActionResult]) -> dict[str, Any]:
    result = outcome.value
    if result is None:
        return {"ok": False, "action": action, "action_id": None, "not_cancelled": [], "more": 0,
                "message": f"the action failed ({outcome.error}); check the Status page before "
                           "trying again"}  # fmt: skip
    left = [
        {k: str(v)[:120] for k, v in entry.items() if k in ("client_intent_id", "status", "why")}
        for entry in jsonable(result.details.get("not_cancelled") or [])
        if isinstance(entry, dict)
    ]
    return {"ok": result.ok, "action": action, "message": result.message,
            "action_id": result.action_id, "not_cancelled": left[:FLASHED_ORDERS],
            "more": max(0, len(left) - FLASHED_ORDERS)}  # fmt: skip


def reason_problem(reason: str) -> str | None:
    """Why a reason cannot go on the record, or None (the admin endpoints' rule)."""
    if not reason:
        return 'a "Reason" is required: say why, for the record'
    if len(reason) > MAX_REASON or _CONTROL.search(reason):
        return f"the reason must be at most {MAX_REASON} printable characters"
    return None


def fallback_switches(settings: Settings) -> list[str]:
    """What the operator must flip instead when there is no Firestore kill switch to write."""
    ways = [
        f"write 1 (halt), reduce_only or 0 (resume) as the first line of the kill-switch file "
        f"EXECUTION_HALTED_FILE={path} (on GKE: patch the execution-kill-switch ConfigMap; it "
        "reaches the pods in 60-90 s)"
        for path in settings.halted_file
    ]
    ways += [
        f"set the environment variable {name}=1 (halt) or 0 (resume) and restart every "
        "instance (it is read once at start-up)"
        for name, _ in settings.halted_env
    ]
    if not ways:
        ways.append(
            "no kill switch is configured: set AGENT_MODE=HALTED and restart every instance, "
            "and configure EXECUTION_HALTED_DOC so that the console can halt"
        )
    return ways
