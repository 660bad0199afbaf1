"""The agent gate: may this instance act on intents at all, and may it route to the broker?

Pure rules. Routing to a real broker needs AGENT_MODE=LIVE, agent state READY and the kill switch
off; dry-run only needs the kill switch off and AGENT_MODE not HALTED.
"""

from __future__ import annotations

from backend.execution.broker_facts import BrokerAccount
from backend.execution.decisions import CheckResult
from backend.execution.vocabulary import AgentMode, AgentState, CheckOutcome, Reason


def agent_mode_check(mode: AgentMode, *, dry_run: bool) -> CheckResult:
    inputs = {"agent_mode": mode.value, "dry_run": dry_run}
    if mode is AgentMode.HALTED:
        return CheckResult(
            "agent_mode",
            CheckOutcome.FAILED,
            inputs,
            Reason.AGENT_MODE_NOT_LIVE,
            "AGENT_MODE is HALTED: every intent is refused",
        )
    if not dry_run and mode not in (AgentMode.LIVE, AgentMode.REDUCING):
        return CheckResult(
            "agent_mode",
            CheckOutcome.FAILED,
            inputs,
            Reason.AGENT_MODE_NOT_LIVE,
            f"routing to the broker needs AGENT_MODE=LIVE, not {mode.value}",
        )
    return CheckResult("agent_mode", CheckOutcome.PASSED, inputs)


def agent_state_check(state: AgentState, why: str, *, dry_run: bool) -> CheckResult:
    inputs = {"agent_state": state.value, "why": why}
    if state is AgentState.READY:
        return CheckResult("agent_state", CheckOutcome.PASSED, inputs)
    if dry_run:
        return CheckResult(
            "agent_state", CheckOutcome.SKIPPED, inputs, detail="dry-run does not require READY"
        )
    return CheckResult(
        "agent_state",
        CheckOutcome.FAILED,
        inputs,
        Reason.AGENT_STATE_NOT_READY,
        f"routing to the broker needs agent state READY, not {state.value}: {why}",
    )


def account_binding_check(requested: str, bound: str | None, *, dry_run: bool) -> CheckResult:
    """Every order goes to the one account behind the broker keys, so the limits are that
    account's: an intent naming any other account, however close the spelling, is refused.
    Exact comparison on purpose: 'PAPER-1' or 'paper-1 ' would otherwise open a fresh cap."""
    inputs = {"broker_account_id": requested, "bound_account_id": bound, "dry_run": dry_run}
    if bound is None:
        # Only possible in dry-run: live routing refuses to start without a bound account.
        return CheckResult(
            "broker_account",
            CheckOutcome.SKIPPED,
            inputs,
            detail="no EXEC_BROKER_ACCOUNT_ID: dry-run accepts any account label",
        )
    if requested == bound:
        return CheckResult("broker_account", CheckOutcome.PASSED, inputs)
    return CheckResult(
        "broker_account",
        CheckOutcome.FAILED,
        inputs,
        Reason.ACCOUNT_NOT_ALLOWED,
        f"this gateway routes only for account {bound!r}, not {requested!r}",
    )


def broker_account_verified_check(
    expected: str, seen: BrokerAccount | None, error: str | None
) -> CheckResult:
    """ALPACA_ACCOUNT_NUMBER is set: the keys must belong to that account before anything is
    routed. Not knowing (the account endpoint unreadable) or a different account is retryable:
    it is a deployment fault an operator fixes, after which the intent may still execute."""
    inputs = {
        "expected_account_number": expected,
        "account_number": seen.account_number if seen else None,
    }
    if seen is None:
        return CheckResult(
            "broker_account_verified",
            CheckOutcome.ERROR,
            inputs,
            Reason.BROKER_ACCOUNT_UNVERIFIED,
            f"cannot confirm the broker keys' account: {error}",
        )
    if seen.account_number != expected:
        return CheckResult(
            "broker_account_verified",
            CheckOutcome.FAILED,
            inputs,
            Reason.BROKER_ACCOUNT_UNVERIFIED,
            f"the broker keys belong to account {seen.account_number}, not "
            f"ALPACA_ACCOUNT_NUMBER {expected}: nothing is routed until they match",
        )
    return CheckResult("broker_account_verified", CheckOutcome.PASSED, inputs)
