"""The Decisions page as data: the day's decision records filtered, paged newest first, each
with its checks, and the two charts. Pure: the records come in, the page's model goes out.

Records are execution_intents documents as the audit toolkit reads them (backend/audit/queries);
the CSV export writes them with the toolkit's own view (backend/audit/views.DECISIONS).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.audit import views
from backend.audit.timestamps import shown
from backend.audit.views import Column, View
from backend.services.execution_service.console.day_cache import (
    CHECKS_JSON,
    CHECKS_SUMMARY,
    RECEIVED_MINUTE,
    RECEIVED_S,
    with_checks,
)

Record = Mapping[str, Any]
PAGE_SIZE = 25
# Stacking order of the per-minute chart, and the colour class of each outcome.
OUTCOMES = ("submitted", "dry_run", "duplicate", "rejected", "retry_pending", "in_progress")
FILTER_FIELDS = ("status", "reason", "strategy_id", "symbol")


@dataclass(frozen=True)
class DecisionFilters:
    status: str = ""
    reason: str = ""
    strategy_id: str = ""
    symbol: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> DecisionFilters:
        return cls(**{name: str(args.get(name, "")).strip()[:128] for name in FILTER_FIELDS})

    def keeps(self, record: Record) -> bool:
        return all(str(record.get(name) or "") == wanted for name, wanted in self.query().items())

    def kept(self, records: Sequence[Record]) -> list[Record]:
        chosen = list(self.query().items())
        if not chosen:
            return list(records)
        return [r for r in records if all(str(r.get(k) or "") == v for k, v in chosen)]

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FILTER_FIELDS}

    def query(self) -> dict[str, str]:
        """The filters that are set, for links (pages, CSV) that keep them."""
        return {k: v for k, v in self.as_dict().items() if v}


@dataclass(frozen=True)
class CheckRow:
    name: str
    outcome: str
    reason: str
    detail: str
    inputs: str  # JSON, sorted keys


@dataclass(frozen=True)
class DecisionRow:
    client_intent_id: str
    received_at: str
    strategy_id: str
    symbol: str
    side: str
    qty: str
    order_type: str
    limit_price: str
    status: str
    reason: str
    message: str
    broker_order_id: str
    source: str
    checks: tuple[CheckRow, ...]


@dataclass(frozen=True)
class MinuteBar:
    label: str  # HH:MM (UTC)
    x: float
    segments: tuple[tuple[str, float, float], ...]  # (outcome, y, height)
    total: int
    title: str


@dataclass(frozen=True)
class MinuteChart:
    width: float
    height: float
    bars: tuple[MinuteBar, ...]
    ticks: tuple[tuple[float, str], ...]
    peak: int
    totals: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ReasonBar:
    reason: str
    count: int
    width: float  # of 100


@dataclass(frozen=True)
class DecisionsView:
    total: int
    matching: int
    page: int
    pages: int
    rows: tuple[DecisionRow, ...]
    options: Mapping[str, tuple[str, ...]]
    per_minute: MinuteChart
    refusals: tuple[ReasonBar, ...]


def decisions_view(
    records: Sequence[Record],
    filters: DecisionFilters,
    page: int,
    *,
    page_size: int = PAGE_SIZE,
    options: Mapping[str, tuple[str, ...]] | None = None,
    newest_first_already: bool = False,
) -> DecisionsView:
    """``options``: the filter choices, when the caller already has them for these records;
    ``newest_first_already``: the records come sorted (the console's copy of the day is)."""
    kept = filters.kept(records)
    newest_first = kept if newest_first_already else sorted(kept, key=_received, reverse=True)
    pages = max(1, math.ceil(len(newest_first) / page_size))
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    return DecisionsView(
        total=len(records),
        matching=len(kept),
        page=page,
        pages=pages,
        rows=tuple(decision_row(r) for r in newest_first[start : start + page_size]),
        options=options if options is not None else filter_options(records),
        per_minute=minute_chart(kept),
        refusals=refusal_bars(kept),
    )


def for_export(records: Sequence[Record], filters: DecisionFilters) -> list[Record]:
    """What the CSV holds: the matching records, in the order the audit CLI lists them."""
    return sorted(filters.kept(records), key=_received)


def _checks_column(column: Column) -> Column:
    """The toolkit's own columns; the checks summary is the toolkit's own function's result,
    computed once when the console kept the record rather than again for every export."""
    if column.header != "checks":
        return column
    return Column(
        "checks",
        lambda row: row[CHECKS_SUMMARY] if CHECKS_SUMMARY in row else column.value(row),
    )


EXPORT: View = replace(
    views.DECISIONS, csv=tuple(_checks_column(column) for column in views.DECISIONS.csv)
)


def decision_row(record: Record) -> DecisionRow:
    checks = _full(record).get("checks")
    return DecisionRow(
        client_intent_id=_text(record.get("client_intent_id")),
        received_at=shown(record.get("received_at")) or "",
        strategy_id=_text(record.get("strategy_id")),
        symbol=_text(record.get("symbol")),
        side=_text(record.get("side")),
        qty=_text(record.get("qty")),
        order_type=_text(record.get("order_type")),
        limit_price=_text(record.get("limit_price")),
        status=_text(record.get("status")),
        reason=_text(record.get("reason")),
        message=_text(record.get("message")),
        broker_order_id=_text(record.get("broker_order_id")),
        source=_text(record.get("source")),
        checks=tuple(
            CheckRow(
                name=_text(check.get("name")),
                outcome=_text(check.get("outcome")),
                reason=_text(check.get("reason")),
                detail=_text(check.get("detail")),
                inputs=json.dumps(check.get("inputs") or {}, sort_keys=True, default=str),
            )
            for check in (checks if isinstance(checks, list) else [])
            if isinstance(check, Mapping)
        ),
    )


# -- charts ---------------------------------------------------------------------------------

BAR_WIDTH, BAR_GAP, CHART_HEIGHT = 4.0, 1.0, 120.0


def minute_chart(records: Sequence[Record]) -> MinuteChart:
    """Decisions per minute (UTC) by outcome, from the first minute to the last, as stacked
    bars on one scale. Empty minutes stay in, so the x axis is time."""
    counted = Counter((_minute(r), r.get("status") or "unknown") for r in records)
    by_minute: dict[datetime, Counter[str]] = {}
    for (minute_number, status), n in counted.items():
        if minute_number is not None:
            minute = datetime.fromtimestamp(minute_number * 60, UTC)
            by_minute.setdefault(minute, Counter())[str(status)] += n
    totals: Counter[str] = Counter()
    for (_, status), n in counted.items():
        totals[str(status)] += n
    if not by_minute:
        return MinuteChart(0, CHART_HEIGHT, (), (), 0, _ordered(totals))
    first, last = min(by_minute), max(by_minute)
    span = int((last - first).total_seconds() // 60) + 1
    peak = max(sum(c.values()) for c in by_minute.values())
    scale = CHART_HEIGHT / peak
    bars, ticks = [], []
    step = _tick_step(span)
    for index in range(span):
        minute = first + timedelta(minutes=index)
        x = index * (BAR_WIDTH + BAR_GAP)
        label = minute.strftime("%H:%M")
        if minute.minute % step == 0:
            ticks.append((x, label))
        counts = by_minute.get(minute)
        if not counts:
            continue
        y, segments = CHART_HEIGHT, []
        for outcome, count in _ordered(counts):
            height = count * scale
            y -= height
            segments.append((outcome, round(y, 2), round(height, 2)))
        total = sum(counts.values())
        parts = ", ".join(f"{n} {o}" for o, n in _ordered(counts))
        bars.append(MinuteBar(label, x, tuple(segments), total, f"{label}: {total} ({parts})"))
    width = span * (BAR_WIDTH + BAR_GAP)
    return MinuteChart(width, CHART_HEIGHT, tuple(bars), tuple(ticks), peak, _ordered(totals))


def refusal_bars(records: Sequence[Record]) -> tuple[ReasonBar, ...]:
    """Refused decisions (any with a reason: final refusals and retryable ones) by reason."""
    counts = Counter(str(r.get("reason")) for r in records if r.get("reason"))
    if not counts:
        return ()
    most = max(counts.values())
    return tuple(
        ReasonBar(reason, count, round(100 * count / most, 1))
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )


def _tick_step(span_minutes: int) -> int:
    for step in (1, 5, 10, 15, 30, 60):
        if span_minutes / step <= 12:
            return step
    return 120


def _ordered(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    known = [(o, counts[o]) for o in OUTCOMES if counts.get(o)]
    other = sorted((o, n) for o, n in counts.items() if o not in OUTCOMES and n)
    return tuple(known + other)


def _minute(record: Record) -> int | None:
    minute = record.get(RECEIVED_MINUTE)
    if minute is None and isinstance(at := record.get("received_at"), datetime):
        return int(at.timestamp() // 60)
    return minute if isinstance(minute, int) else None


def filter_options(records: Sequence[Record]) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(sorted({str(r.get(name)) for r in records if r.get(name)}))
        for name in FILTER_FIELDS
    }


def _received(record: Record) -> tuple[float, str]:
    at = record.get(RECEIVED_S)
    if at is None and isinstance(received := record.get("received_at"), datetime):
        at = received.timestamp()
    return (at if at is not None else float("-inf"), str(record.get("client_intent_id")))


def _full(record: Record) -> Record:
    """Records from the console's copy of the day keep their checks as JSON (day_cache)."""
    return with_checks(record) if CHECKS_JSON in record else record


def _text(value: Any) -> str:
    return "" if value is None else str(value)
