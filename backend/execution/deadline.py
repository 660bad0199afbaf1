"""The request's deadline: every answer comes inside Pub/Sub's 10 s ack deadline. Pure rules.

Each store call is bounded by EXEC_IO_TIMEOUT_S and each broker call by connect plus read
(2 x EXEC_BROKER_TIMEOUT_S), but several slow-but-answering dependencies in a row could add up
past the ack deadline, and Pub/Sub would then redeliver an intent whose attempt is still
running. So before each step that may take long, the attempt checks that the step, and the
writes that must follow it, still fit in EXEC_REQUEST_DEADLINE_S; if not, it stops with a
retryable answer before the step, and nothing is sent to the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    MARKET_DATA = "reading market data"
    BOOK = "checking and reserving in the order book"
    BROKER = "sending the order to the broker"


@dataclass(frozen=True)
class StepCosts:
    broker_timeout_s: float
    io_timeout_s: float

    def worst_case_s(self, step: Step) -> float:
        """The step at its slowest, plus the writes that must follow it before the answer."""
        broker_call = 2 * self.broker_timeout_s  # connect timeout, then read timeout
        record = self.io_timeout_s  # the decision record
        if step is Step.MARKET_DATA:
            return broker_call + record
        if step is Step.BOOK:
            return 2 * self.io_timeout_s + record  # two pipelined flights
        return broker_call + self.io_timeout_s + record  # the submit, its settle, the record


def fits(step: Step, costs: StepCosts, *, remaining_s: float) -> bool:
    return remaining_s >= costs.worst_case_s(step)
