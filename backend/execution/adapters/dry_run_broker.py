"""The default broker: decides everything a live broker would be asked, and sends nothing."""

from __future__ import annotations

from decimal import Decimal

from backend.execution.decisions import BrokerOrder
from backend.execution.intent import OrderIntent


class DryRunBroker:
    simulated = True

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id="",
            client_order_id=intent.client_intent_id,
            status="dry_run",
            filled_qty=Decimal(0),
            filled_avg_price=None,
            filled_at=None,
            submitted_at=None,
            raw={},
        )

    def find_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        return None
