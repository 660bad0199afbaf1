"""The order-rate throttle and the repeated-execution latch are exact across two service
processes: concurrent intents from both never let one order more through than the limit."""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg

from tests.conftest import current_account
from tests.e2e.conftest import deliver, fire_together, intent, two_instances
from tests.support.alpaca_standin import AlpacaStandIn


def outcomes(responses: list[Any]) -> Counter[str]:
    return Counter(r.json().get("reason") or r.json()["status"] for r in responses)


def test_the_order_rate_is_exact_across_two_instances(
    start_service: Any, alpaca: AlpacaStandIn
) -> None:
    services = two_instances(start_service, EXEC_MAX_ORDERS_PER_MINUTE="5", EXEC_REPEAT_LIMIT="off")
    # Four symbols: only the account-wide lock can keep the count exact.
    symbols = ("SPY", "QQQ", "AAPL", "MSFT")
    bodies = [intent(strategy_id=f"s{n}", symbol=symbols[n % 4]) for n in range(20)]
    calls = [lambda b=b, n=n: deliver(services[n % 2], b) for n, b in enumerate(bodies)]
    responses = fire_together(calls)
    assert outcomes(responses) == Counter({"submitted": 5, "order_rate_exceeded": 15})
    assert len(alpaca.orders()) == 5


def test_the_repeat_latch_is_exact_across_two_instances(
    start_service: Any, alpaca: AlpacaStandIn, pg_dsn: str
) -> None:
    services = two_instances(
        start_service, EXEC_REPEAT_LIMIT="3/60", EXEC_MAX_ORDERS_PER_MINUTE="off"
    )
    bodies = [intent(strategy_id="looping") for _ in range(12)]
    calls = [lambda b=b, n=n: deliver(services[n % 2], b) for n, b in enumerate(bodies)]
    responses = fire_together(calls)
    assert outcomes(responses) == Counter({"submitted": 3, "strategy_halted": 9})
    assert len(alpaca.orders()) == 3
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        latches = conn.execute(
            "SELECT strategy_id, released_at FROM public.execution_strategy_latches"
            " WHERE broker_account_id = %s",
            (current_account(),),
        ).fetchall()
    assert latches == [("looping", None)]
