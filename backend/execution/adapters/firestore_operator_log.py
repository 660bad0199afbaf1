"""Operator actions (halt, resume, re-enable a strategy) as an append-only Firestore collection,
``execution_operator_actions``: who, when, why and what happened, for the auditor."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from backend.execution.decisions import jsonable
from backend.execution.errors import LedgerUnavailable

ACTIONS = "execution_operator_actions"


class FirestoreOperatorLog:
    """Implements ``ports.OperatorLog``."""

    def __init__(self, client: firestore.Client, *, timeout_s: float) -> None:
        self._db = client
        self._timeout = timeout_s

    def record(self, action: dict[str, Any]) -> str:
        """Adds one action; its ``at`` stays a timestamp, every other value is JSON-safe."""
        ref = self._db.collection(ACTIONS).document()
        data = {k: (v if k == "at" else jsonable(v)) for k, v in action.items()}
        try:
            ref.create(data, retry=None, timeout=self._timeout)
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(f"Firestore {type(exc).__name__}: {str(exc)[:200]}") from None
        return str(ref.id)

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        query = (
            self._db.collection(ACTIONS)
            .order_by("at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        try:
            snapshots = list(query.stream(timeout=self._timeout))
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(f"Firestore {type(exc).__name__}: {str(exc)[:200]}") from None
        return [(snap.to_dict() or {}) | {"id": snap.id} for snap in snapshots]
