"""JSON logs in Cloud Logging's shape: ``severity``, ``message`` and the request's trace.

Cloud Run and GKE ship stdout lines to Cloud Logging, which reads these keys to set the entry's
severity and to group it under the request's trace.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TRACE_KEY = "logging.googleapis.com/trace"
current_trace: ContextVar[str | None] = ContextVar("current_trace", default=None)

_DROPPED = (
    "levelname",
    "levelno",
    "msg",
    "args",
    "exc_text",
    "stack_info",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "taskName",
    "pathname",
    "filename",
    "module",
    "funcName",
    "lineno",
    "trace",
    "color_message",
)


class CloudLoggingFormatter(JsonFormatter):
    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        for key in _DROPPED:
            log_record.pop(key, None)
        log_record["severity"] = record.levelname
        log_record["message"] = record.getMessage()
        log_record["logger"] = record.name
        trace = getattr(record, "trace", None) or current_trace.get()
        if trace:
            log_record[TRACE_KEY] = trace


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(timestamp=True))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def trace_from_header(header: str | None, project: str | None) -> str | None:
    """``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` -> ``projects/P/traces/TRACE_ID``."""
    if not header or not project:
        return None
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id or not trace_id.isalnum():
        return None
    return f"projects/{project}/traces/{trace_id}"
