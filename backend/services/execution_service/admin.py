"""The operator's endpoints (only when EXEC_AGENT_ADMIN_KEY is set), all behind the header
``X-Exec-Agent-Key`` compared in constant time. Views parse, call, and map; the actions
themselves live in backend/execution/operator.py, shared with the console."""

from __future__ import annotations

import hmac
import re
from typing import Any

from flask import Flask, Response, jsonify, request

from backend.execution.bootstrap import ServiceParts
from backend.execution.context_reader import reduce_only_source
from backend.execution.decisions import jsonable
from backend.execution.errors import RiskDataUnavailable, TransientError
from backend.execution.operator import ActionResult, Operator
from backend.execution.vocabulary import Reason
from backend.services.execution_service import contract

MAX_REASON = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadAction(Exception):
    """An operator request that cannot be carried out as sent (400)."""


def register_admin(app: Flask, parts: ServiceParts, admin_key: str) -> None:
    engine = parts.engine

    @app.before_request
    def _admin_key() -> tuple[Response, int] | None:
        if request.path not in ADMIN_PATHS and not request.path.startswith("/strategies/"):
            return None
        offered = request.headers.get("X-Exec-Agent-Key", "")
        if hmac.compare_digest(offered.encode(), admin_key.encode()):
            return None
        body, status = contract.refusal(Reason.UNAUTHORIZED, "missing or wrong X-Exec-Agent-Key")
        return jsonify(body), status

    @app.errorhandler(TransientError)
    def _unavailable(exc: TransientError) -> tuple[Response, int, dict[str, str]]:
        reason = Reason.LEDGER_UNAVAILABLE
        if isinstance(exc, RiskDataUnavailable):
            reason = Reason.RISK_DATA_UNAVAILABLE
        body, status = contract.refusal(reason, str(exc))
        return jsonify(body), status, {"Retry-After": "5"}

    @app.errorhandler(BadAction)
    def _bad_action(exc: BadAction) -> tuple[Response, int]:
        body, status = contract.refusal(Reason.INVALID_REQUEST, str(exc))
        return jsonify(body), status

    @app.get("/state")
    def state() -> tuple[Response, int]:
        return jsonify(state_document(parts)), 200

    @app.post("/recover")
    def recover() -> tuple[Response, int]:
        engine.agent.recover()
        snapshot = engine.gate_snapshot()
        return jsonify(state=snapshot.agent_state.value, why=snapshot.agent_state_why), 200

    if parts.operator.kill_switch_document_configured:
        # Only with the Firestore kill switch: a file or env switch cannot be flipped from here.

        @app.post("/halt")
        def halt() -> tuple[Response, int]:
            body = _json_object()
            mode = body.get("mode", "halt")
            cancel = body.get("cancel_working_orders", False)
            if mode not in ("halt", "reduce_only") or not isinstance(cancel, bool):
                raise BadAction(
                    '"mode" is "halt" or "reduce_only"; "cancel_working_orders" a boolean'
                )
            result = parts.operator.halt(
                reason=required_reason(), who=Operator("operator"),
                cancel_working_orders=cancel, mode=mode,
            )  # fmt: skip
            return _answer(result, failed_status=409)

        @app.post("/resume")
        def resume() -> tuple[Response, int]:
            result = parts.operator.resume(reason=required_reason(), who=Operator("operator"))
            return _answer(result, failed_status=409)

    # path: a strategy id may hold "/" (it is free text), and a latched one must be liftable.
    @app.post("/strategies/<path:strategy_id>/enable")
    def enable_strategy(strategy_id: str) -> tuple[Response, int]:
        result = parts.operator.enable_strategy(
            strategy_id, reason=required_reason(), who=Operator("operator")
        )
        return _answer(result, failed_status=409)


ADMIN_PATHS = frozenset({"/state", "/recover", "/halt", "/resume"})


def state_document(parts: ServiceParts) -> dict[str, Any]:
    """Everything GET /state shows: the gate's inputs, latched strategies, recent actions."""
    engine = parts.engine
    snapshot = engine.gate_snapshot()
    return {
        "state": snapshot.agent_state.value,
        "why": snapshot.agent_state_why,
        # Who put the gateway in reduce-only mode, if anyone (AGENT_MODE or a kill switch).
        "reduce_only": reduce_only_source(
            engine.settings, [r.source for r in snapshot.kill_switch if r.reduce_only]
        ),
        "inputs": {
            "agent_mode": engine.settings.agent_mode.value,
            "dry_run": engine.dry_run,
            "broker_account_id": engine.settings.broker_account_id,
            "kill_switch": [r.to_dict() for r in snapshot.kill_switch],
            "market_data_heartbeat": jsonable(snapshot.heartbeat),
            "market_data_heartbeat_error": snapshot.heartbeat_error,
            "market_data_stale_threshold_s": engine.settings.heartbeat_stale_s,
        },
        "book_halt": jsonable(_or_error(parts.operator.halt_state)),
        "latched_strategies": jsonable(_or_error(parts.operator.latched_strategies)),
        "operator_actions": jsonable(_or_error(parts.operator.recent_actions)),
    }


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def required_reason() -> str:
    reason = _json_object().get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadAction('a "reason" is required: say why, for the record')
    if len(reason) > MAX_REASON or _CONTROL.search(reason):
        raise BadAction(f"the reason must be at most {MAX_REASON} printable characters")
    return reason.strip()


def _answer(result: ActionResult, *, failed_status: int) -> tuple[Response, int]:
    body = {"ok": result.ok, "message": result.message, "details": jsonable(result.details)}
    if result.action_id:
        body["action_id"] = result.action_id
    return jsonify(body), 200 if result.ok else failed_status


def _or_error(read: Any) -> Any:
    """A part of the state that cannot be read shows as such, never as empty."""
    try:
        return read()
    except TransientError as exc:
        return {"error": f"unreadable: {type(exc).__name__}: {str(exc)[:200]}"}
