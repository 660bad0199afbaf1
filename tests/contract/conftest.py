"""The HTTP contract (docs/openapi.json) against the real service: a live gateway in process,
on the Firestore emulator and Postgres, routing to the Alpaca stand-in.

Two Hypothesis profiles. ``contract`` (the default, run by ``make test``) is derandomized: the
same few thousand inputs every run, so CI never fails by luck. ``fuzz`` (``make fuzz``) draws
new inputs each run, five times as many, and remembers failing ones in .local/hypothesis.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from backend.devtools import local_stack
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = REPO_ROOT / "docs" / "openapi.json"
ADMIN_KEY = "contract-admin-key"
KILL_SWITCH_DOC = "ops/execution_kill_switch"

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
settings.register_profile("contract", derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "fuzz",
    database=DirectoryBasedExampleDatabase(str(REPO_ROOT / ".local" / "hypothesis")),
    **_COMMON,
)
# `make fuzz` sets HYPOTHESIS_PROFILE=fuzz; everything else runs the short, fixed campaign.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "contract")
settings.load_profile(PROFILE)


def campaign(examples: int) -> int:
    """How many inputs a property gets: as given under `make test`, five times that under
    `make fuzz`."""
    return examples * (5 if PROFILE == "fuzz" else 1)


# Inputs sent, by test, printed at the end of the run (the figures the issue asks for).
INPUTS: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if INPUTS:
        terminalreporter.section("inputs fuzzed")
        for name, count in sorted(INPUTS.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")
        terminalreporter.write_line(f"{sum(INPUTS.values()):7d}  in total")


@dataclass
class Gateway:
    app: Flask
    alpaca: AlpacaStandIn
    account: str


@pytest.fixture(scope="module")
def own_stores(firestore_emulator: str) -> Iterator[tuple[str, str]]:
    """A database and a Firestore project of the fuzz's own: it leaves hundreds of open orders
    behind, which other tests' fill syncs would otherwise sweep (they read every account's)."""
    admin = local_stack.ensure_postgres()
    name = f"exec_contract_{uuid.uuid4().hex[:10]}"
    dsn = local_stack.create_database(admin, name)
    local_stack.apply_schema(dsn)
    yield dsn, unique("demo-exec-contract")
    local_stack.drop_database(admin, name)


@pytest.fixture(scope="module")
def gateway(
    own_stores: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Live routing (dry-run off, AGENT_MODE=LIVE) to the Alpaca stand-in (trading and market
    data), bound to one account, with limits high enough that valid intents reach the broker,
    and the admin endpoints on."""
    pg_dsn, firestore_project = own_stores
    account = unique("contract-acct")
    switch_off = tmp_path_factory.mktemp("kill") / "EXECUTION_HALTED"
    switch_off.write_text("0\n")  # live routing needs a kill switch an operator can flip
    with AlpacaStandIn() as alpaca:
        # A price for the symbol valid intents are addressed to (test_fuzz_endpoints.addressed),
        # so the reference-price controls pass or refuse them on their merits.
        alpaca.set_latest_trade("SPY", "450.25", at="live")
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_IO_TIMEOUT_S": "1",
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_TIMEOUT_S": "2",
            "EXEC_BROKER_ACCOUNT_ID": account,
            "EXEC_BROKER_MIN_INTERVAL_S": "0",
            # The stand-in's orders stay open, so every sync re-reads all of them: bound it.
            "EXEC_SYNC_BUDGET_S": "1",
            # Every other control at its default; these would only cap how many fuzzed intents
            # reach the broker.
            "EXEC_MAX_DAILY_TRADES": "1000000",
            "EXEC_MAX_POSITION_QTY": "1000000000000",
            "EXEC_MAX_ORDERS_PER_MINUTE": "1000000",
            "EXEC_AGENT_ADMIN_KEY": ADMIN_KEY,
            "EXECUTION_HALTED_FILE": str(switch_off),
            # The Firestore switch too, so that /halt and /resume exist (and are fuzzed).
            "EXECUTION_HALTED_DOC": KILL_SWITCH_DOC,
            "EXECUTION_HALTED_DOC_TTL_S": "0",
            "LOG_LEVEL": "ERROR",
        }
        from google.cloud import firestore

        store = firestore.Client(project=firestore_project)
        store.document(KILL_SWITCH_DOC).set({"enabled": False})
        store.close()
        app = create_app(Settings.from_env(values))
        yield Gateway(app, alpaca, account)
        app.extensions["service_parts"].close()
