"""The console through HTTP, on the real service parts (emulator, Postgres, the Alpaca stand-in):
who may see what, the session cookie, CSRF, reasons and confirmations, the auditor's refusals,
IAP identity, and what the pages show of a live gateway."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from google.auth import jwt
from google.auth.crypt import es256

from backend.audit.commands import list_decisions
from backend.audit.queries import Filters, LedgerReader
from backend.execution.clock import trading_date
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import current_account, intent_body, standin_env, unique
from tests.integration.test_push_auth import CertServer
from tests.support.alpaca_standin import AlpacaStandIn

ADMIN, AUDITOR = "admin-key-do-not-show", "auditor-key-do-not-show"
PAGES = ("/console/status", "/console/decisions", "/console/orders", "/console/reconcile")
Build = Callable[..., FlaskClient]


@pytest.fixture
def console(
    firestore_client: Any, firestore_project: str, pg_dsn: str, alpaca: AlpacaStandIn
) -> Iterator[Build]:
    """A live gateway with the console, on real parts. Its Firestore kill-switch document
    starts off; ``switch(client)`` reads it as the console's actions leave it."""
    built: list[Any] = []

    def build(*, kill_switch_document: bool = True, **env: str) -> FlaskClient:
        document = f"ops/{unique('kill')}"
        firestore_client.document(document).set({"enabled": False})
        values = standin_env(alpaca) | {
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "EXEC_POSTGRES_DSN": pg_dsn,
            "EXEC_DRY_RUN": "0",
            "AGENT_MODE": "LIVE",
            "EXEC_BROKER_ACCOUNT_ID": current_account(),
            "EXEC_AGENT_ADMIN_KEY": ADMIN,
            "EXEC_AUDITOR_KEY": AUDITOR,
            "EXEC_DUPLICATE_WAIT_S": "0",
        }
        if kill_switch_document:
            values["EXECUTION_HALTED_DOC"] = document
        app = create_app(Settings.from_env(values | env))
        built.append(app.extensions["service_parts"])
        client = app.test_client()
        SWITCHES[id(client)] = firestore_client.document(document)
        return client

    yield build
    for parts in built:
        parts.close()


SWITCHES: dict[int, Any] = {}


def switch(client: FlaskClient) -> dict[str, Any]:
    """The client's kill-switch document, as the console's actions left it."""
    return dict(SWITCHES[id(client)].get().to_dict() or {})


def sign_in(client: FlaskClient, key: str, **headers: str) -> Any:
    return client.post("/console/signin", data={"key": key}, headers=headers)


def csrf(client: FlaskClient, page: str = "/console/status") -> str:
    html = client.get(page).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def act(client: FlaskClient, name: str, **form: str) -> Any:
    return client.post(f"/console/actions/{name}", data={"csrf_token": csrf(client)} | form)


# -- access ----------------------------------------------------------------------------------


def test_the_console_does_not_exist_without_an_admin_key(console: Build) -> None:
    client = console(EXEC_AGENT_ADMIN_KEY="", EXEC_AUDITOR_KEY="")
    assert client.get("/console/signin").status_code == 404
    assert client.get("/console/status").status_code == 404


def test_without_a_session_pages_redirect_to_sign_in_and_the_api_and_posts_answer_401(
    console: Build,
) -> None:
    client = console()
    for page in (*PAGES, "/console/actions", "/console/decisions.csv", "/console/"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/console/signin")
        assert current_account() not in response.get_data(as_text=True)
    assert client.get("/console/api/status").status_code == 401
    posted = client.post("/console/actions/halt", data={"reason": "x", "step": "confirm"})
    assert posted.status_code == 401


def test_each_key_signs_in_as_its_role(console: Build) -> None:
    client = console()
    assert sign_in(client, ADMIN).status_code == 302
    page = client.get("/console/status").get_data(as_text=True)
    assert 'data-role="operator"' in page and ">Actions</a>" in page
    auditor = console()
    assert sign_in(auditor, AUDITOR).status_code == 302
    page = auditor.get("/console/status").get_data(as_text=True)
    assert 'data-role="auditor"' in page and ">Actions</a>" not in page
    assert auditor.get("/console/actions").status_code == 403


def test_a_wrong_key_is_refused_and_repeated_failures_are_slowed(console: Build) -> None:
    client = console()
    for _ in range(3):  # three tries are free; the third imposes a wait
        refused = sign_in(client, "guess")
        assert refused.status_code == 401
        assert "Wrong key." in refused.get_data(as_text=True)
    slowed = sign_in(client, ADMIN)  # even the right key waits out the backoff
    assert slowed.status_code == 429
    assert int(slowed.headers["Retry-After"]) >= 1
    other_client = sign_in(client, ADMIN, **{"X-Forwarded-For": "198.51.100.7"})
    assert other_client.status_code == 302


def test_the_session_cookie_is_httponly_strict_scoped_and_secure_over_https(
    console: Build,
) -> None:
    client = console()
    plain = sign_in(client, ADMIN).headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Path=/console" in plain
    assert "Secure" not in plain and "Expires=" in plain
    https = sign_in(console(), ADMIN, **{"X-Forwarded-Proto": "https"}).headers["Set-Cookie"]
    assert "Secure" in https
    assert ADMIN not in plain and ADMIN not in https


def test_a_session_ends_after_the_configured_hours(console: Build) -> None:
    client = console(EXEC_CONSOLE_SESSION_HOURS="0.0005")  # 1.8 s
    sign_in(client, ADMIN)
    assert client.get("/console/status").status_code == 200
    time.sleep(2.0)
    assert client.get("/console/status").status_code == 302
    assert client.get("/console/api/status").status_code == 401


def test_a_cookie_signed_before_a_key_rotation_is_no_longer_accepted(console: Build) -> None:
    client = console()
    sign_in(client, ADMIN)
    cookie = client.get_cookie("exec_console", path="/console")
    assert cookie is not None
    rotated = console(EXEC_AGENT_ADMIN_KEY="a-new-admin-key")
    rotated.set_cookie("exec_console", cookie.value, path="/console")
    assert rotated.get("/console/status").status_code == 302


# -- actions ---------------------------------------------------------------------------------


def test_a_halt_needs_a_token_a_reason_and_a_confirmation_and_is_recorded(
    console: Build,
) -> None:
    client = console()
    sign_in(client, ADMIN)
    no_token = client.post("/console/actions/halt", data={"reason": "x", "step": "confirm"})
    assert no_token.status_code == 403
    no_reason = act(client, "halt", reason="  ", step="confirm")
    assert no_reason.status_code == 400
    assert "Reason" in no_reason.get_data(as_text=True)
    review = act(client, "halt", reason="drill", cancel_working_orders="yes")
    assert review.status_code == 200 and switch(client)["enabled"] is False
    page = review.get_data(as_text=True)
    assert "Confirm: Halt trading" in page and "cancel every working order" in page
    done = act(client, "halt", reason="drill", step="confirm")
    assert done.status_code == 302 and done.headers["Location"] == "/console/actions"
    written = switch(client)
    assert (written["enabled"], written["reason"], written["by"]) == (True, "drill", "operator")
    assert client.post("/execute", json=intent_body("after")).get_json()["reason"] == (
        "kill_switch_enabled"
    )
    result = client.get("/console/actions").get_data(as_text=True)
    assert "Halt trading: done." in result
    recorded = client.get("/state", headers={"X-Exec-Agent-Key": ADMIN}).get_json()
    action = recorded["operator_actions"][0]
    assert (action["action"], action["reason"], action["who"]) == ("halt", "drill", "operator")


def test_reduce_only_and_resume_write_their_states(console: Build) -> None:
    client = console()
    sign_in(client, ADMIN)
    act(client, "reduce-only", reason="risk off", step="confirm")
    assert switch(client)["enabled"] == "reduce_only"
    assert 'data-word="REDUCE ONLY"' in client.get("/console/status").get_data(as_text=True)
    act(client, "resume", reason="all clear", step="confirm")
    assert switch(client)["enabled"] is False
    assert 'data-word="TRADING"' in client.get("/console/status").get_data(as_text=True)


def test_the_auditor_cannot_act_even_with_a_valid_session_and_token(console: Build) -> None:
    client = console()
    sign_in(client, AUDITOR)
    page = client.get("/console/status").get_data(as_text=True)
    assert "Halt trading" not in page and "Resume trading" not in page
    for name in ("halt", "reduce-only", "resume", "enable-strategy"):
        forged = act(client, name, reason="forged", step="confirm", strategy_id="s")
        assert forged.status_code == 403, name
    assert switch(client) == {"enabled": False}


def test_a_post_from_another_site_is_refused(console: Build) -> None:
    client = console()
    sign_in(client, ADMIN)
    token = csrf(client)
    forged = client.post(
        "/console/actions/halt",
        data={"csrf_token": token, "reason": "x", "step": "confirm"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and switch(client) == {"enabled": False}
    ours = client.post(
        "/console/actions/halt",
        data={"csrf_token": token, "reason": "x", "step": "confirm"},
        headers={"Origin": "http://localhost"},
    )
    assert ours.status_code == 302 and switch(client)["enabled"] is True


def test_without_the_kill_switch_document_the_page_says_which_switch_to_flip(
    console: Build, tmp_path: Path
) -> None:
    switch_file = tmp_path / "EXECUTION_HALTED"
    switch_file.write_text("0\n")
    client = console(EXECUTION_HALTED_FILE=str(switch_file), kill_switch_document=False)
    sign_in(client, ADMIN)
    page = client.get("/console/actions").get_data(as_text=True)
    assert "EXECUTION_HALTED_DOC) is not configured" in page
    assert f"EXECUTION_HALTED_FILE={switch_file}" in page
    assert "Halt trading</button>" not in page
    refused = act(client, "halt", reason="x", step="confirm")
    assert refused.status_code == 302
    assert "not done" in client.get("/console/actions").get_data(as_text=True)


def test_a_latched_strategy_is_re_enabled_from_the_console(
    console: Build, alpaca: AlpacaStandIn
) -> None:
    client = console(EXEC_REPEAT_LIMIT="1/60")
    client.post("/execute", json=intent_body("latch"))
    tripped = client.post("/execute", json=intent_body("latch"))
    assert tripped.get_json()["reason"] == "strategy_halted"
    sign_in(client, ADMIN)
    page = client.get("/console/actions").get_data(as_text=True)
    assert 'option value="s"' in page
    act(client, "enable-strategy", strategy_id="s", reason="reviewed", step="confirm")
    assert "Re-enable strategy: done." in client.get("/console/actions").get_data(as_text=True)
    # The window still holds the buy, so the strategy's next order is a sell: it is decided again.
    assert client.post("/execute", json=intent_body("latch", side="sell")).status_code == 200


# -- what the pages show ----------------------------------------------------------------------


def test_the_status_page_shows_a_live_gateway_its_limits_and_exposure(
    console: Build, set_position: Any
) -> None:
    set_position(current_account(), "SPY", "20")
    client = console(EXEC_MAX_DAILY_TRADES="10", EXEC_MAX_POSITION_QTY="50")
    assert client.post("/execute", json=intent_body("st", qty="5")).status_code == 200
    sign_in(client, ADMIN)
    page = client.get("/console/status").get_data(as_text=True)
    assert 'data-word="TRADING"' in page
    assert f"trades on {trading_date(datetime.now().astimezone())}" in page
    assert "1 of 10" in page
    assert "<strong>SPY</strong> position 20, working buys 5, working sells 0" in page
    assert "Position if every buy fills: 25 (limit 50)" in page
    assert page.count('class="value">ready<') == 2  # firestore, postgres
    panel = client.get("/console/api/status").get_data(as_text=True)
    assert 'data-word="TRADING"' in panel and "<html" not in panel


def test_the_status_page_shows_the_last_fill_sync(console: Build) -> None:
    client = console()
    assert client.post("/sync-fills", json={}).status_code == 200
    sign_in(client, ADMIN)
    page = client.get("/console/status").get_data(as_text=True)
    assert re.search(r'class="value">complete, \d+ s ago<', page)


def test_an_unreachable_database_shows_unknown_not_healthy(console: Build) -> None:
    client = console(
        EXEC_POSTGRES_DSN="postgresql://postgres@127.0.0.1:1/none", EXEC_IO_TIMEOUT_S="0.5"
    )
    sign_in(client, ADMIN)
    page = client.get("/console/status").get_data(as_text=True)
    assert "NOT READY" in page
    trades = re.search(r"<dt>trades on [^<]*</dt>\s*<dd><span class=\"value\">([^<]+)<", page)
    assert trades and trades.group(1) == "UNKNOWN"


def test_decisions_are_listed_filtered_and_exported_as_the_audit_cli_does(
    console: Build, firestore_client: Any
) -> None:
    client = console(EXEC_MAX_ORDER_QTY="10")
    for qty in ("1", "2", "50"):
        client.post("/execute", json=intent_body("dec", qty=qty))
    sign_in(client, ADMIN)
    page = client.get("/console/decisions").get_data(as_text=True)
    assert "3 of 3 decisions match." in page
    refused = client.get("/console/decisions?status=rejected").get_data(as_text=True)
    assert "1 of 3 decisions match." in refused and "max_order_qty_exceeded" in refused
    exported = client.get("/console/decisions.csv?status=rejected")
    assert exported.headers["Content-Disposition"].startswith("attachment; filename=")
    cli = io.StringIO()
    day = trading_date(datetime.now().astimezone())
    reader = LedgerReader(firestore_client, timeout_s=5)
    list_decisions(reader, Filters(current_account(), day, statuses=("rejected",)), "csv", cli)
    assert exported.get_data(as_text=True) == cli.getvalue()
    assert len(list(csv.DictReader(io.StringIO(cli.getvalue())))) == 1


def test_the_decisions_page_picks_up_new_decisions_from_its_copy_of_the_day(
    console: Build,
) -> None:
    client = console()
    client.post("/execute", json=intent_body("new", qty="1"))
    sign_in(client, ADMIN)
    assert "1 of 1 decisions match." in client.get("/console/decisions").get_data(as_text=True)
    client.post("/execute", json=intent_body("new", qty="2"))
    deadline = time.monotonic() + 20  # the copy is topped up in the background, every 5 s
    while "2 of 2 decisions match." not in client.get("/console/decisions").get_data(as_text=True):
        assert time.monotonic() < deadline, "the new decision never showed"
        time.sleep(0.2)


def test_the_orders_page_joins_the_book_and_the_ledger(
    console: Build, alpaca: AlpacaStandIn
) -> None:
    client = console()
    placed = client.post("/execute", json=intent_body("ord", qty="3")).get_json()
    alpaca.set_order_status(placed["broker_order_id"], "partially_filled", "1", "400.00")
    client.post("/sync-fills", json={})
    sign_in(client, ADMIN)
    page = client.get("/console/orders").get_data(as_text=True)
    assert "1 working, 0 not working in the book." in page
    assert placed["broker_order_id"] in page and "partially_filled" in page
    one = client.get(f"/console/orders/{placed['client_intent_id']}").get_data(as_text=True)
    assert re.search(r"<li>partial_fill \S+ qty=1 price=400\S* cum_qty=1", one)  # the fill
    assert re.search(r"<li>submitted \S+ status=accepted", one)  # the first event
    assert re.search(r"<li>partial_fill \S+ qty=1 price=400 source=fill_sync</li>", one)
    assert "No such order" in client.get("/console/orders/nope").get_data(as_text=True)


def test_the_reconcile_page_shows_each_discrepancy(console: Build, alpaca: AlpacaStandIn) -> None:
    client = console()
    placed = client.post("/execute", json=intent_body("rec", qty="2")).get_json()
    alpaca.set_order_status(placed["broker_order_id"], "filled", "2", "401.00")
    sign_in(client, ADMIN)
    assert "Run reconcile" in client.get("/console/reconcile").get_data(as_text=True)
    page = client.get("/console/reconcile?run=1").get_data(as_text=True)
    assert "filled_qty mismatch" in page and "status mismatch" in page
    assert "working in book, closed at broker" in page


def test_no_page_shows_a_key(console: Build) -> None:
    alpaca_secret = "alpaca-secret-do-not-show"
    for key in (ADMIN, AUDITOR):
        client = console(ALPACA_SECRET_KEY=alpaca_secret)
        wrong = sign_in(client, key + "-wrong").get_data(as_text=True)
        sign_in(client, key)
        shown = [wrong, client.get("/console/signin").get_data(as_text=True)]
        shown += [client.get(page).get_data(as_text=True) for page in PAGES]
        shown.append(client.get("/console/reconcile?run=1").get_data(as_text=True))
        shown.append(client.get("/console/actions").get_data(as_text=True))
        shown.append(act(client, "halt", reason="review").get_data(as_text=True))
        assert "Halt trading" in shown[-1] or key == AUDITOR
        for html in shown:
            for secret in (ADMIN, AUDITOR, alpaca_secret):
                assert secret not in html


# -- Identity-Aware Proxy -------------------------------------------------------------------

IAP_AUDIENCE = "/projects/123/global/backendServices/456"


@pytest.fixture(scope="module")
def iap_signer() -> Iterator[tuple[es256.ES256Signer, CertServer]]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server = CertServer({"iap-kid": public.decode()})
    yield es256.ES256Signer.from_string(private, key_id="iap-kid"), server
    server.server.shutdown()


def assertion(signer: es256.ES256Signer, email: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "https://cloud.google.com/iap", "aud": IAP_AUDIENCE, "email": email,
               "sub": unique("accounts.google.com:"), "iat": now, "exp": now + 600}  # fmt: skip
    return jwt.encode(signer, payload | claims).decode()


def test_behind_iap_the_verified_email_is_recorded_with_each_action(
    console: Build, iap_signer: Any
) -> None:
    signer, certs = iap_signer
    client = console(EXEC_CONSOLE_IAP_AUDIENCE=IAP_AUDIENCE, EXEC_CONSOLE_IAP_CERTS_URL=certs.url)
    assert client.get("/console/signin").status_code == 401
    bad = assertion(signer, "ann@example.com", aud="/projects/other")
    header = "X-Goog-IAP-JWT-Assertion"
    assert client.get("/console/signin", headers={header: bad}).status_code == 401
    as_seen_by_wsgi = "HTTP_X_GOOG_IAP_JWT_ASSERTION"
    client.environ_base[as_seen_by_wsgi] = assertion(signer, "ann@example.com")
    assert "ann@example.com" in client.get("/console/signin").get_data(as_text=True)
    sign_in(client, ADMIN)
    act(client, "halt", reason="behind IAP", step="confirm")
    assert switch(client)["by"] == "operator:ann@example.com"
    client.environ_base[as_seen_by_wsgi] = assertion(signer, "bob@example.com")
    assert client.get("/console/status").status_code == 302  # Ann's cookie is not Bob's
