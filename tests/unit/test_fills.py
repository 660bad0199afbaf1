"""The merge rules: the ledger only ever moves forward, whatever order the data comes in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backend.execution.fills import RecordedOrder, broker_time_ns, merge_order

RECORDED = RecordedOrder(
    status="partially_filled",
    filled_qty=Decimal("4"),
    filled_avg_price=Decimal("100"),
    broker_updated_at="2026-03-10T15:00:00.000000200Z",
)


def snapshot(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "o-1",
        "status": "partially_filled",
        "filled_qty": "4",
        "filled_avg_price": "100",
        "updated_at": "2026-03-10T15:00:00.000000200Z",
    }
    return base | fields


def test_a_newer_snapshot_with_more_filled_is_merged_exactly() -> None:
    update = merge_order(
        RECORDED,
        snapshot(status="filled", filled_qty="10", filled_avg_price="100.6",
                 updated_at="2026-03-10T15:00:01Z"),
    )  # fmt: skip
    assert update is not None
    assert update.fields["filled_qty"] == "10"
    assert update.fields["filled_avg_price"] == "100.6"
    assert update.new_status_event == "filled"


def test_the_same_snapshot_again_changes_nothing() -> None:
    assert merge_order(RECORDED, snapshot()) is None


def test_a_snapshot_with_less_filled_is_stale_and_ignored() -> None:
    assert (
        merge_order(RECORDED, snapshot(filled_qty="3", updated_at="2026-03-10T16:00:00Z")) is None
    )


def test_an_older_snapshot_is_ignored_even_within_the_same_microsecond() -> None:
    older = snapshot(status="new", filled_qty="4", updated_at="2026-03-10T15:00:00.000000100Z")
    assert merge_order(RECORDED, older) is None


def test_a_final_status_never_reverts() -> None:
    done = RecordedOrder("filled", Decimal("10"), Decimal("100.6"), "2026-03-10T15:00:01Z")
    stale = snapshot(status="partially_filled", filled_qty="10", updated_at="2026-03-10T15:00:02Z")
    assert merge_order(done, stale) is None


def test_a_first_sight_of_an_order_records_it() -> None:
    update = merge_order(RecordedOrder("", Decimal(0), None, None), snapshot(status="accepted"))
    assert update is not None and update.fields["status"] == "accepted"
    assert update.new_status_event is None  # not an eventful status


def test_broker_timestamps_keep_nanosecond_order() -> None:
    early = broker_time_ns("2022-04-19T17:45:05.024916716Z")
    late = broker_time_ns("2022-04-19T17:45:05.024916717Z")
    assert early is not None and late is not None and early < late
    assert broker_time_ns("2022-04-19T13:45:05-04:00") == broker_time_ns("2022-04-19T17:45:05Z")
