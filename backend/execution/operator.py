"""What an operator can do to a running gateway, through the admin endpoints and the console:
re-enable a latched strategy, halt (optionally cancelling working orders), reduce-only, resume.

Every action is recorded (who, when, why, what happened) in Firestore's
``execution_operator_actions``, and takes effect on every instance: the latch lives in Postgres,
the kill switch in a Firestore document each instance re-reads within its TTL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from backend.execution.clock import Clock
from backend.execution.ports import LatchStore, OperatorLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operator:
    """Who acts: a role (operator, auditor) and, behind IAP, the verified e-mail."""

    role: str
    email: str | None = None

    def describe(self) -> str:
        return f"{self.role}:{self.email}" if self.email else self.role


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    action_id: str | None = None


class OperatorActions:
    def __init__(
        self,
        *,
        broker_account_id: str | None,
        latches: LatchStore | None,
        actions: OperatorLog,
        clock: Clock,
    ) -> None:
        self._account = broker_account_id
        self._latches = latches
        self._actions = actions
        self._clock = clock

    def enable_strategy(self, strategy_id: str, *, reason: str, who: Operator) -> ActionResult:
        """Lifts the repeated-execution latch of a strategy (RTS 6 Art. 15(3): only a person)."""
        if self._latches is None or self._account is None:
            return ActionResult(False, "no latches here: EXEC_BROKER_ACCOUNT_ID is not set")
        lifted = self._latches.release(
            self._account, strategy_id, who=who.describe(), reason=reason
        )
        if lifted is None:
            return ActionResult(False, f"strategy {strategy_id} is not halted")
        details = {"strategy_id": strategy_id, "broker_account_id": self._account} | lifted
        action_id = self._record("enable_strategy", who, reason, details)
        return ActionResult(True, f"strategy {strategy_id} re-enabled", details, action_id)

    def latched_strategies(self) -> list[dict[str, Any]]:
        if self._latches is None or self._account is None:
            return []
        return self._latches.latches(self._account)

    def recent_actions(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._actions.recent(limit)

    def _record(self, action: str, who: Operator, reason: str, details: dict[str, Any]) -> str:
        entry = {
            "action": action,
            "who": who.describe(),
            "role": who.role,
            "email": who.email,
            "reason": reason,
            "at": self._clock.now(),
            **details,
        }
        log.warning(
            "operator %s: %s (%s)",
            who.describe(),
            action,
            reason,
            extra={"event": f"operator.{action}", "operator_action": entry},
        )
        return self._actions.record(entry)
