"""The agent state machine: INIT, READY, DEGRADED, HALTED, ERROR.

The state is derived, not stored: a pure function of the shared inputs (kill switch, agent
mode, market-data heartbeat) and of this instance's own error backoff. So every instance that
sees the same kill switch and heartbeat reaches the same state, and nothing has to be
synchronised between them. The tracker only remembers the last state (to log transitions) and
the local backoff after unexpected exceptions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.execution.vocabulary import AgentMode, AgentState

# A heartbeat dated further ahead than this is not trusted: a writer with a fast clock (or a
# mistyped timestamp) would otherwise keep the agent READY long after market data stopped.
# Hosts kept by NTP differ by milliseconds; 5 s leaves room for a writer's coarse clock.
HEARTBEAT_FUTURE_SKEW_S = 5.0


@dataclass(frozen=True)
class AgentInputs:
    kill_switch_halted: bool
    mode: AgentMode
    heartbeat_configured: bool
    last_heartbeat: datetime | None
    heartbeat_error: str | None
    stale_threshold_s: float


def derive_state(
    inputs: AgentInputs, now: datetime, error_until: datetime | None
) -> tuple[AgentState, str]:
    """The state and a one-line reason, in priority order: HALTED, ERROR, DEGRADED, READY."""
    if inputs.kill_switch_halted:
        return AgentState.HALTED, "kill switch is on (or a configured source is unreadable)"
    if inputs.mode is AgentMode.HALTED:
        return AgentState.HALTED, "AGENT_MODE is HALTED"
    if error_until is not None and now < error_until:
        wait = (error_until - now).total_seconds()
        return AgentState.ERROR, f"backing off {wait:.1f}s after an unexpected error"
    if inputs.heartbeat_configured:
        if inputs.heartbeat_error is not None:
            return (
                AgentState.DEGRADED,
                f"market-data heartbeat unreadable: {inputs.heartbeat_error}",
            )
        if inputs.last_heartbeat is None:
            return AgentState.DEGRADED, "market-data heartbeat has never been recorded"
        age = (now - inputs.last_heartbeat).total_seconds()
        if age < -HEARTBEAT_FUTURE_SKEW_S:
            return (
                AgentState.DEGRADED,
                f"market-data heartbeat is dated {-age:.0f}s in the future "
                f"(more than {HEARTBEAT_FUTURE_SKEW_S:g}s of clock skew): not trusted",
            )
        if age > inputs.stale_threshold_s:
            return (
                AgentState.DEGRADED,
                f"market-data heartbeat is {age:.0f}s old (threshold {inputs.stale_threshold_s:g}s)",
            )
    return AgentState.READY, "all inputs healthy"


TransitionListener = Callable[[AgentState, AgentState, str], None]


class AgentStateTracker:
    """Per-process memory for the state machine: last state, and error backoff. Thread-safe."""

    def __init__(
        self,
        *,
        backoff_base_s: float,
        backoff_max_s: float,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._on_transition = on_transition
        self._state = AgentState.INIT
        self._why = "no intent evaluated yet"
        self._consecutive_errors = 0
        self._error_until: datetime | None = None
        # The one intent that has failed since the last success, while only one has.
        self._failing_intent: str | None = None

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def why(self) -> str:
        return self._why

    def observe(self, inputs: AgentInputs, now: datetime) -> tuple[AgentState, str]:
        with self._lock:
            state, why = derive_state(inputs, now, self._error_until)
            self._move_to(state, why)
            return state, why

    def record_unexpected_error(
        self, now: datetime, error: str, intent_id: str | None = None
    ) -> None:
        """Notes an unexpected exception, and enters ERROR if it looks like the service's.

        ERROR is kept for failures of the service itself, and those hit every intent. As long
        as every failure since the last success came from one and the same intent, the cause
        may be that intent's own data: one poison intent, however often it is redelivered,
        must not stop the valid intents behind it. A failure on a second, different intent
        (or one not tied to an intent) starts the backoff.
        """
        with self._lock:
            if intent_id is not None and self._failing_intent in (None, intent_id):
                self._failing_intent = intent_id
                return
            self._consecutive_errors += 1
            delay = min(self._max, self._base * 2 ** (self._consecutive_errors - 1))
            self._error_until = now + timedelta(seconds=delay)
            self._move_to(AgentState.ERROR, f"unexpected error ({error}); backing off {delay:g}s")

    def record_success(self) -> None:
        with self._lock:
            self._consecutive_errors = 0
            self._failing_intent = None

    def recover(self) -> None:
        """Operator override: forget the error backoff now (``POST /recover``)."""
        with self._lock:
            self._consecutive_errors = 0
            self._error_until = None
            self._failing_intent = None
            if self._state is AgentState.ERROR:
                self._move_to(AgentState.INIT, "recovered by operator; re-evaluated on next intent")

    def _move_to(self, state: AgentState, why: str) -> None:
        previous = self._state
        self._state, self._why = state, why
        if previous is not state and self._on_transition is not None:
            self._on_transition(previous, state, why)
