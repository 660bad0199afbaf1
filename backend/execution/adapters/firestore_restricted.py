"""The restricted-symbol list kept in Firestore (EXEC_RESTRICTED_DOC, field ``symbols``).

Compliance edits one document; every instance sees it within EXECUTION_HALTED_DOC_TTL_S. A
document that cannot be read, is missing, or whose ``symbols`` is not a list of strings makes
the list unreadable, and the symbol_restricted control then refuses (fail closed).
"""

from __future__ import annotations

from backend.execution.adapters.firestore_documents import CachedDocument
from backend.execution.errors import RiskDataUnavailable, TransientError


class FirestoreRestrictedList:
    """Implements ``ports.RestrictedList``."""

    def __init__(self, document: CachedDocument) -> None:
        self._document = document
        self.source = f"firestore:{document.path}"

    def symbols(self) -> frozenset[str]:
        try:
            data = self._document.get()
        except TransientError as exc:
            raise RiskDataUnavailable(f"{self.source} unreadable: {exc}") from None
        if data is None:
            raise RiskDataUnavailable(f"{self.source} does not exist")
        symbols = data.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise RiskDataUnavailable(f"{self.source}: field 'symbols' is not a list of strings")
        return frozenset(s.strip().upper() for s in symbols if s.strip())
