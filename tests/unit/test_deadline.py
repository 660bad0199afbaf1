"""Every answer inside the request's deadline: a step that may not fit is not started."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from backend.execution.deadline import Step, StepCosts, fits
from backend.execution.vocabulary import Reason, Status
from tests.support.fakes import InMemoryRiskBook, RecordingBroker
from tests.unit.test_engine import intent, make_engine

COSTS = StepCosts(broker_timeout_s=2.5, io_timeout_s=1.0)


def ticks(*values: float) -> Callable[[], float]:
    """A monotonic clock that reads each value in turn, then stays on the last."""
    readings = list(values)

    def now() -> float:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    return now


def test_a_broker_call_needs_its_connect_and_read_timeouts_its_settle_and_its_record() -> None:
    assert COSTS.worst_case_s(Step.BROKER) == 7.0
    assert fits(Step.BROKER, COSTS, remaining_s=7.0)
    assert not fits(Step.BROKER, COSTS, remaining_s=6.99)


def test_the_book_needs_two_flights_and_the_record() -> None:
    assert COSTS.worst_case_s(Step.BOOK) == 3.0


def test_an_attempt_that_has_spent_its_deadline_sends_nothing_and_answers_retryable() -> None:
    broker, book = RecordingBroker(), InMemoryRiskBook()
    engine = make_engine(
        live=True, broker=broker, book=book, max_order_notional=None, price_collar_pct=None
    )
    engine._monotonic = ticks(0.0, 0.0, 3.0)  # arrival; the book fits; 3 s later the broker
    result = engine.execute_intent(intent())
    assert (result.status, result.reason) == (Status.REJECTED, Reason.REQUEST_DEADLINE_EXCEEDED)
    assert result.retryable and result.retry_after_s == 1
    assert broker.submitted == []
    assert book.state_of("intent-1") == "released"  # reserved, then given back: nothing sent


def test_with_time_to_spare_the_order_is_placed() -> None:
    broker = RecordingBroker()
    engine = make_engine(live=True, broker=broker, max_order_notional=None, price_collar_pct=None)
    engine._monotonic = ticks(0.0, 0.1, 0.2)
    assert engine.execute_intent(intent(qty=str(Decimal(1)))).status is Status.SUBMITTED
    assert len(broker.submitted) == 1


def test_market_data_is_not_read_when_it_could_not_be_answered_in_time() -> None:
    engine = make_engine(live=True)
    engine._monotonic = ticks(0.0, 3.5)  # 5.5 s left; a market-data read needs 6
    result = engine.execute_intent(intent())
    assert result.reason is Reason.REQUEST_DEADLINE_EXCEEDED
    assert "reading market data" in result.message
