"""Read-only Firestore reads for the console that the audit toolkit does not already make: the
fill sync's state document and each order's event history. Every call is bounded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from backend.execution.adapters.firestore_fill_store import EVENTS, SYNC_STATE
from backend.execution.adapters.firestore_ledger import LEDGER
from backend.execution.errors import LedgerUnavailable


class FirestoreConsoleReads:
    def __init__(
        self, client: firestore.Client, *, timeout_s: float, sync_state_path: str = SYNC_STATE
    ) -> None:
        self._db = client
        self._timeout = timeout_s
        self._retry = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=timeout_s)
        self._sync_state_path = sync_state_path

    def sync_state(self) -> dict[str, Any] | None:
        """The fill sync's cursor document of the bound account (``updated_at``, ``last_run``);
        None if it never ran."""
        ref = self._db.document(self._sync_state_path)
        snapshot = self._call(lambda: ref.get(retry=self._retry, timeout=self._timeout))
        return snapshot.to_dict() if snapshot.exists else None

    def trade_of_intent(self, client_intent_id: str) -> dict[str, Any] | None:
        """The ledger entry of an intent's order (an equality query: no composite index)."""
        query = (
            self._db.collection(LEDGER)
            .where(filter=FieldFilter("client_intent_id", "==", client_intent_id))
            .limit(2)
        )
        snapshots = self._call(lambda: list(query.get(retry=self._retry, timeout=self._timeout)))
        return (snapshots[0].to_dict() or {}) if snapshots else None

    def events_of(self, broker_order_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Each order's ``events`` subcollection, as stored (one query per order)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for order_id in dict.fromkeys(broker_order_ids):
            if not order_id or "/" in order_id:
                continue
            events = self._db.collection(LEDGER).document(order_id).collection(EVENTS)
            snapshots = self._call(
                lambda q=events: list(q.get(retry=self._retry, timeout=self._timeout))
            )
            found[order_id] = [(s.to_dict() or {}) | {"id": s.id} for s in snapshots]
        return found

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(f"Firestore {type(exc).__name__}: {str(exc)[:200]}") from None
