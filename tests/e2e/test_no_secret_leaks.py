"""No secret ever appears in a log line or a response body, on the happy path or any error path.

Database passwords are the awkward kind (%, @, :, /, quotes, spaces, unicode), and Postgres
refuses and resets connections while they are in use: libpq and psycopg_pool then log their
errors on every reconnect, and those errors must not carry the DSN.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from backend.devtools.service_process import ServiceProcess
from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.fault_proxy import FaultProxy, Mode

SECRETS = {
    "ALPACA_API_KEY": "AKLEAKCANARY0000001",
    "ALPACA_SECRET_KEY": "sk-leak-canary-secret-0000002",
    "EXEC_AGENT_ADMIN_KEY": "admin-leak-canary-0000003",
}
PG_PASSWORD = "pgleak%Zq7/Wx0000004 @ü"
BEARER = "eyJhbGciOiJSUzI1NiJ9.leak-canary-token-0000005.c2ln"


def intent() -> dict[str, Any]:
    return intent_body("leak")


def with_password(pg_dsn: str, proxy: FaultProxy, password: str, *, url: bool) -> str:
    """The test database's DSN, through the proxy, with a password (trust auth ignores it)."""
    params = conninfo_to_dict(pg_dsn)
    if not url:
        return make_conninfo(pg_dsn, host="127.0.0.1", port=str(proxy.port), password=password)
    user, dbname = params.get("user") or "postgres", params.get("dbname") or "postgres"
    return (
        f"postgresql://{quote(str(user), safe='')}:{quote(password, safe='')}"
        f"@127.0.0.1:{proxy.port}/{quote(str(dbname), safe='')}"
    )


def secret_forms(password: str) -> list[str]:
    """The password as written and as it appears in a URL, and its longer pieces between the
    characters a URL parser splits on (a half-parsed URL prints them as a host or a port)."""
    pieces = [piece for piece in re.split(r"[%@:/ '\"]", password) if len(piece) >= 5]
    return [password, quote(password, safe=""), *pieces]


@pytest.fixture
def pg_proxy(pg_dsn: str) -> Iterator[FaultProxy]:
    params = conninfo_to_dict(pg_dsn)
    with FaultProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)) as p:
        yield p


def test_no_key_password_or_token_appears_in_any_log_line_or_response(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    pg_proxy: FaultProxy,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "EXECUTION_HALTED"
    switch.write_text("0\n")
    alpaca.required_key_id = SECRETS["ALPACA_API_KEY"]
    alpaca.required_secret = SECRETS["ALPACA_SECRET_KEY"]
    # Trust auth ignores the password, but it is in the DSN the service holds.
    dsn_with_password = with_password(pg_dsn, pg_proxy, PG_PASSWORD, url=True)
    service = ServiceProcess(
        {
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": dsn_with_password,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(switch),
            "ALPACA_TRADING_HOST": alpaca.base_url,
            "ALPACA_DATA_HOST": alpaca.base_url,
            "PUBSUB_PUSH_AUDIENCE": "https://gateway.example/pubsub/push",
            "EXEC_OIDC_CERTS_URL": "http://127.0.0.1:1/certs",  # unreachable: verify fails
            "LOG_LEVEL": "DEBUG",
            **SECRETS,
        }
    ).wait_healthy()
    bodies: list[str] = []
    try:
        url = service.url

        def keep(response: requests.Response) -> requests.Response:
            bodies.append(response.text + json.dumps(dict(response.headers)))
            return response

        assert keep(requests.post(f"{url}/execute", json=intent(), timeout=10)).status_code == 200
        alpaca.required_secret = "rotated-elsewhere"  # the broker now answers 401
        keep(requests.post(f"{url}/execute", json=intent(), timeout=10))
        alpaca.fail_next_posts(500, accept_first=False)
        keep(requests.post(f"{url}/execute", json=intent(), timeout=10))
        keep(requests.post(f"{url}/execute", json=intent() | {"qty": "-1"}, timeout=10))
        data = base64.b64encode(json.dumps(intent()).encode()).decode()
        envelope = {"message": {"data": data, "messageId": "m"}, "subscription": "s"}
        for auth in (f"Bearer {BEARER}", SECRETS["EXEC_AGENT_ADMIN_KEY"]):
            keep(requests.post(f"{url}/pubsub/push", json=envelope,
                               headers={"Authorization": auth}, timeout=10))  # fmt: skip
            keep(requests.post(f"{url}/sync-fills", headers={"Authorization": auth}, timeout=10))
        for key in ("wrong-key", SECRETS["EXEC_AGENT_ADMIN_KEY"]):
            keep(requests.get(f"{url}/state", headers={"X-Exec-Agent-Key": key}, timeout=10))
            keep(requests.post(f"{url}/recover", headers={"X-Exec-Agent-Key": key}, timeout=10))
        keep(requests.get(f"{url}/readyz", timeout=10))
        # Postgres refuses, then resets every connection mid-request: every reconnect is logged.
        alpaca.required_secret = SECRETS["ALPACA_SECRET_KEY"]
        for mode in (Mode.REFUSE, Mode.RESET, Mode.HANG):
            pg_proxy.set(mode)
            keep(requests.post(f"{url}/execute", json=intent(), timeout=10))
            keep(requests.get(f"{url}/readyz", timeout=10))
        time.sleep(1.5)  # the pool's background reconnection attempts log too
        pg_proxy.set(Mode.PASS)
    finally:
        service.stop()

    logs = service.output()
    assert '"execution.decision"' in logs  # the logs did record the traffic
    assert "error connecting" in logs  # ... and the pool's failed reconnections
    everything = logs + "\n".join(bodies)
    for name, secret in (*SECRETS.items(), ("token", BEARER)):
        assert secret not in everything, f"{name} leaked"
    for form in secret_forms(PG_PASSWORD):
        assert form not in everything, f"the database password leaked as {form!r}"
    assert dsn_with_password not in everything


AWKWARD_PASSWORDS = [
    "Pk7%41Vw%zz-canary1",
    "Ab3@Cd4/Ef5:Gh6-canary2",
    "Qt'Zx\"Dq Sp-canary3",
    "Üñ€-密码-canary4",
]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("url", [True, False], ids=["url", "key-value"])
@pytest.mark.parametrize("password", AWKWARD_PASSWORDS)
def test_an_awkward_database_password_never_reaches_a_log_line_while_postgres_fails(
    firestore_emulator: str,
    firestore_project: str,
    pg_dsn: str,
    pg_proxy: FaultProxy,
    tmp_path: Path,
    password: str,
    url: bool,
) -> None:
    dsn = with_password(pg_dsn, pg_proxy, password, url=url)
    kill_file = tmp_path / "halted"
    kill_file.write_text("0")
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": dsn,
            "EXEC_IO_TIMEOUT_S": "0.5",
            "EXECUTION_HALTED_FILE": str(kill_file),
            "LOG_LEVEL": "DEBUG",
        }
    )
    app = create_app(settings)
    capture = _Capture()
    logging.getLogger().addHandler(capture)
    bodies: list[str] = []
    try:
        client = app.test_client()
        for mode in (Mode.PASS, Mode.REFUSE, Mode.RESET, Mode.HANG, Mode.PASS):
            pg_proxy.set(mode)
            for answer in (
                client.post("/execute", json=intent_body("pw")),
                client.get("/readyz"),
            ):
                bodies.append(answer.get_data(as_text=True) + json.dumps(dict(answer.headers)))
            if mode is Mode.REFUSE:
                time.sleep(1.2)  # let the pool's background reconnection attempts log
    finally:
        logging.getLogger().removeHandler(capture)
        app.extensions["service_parts"].close()

    logs = "\n".join(capture.lines)
    assert "error connecting" in logs  # psycopg_pool did log its failures
    everything = logs + "\n".join(bodies)
    for form in secret_forms(password):
        assert form not in everything, f"the password leaked as {form!r}"
    assert dsn not in everything


@pytest.mark.parametrize(
    "password", ["Rw1%zz-canary5", "Rw2@Xy-canary6", "Rw3/Xy-canary7", "Rw4 Xy-canary8"]
)
def test_a_url_whose_password_is_not_percent_encoded_stops_start_up_without_repeating_it(
    firestore_emulator: str,
    firestore_project: str,
    password: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = f"postgresql://postgres:{password}@127.0.0.1:5432/db"
    settings = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": firestore_project, "EXEC_POSTGRES_DSN": dsn}
    )
    with pytest.raises(ConfigurationError) as refused:
        create_app(settings)
    said = str(refused.value) + capsys.readouterr().out
    assert "EXEC_POSTGRES_DSN" in said and "percent-encode" in said
    for form in secret_forms(password):
        assert form not in said, f"start-up repeated {form!r}"
