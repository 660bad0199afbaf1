"""docs/openapi.json is the contract: a valid OpenAPI 3.1 document, served at /openapi.json,
naming every route the app has and every word of the vocabulary, and describing the answers
the service really gives (each checked here against the document's schemas)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from werkzeug.test import TestResponse

from backend.execution.vocabulary import REASON_RULES, AgentState, CheckOutcome, Reason, Status
from backend.services.execution_service.app import OPENAPI_DOCUMENT
from tests.conftest import unique
from tests.contract.conftest import ADMIN_KEY, DOCUMENT, Gateway

SPEC: dict[str, Any] = json.loads(DOCUMENT.read_text())


def schema_enum(name: str) -> set[str]:
    return set(SPEC["components"]["schemas"][name]["enum"])


def test_the_document_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    validate_openapi(SPEC)


def test_the_document_in_docs_is_the_one_the_service_ships() -> None:
    assert DOCUMENT.resolve() == OPENAPI_DOCUMENT.resolve()


def test_the_reason_enum_is_exactly_the_vocabulary_so_a_new_reason_forces_a_doc_update() -> None:
    assert schema_enum("Reason") == {reason.value for reason in Reason}


@pytest.mark.parametrize(
    ("schema", "words"),
    [("Status", Status), ("CheckOutcome", CheckOutcome), ("AgentState", AgentState)],
)
def test_the_other_enums_are_exactly_the_vocabulary(schema: str, words: Any) -> None:
    assert schema_enum(schema) == {word.value for word in words}


def test_every_status_a_reason_can_have_on_execute_is_documented() -> None:
    statuses = {str(rule.http_status) for rule in REASON_RULES.values()}
    assert statuses <= set(SPEC["paths"]["/execute"]["post"]["responses"])


def test_the_service_serves_the_document(gateway: Gateway) -> None:
    response = gateway.app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == SPEC


def test_every_route_of_the_app_is_in_the_document_and_nothing_else(gateway: Gateway) -> None:
    # The console's pages (/console/...) are HTML for people, described in docs/CONSOLE.md and
    # tested in tests/console and tests/browser; the document is the JSON contract.
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in gateway.app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("console.")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {(path, method.upper()) for path, item in SPEC["paths"].items() for method in item}
    assert routes == documented


# -- real answers, each validated against the document --------------------------------------


def answer_schema(path: str, method: str, status: int) -> dict[str, Any]:
    responses = SPEC["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def assert_documented(path: str, method: str, response: TestResponse) -> dict[str, Any]:
    schema = answer_schema(path, method, response.status_code)
    assert response.mimetype == "application/json"
    body = response.get_json()
    # The document's references (#/components/...) resolve against the root they sit in.
    rooted = schema | {"components": SPEC["components"]}
    errors = sorted(Draft202012Validator(rooted).iter_errors(body), key=str)
    assert not errors, f"{method} {path} {response.status_code}: {[e.message for e in errors]}"
    return body  # type: ignore[no-any-return]


def intent(gateway: Gateway, **overrides: Any) -> dict[str, Any]:
    body = {
        "client_intent_id": unique("doc"),
        "strategy_id": "contract",
        "broker_account_id": gateway.account,
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }
    return body | overrides


def push(client: FlaskClient, data: bytes | None) -> TestResponse:
    message: dict[str, Any] = {"messageId": unique("m")}
    if data is not None:
        message["data"] = base64.b64encode(data).decode()
    return client.post("/pubsub/push", json={"message": message, "subscription": "s"})


Request = Callable[[FlaskClient, Gateway], TestResponse]

EXAMPLES: list[tuple[str, str, str, int, Request]] = [
    ("an order placed", "POST", "/execute", 200, lambda c, g: c.post("/execute", json=intent(g))),
    (
        "another account",
        "POST",
        "/execute",
        409,
        lambda c, g: c.post("/execute", json=intent(g, broker_account_id="someone-else")),
    ),
    (
        "an invalid intent",
        "POST",
        "/execute",
        400,
        lambda c, g: c.post("/execute", json=intent(g, qty="-1", limt_price="1")),
    ),
    (
        "no idempotency key",
        "POST",
        "/execute",
        400,
        lambda c, g: c.post("/execute", json=intent(g, client_intent_id=None)),
    ),
    (
        "a timestamp in the future (decided)",
        "POST",
        "/execute",
        400,
        lambda c, g: c.post("/execute", json=intent(g, created_at="2999-01-01T00:00:00Z")),
    ),
    (
        "unreadable JSON",
        "POST",
        "/execute",
        400,
        lambda c, g: c.post("/execute", data=b"[" * 5000, content_type="application/json"),
    ),
    (
        "not JSON",
        "POST",
        "/execute",
        415,
        lambda c, g: c.post("/execute", data="qty=1", content_type="text/plain"),
    ),
    (
        "too large",
        "POST",
        "/execute",
        413,
        lambda c, g: c.post("/execute", data=b" " * 70000, content_type="application/json"),
    ),
    (
        "a push placed",
        "POST",
        "/pubsub/push",
        200,
        lambda c, g: push(c, json.dumps(intent(g)).encode()),
    ),
    ("a poison push", "POST", "/pubsub/push", 200, lambda c, g: push(c, b"[" * 5000)),
    ("a push without data", "POST", "/pubsub/push", 200, lambda c, g: push(c, None)),
    (
        "not an envelope",
        "POST",
        "/pubsub/push",
        400,
        lambda c, g: c.post("/pubsub/push", json={"hello": "world"}),
    ),
    ("a fill sync", "POST", "/sync-fills", 200, lambda c, g: c.post("/sync-fills", json={})),
    ("liveness", "GET", "/healthz", 200, lambda c, g: c.get("/healthz")),
    ("readiness", "GET", "/readyz", 200, lambda c, g: c.get("/readyz")),
    (
        "the state",
        "GET",
        "/state",
        200,
        lambda c, g: c.get("/state", headers={"X-Exec-Agent-Key": ADMIN_KEY}),
    ),
    ("the state, no key", "GET", "/state", 401, lambda c, g: c.get("/state")),
    (
        "recover",
        "POST",
        "/recover",
        200,
        lambda c, g: c.post("/recover", headers={"X-Exec-Agent-Key": ADMIN_KEY}),
    ),
    (
        "recover, wrong key",
        "POST",
        "/recover",
        401,
        lambda c, g: c.post("/recover", headers={"X-Exec-Agent-Key": "nope"}),
    ),
    ("the document", "GET", "/openapi.json", 200, lambda c, g: c.get("/openapi.json")),
    (
        "resume (the switch is off already)",
        "POST",
        "/resume",
        200,
        lambda c, g: c.post(
            "/resume", json={"reason": "contract test"}, headers={"X-Exec-Agent-Key": ADMIN_KEY}
        ),
    ),
    (
        "halt with a bad mode",
        "POST",
        "/halt",
        400,
        lambda c, g: c.post(
            "/halt",
            json={"reason": "contract test", "mode": "later"},
            headers={"X-Exec-Agent-Key": ADMIN_KEY},
        ),
    ),
    (
        "enable a strategy that is not halted",
        "POST",
        "/strategies/{strategy_id}/enable",
        409,
        lambda c, g: c.post(
            "/strategies/s-1/enable",
            json={"reason": "checked the fills"},
            headers={"X-Exec-Agent-Key": ADMIN_KEY},
        ),
    ),
    (
        "enable without a reason",
        "POST",
        "/strategies/{strategy_id}/enable",
        400,
        lambda c, g: c.post(
            "/strategies/s-1/enable", json={}, headers={"X-Exec-Agent-Key": ADMIN_KEY}
        ),
    ),
    (
        "enable without the key",
        "POST",
        "/strategies/{strategy_id}/enable",
        401,
        lambda c, g: c.post("/strategies/s-1/enable", json={"reason": "x"}),
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "status", "send"),
    [example[1:] for example in EXAMPLES],
    ids=[example[0] for example in EXAMPLES],
)
def test_a_real_answer_matches_the_document(
    gateway: Gateway, method: str, path: str, status: int, send: Request
) -> None:
    response = send(gateway.app.test_client(), gateway)
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert_documented(path, method, response)


def test_a_replay_and_a_conflict_match_the_document(gateway: Gateway) -> None:
    client, body = gateway.app.test_client(), intent(gateway)
    assert_documented("/execute", "POST", client.post("/execute", json=body))
    replay = assert_documented("/execute", "POST", client.post("/execute", json=body))
    assert replay["status"] == "duplicate"
    conflict = client.post("/execute", json=body | {"qty": "2"})
    assert conflict.status_code == 409
    assert assert_documented("/execute", "POST", conflict)["reason"] == "idempotency_key_conflict"
