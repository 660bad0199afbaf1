"""OIDC on /pubsub/push and /sync-fills: a locally generated key and certificate stand in for
Google's, served over loopback the way Google serves its certificates."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient
from google.auth import crypt, jwt

from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app
from tests.conftest import intent_body, unique

AUDIENCE = "https://execution-gateway.example.run.app/pubsub/push"
PUSHER = "pubsub-push@demo-project.iam.gserviceaccount.com"


def _key_and_certificate() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-signer")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem, certificate.public_bytes(serialization.Encoding.PEM)


class CertServer:
    """Serves {kid: certificate} like https://www.googleapis.com/oauth2/v1/certs, and counts."""

    def __init__(self, certificates: dict[str, str]) -> None:
        body = json.dumps(certificates).encode()
        hits = self.hits = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[0] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def signer_and_certs() -> Iterator[tuple[crypt.RSASigner, CertServer]]:
    private_pem, certificate_pem = _key_and_certificate()
    server = CertServer({"test-kid": certificate_pem.decode()})
    yield crypt.RSASigner.from_string(private_pem, key_id="test-kid"), server
    server.server.shutdown()


def token(signer: crypt.RSASigner, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": PUSHER,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
        "sub": "1234567890",
    }
    return jwt.encode(signer, claims | overrides).decode()


@pytest.fixture
def client(
    signer_and_certs: Any, firestore_emulator: str, firestore_project: str, pg_dsn: str
) -> Iterator[FlaskClient]:
    _, certs = signer_and_certs
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        "PUBSUB_PUSH_AUDIENCE": AUDIENCE,
        "PUBSUB_PUSH_SERVICE_ACCOUNT": PUSHER,
        "EXEC_OIDC_CERTS_URL": certs.url,
        # No market data here (no Alpaca keys): the controls that need a price are switched off.
        "EXEC_MAX_ORDER_NOTIONAL": "off",
        "EXEC_PRICE_COLLAR_PCT": "off",
    }
    app = create_app(Settings.from_env(env))
    yield app.test_client()
    app.extensions["service_parts"].close()


def push(client: FlaskClient, authorization: str | None) -> Any:
    body = {
        "client_intent_id": unique("auth"),
        "strategy_id": "s",
        "broker_account_id": unique("acct"),
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }
    data = base64.b64encode(json.dumps(body).encode()).decode()
    headers = {"Authorization": authorization} if authorization else {}
    envelope = {"message": {"data": data, "messageId": unique("m")}, "subscription": "s"}
    return client.post("/pubsub/push", json=envelope, headers=headers)


def test_a_push_signed_by_google_for_our_audience_and_account_is_accepted(
    client: FlaskClient, signer_and_certs: Any
) -> None:
    signer, _ = signer_and_certs
    response = push(client, f"Bearer {token(signer)}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "dry_run"


def test_the_certificates_are_fetched_once_for_many_pushes(
    client: FlaskClient, signer_and_certs: Any
) -> None:
    signer, certs = signer_and_certs
    before = certs.hits[0]
    for _ in range(3):
        assert push(client, f"Bearer {token(signer)}").status_code == 200
    assert certs.hits[0] - before <= 1


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://someone-else.example"},
        {"email": "attacker@evil.iam.gserviceaccount.com"},
        {"email_verified": False},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 60, "iat": int(time.time()) - 700},
    ],
    ids=["wrong-audience", "wrong-account", "unverified-email", "wrong-issuer", "expired"],
)
def test_a_token_with_the_wrong_claims_is_refused(
    client: FlaskClient, signer_and_certs: Any, claims: dict[str, Any]
) -> None:
    signer, _ = signer_and_certs
    response = push(client, f"Bearer {token(signer, **claims)}")
    assert response.status_code == 401
    assert response.get_json()["reason"] == "unauthorized"


def test_a_token_signed_by_another_key_is_refused(client: FlaskClient) -> None:
    other_pem, _ = _key_and_certificate()
    forged = token(crypt.RSASigner.from_string(other_pem, key_id="test-kid"))
    assert push(client, f"Bearer {forged}").status_code == 401


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer not-a-jwt"])
def test_a_missing_or_malformed_token_is_refused(client: FlaskClient, header: str | None) -> None:
    assert push(client, header).status_code == 401


def test_the_fill_sync_endpoint_needs_the_same_token(
    client: FlaskClient, signer_and_certs: Any
) -> None:
    signer, _ = signer_and_certs
    assert client.post("/sync-fills", json={}).status_code == 401
    allowed = client.post(
        "/sync-fills", json={}, headers={"Authorization": f"Bearer {token(signer)}"}
    )
    assert allowed.status_code == 409  # authenticated; no broker keys in this configuration


def test_the_token_never_appears_in_the_answer(client: FlaskClient, signer_and_certs: Any) -> None:
    signer, _ = signer_and_certs
    bad = token(signer, aud="https://someone-else.example")
    assert bad not in push(client, f"Bearer {bad}").get_data(as_text=True)


# -- /execute: EXECUTE_AUDIENCE and EXECUTE_ALLOWED_CALLERS (issue 10, finding 11) -------------

EXECUTE_AUDIENCE = "https://execution-gateway.example.run.app"
STRATEGIES = (
    "strategy-momentum@demo-project.iam.gserviceaccount.com",
    "strategy-reversion@demo-project.iam.gserviceaccount.com",
)


@pytest.fixture
def execute_client(
    signer_and_certs: Any, firestore_emulator: str, firestore_project: str, pg_dsn: str
) -> Iterator[FlaskClient]:
    _, certs = signer_and_certs
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        "PUBSUB_PUSH_AUDIENCE": AUDIENCE,
        "PUBSUB_PUSH_SERVICE_ACCOUNT": PUSHER,
        "EXECUTE_AUDIENCE": EXECUTE_AUDIENCE,
        "EXECUTE_ALLOWED_CALLERS": ", ".join(STRATEGIES),
        "EXEC_OIDC_CERTS_URL": certs.url,
        # No market data here (no Alpaca keys): the controls that need a price are switched off.
        "EXEC_MAX_ORDER_NOTIONAL": "off",
        "EXEC_PRICE_COLLAR_PCT": "off",
    }
    app = create_app(Settings.from_env(env))
    yield app.test_client()
    app.extensions["service_parts"].close()


def execute(client: FlaskClient, authorization: str | None) -> Any:
    headers = {"Authorization": authorization} if authorization else {}
    return client.post("/execute", json=intent_body("exec-auth"), headers=headers)


@pytest.mark.parametrize("caller", STRATEGIES)
def test_execute_accepts_a_google_signed_token_of_an_allowed_caller(
    execute_client: FlaskClient, signer_and_certs: Any, caller: str
) -> None:
    signer, _ = signer_and_certs
    bearer = f"Bearer {token(signer, aud=EXECUTE_AUDIENCE, email=caller)}"
    response = execute(execute_client, bearer)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "dry_run"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": EXECUTE_AUDIENCE, "email": PUSHER},
        {"aud": EXECUTE_AUDIENCE, "email": "someone@evil.iam.gserviceaccount.com"},
        {"aud": EXECUTE_AUDIENCE, "email": STRATEGIES[0], "email_verified": False},
        {"aud": AUDIENCE, "email": STRATEGIES[0]},
        {"aud": EXECUTE_AUDIENCE, "email": STRATEGIES[0], "iss": "https://evil.example"},
    ],
    ids=[
        "the-push-account",
        "an-unlisted-account",
        "unverified-email",
        "the-push-audience",
        "wrong-issuer",
    ],
)
def test_execute_refuses_a_token_that_is_not_an_allowed_callers_for_its_audience(
    execute_client: FlaskClient,
    signer_and_certs: Any,
    firestore_client: Any,
    claims: dict[str, Any],
) -> None:
    signer, _ = signer_and_certs
    body = intent_body("exec-denied")
    response = execute_client.post(
        "/execute", json=body, headers={"Authorization": f"Bearer {token(signer, **claims)}"}
    )
    assert response.status_code == 401
    assert response.get_json()["reason"] == "unauthorized"
    record = firestore_client.collection("execution_intents").document(body["client_intent_id"])
    assert not record.get().exists, "nothing is decided for an unauthenticated caller"


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer not-a-jwt"])
def test_execute_without_a_valid_token_is_401(
    execute_client: FlaskClient, header: str | None
) -> None:
    response = execute(execute_client, header)
    assert response.status_code == 401
    assert response.get_json() == {
        "status": "rejected",
        "reason": "unauthorized",
        "retryable": False,
        "message": response.get_json()["message"],
    }


def test_execute_tokens_do_not_open_the_push_endpoints(
    execute_client: FlaskClient, signer_and_certs: Any
) -> None:
    signer, _ = signer_and_certs
    strategy = f"Bearer {token(signer, aud=EXECUTE_AUDIENCE, email=STRATEGIES[0])}"
    assert push(execute_client, strategy).status_code == 401
    assert push(execute_client, f"Bearer {token(signer)}").status_code == 200


def test_without_execute_audience_execute_needs_no_token(client: FlaskClient) -> None:
    assert execute(client, None).status_code == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXECUTE_AUDIENCE": EXECUTE_AUDIENCE}, "EXECUTE_AUDIENCE needs EXECUTE_ALLOWED_CALLERS"),
        ({"EXECUTE_ALLOWED_CALLERS": STRATEGIES[0]}, "has no effect without EXECUTE_AUDIENCE"),
        (
            {"EXECUTE_AUDIENCE": EXECUTE_AUDIENCE, "EXECUTE_ALLOWED_CALLERS": "momentum"},
            "EXECUTE_ALLOWED_CALLERS: not service-account emails: momentum",
        ),
    ],
    ids=["audience-without-callers", "callers-without-audience", "not-an-email"],
)
def test_half_an_execute_authentication_setting_stops_start_up(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)
