"""Alpaca's account (``GET /v2/account``): which account the API keys belong to, and whether it
may trade. For the ALPACA_ACCOUNT_NUMBER check: a deployment routes only for the account it was
configured for.

Cached for ``ttl_s`` (an account number does not change under a set of keys; a block may, so
keep the TTL short enough for that). A failed or malformed read raises BrokerUnavailable and
is never answered with an older reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backend.execution.adapters.alpaca_client import ThreadLocalClients, read_errors_as
from backend.execution.adapters.ttl_cache import TtlCache
from backend.execution.broker_facts import BrokerAccount
from backend.execution.errors import BrokerUnavailable
from backend.execution.settings import PAPER_HOST


class AlpacaAccount:
    """Implements ``ports.BrokerAccountSource``."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        base_url: str = PAPER_HOST,
        *,
        ttl_s: float = 30.0,
        timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = ThreadLocalClients(api_key, secret_key, base_url.rstrip("/"), timeout_s)
        self._cache: TtlCache[str, BrokerAccount] = TtlCache(ttl_s, monotonic=monotonic)

    def account(self) -> BrokerAccount:
        return self._cache.get("account", self._read)

    def _read(self) -> BrokerAccount:
        with read_errors_as(_unavailable, "reading the broker account"):
            raw = self._clients.get().get("/account")
        return parse_account(raw)


def parse_account(raw: Any) -> BrokerAccount:
    """The fields that decide routing; a missing or mistyped one is an unreadable account."""
    if not isinstance(raw, dict):
        raise _unavailable(f"broker account: unexpected answer {str(raw)[:160]}")
    number, status = raw.get("account_number"), raw.get("status")
    flags = {name: raw.get(name) for name in ("trading_blocked", "account_blocked")}
    if not isinstance(number, str) or not number or not isinstance(status, str):
        raise _unavailable("broker account: account_number or status is missing")
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise _unavailable(f"broker account: blocks are not booleans: {flags}")
    return BrokerAccount(
        account_number=number,
        status=status,
        trading_blocked=raw["trading_blocked"],
        account_blocked=raw["account_blocked"],
    )


def _unavailable(message: str) -> BrokerUnavailable:
    # A read: no order can have been placed, whatever happened.
    return BrokerUnavailable(message, outcome_unknown=False)
