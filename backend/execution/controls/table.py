"""The ordered table of pre-trade controls, and the one function that runs a stage of it.

Order matters only for which refusal is reported first: cheap, final refusals on the order
itself come before checks that depend on data, and every check that runs is recorded with its
inputs. A control switched off with "off" is still listed, as skipped, so an auditor sees it was
off rather than missing. See docs/RISK_CONTROLS.md for the sources and defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backend.execution.controls import book_rules, order_rules
from backend.execution.controls.context import ControlContext, Fact, Stage
from backend.execution.decisions import CheckResult
from backend.execution.intent import OrderIntent
from backend.execution.settings import Settings
from backend.execution.vocabulary import CheckOutcome

Check = Callable[[OrderIntent, ControlContext, Settings], CheckResult]


@dataclass(frozen=True)
class Control:
    name: str
    stage: Stage
    check: Check
    # The broker facts it reads; read only while the control is on.
    reads: frozenset[Fact] = frozenset()
    # None: always on. Otherwise the variable that switches it off, and how to tell it is off.
    switch: tuple[str, Callable[[Settings], bool]] | None = None

    def is_on(self, settings: Settings) -> bool:
        return self.switch is None or self.switch[1](settings)


def _needs_reference(settings: Settings) -> bool:
    return settings.max_order_notional is not None or settings.price_collar_pct is not None


CONTROLS: tuple[Control, ...] = (
    Control("symbol_restricted", Stage.ORDER, order_rules.restricted_symbol,
            frozenset({Fact.RESTRICTED_LIST})),
    Control("market_hours", Stage.ORDER, order_rules.market_hours,
            frozenset({Fact.MARKET_CLOCK, Fact.TRADING_SESSION}),
            ("EXEC_TRADING_HOURS=any", lambda s: s.trading_hours != "any")),
    Control("max_order_qty", Stage.ORDER, order_rules.max_order_qty,
            switch=("EXEC_MAX_ORDER_QTY=off", lambda s: s.max_order_qty is not None)),
    Control("reference_price", Stage.ORDER, order_rules.reference_price,
            frozenset({Fact.REFERENCE_PRICE, Fact.MARKET_CLOCK}),
            ("EXEC_MAX_ORDER_NOTIONAL=off and EXEC_PRICE_COLLAR_PCT=off", _needs_reference)),
    Control("max_order_notional", Stage.ORDER, order_rules.max_order_notional,
            frozenset({Fact.REFERENCE_PRICE}),
            ("EXEC_MAX_ORDER_NOTIONAL=off", lambda s: s.max_order_notional is not None)),
    Control("price_collar", Stage.ORDER, order_rules.price_collar,
            frozenset({Fact.REFERENCE_PRICE}),
            ("EXEC_PRICE_COLLAR_PCT=off", lambda s: s.price_collar_pct is not None)),
    Control("operator_halt", Stage.BOOK, book_rules.operator_halt),
    Control("reduce_only", Stage.BOOK, book_rules.reduce_only),
    Control("max_daily_trades", Stage.BOOK, book_rules.max_daily_trades),
    Control("max_position_size", Stage.BOOK, book_rules.max_position_size),
    Control("order_rate", Stage.BOOK, book_rules.order_rate,
            switch=("EXEC_MAX_ORDERS_PER_MINUTE=off",
                    lambda s: s.max_orders_per_minute is not None)),
    Control("repeated_execution", Stage.BOOK, book_rules.repeated_execution,
            switch=("EXEC_REPEAT_LIMIT=off", lambda s: s.repeat_limit is not None)),
)  # fmt: skip


def facts_needed(settings: Settings, controls: tuple[Control, ...] = CONTROLS) -> frozenset[Fact]:
    """The broker facts the controls that are on will read; the engine reads only these.
    The trading calendar is only read for extended hours, the clock for the rest."""
    needed = frozenset().union(*(c.reads for c in controls if c.is_on(settings)))
    if settings.trading_hours != "extended":
        needed -= {Fact.TRADING_SESSION}
    return needed


def run_stage(
    stage: Stage,
    intent: OrderIntent,
    ctx: ControlContext,
    settings: Settings,
    controls: tuple[Control, ...] = CONTROLS,
) -> list[CheckResult]:
    results = []
    for control in controls:
        if control.stage is not stage:
            continue
        if control.is_on(settings):
            results.append(control.check(intent, ctx, settings))
        elif control.switch is not None:
            results.append(
                CheckResult(
                    control.name,
                    CheckOutcome.SKIPPED,
                    {},
                    detail=f"switched off: {control.switch[0]}",
                )
            )
    return results
