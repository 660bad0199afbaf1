"""alpaca-py's clients, made safe to share: one client per thread, bounded, no retries.

alpaca-py sets no request timeout, retries 429/504 (POST included) and shares one
``requests.Session`` per client, which requests does not promise to be thread-safe. The market
data client also parses prices exactly (see ``ThreadLocalDataClients``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.historical.stock import StockHistoricalDataClient
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


class _PerThread:
    """One client per thread, built on first use by ``_build`` and tamed (bounded, no retries)."""

    def __init__(self, api_key: str, secret_key: str, base_url: str, timeout_s: float) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._build()
            self._local.client = client
        return client

    def _build(self) -> RESTClient:
        raise NotImplementedError


class ThreadLocalClients(_PerThread):
    def get(self) -> TradingClient:
        client: TradingClient = self._client()
        return client

    def _build(self) -> RESTClient:
        client = TradingClient(
            self._api_key,
            self._secret_key,
            paper=not is_live_host(self._base_url),
            url_override=self._base_url,
        )
        _tame(client, _BoundedSession(self._timeout_s))
        return client


class _ExactJsonSession(_BoundedSession):
    """A bounded session whose responses parse JSON numbers with a fraction as Decimal.

    The market-data API sends prices as JSON numbers, and alpaca-py's ``RESTClient.get`` returns
    ``response.json()``: floats, so 187.25000000000000001 would arrive as 187.25. Swapping the
    parser here keeps alpaca-py in charge of the URL, the auth headers and the error handling.
    """

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, url, *args, **kwargs)
        body = response.content
        response.json = lambda **_: json.loads(body, parse_float=Decimal)
        return response


class ThreadLocalDataClients(_PerThread):
    """alpaca-py's StockHistoricalDataClient for raw reads: one per thread, bounded, no
    retries, and ``get()`` returns prices as Decimal. Never use its model methods
    (``get_stock_latest_trade`` and the like): their models hold prices as float."""

    def get(self) -> StockHistoricalDataClient:
        client: StockHistoricalDataClient = self._client()
        return client

    def _build(self) -> RESTClient:
        client = StockHistoricalDataClient(
            self._api_key, self._secret_key, url_override=self._base_url
        )
        _tame(client, _ExactJsonSession(self._timeout_s))
        return client


def _tame(client: RESTClient, session: requests.Session) -> None:
    # alpaca-py exposes no switch for these; the attributes are its retry loop's inputs.
    client._retry = 0
    client._retry_codes = []
    client._session = session


@contextmanager
def read_errors_as(error: Callable[[str], Exception], doing: str) -> Iterator[None]:
    """Translates what a read through alpaca-py can raise into ``error(message)``: an HTTP
    error status, a malformed body, a timeout or a broken connection. Reads only: for an order
    POST each of these means something different (see AlpacaBroker)."""
    try:
        yield
    except APIError as exc:
        raise error(f"{doing}: {describe_api_error(exc)}") from None
    except ValueError as exc:  # malformed JSON (requests' JSONDecodeError is one too)
        raise error(f"{doing}: malformed response ({exc})") from None
    except requests.exceptions.Timeout:
        raise error(f"{doing}: no answer within the timeout") from None
    except requests.exceptions.RequestException as exc:
        raise error(f"{doing}: {type(exc).__name__}") from None


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
