"""The operator and auditor console at /console/ (docs/CONSOLE.md).

Server-rendered pages over the same parts the service runs on: the gate's state from
``admin.state_document``, actions through ``parts.operator`` (the admin endpoints' code path),
and the audit toolkit's reads, views and reconcile. It exists only when EXEC_AGENT_ADMIN_KEY is
set. The only JavaScript is a small file of its own (auto-refresh); charts are SVG drawn here.
"""

from backend.services.execution_service.console.views import register_console

__all__ = ["register_console"]
