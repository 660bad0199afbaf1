"""An attempt that stalls past its lease is taken over, and its late outcome never counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.clock import FixedClock
from backend.execution.context_reader import FactSources
from backend.execution.decisions import BrokerOrder
from backend.execution.engine import ExecutionEngine, OrderIntent
from backend.execution.errors import BrokerRejected
from backend.execution.kill_switch import KillSwitchReading
from backend.execution.settings import Settings
from backend.execution.vocabulary import Reason, Status
from tests.support.fakes import (
    FixedPrices,
    InMemoryLedger,
    InMemoryRiskBook,
    RecordingBroker,
    StaticKillSwitch,
    tracker,
)

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
INTENT = OrderIntent(
    client_intent_id="intent-1",
    strategy_id="s",
    broker_account_id="acct-1",
    symbol="SPY",
    side="buy",
    qty="1",
    order_type="market",
)


def engine(now: datetime, ledger: InMemoryLedger, broker: Any) -> ExecutionEngine:
    settings = Settings(
        dry_run=False,
        agent_mode="LIVE",
        alpaca_api_key="key",
        alpaca_secret_key="secret",
        broker_account_id="acct-1",
        duplicate_wait_s=0,
    )
    return ExecutionEngine(
        broker=broker,
        facts=FactSources(reference_prices=FixedPrices({"SPY": Decimal("400")}, at=now)),
        settings=settings,
        ledger=ledger,
        risk_book=InMemoryRiskBook(),
        kill_switches=[StaticKillSwitch(KillSwitchReading("env:X", halted=False, value="0"))],
        clock=FixedClock(now),
        agent=tracker(),
    )


class StallingBroker(RecordingBroker):
    """Refuses the order, but only after another delivery took the intent over and placed it:
    the first attempt's answer arrives long after its lease."""

    def __init__(self, ledger: InMemoryLedger) -> None:
        super().__init__()
        self.ledger = ledger
        self.second: Any = None

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        if self.second is None:
            later = NOW + timedelta(seconds=120)
            self.second = engine(later, self.ledger, RecordingBroker()).execute_intent(intent)
            raise BrokerRejected("HTTP 403: stale refusal", status_code=403, code=1)
        return super().submit(intent)


def test_a_stale_attempts_late_refusal_does_not_replace_the_later_attempts_order() -> None:
    ledger = InMemoryLedger()
    broker = StallingBroker(ledger)

    first = engine(NOW, ledger, broker).execute_intent(INTENT)

    assert broker.second.status is Status.SUBMITTED  # attempt 2 took over and placed it
    assert first.reason is Reason.LEDGER_UNAVAILABLE and first.retryable
    record = ledger.load(INTENT.client_intent_id)
    assert record is not None
    assert (record.status, record.attempt) == ("submitted", 2)
    replay = engine(NOW + timedelta(seconds=200), ledger, broker).execute_intent(INTENT)
    assert (replay.status, replay.original_status) == (Status.DUPLICATE, Status.SUBMITTED)
