"""Property: whatever interleaving of orders, fills, refreshes, cancels, retries and crashes,
the gateway's limit holds on the broker's real book, and no order is counted twice.

A model broker (the truth) and a model gateway (its book and the position row, as Postgres would
hold them) evolve side by side. The gateway decides with the real pure rules
(``exposure.exposure`` and ``risk.max_position_check``); hypothesis picks the interleaving:

- submissions on both sides, each ending placed, with its answer lost, never sent (a crash
  between the check and the broker call), or rejected by the broker;
- partial and full fills, cancels and expiries at the broker;
- position-sync refreshes, read up to the skew before they are written;
- the fill sync, lagging: order snapshots and fill activities arrive separately;
- retries of intents whose outcome is unknown, and the sweep of never-sent reservations.

After every step: had every working order filled, the real position would stay within the
limit on both sides; the gateway's exposure is never smaller than the real one on either side;
and once everything is synced and settled, the two are equal (nothing counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from backend.execution.exposure import BookOrder, Exposure, Fill, PositionRow, exposure
from backend.execution.intent import Side
from backend.execution.risk import max_position_check
from backend.execution.vocabulary import CheckOutcome

LIMIT = Decimal(100)
SKEW_S = 10
SKEW = timedelta(seconds=SKEW_S)
EPOCH = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
OUTCOMES = ("placed", "answer_lost", "never_sent", "rejected")


@dataclass
class BrokerOrderModel:
    side: Side
    qty: Decimal
    fills: list[Fill] = field(default_factory=list)
    open: bool = True

    @property
    def filled(self) -> Decimal:
        return sum((f.qty for f in self.fills), Decimal(0))


@dataclass
class BookRowModel:
    side: Side
    qty: Decimal
    state: str  # reserved | working | final | released
    filled_qty: Decimal = Decimal(0)
    fills: tuple[Fill, ...] = ()
    filled_as_of: datetime | None = None


class GatewayAgainstBroker(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = EPOCH
        self.broker: dict[str, BrokerOrderModel] = {}
        self.book: dict[str, BookRowModel] = {}
        self.row: PositionRow | None = None
        self.count = 0

    # -- the truth ------------------------------------------------------------------------------

    def real_position(self, at: datetime | None = None) -> Decimal:
        total = Decimal(0)
        for order in self.broker.values():
            sign = 1 if order.side is Side.BUY else -1
            total += sign * sum(
                (f.qty for f in order.fills if at is None or f.at <= at), Decimal(0)
            )
        return total

    def real_working(self, side: Side) -> Decimal:
        return sum(
            (o.qty - o.filled for o in self.broker.values() if o.open and o.side is side),
            Decimal(0),
        )

    # -- the gateway's view -----------------------------------------------------------------------

    def view(self, excluding: str | None = None) -> Exposure:
        orders = [
            BookOrder(
                intent_id,
                row.side,
                row.qty,
                row.filled_qty,
                row.fills,
                working=row.state in ("reserved", "working"),
                filled_as_of=row.filled_as_of,
            )
            for intent_id, row in self.book.items()
            if intent_id != excluding and row.state != "released"
        ]
        return exposure(self.row, orders, skew=SKEW)

    def allowed(self, intent_id: str, side: Side, qty: Decimal) -> bool:
        check = max_position_check(
            "acct", "SPY", side, qty, LIMIT, position=self.row, current=self.view(intent_id)
        )
        return check.outcome is CheckOutcome.PASSED

    def tick(self, seconds: int = 1) -> None:
        self.now += timedelta(seconds=seconds)

    def attempt(self, intent_id: str, side: Side, qty: Decimal, outcome: str) -> None:
        """One attempt: check and reserve, then what the broker call turned into."""
        if not self.allowed(intent_id, side, qty):
            if intent_id in self.book and self.book[intent_id].state == "reserved":
                self.book[intent_id].state = "released"  # a definite no after a retry
            return
        self.book[intent_id] = BookRowModel(side, qty, "reserved")
        if outcome in ("placed", "answer_lost"):
            self.broker[intent_id] = BrokerOrderModel(side, qty)
        if outcome == "placed":
            self.book[intent_id].state = "working"
        elif outcome == "rejected":
            self.book[intent_id].state = "released"
        # answer_lost and never_sent: the row stays reserved, counted in full.

    # -- rules ------------------------------------------------------------------------------------

    @rule(
        side=st.sampled_from([Side.BUY, Side.SELL]),
        qty=st.integers(1, 80),
        outcome=st.sampled_from(OUTCOMES),
    )
    def submit(self, side: Side, qty: int, outcome: str) -> None:
        self.count += 1
        self.attempt(f"i-{self.count}", side, Decimal(qty), outcome)
        self.tick()

    @precondition(lambda self: any(o.open for o in self.broker.values()))
    @rule(data=st.data())
    def fill(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(sorted(k for k, o in self.broker.items() if o.open)))
        order = self.broker[intent_id]
        qty = Decimal(data.draw(st.integers(1, int(order.qty - order.filled))))
        order.fills.append(Fill(qty, self.now))
        order.open = order.filled < order.qty
        self.tick()

    @precondition(lambda self: any(o.open for o in self.broker.values()))
    @rule(data=st.data())
    def cancel_or_expire(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(sorted(k for k, o in self.broker.items() if o.open)))
        self.broker[intent_id].open = False
        self.tick()

    @rule(read_before_write=st.integers(0, SKEW_S))
    def refresh_position(self, read_before_write: int) -> None:
        """The position-sync job reads the broker, then writes the row a little later."""
        read_at = self.now - timedelta(seconds=read_before_write)
        self.row = PositionRow(self.real_position(read_at), self.now)
        self.tick()

    @rule()
    def sync_order_snapshots(self) -> None:
        for intent_id, order in self.broker.items():
            row = self.book[intent_id]
            if row.state in ("reserved", "released"):
                row.state = "working"  # the broker has it: the sync attaches it
            if order.filled >= row.filled_qty:
                row.filled_as_of = self.now  # the broker's snapshot time: every fill is older
            row.filled_qty = max(row.filled_qty, order.filled)
            if not order.open:
                row.state = "final"
        self.tick()

    @rule()
    def sync_fill_activities(self) -> None:
        for intent_id, order in self.broker.items():
            self.book[intent_id].fills = tuple(order.fills)
        self.tick()

    @precondition(lambda self: any(r.state == "reserved" for r in self.book.values()))
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def retry(self, data: st.DataObject, outcome: str) -> None:
        reserved = sorted(k for k, r in self.book.items() if r.state == "reserved")
        intent_id = data.draw(st.sampled_from(reserved))
        row = self.book[intent_id]
        if intent_id in self.broker:
            row.state = "working"  # found by client_order_id and adopted, never sent again
        else:
            self.attempt(intent_id, row.side, row.qty, outcome)
        self.tick()

    @rule()
    def sweep_never_sent_reservations(self) -> None:
        for intent_id, row in self.book.items():
            if row.state == "reserved" and intent_id not in self.broker:
                row.state = "released"
        self.tick()

    @rule(seconds=st.integers(1, 3 * SKEW_S))
    def time_passes(self, seconds: int) -> None:
        self.tick(seconds)

    @rule()
    def everything_settles(self) -> None:
        """Syncs catch up and the position row is refreshed well after the last fill: the
        gateway's view must then equal the broker's book exactly."""
        self.sync_order_snapshots()
        self.sync_fill_activities()
        self.sweep_never_sent_reservations()
        self.tick(SKEW_S + 1)
        self.refresh_position(0)
        self.tick(SKEW_S + 1)
        seen = self.view()
        assert seen.position == self.real_position()
        assert seen.working_buy == self.real_working(Side.BUY)
        assert seen.working_sell == self.real_working(Side.SELL)

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def the_limit_holds_on_the_brokers_book(self) -> None:
        position = self.real_position()
        assert position + self.real_working(Side.BUY) <= LIMIT
        assert position - self.real_working(Side.SELL) >= -LIMIT

    @invariant()
    def the_gateway_never_sees_less_exposure_than_there_is(self) -> None:
        seen, position = self.view(), self.real_position()
        assert seen.worst_long >= position + self.real_working(Side.BUY)
        assert seen.worst_short <= position - self.real_working(Side.SELL)


TestGatewayAgainstBroker = GatewayAgainstBroker.TestCase
TestGatewayAgainstBroker.settings = settings(
    max_examples=1000,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
