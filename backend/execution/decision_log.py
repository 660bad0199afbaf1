"""One structured log record per intent: what was asked, what was decided, and why."""

from __future__ import annotations

import logging
from typing import Any

from backend.execution.decisions import ExecutionResult
from backend.execution.intent import OrderIntent

_log = logging.getLogger("backend.execution.decision")


def log_decision(
    intent: OrderIntent,
    result: ExecutionResult,
    *,
    source: str,
    message_id: str | None,
    trace: str | None,
    dry_run: bool,
    broker_name: str,
) -> None:
    record: dict[str, Any] = {
        "client_intent_id": intent.client_intent_id,
        "strategy_id": intent.strategy_id,
        "broker_account_id": intent.broker_account_id,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "qty": format(intent.qty, "f"),
        "order_type": intent.order_type.value,
        "source": source,
        "pubsub_message_id": message_id,
        "dry_run": dry_run,
        "broker": broker_name,
        **result.to_dict(),
    }
    _log.log(
        logging.INFO if result.accepted else logging.WARNING,
        "intent %s: %s%s",
        intent.client_intent_id,
        result.status.value,
        f" ({result.reason.value})" if result.reason else "",
        extra={"event": "execution.decision", "decision": record, "trace": trace},
    )
