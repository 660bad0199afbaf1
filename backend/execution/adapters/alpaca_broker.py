"""Alpaca through alpaca-py's ``TradingClient``, made safe for an order gateway.

alpaca-py sets no request timeout, retries 429/504 (POST included) and shares one
``requests.Session`` per client. Here every call is bounded, automatic retries are off (a
retried POST whose first attempt succeeded would come back as a duplicate, or worse), and each
thread gets its own client. Orders are sent as raw JSON with decimal strings: alpaca-py's request
models would turn quantities into floats.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from backend.execution.adapters.alpaca_client import (
    ThreadLocalClients,
    api_error_body,
    describe_api_error,
)
from backend.execution.broker_facts import CancelOutcome, CancelStatus
from backend.execution.decisions import BrokerOrder
from backend.execution.errors import (
    BrokerAuthFailed,
    BrokerRejected,
    BrokerUnavailable,
    ConfigurationError,
    DuplicateClientOrderId,
)
from backend.execution.fills import decimal_or_none
from backend.execution.intent import OrderIntent
from backend.execution.settings import PAPER_HOST, is_live_host

_DUPLICATE_MESSAGE = "client_order_id must be unique"
# Alpaca answers 403 with this code when it refuses the order itself (insufficient buying
# power, not enough shares, ...). A 403 without it ("forbidden.", a proxy's page) means the
# request was not allowed in at all: the keys, their scope or the environment.
_ORDER_REFUSED_403 = 40310000
# Alpaca order ids are UUIDs. Anything else could reach another endpoint: "" would be DELETE
# /v2/orders/, a slash from cancel-all, and "../positions" becomes DELETE /v2/positions (close
# every position) once the client normalises the path.
_ORDER_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")


class AlpacaBroker:
    simulated = False

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        base_url: str = PAPER_HOST,
        *,
        timeout_s: float = 5.0,
        allow_live: bool = False,
    ) -> None:
        if is_live_host(base_url) and not allow_live:
            raise ConfigurationError(
                "AlpacaBroker points at Alpaca's live host: pass allow_live=True "
                "(the service sets it from TRADING_MODE=LIVE)"
            )
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._clients = ThreadLocalClients(api_key, secret_key, self.base_url, timeout_s)

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        try:
            raw = self._client().post("/orders", order_payload(intent))
        except APIError as exc:
            raise _translate(exc, "submitting the order") from None
        except requests.exceptions.ConnectTimeout as exc:
            # No connection was made, so the order cannot have been sent.
            raise BrokerUnavailable(f"connect timeout: {exc}", outcome_unknown=False) from None
        except requests.exceptions.Timeout as exc:
            raise BrokerUnavailable(
                f"no answer within {self._timeout_s:g}s; the order may exist", outcome_unknown=True
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailable(
                f"{type(exc).__name__} while submitting; the order may exist", outcome_unknown=True
            ) from exc
        return to_broker_order(_as_dict(raw))

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        try:
            raw = self._client().get(
                "/orders:by_client_order_id", {"client_order_id": client_order_id}
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise BrokerUnavailable(
                f"order lookup failed: {describe_api_error(exc)}", outcome_unknown=False
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnavailable(
                f"order lookup failed: {type(exc).__name__}", outcome_unknown=False
            ) from exc
        return to_broker_order(_as_dict(raw))

    def cancel_order(self, broker_order_id: str) -> CancelOutcome:
        """One bounded DELETE /v2/orders/{id}, never retried automatically: a kill switch must
        learn at once what it could not cancel, and decides itself whether to try again."""
        if not _ORDER_ID.fullmatch(broker_order_id):
            return CancelOutcome(broker_order_id, CancelStatus.NOT_FOUND, "not an Alpaca order id")
        try:
            self._client().delete(f"/orders/{broker_order_id}")
        except APIError as exc:
            known = {404: CancelStatus.NOT_FOUND, 422: CancelStatus.ALREADY_FINAL}
            status = known.get(exc.status_code or 0, CancelStatus.UNAVAILABLE)
            return CancelOutcome(broker_order_id, status, describe_api_error(exc))
        except requests.exceptions.RequestException as exc:
            return CancelOutcome(
                broker_order_id,
                CancelStatus.UNAVAILABLE,
                f"{type(exc).__name__}: the cancel may or may not have reached the broker",
            )
        return CancelOutcome(broker_order_id, CancelStatus.CANCELED)

    def _client(self) -> TradingClient:
        return self._clients.get()


def order_payload(intent: OrderIntent) -> dict[str, Any]:
    """The single serialisation boundary towards Alpaca: decimals as exact strings."""
    body: dict[str, Any] = {
        "symbol": intent.symbol,
        "qty": format(intent.qty, "f"),
        "side": intent.side.value,
        "type": intent.order_type.value,
        "time_in_force": intent.time_in_force.value,
        "client_order_id": intent.client_intent_id,
    }
    if intent.limit_price is not None:
        body["limit_price"] = format(intent.limit_price, "f")
    if intent.stop_price is not None:
        body["stop_price"] = format(intent.stop_price, "f")
    return body


def to_broker_order(raw: dict[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=str(raw["id"]),
        client_order_id=str(raw.get("client_order_id") or ""),
        status=str(raw.get("status") or "unknown"),
        filled_qty=decimal_or_none(raw.get("filled_qty")) or Decimal(0),
        filled_avg_price=decimal_or_none(raw.get("filled_avg_price")),
        filled_at=raw.get("filled_at"),
        submitted_at=raw.get("submitted_at"),
        raw=raw,
    )


def _as_dict(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or "id" not in raw:
        raise BrokerUnavailable(
            f"unexpected broker response: {str(raw)[:200]}", outcome_unknown=True
        )
    return raw


def _translate(exc: APIError, doing: str) -> Exception:
    status = exc.status_code
    body = api_error_body(exc)
    message = str(body.get("message") or str(exc)[:200])
    code = body.get("code") if isinstance(body.get("code"), int) else None
    if status == 401 or (status == 403 and code != _ORDER_REFUSED_403):
        # Refused before the order was looked at: nothing was placed.
        return BrokerAuthFailed(
            f"HTTP {status} while {doing}: {message[:200]}; "
            "the broker did not accept the keys (check ALPACA_API_KEY, ALPACA_SECRET_KEY "
            "and ALPACA_TRADING_HOST)"
        )
    if status is not None and 400 <= status < 500 and status != 429:
        if _DUPLICATE_MESSAGE in message:
            return DuplicateClientOrderId(message, status_code=status, code=code)
        return BrokerRejected(f"HTTP {status}: {message}", status_code=status, code=code)
    if status == 429:
        # Rate-limited requests are refused before any order is created.
        return BrokerUnavailable(f"rate limited while {doing}", outcome_unknown=False)
    return BrokerUnavailable(
        f"HTTP {status} while {doing}; the order may exist", outcome_unknown=True
    )
