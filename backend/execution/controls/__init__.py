"""The pre-trade controls: one ordered table of small pure rules (``table.CONTROLS``).

Each control is a function of the intent, a context snapshot and the settings, returning a
:class:`~backend.execution.decisions.CheckResult` with a stable reason code and its inputs.
The engine gathers the context once per intent and runs the table; adding a control touches the
table, its settings and docs/RISK_CONTROLS.md, never the engine.
"""
