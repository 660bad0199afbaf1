"""Shared fixtures: a real Firestore-protocol emulator, a real Postgres, the Alpaca stand-in.

Tests are isolated by random ids (intent ids, account ids, a per-session database and Firestore
project), never by truncating shared state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from backend.devtools import local_stack
from tests.support.alpaca_standin import AlpacaStandIn


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# The broker account of the test being run: a fresh one per test keeps tests apart in the
# shared database, and every live service a test starts is bound to it (EXEC_BROKER_ACCOUNT_ID).
_current_account = unique("acct")


def current_account() -> str:
    return _current_account


@pytest.fixture(autouse=True)
def broker_account() -> str:
    global _current_account
    _current_account = unique("acct")
    return _current_account


def intent_body(prefix: str = "intent", **overrides: Any) -> dict[str, Any]:
    """A valid intent as a strategy sends it: fresh ids, a one-share market buy of SPY, for
    the test's bound account."""
    body: dict[str, Any] = {
        "client_intent_id": unique(prefix),
        "strategy_id": "s",
        "broker_account_id": _current_account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }
    return body | overrides


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[str]:
    with local_stack.start_firestore_emulator() as emulator:
        # google-cloud-firestore only learns about an emulator from this variable.
        previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        yield emulator.host
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def firestore_project() -> str:
    return unique("demo-exec-tests")


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: str, firestore_project: str) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=firestore_project)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    admin = local_stack.ensure_postgres()
    name = f"exec_test_{uuid.uuid4().hex[:10]}"
    dsn = local_stack.create_database(admin, name)
    local_stack.apply_schema(dsn)
    yield dsn
    local_stack.drop_database(admin, name)


@pytest.fixture
def set_position(pg_dsn: str) -> Any:
    def _set(account: str, symbol: str, qty: str) -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO public.broker_positions (broker_account_id, symbol, qty)"
                " VALUES (%s, %s, %s) ON CONFLICT (broker_account_id, symbol)"
                " DO UPDATE SET qty = EXCLUDED.qty, updated_at = now()",
                (account, symbol, qty),
            )

    return _set


# Latest trades the stand-in serves from the start of every test (stamped at each answer, so
# always fresh), for the controls that read a reference price.
REFERENCE_PRICES = {"SPY": "400.00", "AAPL": "190.00", "QQQ": "450.00", "MSFT": "410.00"}


@pytest.fixture
def alpaca() -> Iterator[AlpacaStandIn]:
    with AlpacaStandIn() as standin:
        for symbol, price in REFERENCE_PRICES.items():
            standin.set_latest_trade(symbol, price, at="live")
        yield standin


def standin_env(standin: AlpacaStandIn) -> dict[str, str]:
    """The variables that point a service at the stand-in for trading and market data."""
    return {
        "ALPACA_API_KEY": "key",
        "ALPACA_SECRET_KEY": "secret",
        "ALPACA_TRADING_HOST": standin.base_url,
        "ALPACA_DATA_HOST": standin.base_url,
    }
