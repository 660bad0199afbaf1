"""Read-only access to Alpaca's order history and fills, for the fill sync and the auditors.

Returns Alpaca's JSON as received (numbers stay strings). Every call is bounded and never
retried automatically; a 429 or 5xx is a TransientError the caller can stop on and resume from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests
from alpaca.common.exceptions import APIError

from backend.execution.adapters.alpaca_client import ThreadLocalClients, describe_api_error
from backend.execution.errors import BrokerUnavailable
from backend.execution.settings import PAPER_HOST


class AlpacaReader:
    def __init__(
        self, api_key: str, secret_key: str, base_url: str = PAPER_HOST, *, timeout_s: float = 5.0
    ) -> None:
        self._clients = ThreadLocalClients(api_key, secret_key, base_url.rstrip("/"), timeout_s)

    def list_orders(
        self, *, after: datetime | None, until: datetime | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Orders of every status submitted strictly after ``after``, oldest first."""
        params: dict[str, Any] = {"status": "all", "direction": "asc", "limit": limit}
        params |= _window(after, until)
        return _as_list(self._get("/orders", params))

    def list_open_orders(
        self, *, after: datetime | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Orders the broker still has open (not final), oldest first, one page."""
        params: dict[str, Any] = {"status": "open", "direction": "asc", "limit": limit}
        params |= _window(after, None)
        return _as_list(self._get("/orders", params))

    def get_order(self, broker_order_id: str) -> dict[str, Any] | None:
        return self._one(f"/orders/{broker_order_id}", None)

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        return self._one("/orders:by_client_order_id", {"client_order_id": client_order_id})

    def _one(self, path: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
        """One order, or None when the broker does not know it (404)."""
        try:
            raw = self._clients.get().get(path, params)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise BrokerUnavailable(describe_api_error(exc), outcome_unknown=False) from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailable(type(exc).__name__, outcome_unknown=False) from exc
        return raw if isinstance(raw, dict) else None

    def list_fills(
        self,
        *,
        after: datetime | None,
        page_token: str | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> list[dict[str, Any]]:
        """FILL activities, oldest first: with transaction_time strictly after ``after``, and
        (with ``page_token``, the id of the last activity of the previous page) starting right
        after that activity. Page by token: ids order activities exactly, while many fills can
        share one transaction_time."""
        params: dict[str, Any] = {"direction": "asc", "page_size": page_size}
        if page_token is not None:
            params["page_token"] = page_token
        params |= _window(after, until)
        return _as_list(self._get("/account/activities/FILL", params))

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            return self._clients.get().get(path, params)
        except APIError as exc:
            raise BrokerUnavailable(describe_api_error(exc), outcome_unknown=False) from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailable(type(exc).__name__, outcome_unknown=False) from exc


def _window(after: datetime | None, until: datetime | None) -> dict[str, str]:
    window = {}
    if after is not None:
        window["after"] = after.isoformat()
    if until is not None:
        window["until"] = until.isoformat()
    return window


def _as_list(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BrokerUnavailable(
            f"unexpected broker listing: {str(raw)[:200]}", outcome_unknown=False
        )
    return [item for item in raw if isinstance(item, dict)]
