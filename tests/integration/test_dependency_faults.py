"""Postgres and Firestore down, hanging and reset, through the real HTTP app in live mode.

A fault proxy (tests/support/fault_proxy.py) sits in front of Postgres and in front of the
Firestore emulator. For each fault the gateway must answer a retryable 503 with Retry-After well
inside Pub/Sub's 10 s ack deadline, place no order on incomplete data, and serve the same intent
once the proxy passes again, without a restart.

Each case's answer time is printed (run with ``-s`` to see the table at the end); only the
generous bound is asserted. Reproduce: ``.venv/bin/python -m pytest
tests/integration/test_dependency_faults.py -q -s``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from backend.devtools import local_stack
from backend.devtools.service_process import ServiceProcess
from backend.execution.adapters.firestore_documents import CachedDocument
from backend.execution.errors import TransientError
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.fault_proxy import FaultProxy, Mode

# Pub/Sub's default ack deadline: every answer, even to a hung dependency, must come before it.
ACK_DEADLINE_S = 10.0
IO_TIMEOUT_S = 1.0
# The shortest lease the settings allow: 4 x broker timeout + 6 x io timeout + 1.
LEASE_S = 9.0
LIVE_ENV = {
    "EXEC_DRY_RUN": "0",
    "AGENT_MODE": "LIVE",
    "ALPACA_API_KEY": "key",
    "ALPACA_SECRET_KEY": "secret",
    "EXEC_BROKER_TIMEOUT_S": "0.5",
    "EXEC_IO_TIMEOUT_S": str(IO_TIMEOUT_S),
    "EXEC_CLAIM_LEASE_S": str(LEASE_S),
    "EXEC_DUPLICATE_WAIT_S": "0",
}

TIMES: list[tuple[str, str, float, float | None]] = []


@pytest.fixture(scope="module", autouse=True)
def answer_time_table() -> Iterator[None]:
    yield
    print(f"\n\n{'fault case':41s} {'answer':26s} time     recovered after")
    for case, answer, seconds, recovery in TIMES:
        recovered = f"{recovery:6.2f} s" if recovery is not None else "       -"
        print(f"{case:41s} {answer:26s} {seconds:5.2f} s  {recovered}")


def record_time(case: str, answer: str, seconds: float, recovery: float | None = None) -> None:
    TIMES.append((case, answer, seconds, recovery))
    print(f"[fault] {case}: {answer} in {seconds:.2f}s, recovered after {recovery}")


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A database of this module's own. These tests leave reservations and working orders of
    stand-ins that no longer exist; in the shared database a later fill sync, which sweeps every
    open row, would spend its budget looking them up."""
    admin = local_stack.ensure_postgres()
    name = f"exec_faults_{uuid.uuid4().hex[:10]}"
    dsn = local_stack.create_database(admin, name)
    local_stack.apply_schema(dsn)
    yield dsn
    local_stack.drop_database(admin, name)


@pytest.fixture
def pg_proxy(pg_dsn: str) -> Iterator[FaultProxy]:
    params = conninfo_to_dict(pg_dsn)
    with FaultProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)) as p:
        yield p


@pytest.fixture
def fs_proxy(firestore_emulator: str) -> Iterator[FaultProxy]:
    host, port = firestore_emulator.rsplit(":", 1)
    with FaultProxy(host, int(port)) as proxy:
        yield proxy


def through(pg_dsn: str, proxy: FaultProxy) -> str:
    return make_conninfo(pg_dsn, host="127.0.0.1", port=str(proxy.port), sslmode="disable")


@pytest.fixture
def live_client(
    pg_dsn: str,
    pg_proxy: FaultProxy,
    fs_proxy: FaultProxy,
    firestore_project: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FlaskClient]:
    """The app in live mode, talking to Postgres and Firestore only through the proxies."""
    kill_file = tmp_path / "EXECUTION_HALTED"
    kill_file.write_text("0\n")
    # google-cloud-firestore reads the emulator address when a client is built.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", fs_proxy.address)
    settings = Settings.from_env(
        {
            **LIVE_ENV,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": through(pg_dsn, pg_proxy),
            **standin_env(alpaca),
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(kill_file),
        }
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        # Warm up: pooled connections to both stores exist before any fault, so a fault hits
        # a connection mid-request rather than only new connections.
        assert client.post("/execute", json=intent_body("warm")).status_code == 200
        yield client
    finally:
        app.extensions["service_parts"].close()


def post(client: FlaskClient, body: dict[str, Any], via: str) -> tuple[Any, float]:
    started = time.monotonic()
    if via == "execute":
        response = client.post("/execute", json=body)
    else:
        data = base64.b64encode(json.dumps(body).encode()).decode()
        envelope = {"message": {"data": data, "messageId": unique("m")}, "subscription": "s"}
        response = client.post("/pubsub/push", json=envelope)
    return response, time.monotonic() - started


def assert_retryable(response: Any, elapsed: float, reasons: set[str]) -> None:
    payload = response.get_json()
    assert response.status_code == 503, payload
    assert payload["reason"] in reasons and payload["retryable"] is True
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < ACK_DEADLINE_S


def retry_until_placed(
    client: FlaskClient, body: dict[str, Any], *, within_s: float
) -> tuple[Any, float]:
    """The same intent again, as Pub/Sub would redeliver it, until it is placed."""
    started = time.monotonic()
    while True:
        response = client.post("/execute", json=body)
        if response.status_code == 200 or time.monotonic() - started > within_s:
            return response, time.monotonic() - started
        time.sleep(0.25)


def orders_for(alpaca: AlpacaStandIn, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in alpaca.orders() if o["client_order_id"] == body["client_intent_id"]]


# -- the proxy itself ----------------------------------------------------------------------


def test_the_fault_proxy_passes_refuses_hangs_and_resets() -> None:
    import socket

    echo = socket.create_server(("127.0.0.1", 0))

    def echo_back(conn: socket.socket) -> None:
        while data := conn.recv(64):
            conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            threading.Thread(target=echo_back, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    with FaultProxy("127.0.0.1", echo.getsockname()[1]) as proxy:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        conn.sendall(b"ping")
        assert conn.recv(64) == b"ping"

        proxy.set(Mode.HANG)
        conn.sendall(b"held")
        with pytest.raises(TimeoutError):
            conn.recv(64)
        proxy.set(Mode.PASS)  # what was held is delivered
        assert conn.recv(64) == b"held"

        proxy.set(Mode.RESET)
        conn.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            conn.recv(64)

        proxy.set(Mode.REFUSE)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        proxy.set(Mode.PASS)
        again = socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        again.sendall(b"back")
        assert again.recv(64) == b"back"
    echo.close()


# -- Postgres ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "via"),
    [
        (Mode.REFUSE, "execute"),
        (Mode.HANG, "execute"),
        (Mode.HANG, "push"),
        (Mode.RESET, "execute"),
    ],
)
def test_a_postgres_fault_is_a_prompt_retryable_refusal_and_the_intent_is_placed_once_it_passes(
    live_client: FlaskClient, pg_proxy: FaultProxy, alpaca: AlpacaStandIn, mode: Mode, via: str
) -> None:
    body = intent_body("pgfault")
    pg_proxy.set(mode)
    response, elapsed = post(live_client, body, via)

    assert_retryable(response, elapsed, {"risk_data_unavailable"})
    assert orders_for(alpaca, body) == []  # the risk data was not read: nothing was sent

    pg_proxy.set(Mode.PASS)
    placed, recovery = retry_until_placed(live_client, body, within_s=15)
    record_time(f"postgres {mode} ({via})", "503 risk_data_unavailable", elapsed, recovery)
    assert placed.status_code == 200, placed.get_json()
    assert placed.get_json()["status"] == "submitted"
    assert len(orders_for(alpaca, body)) == 1


# -- Firestore -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "via"),
    [
        (Mode.REFUSE, "execute"),
        (Mode.HANG, "execute"),
        (Mode.HANG, "push"),
        (Mode.RESET, "execute"),
    ],
)
def test_a_firestore_fault_at_the_claim_is_a_prompt_retryable_refusal_and_recovers(
    live_client: FlaskClient, fs_proxy: FaultProxy, alpaca: AlpacaStandIn, mode: Mode, via: str
) -> None:
    body = intent_body("fsfault")
    fs_proxy.set(mode)
    response, elapsed = post(live_client, body, via)

    assert_retryable(response, elapsed, {"ledger_unavailable"})
    assert orders_for(alpaca, body) == []  # no claim, so no idempotency: nothing was sent

    fs_proxy.set(Mode.PASS)
    # A claim that hung may still land once the proxy passes again (its bytes were only held):
    # it then holds its lease, and the intent is placed by the first delivery after it.
    placed, recovery = retry_until_placed(live_client, body, within_s=LEASE_S + 15)
    record_time(f"firestore {mode} at claim ({via})", "503 ledger_unavailable", elapsed, recovery)
    assert placed.status_code == 200, placed.get_json()
    assert len(orders_for(alpaca, body)) == 1


@pytest.mark.parametrize("mode", [Mode.REFUSE, Mode.HANG, Mode.RESET])
def test_a_firestore_fault_after_the_order_is_placed_is_retryable_and_the_order_is_adopted(
    live_client: FlaskClient, fs_proxy: FaultProxy, alpaca: AlpacaStandIn, mode: Mode
) -> None:
    body = intent_body("fsmid")
    # The broker holds its answer a little; the fault starts while the order is being placed,
    # so the claim went through and the outcome cannot be recorded.
    alpaca.delay_next_posts(0.3, accept_first=True)
    posts = alpaca.post_count()

    def fault_once_the_order_arrives() -> None:
        deadline = time.monotonic() + 5
        while alpaca.post_count() == posts and time.monotonic() < deadline:
            time.sleep(0.005)
        fs_proxy.set(mode)

    switcher = threading.Thread(target=fault_once_the_order_arrives)
    switcher.start()
    response, elapsed = post(live_client, body, "execute")
    switcher.join()

    assert_retryable(response, elapsed, {"ledger_unavailable"})
    assert response.get_json()["broker_order_id"]  # placed, and said so
    assert len(orders_for(alpaca, body)) == 1

    fs_proxy.set(Mode.PASS)
    placed, recovery = retry_until_placed(live_client, body, within_s=LEASE_S + 15)
    record_time(f"firestore {mode} after the order", "503 ledger_unavailable", elapsed, recovery)
    assert placed.status_code == 200, placed.get_json()
    assert placed.get_json()["broker_order_id"] == response.get_json()["broker_order_id"]
    assert len(orders_for(alpaca, body)) == 1  # adopted, never sent twice


def test_a_kill_switch_document_on_a_hung_firestore_costs_each_waiting_reader_one_timeout(
    fs_proxy: FaultProxy, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", fs_proxy.address)
    client = firestore.Client(project=firestore_project)
    document = CachedDocument(client, "ops/kill", ttl_s=0, timeout_s=IO_TIMEOUT_S)
    document.get()  # connected
    fs_proxy.set(Mode.HANG)

    def read(_: int) -> float:
        started = time.monotonic()
        with pytest.raises(TransientError):
            document.get()
        return time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:
        waits = list(pool.map(read, range(6)))
    fs_proxy.set(Mode.PASS)
    client.close()
    record_time("firestore hang, 6 readers of one doc", "unreadable", max(waits))
    # Serialised, the last reader would wait 6 timeouts; shared, every reader waits about one.
    assert max(waits) < 3 * IO_TIMEOUT_S


# -- under gunicorn, concurrently --------------------------------------------------------


def test_concurrent_deliveries_during_a_postgres_hang_all_answer_inside_the_ack_deadline(
    pg_dsn: str,
    pg_proxy: FaultProxy,
    firestore_emulator: str,
    firestore_project: str,
    alpaca: AlpacaStandIn,
    tmp_path: Path,
) -> None:
    import requests

    kill_file = tmp_path / "EXECUTION_HALTED"
    kill_file.write_text("0\n")
    service = ServiceProcess(
        {
            **LIVE_ENV,
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": through(pg_dsn, pg_proxy),
            **standin_env(alpaca),
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXECUTION_HALTED_FILE": str(kill_file),
        },
        threads=8,
    ).wait_healthy()
    try:
        url = service.url
        warm = requests.post(f"{url}/execute", json=intent_body("warm"), timeout=10)
        assert warm.status_code == 200
        pg_proxy.set(Mode.HANG)
        bodies = [intent_body("pghang") for _ in range(8)]

        def deliver(body: dict[str, Any]) -> tuple[int, float]:
            started = time.monotonic()
            answer = requests.post(f"{url}/execute", json=body, timeout=30)
            return answer.status_code, time.monotonic() - started

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(deliver, bodies))
        pg_proxy.set(Mode.PASS)
        slowest = max(seconds for _, seconds in answers)
        record_time("postgres hang, 8 concurrent (gunicorn)", "503 x8", slowest)
        assert [status for status, _ in answers] == [503] * 8
        assert slowest < ACK_DEADLINE_S
        assert alpaca.orders() == [o for o in alpaca.orders() if "warm" in o["client_order_id"]]

        started = time.monotonic()
        while requests.post(f"{url}/execute", json=bodies[0], timeout=10).status_code != 200:
            assert time.monotonic() - started < 15, "did not recover"
            time.sleep(0.25)
    finally:
        service.stop()
