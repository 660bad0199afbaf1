"""The ports: the few questions the core asks the outside world.

Each is a small Protocol; adapters in :mod:`backend.execution.adapters` implement them against
Firestore, Postgres and Alpaca, and tests pass in-memory fakes. Adapters raise only the types in
:mod:`backend.execution.errors`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol

from backend.execution.broker_facts import (
    BrokerAccount,
    CancelOutcome,
    MarketClock,
    ReferencePrice,
    TradingSession,
)
from backend.execution.decisions import BrokerOrder, ExecutionResult
from backend.execution.idempotency import Claim, IntentRecord
from backend.execution.intent import OrderIntent
from backend.execution.kill_switch import KillSwitchReading
from backend.execution.risk import RiskSnapshot


class IntentLedger(Protocol):
    """Decision records keyed by client_intent_id, and the trade ledger they lead to."""

    def claim(self, intent: OrderIntent, *, now: datetime, lease_s: float, source: str) -> Claim:
        """Claims the intent for one attempt, or returns what is already recorded for it.

        Must be atomic across processes: of concurrent claims for one new intent, exactly one
        gets ``Claim.owned``.
        """
        ...

    def record_outcome(
        self,
        intent: OrderIntent,
        claim: Claim,
        result: ExecutionResult,
        *,
        trading_day: date,
        decided_at: datetime,
    ) -> None:
        """Records an attempt's outcome; when an order exists, also merges its ledger entry."""
        ...

    def load(self, client_intent_id: str) -> IntentRecord | None: ...


class RiskHold(Protocol):
    """The risk data for one intent, read while concurrent checks on it are held off."""

    snapshot: RiskSnapshot

    def reserve(self) -> None:
        """Takes a daily slot and the order's exposure; committed when the hold ends."""
        ...

    def latch(self, detail: str) -> None:
        """Halts the intent's strategy on every instance (the repeated-execution control)."""
        ...


class RiskBook(Protocol):
    """Positions and this gateway's own book of orders: the data behind the risk checks."""

    def hold(
        self, intent: OrderIntent, on: date, *, exclusive: bool
    ) -> AbstractContextManager[RiskHold]:
        """Reads the snapshot; with ``exclusive``, serialises against every other check for
        the same account-day and account-symbol until the context ends. Raises
        RiskDataUnavailable when the data cannot be read."""
        ...

    def record_placed(self, intent: OrderIntent, on: date, order: BrokerOrder) -> None:
        """The broker has the intent's order (placed or adopted): it is working, or final."""
        ...

    def release(self, intent: OrderIntent) -> None:
        """The intent's reservation is given back: its order surely never reached the broker.
        An order the broker has is never released."""
        ...


class BrokerHistory(Protocol):
    """Read-only broker history (Alpaca's JSON as received) for fill sync and audits."""

    def list_orders(
        self, *, after: datetime | None, until: datetime | None = None, limit: int = 500
    ) -> list[dict[str, Any]]: ...

    def get_order(self, broker_order_id: str) -> dict[str, Any] | None: ...

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None: ...

    def list_fills(
        self,
        *,
        after: datetime | None,
        page_token: str | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> list[dict[str, Any]]: ...


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


class ReferencePrices(Protocol):
    def reference_price(self, symbol: str) -> ReferencePrice:
        """The symbol's latest trade price (or quote midpoint), exact. Raises
        RiskDataUnavailable when it cannot be read; how old it may be is the caller's rule."""
        ...


class MarketClockSource(Protocol):
    def clock(self) -> MarketClock:
        """The broker's market clock, possibly cached briefly. Raises RiskDataUnavailable when
        it cannot be read: never assume the market is open."""
        ...


class BrokerAccountSource(Protocol):
    def account(self) -> BrokerAccount:
        """The account the broker keys belong to. Raises BrokerUnavailable when unreadable."""
        ...


class OrderCanceller(Protocol):
    def cancel_order(self, broker_order_id: str) -> CancelOutcome:
        """One cancel request, never retried. Every answer, even none, is an outcome."""
        ...


class TradingCalendar(Protocol):
    def sessions_on(self, day: date) -> tuple[TradingSession, ...]:
        """The trading session (extended hours included) on a New York date; empty when the
        market does not open that day. Raises RiskDataUnavailable when unreadable."""
        ...


class RestrictedList(Protocol):
    def symbols(self) -> frozenset[str]:
        """Symbols nobody may trade; raises RiskDataUnavailable when the list is unreadable."""
        ...


class LatchStore(Protocol):
    """The repeated-execution latches (Postgres), as operators see them."""

    def latches(
        self, broker_account_id: str, *, include_released: bool = False
    ) -> list[dict[str, Any]]: ...

    def release(
        self, broker_account_id: str, strategy_id: str, *, who: str, reason: str
    ) -> dict[str, Any] | None: ...


class OperatorLog(Protocol):
    """Who did what, when and why: an append-only record of operator actions."""

    def record(self, action: dict[str, Any]) -> str: ...

    def recent(self, limit: int = 20) -> list[dict[str, Any]]: ...


class KillSwitchWriter(Protocol):
    def set(self, state: str, *, reason: str, who: str, at: datetime) -> None:
        """Sets the kill-switch document to "halted", "reduce_only" or "off", with who, why and
        when; this process sees the new value at once, others within the document's TTL."""
        ...


class HaltStore(Protocol):
    """The operator's halt where every check-and-reserve reads it, exact across instances."""

    def set(self, broker_account_id: str, state: str, *, who: str, reason: str) -> None: ...

    def get(self, broker_account_id: str) -> dict[str, Any] | None: ...
