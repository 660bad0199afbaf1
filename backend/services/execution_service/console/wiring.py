"""The console's own readers, built from the one Settings object (the service's composition root
builds the engine and the operator actions; these are read-only and used by the console alone).

Each part that cannot be built is None, and the page that needs it says so; nothing here
connects at start-up (the Firestore client and the Postgres pool connect on first use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.audit.broker_side import BookReader, OrderHistory
from backend.audit.queries import LedgerReader
from backend.execution.adapters.firestore_console_reads import FirestoreConsoleReads
from backend.execution.adapters.firestore_fill_store import cursor_path
from backend.execution.adapters.postgres_console_reads import PostgresConsoleReads
from backend.execution.settings import Settings
from backend.services.execution_service.console.day_cache import DayDecisions

log = logging.getLogger(__name__)
DAY_READ_TIMEOUT_S = 30.0


@dataclass
class ConsoleReads:
    ledger: LedgerReader | None = None  # the audit toolkit's Firestore reads
    firestore: FirestoreConsoleReads | None = None  # sync state, order events
    postgres: PostgresConsoleReads | None = None  # exposure inputs, the day's count, the book
    book: BookReader | None = None  # the order book, for the reconcile
    broker: OrderHistory | None = None  # Alpaca's orders, for the reconcile (GETs only)
    day: DayDecisions | None = None  # the day's decision records, topped up


def build_reads(settings: Settings, closers: list[Callable[[], None]]) -> ConsoleReads:
    reads = ConsoleReads()
    try:
        client = _firestore(settings)
        reads.ledger = LedgerReader(client, timeout_s=settings.io_timeout_s)
        reads.firestore = FirestoreConsoleReads(
            client,
            timeout_s=settings.io_timeout_s,
            sync_state_path=cursor_path(settings.broker_account_id),
        )
        # The day is read in the background, a page at a time: each page may take seconds.
        day_source = LedgerReader(
            client,
            timeout_s=max(DAY_READ_TIMEOUT_S, settings.io_timeout_s),
            progress=lambda line: reads.day.progress(line) if reads.day else None,
        )
        reads.day = DayDecisions(day_source)
        closers.extend((reads.day.stop, client.close))
    except Exception as exc:  # the pages that need Firestore say so
        log.warning("console: no Firestore client: %s", type(exc).__name__,
                    extra={"event": "console.unavailable"})  # fmt: skip
    if settings.postgres_dsn is not None:
        from backend.execution.adapters.postgres_order_book import PostgresOrderBook
        from backend.execution.adapters.postgres_pool import open_pool
        from backend.execution.adapters.postgres_schema import SchemaGuard

        pool = open_pool(
            settings.postgres_dsn.get_secret_value(), max_size=2, timeout_s=settings.io_timeout_s
        )
        closers.append(pool.close)
        reads.postgres = PostgresConsoleReads(
            pool, timeout_s=settings.io_timeout_s, position_skew_s=settings.position_skew_s
        )
        # Read-only: the console never creates or upgrades tables.
        schema = SchemaGuard(pool, migrate=False, timeout_s=settings.io_timeout_s)
        reads.book = PostgresOrderBook(pool, timeout_s=settings.io_timeout_s, schema=schema)
    if settings.alpaca_api_key is not None and settings.alpaca_secret_key is not None:
        from backend.execution.adapters.alpaca_reader import AlpacaReader

        reads.broker = AlpacaReader(
            settings.alpaca_api_key.get_secret_value(),
            settings.alpaca_secret_key.get_secret_value(),
            settings.alpaca_trading_host,
            timeout_s=settings.broker_timeout_s,
        )
    return reads


def _firestore(settings: Settings) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
