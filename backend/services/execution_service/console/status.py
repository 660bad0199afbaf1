"""The Status page as data: what it shows for a given state. Pure: the view reads, this decides.

Every part that could not be read is UNKNOWN with the error, never a healthy default. The one
word follows the gate's own rules (backend/execution/gate.py, agent_state.py): any kill-switch
source on or unreadable halts; AGENT_MODE=HALTED halts; live routing also needs AGENT_MODE=LIVE
(or REDUCING) and the agent READY; dry-run needs neither but sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.adapters.postgres_console_reads import ExposureInputs
from backend.execution.exposure import exposure
from backend.services.execution_service.console.known import Known

TRADING, DRY_RUN, REDUCE_ONLY, HALTED, UNKNOWN = (
    "TRADING", "DRY RUN", "REDUCE ONLY", "HALTED", "UNKNOWN",
)  # fmt: skip
# Tones drive colour only; every tone is also said in words on the page.
OK, WARN, STOP, NOT_KNOWN = "ok", "warn", "stop", "unknown"
REDUCE_VALUES = frozenset({"reduce_only"})


@dataclass(frozen=True)
class StatusInputs:
    now: datetime
    trading_day: date
    state: Known[Mapping[str, Any]]  # admin.state_document(parts)
    readiness: Known[Mapping[str, str]]  # engine.check_readiness()
    # None: no bound account, so no per-account figures exist to read.
    book: Known[ExposureInputs] | None
    # The fill sync's state document (None inside: never ran); None: no fill sync configured.
    fill_sync: Known[Mapping[str, Any] | None] | None
    max_daily_trades: int
    max_position_qty: Decimal
    position_skew_s: float


@dataclass(frozen=True)
class Row:
    """One labelled reading: ``text`` says it in words, ``tone`` colours it."""

    label: str
    text: str
    tone: str
    detail: str = ""


@dataclass(frozen=True)
class ExposureBar:
    symbol: str
    position: Decimal
    working_buy: Decimal
    working_sell: Decimal
    worst_long: Decimal
    worst_short: Decimal
    limit: Decimal
    long_fraction: float  # worst long / limit, 0..1 (capped; the text says the real figure)
    short_fraction: float
    tone: str


@dataclass(frozen=True)
class StatusView:
    word: str
    tone: str
    why: tuple[str, ...]
    switches: tuple[Row, ...]
    agent: tuple[Row, ...]
    account: Row
    trades: Row
    trades_fraction: float | None
    exposure: tuple[ExposureBar, ...]
    exposure_note: Row | None
    fill_sync: Row
    readiness: tuple[Row, ...]
    latched: tuple[Row, ...]
    recent_actions: tuple[Row, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def status_view(inputs: StatusInputs) -> StatusView:
    state = inputs.state
    doc = state.value if state.ok and isinstance(state.value, Mapping) else None
    word, tone, why = _verdict(doc, state.error)
    bars = _exposure(inputs)
    return StatusView(
        word=word,
        tone=tone,
        why=why,
        switches=_switches(doc, state.error),
        agent=_agent(doc, state.error),
        account=_account(doc, state.error),
        trades=_trades(inputs, doc),
        trades_fraction=_trades_fraction(inputs),
        exposure=bars,
        exposure_note=_exposure_note(inputs, bars),
        fill_sync=_fill_sync(inputs),
        readiness=_readiness(inputs.readiness),
        latched=_listed(doc, "latched_strategies", _latch_row),
        recent_actions=_listed(doc, "operator_actions", _action_row),
    )


# -- the word -------------------------------------------------------------------------------


def _verdict(doc: Mapping[str, Any] | None, error: str | None) -> tuple[str, str, tuple[str, ...]]:
    if doc is None:
        return UNKNOWN, NOT_KNOWN, (f"the gate's state could not be read: {error}",)
    inputs: Mapping[str, Any] = doc.get("inputs") or {}
    readings = [r for r in inputs.get("kill_switch") or [] if isinstance(r, Mapping)]
    mode = str(inputs.get("agent_mode") or "")
    dry_run = inputs.get("dry_run")
    agent_state, agent_why = str(doc.get("state") or ""), str(doc.get("why") or "")
    if not isinstance(dry_run, bool) or not mode or not agent_state:
        return UNKNOWN, NOT_KNOWN, ("the gate's state is incomplete: mode, state or dry-run",)
    stops = [_switch_stop(r) for r in readings if r.get("halted") is not False]
    book_halt = doc.get("book_halt")
    if isinstance(book_halt, Mapping) and "error" in book_halt:
        return UNKNOWN, NOT_KNOWN, (
            f"the book's halt record could not be read: {book_halt['error']} (intents that "
            "need the book are refused until it can)",
        )  # fmt: skip
    if isinstance(book_halt, Mapping) and book_halt.get("state") == "halted":
        stops.append(f"halted by {book_halt.get('set_by')}: {book_halt.get('reason')} "
                     f"(the book's halt record, since {book_halt.get('set_at')})")  # fmt: skip
    if mode == "HALTED":
        stops.append("AGENT_MODE is HALTED: every intent is refused")
    if not dry_run and not stops:
        if mode not in ("LIVE", "REDUCING"):
            stops.append(f"AGENT_MODE is {mode}: routing to the broker needs LIVE")
        if agent_state != "READY":
            stops.append(f"agent state {agent_state}: {agent_why}")
    if stops:
        return HALTED, STOP, tuple(stops)
    reducing = [str(r.get("source")) for r in readings if _reads_reduce_only(r)]
    if mode == "REDUCING":
        reducing.append("AGENT_MODE=REDUCING")
    if isinstance(book_halt, Mapping) and book_halt.get("state") == "reduce_only":
        reducing.append(f"the book's halt record, set by {book_halt.get('set_by')}")
    dry_note = "dry run: decisions are made and recorded, nothing is sent to the broker"
    if reducing:
        why = (f"only orders that reduce exposure pass ({', '.join(reducing)})",)
        return REDUCE_ONLY, WARN, why + ((dry_note,) if dry_run else ())
    if dry_run:
        return DRY_RUN, WARN, (dry_note + " (EXEC_DRY_RUN=true)",)
    return TRADING, OK, ("kill switches off, AGENT_MODE=LIVE, agent READY: orders are routed",)


def _reads_reduce_only(reading: Mapping[str, Any]) -> bool:
    value = str(reading.get("value") or "").lower()
    return reading.get("halted") is False and (
        reading.get("reduce_only") is True or value in REDUCE_VALUES
    )


def _switch_stop(reading: Mapping[str, Any]) -> str:
    source = str(reading.get("source") or "a kill-switch source")
    if reading.get("error"):
        return f"kill switch {source} is unreadable, treated as on: {reading['error']}"
    return f"kill switch {source} is on"


# -- the parts ------------------------------------------------------------------------------


def _switches(doc: Mapping[str, Any] | None, error: str | None) -> tuple[Row, ...]:
    if doc is None:
        return (Row("kill switches", "UNKNOWN", NOT_KNOWN, str(error)),)
    readings = [r for r in (doc.get("inputs") or {}).get("kill_switch") or []]
    rows = [_book_halt_row(doc.get("book_halt"))] if doc.get("book_halt") else []
    if not readings:
        return (*rows, Row("kill switches", "none configured", WARN,
                           "no source can halt this gateway without a restart"))  # fmt: skip
    for reading in readings:
        source = str(reading.get("source"))
        value = reading.get("value")
        if reading.get("error"):
            rows.append(Row(source, "UNREADABLE (halts)", STOP, str(reading["error"])))
        elif reading.get("halted") is not False:
            rows.append(Row(source, "ON (halts)", STOP, f"value {value}"))
        elif _reads_reduce_only(reading):
            rows.append(Row(source, "REDUCE ONLY", WARN, f"value {value}"))
        else:
            rows.append(Row(source, "off", OK, f"value {value}"))
    return tuple(rows)


def _book_halt_row(halt: Any) -> Row:
    label = "operator halt (the book's record)"
    if not isinstance(halt, Mapping):
        return Row(label, "UNKNOWN", NOT_KNOWN, str(halt))
    if "error" in halt:
        return Row(label, "UNKNOWN", NOT_KNOWN, str(halt["error"]))
    state = str(halt.get("state"))
    text, tone = {"halted": ("ON (halts)", STOP), "reduce_only": ("REDUCE ONLY", WARN)}.get(
        state, ("off", OK)
    )
    detail = f"{state} by {halt.get('set_by')} at {halt.get('set_at')}: {halt.get('reason')}"
    return Row(label, text, tone, detail)


def _agent(doc: Mapping[str, Any] | None, error: str | None) -> tuple[Row, ...]:
    if doc is None:
        return (Row("AGENT_MODE", "UNKNOWN", NOT_KNOWN, str(error)),
                Row("agent state", "UNKNOWN", NOT_KNOWN, str(error)))  # fmt: skip
    inputs = doc.get("inputs") or {}
    mode = str(inputs.get("agent_mode") or "UNKNOWN")
    state = str(doc.get("state") or "UNKNOWN")
    mode_tone = {"LIVE": OK, "REDUCING": WARN, "HALTED": STOP}.get(mode, WARN)
    state_tone = {"READY": OK, "DEGRADED": WARN, "INIT": WARN}.get(state, STOP)
    rows = [
        Row("AGENT_MODE", mode, mode_tone),
        Row("agent state", state, state_tone, str(doc.get("why") or "")),
        Row("dry run", "yes" if inputs.get("dry_run") else "no",
            WARN if inputs.get("dry_run") else OK),
    ]  # fmt: skip
    if inputs.get("market_data_heartbeat_error"):
        rows.append(Row("market-data heartbeat", "UNREADABLE", STOP,
                        str(inputs["market_data_heartbeat_error"])))  # fmt: skip
    elif inputs.get("market_data_heartbeat"):
        rows.append(Row("market-data heartbeat", str(inputs["market_data_heartbeat"]), OK,
                        f"stale after {inputs.get('market_data_stale_threshold_s')} s"))  # fmt: skip
    return tuple(rows)


def _account(doc: Mapping[str, Any] | None, error: str | None) -> Row:
    if doc is None:
        return Row("bound account", "UNKNOWN", NOT_KNOWN, str(error))
    account = (doc.get("inputs") or {}).get("broker_account_id")
    if not account:
        return Row("bound account", "none", WARN, "EXEC_BROKER_ACCOUNT_ID is not set (dry-run)")
    return Row("bound account", str(account), OK)


def _trades(inputs: StatusInputs, doc: Mapping[str, Any] | None) -> Row:
    cap = inputs.max_daily_trades
    label = f"trades on {inputs.trading_day.isoformat()}"
    if inputs.book is None:
        return Row(label, "UNKNOWN", NOT_KNOWN, "no bound account: the cap is per account")
    if not inputs.book.ok or inputs.book.value is None:
        return Row(label, "UNKNOWN", NOT_KNOWN, str(inputs.book.error))
    count = inputs.book.value.trades_today
    tone = STOP if count >= cap else WARN if count >= 0.8 * cap else OK
    detail = ""
    if doc is not None and (doc.get("inputs") or {}).get("dry_run"):
        detail = "dry run reserves no slot: only orders routed for real count"
    return Row(label, f"{count} of {cap}", tone, detail)


def _trades_fraction(inputs: StatusInputs) -> float | None:
    if inputs.book is None or not inputs.book.ok or inputs.book.value is None:
        return None
    cap = inputs.max_daily_trades
    return 1.0 if cap == 0 else min(1.0, inputs.book.value.trades_today / cap)


def _exposure(inputs: StatusInputs) -> tuple[ExposureBar, ...]:
    if inputs.book is None or not inputs.book.ok or inputs.book.value is None:
        return ()
    book, limit = inputs.book.value, inputs.max_position_qty
    skew = timedelta(seconds=inputs.position_skew_s)
    bars = []
    for symbol in book.symbols:
        seen = exposure(book.positions.get(symbol), book.orders.get(symbol, []), skew=skew)
        if seen.position == 0 and seen.working_buy == 0 and seen.working_sell == 0:
            continue  # flat and nothing working: nothing to show
        long_side, short_side = max(seen.worst_long, Decimal(0)), max(-seen.worst_short, Decimal(0))
        worst = max(long_side, short_side)
        tone = STOP if worst > limit else WARN if worst >= limit * Decimal("0.8") else OK
        bars.append(
            ExposureBar(
                symbol=symbol,
                position=seen.position,
                working_buy=seen.working_buy,
                working_sell=seen.working_sell,
                worst_long=seen.worst_long,
                worst_short=seen.worst_short,
                limit=limit,
                long_fraction=_fraction(long_side, limit),
                short_fraction=_fraction(short_side, limit),
                tone=tone,
            )
        )
    return tuple(bars)


def _exposure_note(inputs: StatusInputs, bars: tuple[ExposureBar, ...]) -> Row | None:
    if inputs.book is None:
        return Row("exposure", "UNKNOWN", NOT_KNOWN, "no bound account: exposure is per account")
    if not inputs.book.ok:
        return Row("exposure", "UNKNOWN", NOT_KNOWN, str(inputs.book.error))
    if not bars:
        return Row("exposure", "flat", OK, "no position and no working orders")
    return None


def _fraction(value: Decimal, limit: Decimal) -> float:
    if limit <= 0:
        return 1.0 if value > 0 else 0.0
    return float(min(Decimal(1), value / limit))


def _fill_sync(inputs: StatusInputs) -> Row:
    label = "latest fill sync"
    if inputs.fill_sync is None:
        return Row(label, "not configured", WARN, "the fill sync needs the Alpaca keys")
    if not inputs.fill_sync.ok:
        return Row(label, "UNKNOWN", NOT_KNOWN, str(inputs.fill_sync.error))
    document = inputs.fill_sync.value
    if not document:
        return Row(label, "never run", WARN, "no run has saved a cursor yet")
    last = document.get("last_run") if isinstance(document.get("last_run"), Mapping) else None
    at = last.get("at") if last else document.get("updated_at")
    when = _ago(inputs.now, at)
    if last is None:
        return Row(label, f"ran {when}", WARN, "its result was not recorded")
    status = str(last.get("status"))
    tone = {"complete": OK, "budget_exhausted": WARN}.get(status, STOP)
    counts = ", ".join(
        f"{key.replace('_', ' ')} {last.get(key)}"
        for key in ("orders_seen", "fills_added", "orders_adopted", "book_rows_released")
        if last.get(key) is not None
    )
    detail = f"{counts}; error: {last['error']}" if last.get("error") else counts
    return Row(label, f"{status}, {when}", tone, detail)


def _ago(now: datetime, at: Any) -> str:
    if not isinstance(at, datetime):
        return f"at {at}" if at else "at an unknown time"
    seconds = int((now - at).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _readiness(readiness: Known[Mapping[str, str]]) -> tuple[Row, ...]:
    if not readiness.ok or readiness.value is None:
        return (Row("dependencies", "UNKNOWN", NOT_KNOWN, str(readiness.error)),)
    if not readiness.value:
        return (Row("dependencies", "UNKNOWN", NOT_KNOWN, "no dependency reported"),)
    return tuple(
        Row(name, "ready", OK) if result == "ok" else Row(name, "NOT READY", STOP, str(result))
        for name, result in readiness.value.items()
    )


def _listed(doc: Mapping[str, Any] | None, key: str, shown: Any) -> tuple[Row, ...]:
    if doc is None:
        return (Row(key.replace("_", " "), "UNKNOWN", NOT_KNOWN, "the state could not be read"),)
    value = doc.get(key)
    if isinstance(value, Mapping) and "error" in value:  # admin._or_error
        return (Row(key.replace("_", " "), "UNKNOWN", NOT_KNOWN, str(value["error"])),)
    if not isinstance(value, Sequence):
        return ()
    return tuple(shown(item) for item in value if isinstance(item, Mapping))


def _latch_row(latch: Mapping[str, Any]) -> Row:
    return Row(str(latch.get("strategy_id")), "HALTED (latched)", STOP,
               f"since {latch.get('latched_at')}: {latch.get('latch_detail')}")  # fmt: skip


def _action_row(action: Mapping[str, Any]) -> Row:
    what = str(action.get("action"))
    if action.get("mode"):
        what += f" ({action['mode']})"
    return Row(str(action.get("at")), what, OK,
               f"by {action.get('who')}: {action.get('reason')}")  # fmt: skip
