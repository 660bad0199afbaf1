"""What the Status page shows for a given state: one word and why, each reading, and UNKNOWN
for anything that could not be read (never a healthy default)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.adapters.postgres_console_reads import ExposureInputs
from backend.execution.exposure import BookOrder, PositionRow
from backend.execution.intent import Side
from backend.services.execution_service.console.known import Known, read
from backend.services.execution_service.console.status import (
    DRY_RUN,
    HALTED,
    NOT_KNOWN,
    OK,
    REDUCE_ONLY,
    STOP,
    TRADING,
    UNKNOWN,
    StatusInputs,
    status_view,
)

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
DAY = date(2026, 3, 10)


def state(
    *,
    mode: str = "LIVE",
    agent: str = "READY",
    why: str = "all inputs healthy",
    dry_run: bool = False,
    switches: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A GET /state document (admin.state_document) as the console receives it."""
    return {
        "state": agent,
        "why": why,
        "inputs": {
            "agent_mode": mode,
            "dry_run": dry_run,
            "broker_account_id": "paper-1",
            "kill_switch": switches
            if switches is not None
            else [{"source": "firestore:ops/kill", "halted": False, "value": "false"}],
            "market_data_heartbeat": None,
            "market_data_heartbeat_error": None,
            "market_data_stale_threshold_s": 120.0,
        },
        "latched_strategies": [],
        "operator_actions": [],
    } | extra


def book(trades: int = 0, **symbols: tuple[str, list[BookOrder]]) -> ExposureInputs:
    positions = {
        s: PositionRow(Decimal(qty), NOW - timedelta(minutes=5))
        for s, (qty, _) in symbols.items()
        if qty
    }
    return ExposureInputs(positions, {s: o for s, (_, o) in symbols.items() if o}, trades)


def working(side: Side, qty: str) -> BookOrder:
    return BookOrder("i", side, Decimal(qty), Decimal(0), (), working=True)


EMPTY_BOOK: Known[ExposureInputs] = Known(value=book())
NEVER_SYNCED: Known[Any] = Known(value=None)


def view(
    doc: Known[Any] | None = None,
    *,
    readiness: Known[Any] | None = None,
    inputs_book: Known[ExposureInputs] | None = EMPTY_BOOK,
    sync: Known[Any] | None = NEVER_SYNCED,
    cap: int = 50,
    limit: str = "100",
) -> Any:
    return status_view(
        StatusInputs(
            now=NOW,
            trading_day=DAY,
            state=doc if doc is not None else Known(value=state()),
            readiness=readiness or Known(value={"firestore": "ok", "postgres": "ok"}),
            book=inputs_book,
            fill_sync=sync,
            max_daily_trades=cap,
            max_position_qty=Decimal(limit),
            position_skew_s=10,
        )
    )


# -- the one word ---------------------------------------------------------------------------


def test_live_with_every_switch_off_and_the_agent_ready_is_trading() -> None:
    shown = view()
    assert (shown.word, shown.tone) == (TRADING, OK)


def test_dry_run_says_nothing_is_sent_to_the_broker() -> None:
    shown = view(Known(value=state(dry_run=True, mode="DISABLED", agent="DEGRADED")))
    assert shown.word == DRY_RUN
    assert "nothing is sent to the broker" in shown.why[0]


def test_a_kill_switch_that_is_on_halts_and_names_its_source() -> None:
    switches = [{"source": "file:/etc/kill/EXECUTION_HALTED", "halted": True, "value": "1"}]
    shown = view(Known(value=state(switches=switches, agent="HALTED")))
    assert (shown.word, shown.tone) == (HALTED, STOP)
    assert shown.why == ("kill switch file:/etc/kill/EXECUTION_HALTED is on",)
    assert shown.switches[0].text == "ON (halts)"


def test_an_unreadable_kill_switch_halts_and_says_it_is_unreadable() -> None:
    switches = [
        {"source": "firestore:ops/kill", "halted": True, "error": "document does not exist"}
    ]
    shown = view(Known(value=state(switches=switches)))
    assert shown.word == HALTED
    assert "unreadable, treated as on: document does not exist" in shown.why[0]
    assert (shown.switches[0].text, shown.switches[0].tone) == ("UNREADABLE (halts)", STOP)


def test_a_kill_switch_halts_a_dry_run_too() -> None:
    switches = [{"source": "env:EXECUTION_HALTED", "halted": True, "value": "1"}]
    assert view(Known(value=state(dry_run=True, switches=switches))).word == HALTED


def test_agent_mode_halted_halts() -> None:
    shown = view(Known(value=state(mode="HALTED", agent="HALTED")))
    assert shown.word == HALTED
    assert shown.why == ("AGENT_MODE is HALTED: every intent is refused",)


def test_live_routing_without_agent_mode_live_is_halted_and_says_why() -> None:
    shown = view(Known(value=state(mode="DISABLED")))
    assert shown.word == HALTED
    assert shown.why == ("AGENT_MODE is DISABLED: routing to the broker needs LIVE",)


def test_live_routing_with_a_degraded_agent_is_halted_with_the_agents_reason() -> None:
    doc = state(agent="DEGRADED", why="market-data heartbeat is 300s old (threshold 120s)")
    shown = view(Known(value=doc))
    assert shown.word == HALTED
    assert shown.why == (
        "agent state DEGRADED: market-data heartbeat is 300s old (threshold 120s)",
    )


def test_a_kill_switch_reading_reduce_only_means_reduce_only() -> None:
    switches = [{"source": "firestore:ops/kill", "halted": False, "value": "reduce_only"}]
    shown = view(Known(value=state(switches=switches)))
    assert shown.word == REDUCE_ONLY
    assert "firestore:ops/kill" in shown.why[0]
    assert shown.switches[0].text == "REDUCE ONLY"


def test_agent_mode_reducing_means_reduce_only() -> None:
    shown = view(Known(value=state(mode="REDUCING")))
    assert shown.word == REDUCE_ONLY
    assert "AGENT_MODE=REDUCING" in shown.why[0]


def test_a_state_that_cannot_be_read_is_unknown_everywhere_it_is_used() -> None:
    unreadable = read("gate state", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    shown = view(unreadable)
    assert (shown.word, shown.tone) == (UNKNOWN, NOT_KNOWN)
    assert "RuntimeError: boom" in shown.why[0]
    assert [row.text for row in shown.switches] == ["UNKNOWN"]
    assert [row.text for row in shown.agent] == ["UNKNOWN", "UNKNOWN"]
    assert shown.account.text == "UNKNOWN"
    assert shown.latched[0].text == shown.recent_actions[0].text == "UNKNOWN"


def test_a_state_missing_its_mode_is_unknown_not_trading() -> None:
    doc = state()
    del doc["inputs"]["agent_mode"]
    assert view(Known(value=doc)).word == UNKNOWN


def test_no_kill_switch_configured_is_a_warning() -> None:
    shown = view(Known(value=state(switches=[])))
    assert shown.word == TRADING
    assert shown.switches[0].text == "none configured"


# -- the readings -----------------------------------------------------------------------------


def test_readiness_shows_each_dependency_and_its_error() -> None:
    shown = view(readiness=Known(value={"firestore": "ok", "postgres": "risk book: timeout"}))
    assert [(r.label, r.text, r.detail) for r in shown.readiness] == [
        ("firestore", "ready", ""),
        ("postgres", "NOT READY", "risk book: timeout"),
    ]


def test_readiness_that_raises_is_unknown() -> None:
    shown = view(readiness=Known(error="LedgerUnavailable: deadline"))
    assert [(r.text, r.tone) for r in shown.readiness] == [("UNKNOWN", NOT_KNOWN)]


def test_todays_trades_are_shown_against_the_cap() -> None:
    shown = view(inputs_book=Known(value=book(trades=45)), cap=50)
    assert shown.trades.text == "45 of 50"
    assert shown.trades.tone == "warn"
    assert shown.trades_fraction == 0.9


def test_an_unreadable_book_makes_trades_and_exposure_unknown() -> None:
    shown = view(inputs_book=Known(error="RiskDataUnavailable: connection refused"))
    assert shown.trades.text == "UNKNOWN"
    assert shown.exposure == ()
    assert shown.exposure_note is not None and shown.exposure_note.text == "UNKNOWN"
    assert shown.trades_fraction is None


def test_without_a_bound_account_the_per_account_figures_are_unknown() -> None:
    shown = view(inputs_book=None)
    assert shown.trades.text == "UNKNOWN" and "no bound account" in shown.trades.detail


def test_exposure_counts_each_side_of_the_working_orders_against_the_limit() -> None:
    orders = [working(Side.BUY, "30"), working(Side.SELL, "20")]
    shown = view(inputs_book=Known(value=book(SPY=("50", orders))), limit="100")
    (bar,) = shown.exposure
    assert (bar.symbol, bar.position, bar.working_buy, bar.working_sell) == ("SPY", 50, 30, 20)
    assert (bar.worst_long, bar.worst_short) == (80, 30)
    assert (bar.long_fraction, bar.short_fraction) == (0.8, 0.0)
    assert bar.tone == "warn"


def test_exposure_past_the_limit_is_shown_in_full_and_flagged() -> None:
    shown = view(inputs_book=Known(value=book(QQQ=("-90", [working(Side.SELL, "20")]))))
    (bar,) = shown.exposure
    assert bar.worst_short == -110
    assert bar.short_fraction == 1.0 and bar.tone == STOP


def test_a_flat_symbol_with_nothing_working_is_not_drawn() -> None:
    shown = view(inputs_book=Known(value=book(AAPL=("0", []))))
    assert shown.exposure == ()
    assert shown.exposure_note is not None and shown.exposure_note.text == "flat"


def test_the_fill_sync_shows_its_last_result_and_when() -> None:
    last = {"status": "complete", "at": NOW - timedelta(minutes=3), "orders_seen": 4,
            "fills_added": 2, "orders_adopted": 0, "book_rows_released": 0, "error": None}  # fmt: skip
    shown = view(sync=Known(value={"updated_at": NOW, "last_run": last}))
    assert (shown.fill_sync.text, shown.fill_sync.tone) == ("complete, 3 min ago", OK)
    assert "fills added 2" in shown.fill_sync.detail


def test_a_failed_fill_sync_shows_its_error() -> None:
    last = {"status": "failed", "at": NOW - timedelta(seconds=20), "error": "broker: 503"}
    shown = view(sync=Known(value={"last_run": last}))
    assert (shown.fill_sync.text, shown.fill_sync.tone) == ("failed, 20 s ago", STOP)
    assert "error: broker: 503" in shown.fill_sync.detail


def test_the_fill_sync_never_run_not_configured_and_unreadable_are_each_said() -> None:
    assert view(sync=Known(value=None)).fill_sync.text == "never run"
    assert view(sync=None).fill_sync.text == "not configured"
    assert view(sync=Known(error="LedgerUnavailable: x")).fill_sync.text == "UNKNOWN"


def test_latched_strategies_and_operator_actions_are_listed() -> None:
    doc = state(
        latched_strategies=[{"strategy_id": "momo", "latched_at": "t", "latch_detail": "11 in 60s"}],
        operator_actions=[{"action": "halt", "mode": "reduce_only", "at": "t2",
                           "who": "operator:ann@example.com", "reason": "drill"}],
    )  # fmt: skip
    shown = view(Known(value=doc))
    assert shown.latched[0].label == "momo" and "11 in 60s" in shown.latched[0].detail
    assert shown.recent_actions[0].text == "halt (reduce_only)"
    assert shown.recent_actions[0].detail == "by operator:ann@example.com: drill"


def test_latches_that_could_not_be_read_are_unknown_not_none() -> None:
    doc = state(latched_strategies={"error": "unreadable: RiskDataUnavailable: down"})
    (row,) = view(Known(value=doc)).latched
    assert row.text == "UNKNOWN" and "down" in row.detail


def test_the_books_halt_record_halts_and_says_who_and_why() -> None:
    halt = {"state": "halted", "set_by": "operator:ann@example.com", "reason": "drill",
            "set_at": "2026-03-10T14:00:00Z"}  # fmt: skip
    shown = view(Known(value=state(book_halt=halt)))
    assert shown.word == HALTED
    assert shown.why[0].startswith("halted by operator:ann@example.com: drill")
    assert shown.switches[0].text == "ON (halts)"


def test_the_books_reduce_only_record_means_reduce_only() -> None:
    halt = {"state": "reduce_only", "set_by": "operator", "reason": "risk off", "set_at": "t"}
    assert view(Known(value=state(book_halt=halt))).word == REDUCE_ONLY


def test_a_books_halt_record_that_cannot_be_read_is_unknown() -> None:
    shown = view(Known(value=state(book_halt={"error": "unreadable: RiskDataUnavailable"})))
    assert shown.word == UNKNOWN
    assert shown.switches[0].text == "UNKNOWN"


def test_a_reading_marked_reduce_only_means_reduce_only() -> None:
    switches = [{"source": "file:/k", "halted": False, "value": "reduce_only", "reduce_only": True}]
    assert view(Known(value=state(switches=switches))).word == REDUCE_ONLY
