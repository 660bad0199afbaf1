"""The console in a real browser: Debian's Chromium driven by Playwright, against a live service
under gunicorn on the emulator, Postgres and the Alpaca stand-in.

Playwright's own browser download cannot work here, so it launches /usr/bin/chromium (`make
install` puts it there with apt-get). Without it these tests fail, unless
EXEC_SKIP_BROWSER_TESTS=1 says to skip them. Screenshots of every page are saved under
.artifacts/console/ (gitignored); the path is printed at the end of the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from backend.devtools.service_process import REPO_ROOT, ServiceProcess
from tests.conftest import REFERENCE_PRICES, unique
from tests.support.alpaca_standin import AlpacaStandIn

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google on a machine
# with no network; --no-sandbox because the tests may run as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / ".artifacts" / "console"
ADMIN_KEY = "browser-operator-key-never-shown"
AUDITOR_KEY = "browser-auditor-key-never-shown"
ALPACA_SECRET = "browser-alpaca-secret-never-shown"
_saved: list[Path] = []


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("EXEC_SKIP_BROWSER_TESTS") == "1":
            pytest.skip("no /usr/bin/chromium and EXEC_SKIP_BROWSER_TESTS=1")
        pytest.fail("/usr/bin/chromium is missing: run `make install` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    _saved.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.write_line(f"console screenshots ({len(_saved)}): {ARTIFACTS}")


class Live:
    """One live gateway in LIVE mode, its bound account, and its Firestore kill switch."""

    def __init__(self, service: ServiceProcess, account: str, switch_doc: str, client: Any):
        self.service, self.account, self.switch_doc, self._client = (
            service,
            account,
            switch_doc,
            client,
        )
        self.url = service.url

    def intent(self, **fields: Any) -> dict[str, Any]:
        body = {"client_intent_id": unique("web"), "strategy_id": "s", "symbol": "SPY",
                "side": "buy", "qty": "1", "order_type": "market"}  # fmt: skip
        return body | {"broker_account_id": self.account} | fields

    def execute(self, **fields: Any) -> requests.Response:
        return requests.post(f"{self.url}/execute", json=self.intent(**fields), timeout=30)

    def set_switch(self, enabled: bool) -> None:
        self._client.document(self.switch_doc).set({"enabled": enabled})


@pytest.fixture(scope="module")
def live(firestore_emulator: str, firestore_client: Any, firestore_project: str,
         pg_dsn: str) -> Iterator[Live]:  # fmt: skip
    account = unique("acct-web")
    switch_doc = f"ops/{unique('kill')}"
    firestore_client.document(switch_doc).set({"enabled": False})
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.broker_positions (broker_account_id, symbol, qty)"
            " VALUES (%s, 'SPY', 20)",
            (account,),
        )
    with AlpacaStandIn() as alpaca:
        for symbol, price in REFERENCE_PRICES.items():
            alpaca.set_latest_trade(symbol, price, at="live")
        service = ServiceProcess(
            {
                "FIRESTORE_EMULATOR_HOST": firestore_emulator,
                "GOOGLE_CLOUD_PROJECT": firestore_project,
                "EXEC_POSTGRES_DSN": pg_dsn,
                "ALPACA_API_KEY": "key",
                "ALPACA_SECRET_KEY": ALPACA_SECRET,
                "ALPACA_TRADING_HOST": alpaca.base_url,
                "ALPACA_DATA_HOST": alpaca.base_url,
                "EXEC_DRY_RUN": "0",
                "AGENT_MODE": "LIVE",
                "EXEC_BROKER_ACCOUNT_ID": account,
                "EXEC_AGENT_ADMIN_KEY": ADMIN_KEY,
                "EXEC_AUDITOR_KEY": AUDITOR_KEY,
                "EXECUTION_HALTED_DOC": switch_doc,
                "EXECUTION_HALTED_DOC_TTL_S": "0.5",
                "EXEC_BROKER_TIMEOUT_S": "1.5",
                "EXEC_IO_TIMEOUT_S": "1",
                "EXEC_CLAIM_LEASE_S": "15",
            },
            threads=8,
        )
        try:
            yield Live(service.wait_healthy(), account, switch_doc, firestore_client)
        finally:
            service.stop()


def sign_in(page: Any, live: Live, key: str) -> None:
    page.goto(f"{live.url}/console/")
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/status$"))
