"""In-memory implementations of the ports, for unit tests of the engine's logic.

They honour the same contracts as the real adapters (an atomic claim, errors as our own types),
so a unit test that passes here says something about the engine, not about the fake.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import cast

from backend.execution.adapters.alpaca_broker import order_payload
from backend.execution.agent_state import AgentStateTracker
from backend.execution.broker_facts import ReferencePrice
from backend.execution.decisions import BrokerOrder, ExecutionResult
from backend.execution.errors import BrokerUnavailable, LedgerUnavailable
from backend.execution.exposure import BookOrder, PositionRow
from backend.execution.idempotency import (
    ABANDONED,
    IN_PROGRESS,
    RETRY_PENDING,
    Claim,
    ClaimVerdict,
    IntentRecord,
    classify_existing,
    is_final,
)
from backend.execution.intent import OrderIntent, Side
from backend.execution.kill_switch import KillSwitchReading
from backend.execution.risk import RiskSnapshot


class InMemoryLedger:
    """The ledger's contract in memory: an atomic claim per attempt, and each attempt ends once,
    with its outcome or closed as abandoned by the attempt that takes over after its lease. An
    attempt that was closed can no longer record (LedgerUnavailable), as with Firestore."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, IntentRecord] = {}
        # (client_intent_id, attempt) -> the status that ended it (an outcome, or ABANDONED).
        self.closed: dict[tuple[str, int], str] = {}
        self.trades: dict[str, dict[str, object]] = {}
        self.unavailable: Exception | None = None
        self.fail_record_outcome = False

    def claim(self, intent: OrderIntent, *, now: datetime, lease_s: float, source: str) -> Claim:
        if self.unavailable:
            raise self.unavailable
        with self._lock:
            lease = now + timedelta(seconds=lease_s)
            existing = self.records.get(intent.client_intent_id)
            fingerprint = intent.fingerprint()
            if existing is None:
                self.records[intent.client_intent_id] = IntentRecord(
                    intent.client_intent_id,
                    IN_PROGRESS,
                    1,
                    lease,
                    fingerprint=fingerprint,
                    received_at=now,
                )
                return Claim(ClaimVerdict.OWNED, attempt=1, lease_until=lease)
            verdict = classify_existing(existing, now, intent.fingerprint())
            if verdict is not ClaimVerdict.OWNED:
                return Claim(verdict, existing.attempt, existing)
            if existing.status == IN_PROGRESS:  # its lease ran out: close that attempt
                self.closed[(intent.client_intent_id, existing.attempt)] = ABANDONED
            attempt = existing.attempt + 1
            # A merge, as in Firestore: the earlier outcome's fields stay until this one records.
            self.records[intent.client_intent_id] = replace(
                existing, status=IN_PROGRESS, attempt=attempt, lease_until=lease
            )
            return Claim(
                ClaimVerdict.OWNED,
                attempt,
                existing,
                resumes_earlier_attempt=True,
                lease_until=lease,
            )

    def record_outcome(
        self,
        intent: OrderIntent,
        claim: Claim,
        result: ExecutionResult,
        *,
        trading_day: date,
        decided_at: datetime,
    ) -> None:
        if self.fail_record_outcome:
            raise LedgerUnavailable("injected")
        with self._lock:
            key = (intent.client_intent_id, claim.attempt)
            if key in self.closed:
                raise LedgerUnavailable(f"attempt {claim.attempt} was taken over or recorded")
            status = result.status.value if is_final(result.reason) else RETRY_PENDING
            self.closed[key] = status
            self.records[intent.client_intent_id] = replace(
                self.records[intent.client_intent_id],
                status=status,
                attempt=claim.attempt,
                reason=result.reason,
                broker_order_id=result.broker_order_id,
                message=result.message,
                checks=tuple(c.to_dict() for c in result.checks),
            )
            if result.broker_order is not None and result.broker_order_id:
                self.trades[result.broker_order_id] = {
                    "broker_account_id": intent.broker_account_id,
                    "trading_date": trading_day,
                    "client_intent_id": intent.client_intent_id,
                }

    def load(self, client_intent_id: str) -> IntentRecord | None:
        return self.records.get(client_intent_id)


class InMemoryRiskBook:
    """The risk book's contract in memory: one lock stands in for Postgres's advisory locks.

    Positions are rows as of a fixed instant (long ago), so every book order counts by its
    unfilled quantity, which is what the engine's unit tests exercise; the exposure arithmetic
    itself has its own tests (tests/unit/test_exposure.py).
    """

    AS_OF = datetime(2000, 1, 1, tzinfo=UTC)

    def __init__(
        self, positions: dict[tuple[str, str], Decimal] | None = None, trades_today: int = 0
    ) -> None:
        self.positions = positions or {}
        self.other_trades_today = trades_today
        self.reservations: dict[str, dict[str, object]] = {}
        self.error: Exception | None = None
        self.holds = 0
        self._lock = threading.RLock()

    @contextmanager
    def hold(self, intent: OrderIntent, on: date, *, exclusive: bool) -> Iterator[_Hold]:
        self.holds += 1
        if self.error:
            raise self.error
        with self._lock:
            others = [
                (key, r)
                for key, r in self.reservations.items()
                if key != intent.client_intent_id and r["state"] != "released"
            ]
            account = intent.broker_account_id
            trades = self.other_trades_today + sum(
                1 for _, r in others if r["account"] == account and r["day"] == on
            )
            orders = tuple(
                BookOrder(
                    client_intent_id=key,
                    side=cast(Side, r["side"]),
                    qty=cast(Decimal, r["qty"]),
                    filled_qty=Decimal(0),
                    fills=(),
                    working=r["state"] in ("reserved", "working"),
                )
                for key, r in others
                if r["account"] == account and r["symbol"] == intent.symbol
            )
            qty = self.positions.get((account, intent.symbol))
            position = None if qty is None else PositionRow(qty, self.AS_OF)

            def reserve() -> None:
                self.reservations[intent.client_intent_id] = self._row(intent, on, "reserved")

            yield _Hold(RiskSnapshot(trades, position, orders), reserve)

    def record_placed(self, intent: OrderIntent, on: date, order: BrokerOrder) -> None:
        with self._lock:
            row = self.reservations.setdefault(
                intent.client_intent_id, self._row(intent, on, "working")
            )
            row["state"] = "working"
            row["broker_order_id"] = order.broker_order_id

    def release(self, intent: OrderIntent) -> None:
        with self._lock:
            row = self.reservations.get(intent.client_intent_id)
            if row is not None and row["state"] == "reserved":
                row["state"] = "released"

    def state_of(self, client_intent_id: str) -> object:
        return self.reservations.get(client_intent_id, {}).get("state")

    @staticmethod
    def _row(intent: OrderIntent, on: date, state: str) -> dict[str, object]:
        return {
            "account": intent.broker_account_id,
            "symbol": intent.symbol,
            "day": on,
            "side": intent.side,
            "qty": intent.qty,
            "state": state,
        }


class _Hold:
    def __init__(self, snapshot: RiskSnapshot, reserve: Callable[[], None]) -> None:
        self.snapshot = snapshot
        self.reserve = reserve


class StaticKillSwitch:
    def __init__(self, reading: KillSwitchReading) -> None:
        self.reading = reading

    def read(self) -> KillSwitchReading:
        return self.reading


class RecordingBroker:
    """A broker that accepts every order (or fails as told) and remembers what it was sent."""

    simulated = False

    def __init__(self) -> None:
        self.submitted: list[OrderIntent] = []
        self.orders: dict[str, BrokerOrder] = {}
        self.fail_with: Exception | None = None
        self.accept_then_fail = False

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        self.submitted.append(intent)
        if self.fail_with is not None and not self.accept_then_fail:
            raise self.fail_with
        order = BrokerOrder(
            broker_order_id=f"order-{len(self.submitted)}",
            client_order_id=intent.client_intent_id,
            status="accepted",
            filled_qty=Decimal(0),
            filled_avg_price=None,
            filled_at=None,
            submitted_at=None,
            raw={"id": f"order-{len(self.submitted)}"} | order_payload(intent),
        )
        self.orders[intent.client_intent_id] = order
        if self.fail_with is not None:
            raise self.fail_with
        return order

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        return self.orders.get(client_order_id)


def tracker() -> AgentStateTracker:
    return AgentStateTracker(backoff_base_s=1, backoff_max_s=8)


__all__ = [
    "BrokerUnavailable",
    "InMemoryLedger",
    "InMemoryRiskBook",
    "RecordingBroker",
    "StaticKillSwitch",
    "tracker",
]


class FixedPrices:
    """Reference prices that are always fresh (their time is the caller's clock)."""

    def __init__(self, prices: dict[str, Decimal], at: datetime | None = None) -> None:
        self.prices = prices
        self.at = at
        self.reads = 0

    def reference_price(self, symbol: str) -> ReferencePrice:
        self.reads += 1
        if symbol not in self.prices:
            from backend.execution.errors import RiskDataUnavailable

            raise RiskDataUnavailable(f"no trade for {symbol}")
        at = self.at or datetime.now(UTC)
        return ReferencePrice(symbol, self.prices[symbol], at, "trade", "iex")
