"""Who may use the console: two keys, two roles, a signed session cookie, CSRF, and backoff.

- The operator signs in with EXEC_AGENT_ADMIN_KEY, the auditor with EXEC_AUDITOR_KEY. Keys are
  compared in constant time and never stored in the session or shown on a page.
- The session is Flask's signed cookie (itsdangerous, HMAC-SHA1 over the payload and a
  timestamp). Its secret is derived from both keys, so every instance agrees on it without a
  third secret to provision, and rotating either key signs everyone out. The payload holds the
  role, the IAP e-mail (if any), a CSRF token and the sign-in time; nothing secret.
- A session lasts EXEC_CONSOLE_SESSION_HOURS from sign-in, not from the last request: the
  cookie is not refreshed on each request, and the sign-in time is checked as well.
- Wrong keys are slowed per client: after FREE_TRIES failures each further try must wait twice
  as long as the last (up to MAX_WAIT_S), and a try inside the wait is refused without looking
  at the key. The count lives in the process (each gunicorn worker and instance has its own).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

OPERATOR, AUDITOR = "operator", "auditor"
ROLES = (OPERATOR, AUDITOR)
FREE_TRIES = 3
BASE_WAIT_S = 1.0
MAX_WAIT_S = 60.0
FORGET_AFTER_S = 900.0
MAX_CLIENTS = 10_000


class Keys:
    def __init__(self, admin_key: str, auditor_key: str | None) -> None:
        self._keys = [(OPERATOR, admin_key.encode())]
        if auditor_key:
            self._keys.append((AUDITOR, auditor_key.encode()))

    def role_of(self, offered: str) -> str | None:
        """The role this key signs in as, or None. Every key is compared, whatever matched."""
        given = offered.encode()
        found = None
        for role, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = role
        return found

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self._keys)


def session_secret(admin_key: str, auditor_key: str | None) -> bytes:
    """The cookie-signing secret: a one-way function of both keys (never either key itself)."""
    label = b"execution-gateway console session v1|" + (auditor_key or "").encode()
    return hmac.new(admin_key.encode(), label, hashlib.sha256).digest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(offered: str | None, expected: str | None) -> bool:
    if not offered or not expected:
        return False
    return hmac.compare_digest(offered.encode(), expected.encode())


@dataclass
class _Failures:
    count: int
    last: float
    wait_until: float


class Backoff:
    """Per-client slowing of wrong keys (bounded memory: the oldest clients are forgotten)."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """How long this client must wait before a key is looked at again (0: now)."""
        with self._lock:
            entry = self._live(client)
            return max(0.0, entry.wait_until - self._monotonic()) if entry else 0.0

    def failed(self, client: str) -> float:
        """Counts a wrong key; returns the wait imposed before the next try."""
        now = self._monotonic()
        with self._lock:
            entry = self._live(client) or _Failures(0, now, now)
            entry.count += 1
            entry.last = now
            over = entry.count - FREE_TRIES
            wait = 0.0 if over < 0 else min(MAX_WAIT_S, BASE_WAIT_S * 2**over)
            entry.wait_until = now + wait
            self._clients[client] = entry
            self._clients.move_to_end(client)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _live(self, client: str) -> _Failures | None:
        entry = self._clients.get(client)
        if entry is not None and self._monotonic() - entry.last > FORGET_AFTER_S:
            del self._clients[client]
            return None
        return entry
