"""The composition root: the one place that turns settings into real adapters.

Tests pass fakes (or emulator-backed adapters) into ``ExecutionEngine`` directly; anything not
passed in is built here, from the one Settings object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.execution.adapters.alpaca_broker import AlpacaBroker
from backend.execution.adapters.dry_run_broker import DryRunBroker
from backend.execution.agent_state import AgentStateTracker
from backend.execution.context_reader import FactSources
from backend.execution.errors import ConfigurationError
from backend.execution.fill_sync import FillSync
from backend.execution.operator import OperatorActions

if TYPE_CHECKING:
    from backend.execution.engine import ExecutionEngine
from backend.execution.ports import (
    Broker,
    BrokerAccountSource,
    HeartbeatSource,
    IntentLedger,
    KillSwitchSource,
    RiskBook,
)
from backend.execution.settings import Settings
from backend.execution.vocabulary import AgentState

log = logging.getLogger("backend.execution.agent")


def load_settings() -> Settings:
    """The only read of the process environment."""
    return Settings.from_env(os.environ)


@dataclass
class Adapters:
    broker: Broker
    ledger: IntentLedger
    risk_book: RiskBook
    kill_switches: Sequence[KillSwitchSource]
    heartbeat: HeartbeatSource | None
    agent: AgentStateTracker
    broker_account: BrokerAccountSource | None = None
    facts: FactSources = field(default_factory=FactSources)
    # Called on shutdown: pools and clients this root opened.
    closers: list[Callable[[], None]] = field(default_factory=list)


def build_missing(
    settings: Settings,
    *,
    dry_run: bool,
    broker: Broker | None = None,
    ledger: IntentLedger | None = None,
    risk_book: RiskBook | None = None,
    kill_switches: Sequence[KillSwitchSource] | None = None,
    heartbeat: HeartbeatSource | None = None,
    agent: AgentStateTracker | None = None,
    broker_account: BrokerAccountSource | None = None,
    facts: FactSources | None = None,
) -> Adapters:
    closers: list[Callable[[], None]] = []
    lazy_client: list[Any] = []

    def firestore_client() -> Any:
        if not lazy_client:
            from google.cloud import firestore

            lazy_client.append(
                firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
            )
            closers.append(lazy_client[0].close)
        return lazy_client[0]

    if ledger is None:
        from backend.execution.adapters.firestore_ledger import FirestoreLedger

        ledger = FirestoreLedger(firestore_client(), timeout_s=settings.io_timeout_s)
    if risk_book is None:
        risk_book = _postgres_risk_book(settings, closers)
    if kill_switches is None:
        kill_switches = build_kill_switches(
            settings, firestore_client, routes_to_broker=not dry_run
        )
    if heartbeat is None and settings.heartbeat_doc:
        from backend.execution.adapters.firestore_documents import (
            CachedDocument,
            FirestoreHeartbeat,
        )

        heartbeat = FirestoreHeartbeat(
            CachedDocument(
                firestore_client(),
                settings.heartbeat_doc,
                ttl_s=settings.halted_doc_ttl_s,
                timeout_s=settings.io_timeout_s,
            )
        )
    return Adapters(
        broker=broker or build_broker(settings, dry_run=dry_run),
        ledger=ledger,
        risk_book=risk_book,
        kill_switches=kill_switches,
        heartbeat=heartbeat,
        agent=agent or build_agent(settings),
        broker_account=broker_account or build_broker_account(settings, dry_run=dry_run),
        facts=facts or build_fact_sources(settings, firestore_client),
        closers=closers,
    )


def build_fact_sources(settings: Settings, firestore_client: Callable[[], Any]) -> FactSources:
    """The broker facts the pre-trade controls read, each cached (docs/RISK_CONTROLS.md).
    Without Alpaca keys there is nothing to read them with: a control that needs one then
    refuses (fail closed) unless it is switched off."""
    restricted = None
    if settings.restricted_doc is not None:
        from backend.execution.adapters.firestore_documents import CachedDocument
        from backend.execution.adapters.firestore_restricted import FirestoreRestrictedList

        restricted = FirestoreRestrictedList(
            CachedDocument(
                firestore_client(),
                settings.restricted_doc,
                ttl_s=settings.halted_doc_ttl_s,
                timeout_s=settings.io_timeout_s,
            )
        )
    if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
        return FactSources(restricted_list=restricted)
    from backend.execution.adapters.alpaca_clock import AlpacaCalendar, AlpacaClock
    from backend.execution.adapters.alpaca_market_data import AlpacaMarketData

    keys = (
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
    )
    trading, timeout = settings.alpaca_trading_host, settings.broker_timeout_s
    return FactSources(
        reference_prices=AlpacaMarketData(
            *keys,
            settings.alpaca_data_host,
            feed=settings.alpaca_data_feed,
            ttl_s=settings.reference_price_cache_s,
            timeout_s=timeout,
        ),
        # The clock flips at the bell from a cached reading (MarketClock.is_open_at).
        market_clock=AlpacaClock(*keys, trading, ttl_s=60.0, timeout_s=timeout),
        calendar=AlpacaCalendar(*keys, trading, ttl_s=3600.0, timeout_s=timeout),
        restricted_list=restricted,
    )


def build_broker_account(settings: Settings, *, dry_run: bool) -> BrokerAccountSource | None:
    """GET /v2/account, cached, when ALPACA_ACCOUNT_NUMBER asks to confirm the keys' account
    (live routing only: dry-run sends nothing, so there is nothing to confirm)."""
    if dry_run or settings.alpaca_account_number is None:
        return None
    if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
        raise ConfigurationError("ALPACA_ACCOUNT_NUMBER needs ALPACA_API_KEY and ALPACA_SECRET_KEY")
    from backend.execution.adapters.alpaca_account import AlpacaAccount

    return AlpacaAccount(
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
        settings.alpaca_trading_host,
        ttl_s=settings.alpaca_account_ttl_s,
        timeout_s=settings.broker_timeout_s,
    )


def build_broker(settings: Settings, *, dry_run: bool) -> Broker:
    if dry_run:
        return DryRunBroker()
    if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
        raise ConfigurationError("live routing needs ALPACA_API_KEY and ALPACA_SECRET_KEY")
    return AlpacaBroker(
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
        settings.alpaca_trading_host,
        timeout_s=settings.broker_timeout_s,
        allow_live=settings.trading_mode == "LIVE",
    )


def build_kill_switches(
    settings: Settings, firestore_client: Callable[[], Any], *, routes_to_broker: bool = False
) -> list[KillSwitchSource]:
    """One source per configured kill-switch variable, aliases included: any one on halts.

    Routing real orders needs a switch an operator can flip without a restart (a file or a
    Firestore document); without one, start-up is refused unless EXEC_ALLOW_NO_KILL_SWITCH
    says so, and then it is logged as a warning.
    """
    from backend.execution.adapters.local_kill_switches import EnvKillSwitch, FileKillSwitch

    if routes_to_broker and not settings.has_operator_kill_switch:
        if not settings.allow_no_kill_switch:
            raise ConfigurationError(
                "live routing (EXEC_DRY_RUN=false) needs a kill switch that can be flipped while "
                "the service runs: set EXECUTION_HALTED_FILE or EXECUTION_HALTED_DOC, or set "
                "EXEC_ALLOW_NO_KILL_SWITCH=true to route without one"
            )
        log.warning(
            "routing real orders with no file or Firestore kill switch "
            "(EXEC_ALLOW_NO_KILL_SWITCH=true): halting then needs a restart",
            extra={"event": "config.warning"},
        )
    sources: list[KillSwitchSource] = [
        EnvKillSwitch(name, value) for name, value in settings.halted_env
    ]
    sources += [FileKillSwitch(path) for path in settings.halted_file]
    if settings.halted_doc:
        from backend.execution.adapters.firestore_documents import (
            CachedDocument,
            FirestoreKillSwitch,
        )

        sources += [
            FirestoreKillSwitch(
                CachedDocument(
                    firestore_client(),
                    path,
                    ttl_s=settings.halted_doc_ttl_s,
                    timeout_s=settings.io_timeout_s,
                )
            )
            for path in settings.halted_doc
        ]
    return sources


def build_agent(settings: Settings) -> AgentStateTracker:
    return AgentStateTracker(
        backoff_base_s=settings.error_backoff_base_s,
        backoff_max_s=settings.error_backoff_max_s,
        on_transition=log_transition,
    )


def log_transition(previous: AgentState, current: AgentState, why: str) -> None:
    level = logging.INFO if current is AgentState.READY else logging.WARNING
    log.log(
        level,
        "agent state %s -> %s: %s",
        previous.value,
        current.value,
        why,
        extra={
            "event": "agent.state_transition",
            "from_state": previous.value,
            "to_state": current.value,
            "why": why,
        },
    )


@dataclass
class ServiceParts:
    """Everything the HTTP service runs on, built once per process."""

    engine: ExecutionEngine
    fill_sync: FillSync | None
    operator: OperatorActions
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.engine.close()
        for close in self.closers:
            close()


def build_service(settings: Settings) -> ServiceParts:
    from backend.execution.engine import ExecutionEngine

    closers: list[Callable[[], None]] = []
    engine = ExecutionEngine(settings=settings)
    operator = build_operator(settings, closers, engine)
    return ServiceParts(engine, build_fill_sync(settings, closers), operator, closers)


def build_operator(
    settings: Settings, closers: list[Callable[[], None]], engine: ExecutionEngine
) -> OperatorActions:
    from google.cloud import firestore

    from backend.execution.adapters.firestore_documents import FirestoreKillSwitch
    from backend.execution.adapters.firestore_kill_switch_writer import FirestoreKillSwitchWriter
    from backend.execution.adapters.firestore_operator_log import FirestoreOperatorLog
    from backend.execution.adapters.postgres_halts import PostgresHalts
    from backend.execution.adapters.postgres_latches import PostgresLatches
    from backend.execution.adapters.postgres_order_book import PostgresOrderBook
    from backend.execution.adapters.postgres_schema import SchemaGuard
    from backend.execution.clock import SystemClock

    client = firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
    closers.append(client.close)
    pool = _pool(settings, closers, max_size=2)
    schema = SchemaGuard(pool, migrate=settings.db_migrate, timeout_s=settings.io_timeout_s)
    writer = None
    if settings.halted_doc:
        path = settings.halted_doc[0]

        def read_fresh() -> None:  # this instance sees its own halt at once
            for source in engine.kill_switches:
                if isinstance(source, FirestoreKillSwitch) and source.source == f"firestore:{path}":
                    source.invalidate()

        writer = FirestoreKillSwitchWriter(
            client, path, timeout_s=settings.io_timeout_s, on_written=read_fresh
        )
    broker: Any = engine.broker
    return OperatorActions(
        broker_account_id=settings.broker_account_id,
        latches=PostgresLatches(pool, timeout_s=settings.io_timeout_s, schema=schema),
        actions=FirestoreOperatorLog(client, timeout_s=settings.io_timeout_s),
        clock=SystemClock(),
        kill_switch=writer,
        halts=PostgresHalts(pool, timeout_s=settings.io_timeout_s, schema=schema),
        working_orders=PostgresOrderBook(
            pool,
            timeout_s=settings.io_timeout_s,
            schema=schema,
            broker_account_id=settings.broker_account_id,
        ),
        # Dry-run has no broker to cancel with (and never reserves, so no working orders).
        canceller=None if engine.broker.simulated else broker,
        # An order reserved before the halt reaches the broker within one submit's timeouts.
        in_flight_wait_s=2 * settings.broker_timeout_s + 1,
    )


def build_fill_sync(settings: Settings, closers: list[Callable[[], None]]) -> FillSync | None:
    """The fill sync, when broker credentials are configured (it reads the broker's history)."""
    if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
        return None
    from google.cloud import firestore

    from backend.execution.adapters.alpaca_reader import AlpacaReader
    from backend.execution.adapters.firestore_fill_store import FirestoreFillStore, cursor_path
    from backend.execution.adapters.postgres_sync_lock import PostgresSyncLock
    from backend.execution.clock import SystemClock
    from backend.execution.fill_sync import FillSync

    client = firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
    closers.append(client.close)
    from backend.execution.adapters.postgres_order_book import PostgresOrderBook
    from backend.execution.adapters.postgres_schema import SchemaGuard

    # Two connections: the sync lock holds one for the whole run, the book writes use the other.
    pool = _pool(settings, closers, max_size=2)
    schema = SchemaGuard(pool, migrate=settings.db_migrate, timeout_s=settings.io_timeout_s)
    return FillSync(
        AlpacaReader(
            settings.alpaca_api_key.get_secret_value(),
            settings.alpaca_secret_key.get_secret_value(),
            settings.alpaca_trading_host,
            timeout_s=settings.broker_timeout_s,
        ),
        FirestoreFillStore(
            client,
            timeout_s=settings.io_timeout_s,
            state_path=cursor_path(settings.broker_account_id),
        ),
        PostgresSyncLock(
            pool, timeout_s=settings.io_timeout_s, broker_account_id=settings.broker_account_id
        ),
        SystemClock(),
        book=PostgresOrderBook(
            pool,
            timeout_s=settings.io_timeout_s,
            schema=schema,
            broker_account_id=settings.broker_account_id,
        ),
        # After its lease, the attempt that reserved a row can no longer start a broker call.
        sweep_book=settings.broker_account_id is not None,
        reservation_grace_s=settings.claim_lease_s + 2 * settings.broker_timeout_s,
        budget_s=settings.sync_budget_s,
        overlap_s=settings.sync_overlap_s,
        min_call_interval_s=settings.broker_min_interval_s,
    )


def _pool(settings: Settings, closers: list[Callable[[], None]], *, max_size: int) -> Any:
    if settings.postgres_dsn is None:
        raise ConfigurationError(
            "EXEC_POSTGRES_DSN is required: the risk checks read positions and the order book"
        )
    from backend.execution.adapters.postgres_pool import open_pool

    pool = open_pool(
        settings.postgres_dsn.get_secret_value(), max_size=max_size, timeout_s=settings.io_timeout_s
    )
    closers.append(pool.close)
    return pool


def _postgres_risk_book(settings: Settings, closers: list[Callable[[], None]]) -> RiskBook:
    from backend.execution.adapters.postgres_risk_book import PostgresRiskBook
    from backend.execution.adapters.postgres_schema import SchemaGuard
    from backend.execution.errors import RiskDataUnavailable

    pool = _pool(settings, closers, max_size=settings.pg_pool_max)
    schema = SchemaGuard(pool, migrate=settings.db_migrate, timeout_s=settings.io_timeout_s)
    try:
        # Tables are created or upgraded now; a database that is down does not stop start-up:
        # intents are refused as retryable until it is back, and the first one then upgrades.
        schema.ensure()
    except RiskDataUnavailable as exc:
        log.warning(
            "database not ready at start-up (%s); intents are refused as retryable until it is",
            exc,
            extra={"event": "db.not_ready"},
        )
    return PostgresRiskBook(
        pool,
        timeout_s=settings.io_timeout_s,
        position_skew_s=settings.position_skew_s,
        repeat_window_s=settings.repeat_limit.within_s if settings.repeat_limit else 60,
        schema=schema,
    )
