"""The ports: the few questions the core asks the outside world.

Each is a small Protocol; adapters in :mod:`backend.execution.adapters` implement them against
Firestore, Postgres and Alpaca, and tests pass in-memory fakes. Adapters raise only the types in
:mod:`backend.execution.errors`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from backend.execution.decisions import BrokerOrder, ExecutionResult
from backend.execution.idempotency import Claim, IntentRecord
from backend.execution.intent import OrderIntent
from backend.execution.kill_switch import KillSwitchReading


class IntentLedger(Protocol):
    """Decision records keyed by client_intent_id, and the trade ledger they lead to."""

    def claim(self, intent: OrderIntent, *, now: datetime, lease_s: float, source: str) -> Claim:
        """Claims the intent for one attempt, or returns what is already recorded for it.

        Must be atomic across processes: of concurrent claims for one new intent, exactly one
        gets ``Claim.owned``.
        """
        ...

    def record_outcome(
        self, intent: OrderIntent, claim: Claim, result: ExecutionResult, *, now: datetime
    ) -> None:
        """Records an attempt's outcome; when an order exists, also merges its ledger entry."""
        ...

    def load(self, client_intent_id: str) -> IntentRecord | None: ...


class TradeCounter(Protocol):
    def count_routed(self, broker_account_id: str, on: date) -> int:
        """Orders routed to the broker for the account on that trading date."""
        ...


class PositionSource(Protocol):
    def current_qty(self, broker_account_id: str, symbol: str) -> Decimal:
        """Signed position quantity; zero when there is no position."""
        ...


class KillSwitchSource(Protocol):
    def read(self) -> KillSwitchReading: ...


class HeartbeatSource(Protocol):
    def last_beat(self) -> datetime | None:
        """When market data last reported in; None when no heartbeat is recorded."""
        ...


class Broker(Protocol):
    simulated: bool

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        """Places the order with client_order_id = intent.client_intent_id. Never retried."""
        ...

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None: ...
