"""Flask application factory: ``gunicorn 'backend.services.execution_service.app:create_app()'``.

Views only parse, call the engine and map the outcome (contract.py); no trading logic here.
"""

from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from backend.execution import bootstrap
from backend.execution.bootstrap import ServiceParts
from backend.execution.decisions import ExecutionResult
from backend.execution.engine import IntentContext
from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from backend.execution.vocabulary import Reason
from backend.services.execution_service import contract
from backend.services.execution_service.admin import register_admin
from backend.services.execution_service.auth import CachingRequest, OidcVerifier, Unauthorized
from backend.services.execution_service.console import register_console
from backend.services.execution_service.logs import (
    configure_logging,
    current_trace,
    trace_from_header,
)
from backend.services.execution_service.parsing import (
    BadRequest,
    NotAnEnvelope,
    intent_from_push,
    parse_intent,
    parse_json_body,
    parse_push_envelope,
)

log = logging.getLogger(__name__)

OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")


def create_app(settings: Settings | None = None, deps: ServiceParts | None = None) -> Flask:
    """Builds the service. Tests pass ``settings``, or parts wired to test adapters."""
    try:
        settings = settings or (deps.engine.settings if deps else bootstrap.load_settings())
        configure_logging(settings.log_level)
        for notice in settings.startup_warnings:
            log.warning("configuration: %s", notice, extra={"event": "config.warning"})
        parts = deps or bootstrap.build_service(settings)
    except ConfigurationError as exc:
        configure_logging("INFO")
        log.critical("refusing to start: %s", exc, extra={"event": "config.invalid"})
        raise
    if deps is None:
        atexit.register(parts.close)
    engine = parts.engine

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["execution_engine"] = engine
    app.extensions["service_parts"] = parts
    drain = app.extensions["drain"] = Drain()
    _register_errors(app)

    @app.before_request
    def _bind_trace() -> None:
        g.trace_token = current_trace.set(
            trace_from_header(request.headers.get("X-Cloud-Trace-Context"), settings.gcp_project)
        )

    @app.teardown_request
    def _unbind_trace(_exc: BaseException | None) -> None:
        token = g.pop("trace_token", None)
        if token is not None:
            current_trace.reset(token)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/openapi.json")
    def openapi() -> Response:
        # The HTTP contract (docs/openapi.json links to this file), served as written.
        return Response(OPENAPI_DOCUMENT.read_bytes(), mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        if drain.active:
            return jsonify(status="shutting_down", checks={}), 503
        checks = engine.check_readiness()
        ready = all(value == "ok" for value in checks.values())
        return jsonify(
            status="ready" if ready else "not_ready", checks=checks
        ), 200 if ready else 503

    @app.post("/execute")
    def execute() -> tuple[Response, int, dict[str, str]]:
        intent = parse_intent(parse_json_body(_json_body()))
        result = engine.execute_intent(intent, _context("execute"))
        return _respond(result, contract.execute_status(result))

    verifiers = _verifiers(settings)

    @app.before_request
    def _refuse_new_work_while_draining() -> tuple[Response, int, dict[str, str]] | None:
        if drain.active and request.path in ("/execute", "/pubsub/push", "/sync-fills"):
            body, status = refusal(Reason.SHUTTING_DOWN, "this instance is shutting down; retry")
            return body, status, {"Retry-After": "1"}
        return None

    @app.before_request
    def _authenticate() -> tuple[Response, int] | None:
        # Pub/Sub and Cloud Scheduler drive /pubsub/push and /sync-fills; named service
        # accounts call /execute. A path without a verifier is open (or has its own key).
        verifier = verifiers.get(request.path)
        if verifier is None:
            return None
        try:
            verifier.verify(request.headers.get("Authorization"))
        except Unauthorized as exc:
            log.warning("rejected %s: %s", request.path, exc, extra={"event": "auth.rejected"})
            return refusal(Reason.UNAUTHORIZED, str(exc))
        return None

    @app.post("/pubsub/push")
    def pubsub_push() -> tuple[Response, int, dict[str, str]]:
        message = parse_push_envelope(parse_json_body(_json_body()))
        context = _context("pubsub", message.message_id, message.publish_time)
        try:
            intent = intent_from_push(message)
        except BadRequest as exc:
            # A poison message: acked (200) and logged, or Pub/Sub would redeliver it forever.
            log.warning(
                "unusable Pub/Sub message %s: %s",
                message.message_id,
                exc.message,
                extra={
                    "event": "pubsub.poison_message",
                    "pubsub_message_id": message.message_id,
                    "errors": exc.errors,
                    "subscription": message.subscription,
                },
            )
            return _bad_request_body(exc), 200, {}
        result = engine.execute_intent(intent, context)
        return _respond(result, contract.push_status(result))

    @app.post("/sync-fills")
    def sync_fills() -> tuple[Response, int, dict[str, str]]:
        if parts.fill_sync is None:
            return (
                jsonify(
                    status="not_configured",
                    message="the fill sync needs ALPACA_API_KEY and ALPACA_SECRET_KEY",
                ),
                409,
                {},
            )
        report = parts.fill_sync.run()
        if report.status == "failed":  # Scheduler logs the failure; the next run resumes
            return jsonify(report.to_dict()), 503, {"Retry-After": "60"}
        return jsonify(report.to_dict()), 200, {}

    if settings.admin_key is not None:
        register_admin(app, parts, settings.admin_key.get_secret_value())
        register_console(app, parts, settings)
    return app


class Drain:
    """Set once SIGTERM arrives (see gunicorn_conf.post_worker_init); never cleared."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def active(self) -> bool:
        return self._event.is_set()

    def begin(self) -> None:
        if not self._event.is_set():
            self._event.set()
            log.warning(
                "SIGTERM: draining; new intents get 503", extra={"event": "service.draining"}
            )


def _verifiers(settings: Settings) -> dict[str, OidcVerifier]:
    """Path -> the OIDC verifier guarding it; one certificate cache for all of them."""
    certs = CachingRequest()
    verifiers: dict[str, OidcVerifier] = {}
    if settings.push_audience is not None:
        allowed = None if settings.push_service_account is None else {settings.push_service_account}
        push = OidcVerifier(
            settings.push_audience, allowed, certs_url=settings.oidc_certs_url, request=certs
        )
        verifiers |= {"/pubsub/push": push, "/sync-fills": push}
    if settings.execute_audience is not None:
        verifiers["/execute"] = OidcVerifier(
            settings.execute_audience,
            settings.execute_allowed_callers,
            certs_url=settings.oidc_certs_url,
            request=certs,
        )
    return verifiers


def _json_body() -> bytes:
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise _UnsupportedMediaType(mimetype or "none")
    return request.get_data(cache=False)


class _UnsupportedMediaType(Exception):
    def __init__(self, mimetype: str) -> None:
        super().__init__(mimetype)
        self.mimetype = mimetype


def _context(source: str, message_id: str | None = None, publish_time: Any = None) -> IntentContext:
    return IntentContext(
        source=source, publish_time=publish_time, message_id=message_id, trace=current_trace.get()
    )


def _respond(result: ExecutionResult, status: int) -> tuple[Response, int, dict[str, str]]:
    return jsonify(result.to_dict()), status, contract.retry_after(result)


def refusal(reason: Reason, message: str) -> tuple[Response, int]:
    body, status = contract.refusal(reason, message)
    return jsonify(body), status


def _bad_request_body(exc: BadRequest) -> Response:
    return jsonify(
        status="rejected",
        client_intent_id=exc.client_intent_id,
        reason=exc.reason.value,
        retryable=False,
        checks=[],
        message=exc.message,
        errors=exc.errors,
    )


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest) -> tuple[Response, int]:
        return _bad_request_body(exc), 400

    @app.errorhandler(NotAnEnvelope)
    def _not_an_envelope(exc: NotAnEnvelope) -> tuple[Response, int]:
        return refusal(Reason.INVALID_REQUEST, str(exc))

    @app.errorhandler(_UnsupportedMediaType)
    def _unsupported(exc: _UnsupportedMediaType) -> tuple[Response, int]:
        body, _ = refusal(
            Reason.INVALID_REQUEST, f"Content-Type must be application/json, not {exc.mimetype}"
        )
        return body, 415

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        message = f"body larger than {request.max_content_length} bytes"
        if request.path == "/pubsub/push":
            # Redelivery cannot make it smaller: ack it as a poison message, or it comes back
            # until the subscription's retention runs out.
            log.warning(
                "oversized Pub/Sub message acked: %s",
                message,
                extra={"event": "pubsub.poison_message"},
            )
            return _bad_request_body(BadRequest(message)), 200
        return refusal(Reason.INVALID_REQUEST, message)[0], 413

    @app.errorhandler(InternalServerError)
    def _unexpected(exc: InternalServerError) -> tuple[Response, int, dict[str, str]]:
        # An exception outside the engine (Flask has logged its traceback). Like the engine's own
        # unexpected errors: internal_error, retryable, never a bare 500.
        body, status = refusal(Reason.INTERNAL_ERROR, "unexpected error; nothing was decided")
        return body, status, {"Retry-After": "1"}

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        # 404, 405, 413 ... as JSON, so every answer has the same shape.
        return refusal(Reason.INVALID_REQUEST, exc.description or exc.name)[0], exc.code or 500
