"""Positions come from Postgres exactly; an unreachable database is a retryable refusal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from backend.execution.adapters.postgres_positions import PostgresPositions, open_pool
from backend.execution.errors import RiskDataUnavailable
from tests.conftest import unique


def test_a_stored_position_is_read_as_an_exact_decimal(pg_dsn: str, set_position: Any) -> None:
    account = unique("acct")
    set_position(account, "SPY", "-12.000000001")
    positions = PostgresPositions(open_pool(pg_dsn, max_size=2, timeout_s=2), timeout_s=2)
    try:
        assert positions.current_qty(account, "SPY") == Decimal("-12.000000001")
        assert positions.current_qty(account, "QQQ") == Decimal(0)  # no row means flat
    finally:
        positions.close()


def test_an_unreachable_database_raises_risk_data_unavailable() -> None:
    dsn = "postgresql://postgres@127.0.0.1:1/nowhere"  # port 1: nothing listens there
    positions = PostgresPositions(open_pool(dsn, max_size=1, timeout_s=0.5), timeout_s=0.5)
    try:
        with pytest.raises(RiskDataUnavailable, match="positions"):
            positions.current_qty("acct", "SPY")
    finally:
        positions.close()
