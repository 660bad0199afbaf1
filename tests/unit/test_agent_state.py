"""The agent state is derived from shared inputs; ERROR backs off exponentially."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.execution.agent_state import (
    HEARTBEAT_FUTURE_SKEW_S,
    AgentInputs,
    AgentStateTracker,
    derive_state,
)
from backend.execution.vocabulary import AgentMode, AgentState

NOW = datetime(2026, 1, 5, 15, tzinfo=UTC)


def inputs(**overrides: object) -> AgentInputs:
    values: dict[str, object] = {
        "kill_switch_halted": False,
        "mode": AgentMode.LIVE,
        "heartbeat_configured": True,
        "last_heartbeat": NOW - timedelta(seconds=10),
        "heartbeat_error": None,
        "stale_threshold_s": 120.0,
    }
    return AgentInputs(**(values | overrides))  # type: ignore[arg-type]


def test_healthy_inputs_are_ready() -> None:
    assert derive_state(inputs(), NOW, None)[0] is AgentState.READY


def test_the_kill_switch_wins_over_everything() -> None:
    state, _ = derive_state(inputs(kill_switch_halted=True, heartbeat_error="x"), NOW, NOW)
    assert state is AgentState.HALTED


def test_a_stale_missing_or_unreadable_heartbeat_degrades() -> None:
    stale = inputs(last_heartbeat=NOW - timedelta(seconds=121))
    assert derive_state(stale, NOW, None)[0] is AgentState.DEGRADED
    assert derive_state(inputs(last_heartbeat=None), NOW, None)[0] is AgentState.DEGRADED
    assert derive_state(inputs(heartbeat_error="boom"), NOW, None)[0] is AgentState.DEGRADED


def test_a_heartbeat_dated_in_the_future_beyond_the_skew_counts_as_stale() -> None:
    ahead = inputs(last_heartbeat=NOW + timedelta(seconds=HEARTBEAT_FUTURE_SKEW_S + 1))
    state, why = derive_state(ahead, NOW, None)
    assert state is AgentState.DEGRADED and "future" in why
    far_ahead = inputs(last_heartbeat=NOW + timedelta(days=365))
    assert derive_state(far_ahead, NOW, None)[0] is AgentState.DEGRADED


def test_a_heartbeat_a_little_ahead_of_our_clock_is_fresh() -> None:
    slightly = inputs(last_heartbeat=NOW + timedelta(seconds=HEARTBEAT_FUTURE_SKEW_S - 1))
    assert derive_state(slightly, NOW, None)[0] is AgentState.READY


def test_two_instances_with_the_same_inputs_reach_the_same_state() -> None:
    a = AgentStateTracker(backoff_base_s=1, backoff_max_s=8)
    b = AgentStateTracker(backoff_base_s=1, backoff_max_s=8)
    shared = inputs(last_heartbeat=NOW - timedelta(seconds=500))
    assert a.observe(shared, NOW) == b.observe(shared, NOW)


def test_unexpected_errors_back_off_exponentially_up_to_the_maximum() -> None:
    tracker = AgentStateTracker(backoff_base_s=1, backoff_max_s=4)
    for _ in range(4):  # 1, 2, 4, 4 seconds
        tracker.record_unexpected_error(NOW, "Boom")
    assert tracker.observe(inputs(), NOW + timedelta(seconds=3.9))[0] is AgentState.ERROR
    assert tracker.observe(inputs(), NOW + timedelta(seconds=4.1))[0] is AgentState.READY


def test_failures_of_one_intent_alone_never_enter_error_however_often_it_comes_back() -> None:
    tracker = AgentStateTracker(backoff_base_s=60, backoff_max_s=60)
    for _ in range(5):
        tracker.record_unexpected_error(NOW, "RecursionError", "poison")
    assert tracker.observe(inputs(), NOW)[0] is AgentState.READY


def test_failures_of_two_different_intents_enter_error() -> None:
    tracker = AgentStateTracker(backoff_base_s=60, backoff_max_s=60)
    tracker.record_unexpected_error(NOW, "OSError", "a")
    tracker.record_unexpected_error(NOW, "OSError", "b")
    assert tracker.observe(inputs(), NOW)[0] is AgentState.ERROR


def test_a_success_in_between_forgets_the_failing_intent() -> None:
    tracker = AgentStateTracker(backoff_base_s=60, backoff_max_s=60)
    tracker.record_unexpected_error(NOW, "RecursionError", "poison-1")
    tracker.record_success()
    tracker.record_unexpected_error(NOW, "RecursionError", "poison-2")
    assert tracker.observe(inputs(), NOW)[0] is AgentState.READY


def test_recover_clears_the_backoff_at_once() -> None:
    tracker = AgentStateTracker(backoff_base_s=60, backoff_max_s=60)
    tracker.record_unexpected_error(NOW, "Boom")
    tracker.recover()
    assert tracker.observe(inputs(), NOW)[0] is AgentState.READY


def test_transitions_are_reported_once_per_change() -> None:
    seen: list[tuple[AgentState, AgentState]] = []
    tracker = AgentStateTracker(
        backoff_base_s=1, backoff_max_s=1, on_transition=lambda a, b, _why: seen.append((a, b))
    )
    tracker.observe(inputs(), NOW)
    tracker.observe(inputs(), NOW)
    tracker.observe(inputs(kill_switch_halted=True), NOW)
    assert seen == [(AgentState.INIT, AgentState.READY), (AgentState.READY, AgentState.HALTED)]
