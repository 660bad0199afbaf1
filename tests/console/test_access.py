"""The console's keys, session secret and backoff, as pure rules."""

from __future__ import annotations

from backend.services.execution_service.console.access import (
    AUDITOR,
    FREE_TRIES,
    MAX_WAIT_S,
    OPERATOR,
    Backoff,
    Keys,
    same_token,
    session_secret,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_each_key_signs_in_as_its_role_and_anything_else_as_nobody() -> None:
    keys = Keys("admin-key", "auditor-key")
    assert keys.role_of("admin-key") == OPERATOR
    assert keys.role_of("auditor-key") == AUDITOR
    assert keys.role_of("admin-key ") is None
    assert keys.role_of("") is None
    assert keys.roles == (OPERATOR, AUDITOR)


def test_without_an_auditor_key_there_is_no_auditor_role() -> None:
    keys = Keys("admin-key", None)
    assert keys.roles == (OPERATOR,)
    assert keys.role_of("") is None


def test_the_session_secret_is_neither_key_and_changes_when_either_key_does() -> None:
    secret = session_secret("admin-key", "auditor-key")
    assert b"admin-key" not in secret and b"auditor-key" not in secret
    assert secret == session_secret("admin-key", "auditor-key")
    assert secret != session_secret("admin-key2", "auditor-key")
    assert secret != session_secret("admin-key", "auditor-key2")
    assert secret != session_secret("admin-key", None)


def test_csrf_tokens_must_be_present_and_equal() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd")
    assert not same_token("", "")
    assert not same_token(None, "abc")


def test_the_first_wrong_keys_are_free_then_each_wait_doubles_up_to_the_cap() -> None:
    clock = Clock()
    backoff = Backoff(monotonic=clock)
    waits = [backoff.failed("1.2.3.4") for _ in range(FREE_TRIES + 8)]
    assert waits[: FREE_TRIES - 1] == [0.0] * (FREE_TRIES - 1)
    assert waits[FREE_TRIES - 1 : FREE_TRIES + 3] == [1.0, 2.0, 4.0, 8.0]
    assert waits[-1] == MAX_WAIT_S
    assert backoff.wait_s("1.2.3.4") == MAX_WAIT_S
    clock.t += 10
    assert backoff.wait_s("1.2.3.4") == MAX_WAIT_S - 10


def test_backoff_is_per_client_and_a_good_key_clears_it() -> None:
    backoff = Backoff(monotonic=Clock())
    for _ in range(FREE_TRIES + 1):
        backoff.failed("attacker")
    assert backoff.wait_s("attacker") > 0
    assert backoff.wait_s("operator") == 0
    backoff.succeeded("attacker")
    assert backoff.wait_s("attacker") == 0


def test_old_failures_are_forgotten() -> None:
    clock = Clock()
    backoff = Backoff(monotonic=clock)
    for _ in range(FREE_TRIES + 2):
        backoff.failed("c")
    clock.t += 3600
    assert backoff.wait_s("c") == 0
    assert backoff.failed("c") == 0.0
