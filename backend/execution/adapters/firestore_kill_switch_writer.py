"""Writes the Firestore kill-switch document (``POST /halt``, ``POST /resume``, the console).

The document is what every instance reads (EXECUTION_HALTED_DOC, re-read within its TTL), so a
halt written here is seen everywhere; this process drops its own cached copy at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from google.api_core import exceptions as gexc
from google.cloud import firestore

from backend.execution.errors import LedgerUnavailable

# state -> the value of the document's ``enabled`` field, as FirestoreKillSwitch reads it.
ENABLED = {"halted": True, "reduce_only": "reduce_only", "off": False}


class FirestoreKillSwitchWriter:
    """Implements ``ports.KillSwitchWriter``."""

    def __init__(
        self,
        client: firestore.Client,
        path: str,
        *,
        timeout_s: float,
        on_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self._ref = client.document(path)
        self._timeout = timeout_s
        self._on_written = on_written

    def set(self, state: str, *, reason: str, who: str, at: datetime) -> None:
        document = {"enabled": ENABLED[state], "reason": reason, "by": who, "at": at}
        try:
            # retry=None: a set is idempotent, but a halt must be known to have landed or not.
            self._ref.set(document, retry=None, timeout=self._timeout)
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(
                f"kill-switch document {self.path}: {type(exc).__name__}"
            ) from None
        self._on_written()
