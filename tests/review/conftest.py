"""Fixtures for the adversarial review of the limits and controls. Each test in this folder
states a finding of that review (it failed on the code it was written against) and now
guards its fix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn

ADMIN = {"X-Exec-Agent-Key": "admin-key"}
BuildApp = Callable[..., Flask]


@pytest.fixture
def live_app(
    firestore_emulator: str, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn,
    firestore_client: Any,
) -> Iterator[BuildApp]:  # fmt: skip
    """A live gateway on the stand-in, bound to the test's account, with a Firestore kill-switch
    document (so /halt and /resume exist) and the admin key ``admin-key``."""
    built: list[Any] = []
    doc = f"{unique('ops')}/kill_switch"
    firestore_client.document(doc).set({"enabled": False})

    def build(**env: str) -> Flask:
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXEC_AGENT_ADMIN_KEY": "admin-key",
            "EXECUTION_HALTED_DOC": doc,
            "EXECUTION_HALTED_DOC_TTL_S": "0",
            "EXEC_DUPLICATE_WAIT_S": "0",
        }
        app = create_app(Settings.from_env(values | env))
        built.append(app.extensions["service_parts"])
        return app

    yield build
    for parts in built:
        parts.close()
