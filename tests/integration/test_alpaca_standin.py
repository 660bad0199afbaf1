"""alpaca-py's real TradingClient against the local Alpaca stand-in: no mocks, real HTTP."""

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeActivity
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from tests.support.alpaca_standin import AlpacaStandIn

MARKET_BUY = {
    "symbol": "AAPL",
    "qty": "1.5",
    "side": "buy",
    "type": "market",
    "time_in_force": "day",
}


@pytest.fixture
def standin():
    standin = AlpacaStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def client(standin):
    return TradingClient("key", "secret", paper=True, url_override=standin.base_url)


class TimeoutSession(requests.Session):
    """alpaca-py passes no timeout to requests; this session adds a short one."""

    def request(self, *args, **kwargs):
        return super().request(*args, timeout=0.3, **kwargs)


def test_raw_post_returns_an_accepted_order_with_numbers_as_strings(client, standin):
    raw = client.post("/orders", {**MARKET_BUY, "client_order_id": "intent-1"})

    assert raw["status"] == "accepted"
    assert (raw["qty"], raw["filled_qty"], raw["filled_avg_price"]) == ("1.5", "0", None)
    assert raw["submitted_at"].endswith("Z") and len(raw["submitted_at"]) == 30  # nanoseconds
    found = client.get_order_by_client_id("intent-1")
    assert isinstance(found, Order)
    assert (str(found.id), found.qty, found.status) == (raw["id"], "1.5", OrderStatus.ACCEPTED)
    assert standin.requests() == [
        ("POST", "/v2/orders"),
        ("GET", "/v2/orders:by_client_order_id?client_order_id=intent-1"),
    ]


def test_submit_order_with_market_and_limit_requests_parses_into_orders(client, standin):
    market = client.submit_order(
        MarketOrderRequest(symbol="MSFT", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    limit = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=3, side="sell", time_in_force="gtc", limit_price=412.35
        )
    )

    assert isinstance(market, Order) and isinstance(limit, Order)
    assert (market.qty, market.limit_price) == ("2.0", None)  # alpaca-py sends floats
    assert (limit.qty, limit.limit_price, limit.time_in_force) == ("3.0", "412.35", "gtc")
    assert [o["id"] for o in standin.orders()] == [str(market.id), str(limit.id)]


def test_reused_client_order_id_is_refused_with_alpacas_422(client, standin):
    first = client.post("/orders", {**MARKET_BUY, "client_order_id": "dup"})
    standin.set_order_status(first["id"], "canceled")

    with pytest.raises(APIError) as err:
        client.post("/orders", {**MARKET_BUY, "client_order_id": "dup"})

    assert err.value.status_code == 422
    assert (err.value.code, err.value.message) == (40010001, "client_order_id must be unique")
    assert len(standin.orders()) == 1 and standin.post_count() == 2


def test_limit_order_without_limit_price_is_refused_with_422(client, standin):
    with pytest.raises(APIError) as err:
        client.post("/orders", {**MARKET_BUY, "type": "limit"})

    assert (err.value.status_code, err.value.code) == (422, 40010001)
    assert "limit_price" in err.value.message and standin.orders() == []


def test_unknown_client_order_id_is_a_404(client):
    with pytest.raises(APIError) as err:
        client.get_order_by_client_id("never-sent")

    assert err.value.status_code == 404
    assert (err.value.code, err.value.message) == (40410000, "order not found")


def test_wrong_credentials_are_refused_with_401(client, standin):
    standin.required_key_id = "the-real-key"

    with pytest.raises(APIError) as err:
        client.get_account()

    assert (err.value.status_code, err.value.code) == (401, 40110000)


def test_injected_500_after_acceptance_hides_an_order_that_exists(client, standin):
    standin.fail_next_posts(500, accept_first=True)

    with pytest.raises(APIError) as err:
        client.post("/orders", {**MARKET_BUY, "client_order_id": "unknown-outcome"})

    assert err.value.status_code == 500
    assert "<html>" in str(err.value)
    with pytest.raises(ValueError):  # an HTML load-balancer page has no JSON error code
        _ = err.value.code
    assert standin.post_count() == 1 and len(standin.orders()) == 1
    assert client.get_order_by_client_id("unknown-outcome").status == OrderStatus.ACCEPTED


def test_dropped_connection_is_a_requests_error_after_the_order_was_stored(client, standin):
    standin.drop_next_posts()

    with pytest.raises(requests.exceptions.ConnectionError):
        client.post("/orders", MARKET_BUY)

    assert standin.post_count() == 1 and len(standin.orders()) == 1


def test_slow_response_times_the_client_out_after_the_order_was_stored(client, standin):
    client._session = TimeoutSession()
    standin.delay_next_posts(5)

    with pytest.raises(requests.exceptions.Timeout):
        client.post("/orders", MARKET_BUY)

    assert len(standin.orders()) == 1


def test_faults_apply_to_the_next_posts_only_in_fifo_order(client, standin):
    standin.fail_next_posts(503, count=2)

    for _ in range(2):
        with pytest.raises(APIError):
            client.post("/orders", MARKET_BUY)
    client.post("/orders", MARKET_BUY)

    assert standin.post_count() == 3 and len(standin.orders()) == 1


def test_reset_forgets_orders_faults_and_counters(client, standin):
    client.post("/orders", MARKET_BUY)
    standin.fail_next_posts(503)

    standin.reset()

    assert (standin.orders(), standin.post_count(), standin.requests()) == ([], 0, [])
    assert client.post("/orders", MARKET_BUY)["status"] == "accepted"


def test_context_manager_serves_inside_and_stops_on_exit():
    with AlpacaStandIn().start() as standin:
        url = standin.base_url
        assert requests.get(f"{url}/v2/account", timeout=5).json()["status"] == "ACTIVE"

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/v2/account", timeout=5)


def test_list_orders_and_fill_activities_follow_set_order_status(client, standin):
    order = client.post("/orders", {**MARKET_BUY, "qty": "3"})
    other = client.post("/orders", MARKET_BUY)
    standin.set_order_status(order["id"], "partially_filled", "1", "100")
    filled = standin.set_order_status(order["id"], "filled", "3", "101")

    assert filled["filled_at"] == filled["updated_at"]
    open_ids = [o["id"] for o in client.get("/orders", {"status": "open"})]
    closed_ids = [o["id"] for o in client.get("/orders", {"status": "closed"})]
    all_asc = client.get("/orders", {"status": "all", "direction": "asc"})
    assert (open_ids, closed_ids) == ([other["id"]], [order["id"]])
    assert [o["id"] for o in all_asc] == [order["id"], other["id"]]
    assert client.get("/orders", {"status": "all"}) == all_asc[::-1]  # newest first by default
    assert client.get("/orders", {"status": "all", "after": order["submitted_at"]}) == all_asc[1:]
    fills = client.get("/account/activities/FILL", {"direction": "asc"})
    assert [(f["type"], f["qty"], f["price"], f["cum_qty"], f["leaves_qty"]) for f in fills] == [
        ("partial_fill", "1", "100", "1", "2"),
        ("fill", "2", "101.5", "3", "0"),  # 1 @ 100 + 2 @ 101.5 = 3 @ 101 average
    ]
    assert all(TradeActivity(**f).order_id.hex == order["id"].replace("-", "") for f in fills)


def test_fill_activities_page_by_token_in_both_directions_even_inside_one_timestamp(
    client, standin
):
    order = client.post("/orders", {**MARKET_BUY, "qty": "5"})
    filled = standin.fill_at_once(order["id"], ["1", "1", "1", "1", "1"], price="10")
    everything = client.get("/account/activities/FILL", {"direction": "asc"})
    ids = [f["id"] for f in everything]
    assert len({f["transaction_time"] for f in everything}) == 1  # one timestamp for all five
    assert ids == sorted(ids)  # ids sort in time order
    assert (filled["status"], filled["filled_qty"], filled["filled_avg_price"]) == (
        "filled",
        "5",
        "10",
    )

    def page(direction, token=None):
        query = {"direction": direction, "page_size": 2}
        return [
            f["id"]
            for f in client.get(
                "/account/activities/FILL", query | ({"page_token": token} if token else {})
            )
        ]

    assert page("asc") == ids[:2]
    assert page("asc", ids[1]) == ids[2:4]  # begins right after the token
    assert page("asc", ids[3]) == ids[4:]
    assert page("desc") == ids[::-1][:2]
    assert page("desc", ids[3]) == ids[2::-1][:2]  # ends right before the token
    with pytest.raises(APIError):
        client.get("/account/activities/FILL", {"page_size": 101})
