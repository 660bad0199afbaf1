"""The gateway's own Postgres tables: created or upgraded by the service itself.

Migrations are the numbered files in ``backend/db/migrations``, applied in order, each once,
recorded in ``public.execution_schema_migrations``. Many instances may start at once: the whole
upgrade runs in one transaction under an advisory lock, so one instance applies it and the
others find it done. Every statement is idempotent (``IF NOT EXISTS``, ``ON CONFLICT``) so a
database whose tables were created by hand from an earlier ``schema.sql`` upgrades cleanly.

``public.broker_positions`` belongs to the position-sync job; version 1 only creates it when it
is missing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from backend.execution.errors import RiskDataUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db" / "migrations"
# The tables every intent needs; /readyz names any that is missing.
REQUIRED_TABLES = (
    "public.broker_positions",
    "public.execution_orders",
    "public.execution_fills",
)

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('exec-schema-migrations', 0))"
_LEDGER = """
CREATE TABLE IF NOT EXISTS public.execution_schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrations() -> list[tuple[str, str]]:
    """(version, SQL) pairs in the order they apply; the version is the file's stem."""
    return [(path.stem, path.read_text()) for path in sorted(MIGRATIONS_DIR.glob("*.sql"))]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Applies every migration not yet recorded; returns the versions it applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute(_LOCK)
        row = conn.execute(
            "SELECT to_regclass('public.execution_schema_migrations') IS NOT NULL"
        ).fetchone()
        recorded = bool(row and row[0])
        done = set()
        if recorded:
            versions = conn.execute("SELECT version FROM public.execution_schema_migrations")
            done = {str(version) for (version,) in versions}
        pending = [(version, sql) for version, sql in migrations() if version not in done]
        if not pending:
            # Up to date: no DDL at all, so a role without CREATE starts as well.
            return applied
        if not recorded:
            conn.execute(_LEDGER)
        for version, sql in pending:
            conn.execute(sql.encode())  # our own files, never user input
            conn.execute(
                "INSERT INTO public.execution_schema_migrations (version) VALUES (%s)", (version,)
            )
            applied.append(version)
    return applied


def missing_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NULL",
        (list(REQUIRED_TABLES),),
    ).fetchall()
    return [str(row[0]) for row in rows]


class SchemaGuard:
    """Makes sure the tables exist before the first intent uses them, without ever stopping
    start-up: a database that is down when the process starts is upgraded on first use once it
    is back. With ``migrate=False`` (locked-down roles) it only checks, and names what is
    missing. After one success it costs nothing."""

    def __init__(self, pool: ConnectionPool, *, migrate: bool, timeout_s: float) -> None:
        self._pool = pool
        self._migrate = migrate
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def ensure(self) -> None:
        """Raises RiskDataUnavailable until the schema is in place."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                with self._pool.connection(timeout=self._timeout) as conn:
                    if self._migrate:
                        applied = migrate(conn)
                        if applied:
                            log.warning(
                                "database schema upgraded: %s",
                                ", ".join(applied),
                                extra={"event": "db.migrated", "versions": applied},
                            )
                    missing = missing_tables(conn)
            except (psycopg.Error, PoolTimeout) as exc:
                raise RiskDataUnavailable(
                    f"database schema not verified: {type(exc).__name__}"
                ) from None
            if missing:
                raise RiskDataUnavailable(
                    f"missing tables {', '.join(missing)} (EXEC_DB_MIGRATE=false: "
                    "apply backend/db/migrations, see docs/RUNBOOK.md)"
                )
            self._ready = True
