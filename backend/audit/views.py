"""What the listings show of a ledger row or a decision record, per output format. Pure.

Decimal strings are passed through exactly as stored; they are never parsed, so "0.10" stays
"0.10" and no float ever touches a quantity or a price.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.audit.timestamps import chronological, shown

Row = Mapping[str, Any]

# Outcomes whose detail an auditor needs to see next to the check's name.
_NOTABLE_OUTCOMES = frozenset({"failed", "error", "warning"})


def counted(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Row], str | None]


def text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    return shown(value)


def stored(field: str, header: str | None = None) -> Column:
    return Column(header or field, lambda row: text(row.get(field)))


_INTENT_COLUMNS = tuple(
    stored(field)
    for field in (
        "client_intent_id",
        "strategy_id",
        "broker_account_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "time_in_force",
        "limit_price",
        "stop_price",
        "status",
    )
)  # the order's own fields, as both csv views list them


def instant(field: str, header: str | None = None) -> Column:
    return Column(header or field, lambda row: shown(row.get(field)))


@dataclass(frozen=True)
class View:
    """How one kind of row is printed in each format."""

    table: tuple[Column, ...]
    details: Callable[[Row], list[str]]  # indented lines under a table row
    csv: tuple[Column, ...]
    document: Callable[[Row], dict[str, Any]]  # one jsonl object
    footer: Callable[[list[Row]], str]  # the table's closing count


# -- ledger_trades --------------------------------------------------------------------------


def fills_of(row: Row) -> list[dict[str, Any]]:
    """The order's FILL activities from ``raw_fills`` (absent: none), by transaction_time."""
    raw = row.get("raw_fills")
    if not isinstance(raw, Mapping):
        return []
    fills = [{"activity_id": key, **fill} for key, fill in raw.items() if isinstance(fill, Mapping)]
    return sorted(fills, key=lambda f: (chronological(f.get("transaction_time")), f["activity_id"]))


def fill_line(fill: Mapping[str, Any]) -> str:
    return (
        f"{fill.get('type') or 'fill'} {fill.get('transaction_time')} qty={fill.get('qty')} "
        f"price={fill.get('price')} cum_qty={fill.get('cum_qty')} "
        f"leaves_qty={fill.get('leaves_qty')} activity={fill['activity_id']}"
    )


def _trade_document(row: Row) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "raw_fills"} | {
        "fills": fills_of(row)
    }


def _trades_footer(rows: list[Row]) -> str:
    fills = sum(len(fills_of(row)) for row in rows)
    return f"{counted(len(rows), 'order')}, {counted(fills, 'fill')}"


TRADES = View(
    table=(
        instant("created_at"),
        stored("broker_order_id", "order"),
        stored("client_intent_id", "intent"),
        stored("strategy_id", "strategy"),
        stored("symbol"),
        stored("side"),
        stored("qty"),
        stored("order_type", "type"),
        stored("limit_price", "limit"),
        stored("stop_price", "stop"),
        stored("status"),
        stored("filled_qty", "filled"),
        stored("filled_avg_price", "avg_price"),
    ),
    details=lambda row: [fill_line(fill) for fill in fills_of(row)],
    csv=(
        stored("trading_date"),
        instant("created_at"),
        stored("broker_order_id"),
        *_INTENT_COLUMNS,
        stored("filled_qty"),
        stored("filled_avg_price"),
        stored("filled_at"),
        stored("submitted_at"),
        Column("fills", lambda row: str(len(fills_of(row)))),
    ),
    document=_trade_document,
    footer=_trades_footer,
)


# -- execution_intents ----------------------------------------------------------------------


def summarize_checks(checks: Any) -> str:
    """'intent_age=skipped, kill_switch=failed (file:/k is on), …' in the order they ran."""
    if not isinstance(checks, list):
        return ""
    parts = []
    for check in checks:
        if not isinstance(check, Mapping):
            continue
        part = f"{check.get('name')}={check.get('outcome')}"
        if check.get("outcome") in _NOTABLE_OUTCOMES:
            why = check.get("detail") or check.get("reason")
            part += f" ({why})" if why else ""
        parts.append(part)
    return ", ".join(parts)


def _decision_details(row: Row) -> list[str]:
    lines = [f"message: {row['message']}"] if row.get("message") else []
    checks = summarize_checks(row.get("checks"))
    return [*lines, f"checks: {checks}"] if checks else lines


def _decisions_footer(rows: list[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    by_status = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    return counted(len(rows), "decision") + (f" ({by_status})" if by_status else "")


DECISIONS = View(
    table=(
        instant("received_at"),
        stored("client_intent_id", "intent"),
        stored("strategy_id", "strategy"),
        stored("symbol"),
        stored("side"),
        stored("qty"),
        stored("order_type", "type"),
        stored("limit_price", "limit"),
        stored("status"),
        stored("reason"),
        stored("broker_order_id", "order"),
    ),
    details=_decision_details,
    csv=(
        stored("trading_date"),
        instant("received_at"),
        instant("decided_at"),
        *_INTENT_COLUMNS,
        stored("reason"),
        stored("retryable"),
        stored("message"),
        stored("broker_order_id"),
        stored("attempt"),
        stored("source"),
        Column("checks", lambda row: summarize_checks(row.get("checks"))),
    ),
    document=dict,
    footer=_decisions_footer,
)
