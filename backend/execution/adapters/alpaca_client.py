"""alpaca-py's TradingClient, made safe to share: one client per thread, bounded, no retries.

alpaca-py sets no request timeout, retries 429/504 (POST included) and shares one
``requests.Session`` per client, which requests does not promise to be thread-safe.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from backend.execution.settings import is_live_host


class _BoundedSession(requests.Session):
    """A session whose every request carries a connect and read timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout = (timeout_s, timeout_s)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


class ThreadLocalClients:
    def __init__(self, api_key: str, secret_key: str, base_url: str, timeout_s: float) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._local = threading.local()

    def get(self) -> TradingClient:
        client: TradingClient | None = getattr(self._local, "client", None)
        if client is None:
            client = TradingClient(
                self._api_key,
                self._secret_key,
                paper=not is_live_host(self._base_url),
                url_override=self._base_url,
            )
            # alpaca-py exposes no switch for these; the attributes are its retry loop's inputs.
            client._retry = 0
            client._retry_codes = []
            client._session = _BoundedSession(self._timeout_s)
            self._local.client = client
        return client


def api_error_body(exc: APIError) -> dict[str, Any]:
    # APIError.code/.message raise on a non-JSON body (an HTML error page from a proxy).
    try:
        parsed = json.loads(str(exc))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def describe_api_error(exc: APIError) -> str:
    message = api_error_body(exc).get("message") or str(exc)[:200]
    return f"HTTP {exc.status_code}: {message}"
