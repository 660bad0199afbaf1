"""What the Decisions page shows for a day's records: filters, pages newest first, each row's
checks with their inputs, the two charts, and a CSV that is the audit toolkit's own."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.audit import views
from backend.audit.output import write_csv
from backend.services.execution_service.console.decisions import (
    DecisionFilters,
    decisions_view,
    for_export,
    minute_chart,
    refusal_bars,
)

T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


def record(n: int, *, seconds: float, status: str = "dry_run", reason: str | None = None,
           strategy: str = "s", symbol: str = "SPY") -> dict[str, Any]:  # fmt: skip
    return {
        "client_intent_id": f"i-{n}",
        "strategy_id": strategy,
        "broker_account_id": "paper-1",
        "symbol": symbol,
        "side": "buy",
        "qty": "1",
        "order_type": "market",
        "status": status,
        "reason": reason,
        "received_at": T0 + timedelta(seconds=seconds),
        "trading_date": "2026-03-10",
        "checks": [
            {"name": "kill_switch", "outcome": "passed", "inputs": {"sources": []}},
            {
                "name": "max_order_qty",
                "outcome": "failed" if reason else "passed",
                "inputs": {"qty": "1", "limit": "100"},
                "reason": reason,
                "detail": "too big" if reason else "",
            },
        ],
    }


DAY = [
    record(1, seconds=0),
    record(2, seconds=10, status="rejected", reason="max_order_qty_exceeded", symbol="QQQ"),
    record(3, seconds=70, strategy="momo"),
    record(4, seconds=75, status="retry_pending", reason="risk_data_unavailable"),
    record(5, seconds=200, status="rejected", reason="max_order_qty_exceeded", strategy="momo"),
]


def test_rows_are_newest_first() -> None:
    shown = decisions_view(DAY, DecisionFilters(), 1)
    assert [row.client_intent_id for row in shown.rows] == ["i-5", "i-4", "i-3", "i-2", "i-1"]
    assert shown.rows[0].received_at == "2026-03-10T14:33:20Z"


def test_each_filter_keeps_only_matching_records_and_they_combine() -> None:
    def ids(**chosen: str) -> list[str]:
        shown = decisions_view(DAY, DecisionFilters.from_args(chosen), 1)
        return [row.client_intent_id for row in shown.rows]

    assert ids(status="rejected") == ["i-5", "i-2"]
    assert ids(reason="risk_data_unavailable") == ["i-4"]
    assert ids(strategy_id="momo") == ["i-5", "i-3"]
    assert ids(symbol="QQQ") == ["i-2"]
    assert ids(status="rejected", strategy_id="momo") == ["i-5"]
    assert ids(symbol="NOPE") == []


def test_the_filter_choices_come_from_the_days_records() -> None:
    options = decisions_view(DAY, DecisionFilters(), 1).options
    assert options["status"] == ("dry_run", "rejected", "retry_pending")
    assert options["reason"] == ("max_order_qty_exceeded", "risk_data_unavailable")
    assert options["strategy_id"] == ("momo", "s")


def test_pages_hold_twenty_five_and_the_last_page_the_rest() -> None:
    many = [record(n, seconds=n) for n in range(60)]
    first = decisions_view(many, DecisionFilters(), 1)
    last = decisions_view(many, DecisionFilters(), 3)
    assert (first.pages, len(first.rows), len(last.rows)) == (3, 25, 10)
    assert first.rows[0].client_intent_id == "i-59" and last.rows[-1].client_intent_id == "i-0"
    assert decisions_view(many, DecisionFilters(), 99).page == 3


def test_a_row_opens_to_its_checks_with_their_inputs() -> None:
    row = decisions_view(DAY, DecisionFilters(status="rejected"), 1).rows[-1]
    assert [(c.name, c.outcome) for c in row.checks] == [
        ("kill_switch", "passed"),
        ("max_order_qty", "failed"),
    ]
    assert row.checks[1].inputs == '{"limit": "100", "qty": "1"}'
    assert (row.checks[1].reason, row.checks[1].detail) == ("max_order_qty_exceeded", "too big")


def test_a_record_without_checks_or_times_still_shows() -> None:
    bare = {"client_intent_id": "x", "status": "in_progress"}
    row = decisions_view([bare], DecisionFilters(), 1).rows[0]
    assert (row.client_intent_id, row.checks, row.received_at) == ("x", (), "")


def test_the_minute_chart_stacks_each_minutes_outcomes_and_keeps_empty_minutes() -> None:
    chart = minute_chart(DAY)
    assert [bar.label for bar in chart.bars] == ["14:30", "14:31", "14:33"]
    first = chart.bars[0]
    assert [segment[0] for segment in first.segments] == ["dry_run", "rejected"]
    assert first.title == "14:30: 2 (1 dry_run, 1 rejected)"
    assert chart.peak == 2
    assert chart.bars[2].x == 3 * 5.0  # 14:32 had no decision but keeps its place
    assert dict(chart.totals) == {"dry_run": 2, "rejected": 2, "retry_pending": 1}


def test_a_minute_at_the_peak_fills_the_chart_height() -> None:
    chart = minute_chart(DAY)
    heights = [sum(s[2] for s in bar.segments) for bar in chart.bars]
    assert heights == [chart.height, chart.height, chart.height / 2]


def test_refusals_are_counted_by_reason_most_first() -> None:
    bars = refusal_bars(DAY)
    assert [(b.reason, b.count, b.width) for b in bars] == [
        ("max_order_qty_exceeded", 2, 100.0),
        ("risk_data_unavailable", 1, 50.0),
    ]


def test_no_decisions_make_empty_charts() -> None:
    shown = decisions_view([], DecisionFilters(), 1)
    assert (shown.per_minute.bars, shown.refusals, shown.pages) == ((), (), 1)


def test_the_csv_is_the_audit_toolkits_csv_of_the_matching_records_oldest_first() -> None:
    out = io.StringIO()
    write_csv(views.DECISIONS, for_export(DAY, DecisionFilters(status="rejected")), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["client_intent_id"] for r in rows] == ["i-2", "i-5"]
    assert list(rows[0]) == [column.header for column in views.DECISIONS.csv]
    assert "max_order_qty=failed (too big)" in rows[0]["checks"]
