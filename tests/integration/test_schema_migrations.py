"""The service creates or upgrades its own tables: once, under a lock, however many instances
start together; from the first release's tables with their rows; never stopping start-up when
the database is not there yet; and without DDL once up to date."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backend.devtools import local_stack
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_schema import (
    MIGRATIONS_DIR,
    SchemaGuard,
    migrate,
    migrations,
)
from backend.execution.errors import RiskDataUnavailable
from backend.execution.settings import Settings
from backend.services.execution_service.app import create_app


@pytest.fixture
def empty_database() -> Iterator[str]:
    admin = local_stack.ensure_postgres()
    name = f"exec_mig_{uuid.uuid4().hex[:10]}"
    dsn = local_stack.create_database(admin, name)
    yield dsn
    local_stack.drop_database(admin, name)


def versions(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT version FROM public.execution_schema_migrations ORDER BY version"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_many_instances_starting_at_once_apply_each_migration_once(empty_database: str) -> None:
    def start() -> list[str]:
        with psycopg.connect(empty_database, autocommit=True) as conn:
            return migrate(conn)

    with ThreadPoolExecutor(8) as pool:
        applied = list(pool.map(lambda _: start(), range(8)))
    every = [version for version, _ in migrations()]
    assert sorted(applied, key=len) == [[]] * 7 + [every]
    assert versions(empty_database) == every


def test_the_first_releases_reservations_are_carried_into_the_order_book(
    empty_database: str,
) -> None:
    first = (MIGRATIONS_DIR / "0001_positions_and_reservations.sql").read_text()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(first.encode())  # as DEPLOY.md had operators apply schema.sql by hand
        conn.execute(
            "INSERT INTO public.execution_risk_reservations (client_intent_id, broker_account_id,"
            " symbol, trading_date, signed_qty, state, broker_order_id) VALUES"
            " ('r-1', 'paper-1', 'SPY', '2026-03-10', -7, 'routed', 'o-1'),"
            " ('r-2', 'paper-1', 'SPY', '2026-03-10', 3, 'reserved', NULL),"
            " ('r-3', 'paper-1', 'SPY', '2026-03-10', 5, 'released', NULL)"
        )
        migrate(conn)
        rows = conn.execute(
            "SELECT client_intent_id, side, qty::text, state, broker_order_id, migrated_from"
            " FROM public.execution_orders WHERE broker_account_id = 'paper-1' ORDER BY 1"
        ).fetchall()
    assert rows == [
        ("r-1", "sell", "7", "working", "o-1", "execution_risk_reservations"),
        ("r-2", "buy", "3", "reserved", None, "execution_risk_reservations"),
        ("r-3", "buy", "5", "released", None, "execution_risk_reservations"),
    ]


def test_an_up_to_date_database_needs_no_create_privilege(empty_database: str) -> None:
    role = f"gateway_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_database, autocommit=True) as conn:
        migrate(conn)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(
            sql.SQL("GRANT SELECT ON public.execution_schema_migrations TO {}").format(
                sql.Identifier(role)
            )
        )
    limited = empty_database.replace("postgres@", f"{role}@", 1)
    try:
        with psycopg.connect(limited, autocommit=True) as conn:
            assert migrate(conn) == []
    finally:
        with psycopg.connect(empty_database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_without_migrations_a_missing_table_is_named_and_refused_as_retryable(
    empty_database: str,
) -> None:
    pool = open_pool(empty_database, max_size=1, timeout_s=2)
    try:
        guard = SchemaGuard(pool, migrate=False, timeout_s=2)
        with pytest.raises(RiskDataUnavailable, match=r"public\.execution_orders"):
            guard.ensure()
    finally:
        pool.close()


def test_a_database_created_after_start_up_is_upgraded_and_used_without_a_restart(
    firestore_emulator: str, firestore_project: str, tmp_path: Path
) -> None:
    admin = local_stack.ensure_postgres()
    name = f"exec_late_{uuid.uuid4().hex[:10]}"
    dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    env = {
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": dsn,
        "EXEC_IO_TIMEOUT_S": "1",
        "EXEC_MAX_ORDER_NOTIONAL": "off",
        "EXEC_PRICE_COLLAR_PCT": "off",
    }
    app = create_app(Settings.from_env(env))  # the database does not exist yet: still starts
    client = app.test_client()
    body: dict[str, Any] = {
        "client_intent_id": f"late-{uuid.uuid4().hex[:8]}", "strategy_id": "s",
        "broker_account_id": "paper-1", "symbol": "SPY", "side": "buy", "qty": "1",
        "order_type": "market",
    }  # fmt: skip
    try:
        early = client.post("/execute", json=body)
        assert (early.status_code, early.get_json()["reason"]) == (503, "risk_data_unavailable")
        assert client.get("/readyz").status_code == 503
        local_stack.create_database(admin, name)
        # The pool retries with a backoff: ready again within seconds, never needing a restart.
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "still not ready 30 s after the database came"
            time.sleep(0.5)
        later = client.post("/execute", json=body)
        assert (later.status_code, later.get_json()["status"]) == (200, "dry_run")
        assert versions(dsn) == [version for version, _ in migrations()]
    finally:
        app.extensions["service_parts"].close()
        local_stack.drop_database(admin, name)
