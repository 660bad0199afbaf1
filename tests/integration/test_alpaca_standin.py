"""alpaca-py's real TradingClient and StockHistoricalDataClient against the local Alpaca
stand-in: no mocks, real HTTP."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
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


# Market data, clock, account and cancels: the reads and the DELETEs issues 9 and 11 need.


@pytest.fixture
def data_client(standin):
    return StockHistoricalDataClient("key", "secret", url_override=standin.base_url)


def test_latest_trade_prices_are_json_numbers_with_every_digit_the_test_set(data_client, standin):
    standin.set_latest_trade("AAPL", "187.25000000000000001", at="2024-01-02T15:04:05.123456789Z")

    raw = requests.get(f"{standin.base_url}/v2/stocks/trades/latest?symbols=AAPL", timeout=5)

    assert '"p": 187.25000000000000001' in raw.text  # a number, not a string
    trade = json.loads(raw.text, parse_float=Decimal)["trades"]["AAPL"]
    assert (trade["p"], trade["t"]) == (
        Decimal("187.25000000000000001"),
        "2024-01-02T15:04:05.123456789Z",
    )
    # alpaca-py's own model reads the same answer as a float, and the last digit is gone.
    model = data_client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    assert model["AAPL"].price == 187.25 and isinstance(model["AAPL"].price, float)


def test_quotes_snapshots_and_single_symbol_forms_serve_the_same_data(data_client, standin):
    standin.set_latest_quote("MSFT", bid="0.1", ask="0.2")
    standin.set_latest_trade("MSFT", "412.3456789")
    url = standin.base_url

    quotes = data_client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="MSFT"))
    snapshot = data_client.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols="MSFT"))
    one_quote = requests.get(f"{url}/v2/stocks/MSFT/quotes/latest", timeout=5).json()
    one_trade = requests.get(f"{url}/v2/stocks/MSFT/trades/latest", timeout=5).json()

    assert (quotes["MSFT"].bid_price, quotes["MSFT"].ask_price) == (0.1, 0.2)
    assert snapshot["MSFT"].latest_trade.price == 412.3456789
    assert snapshot["MSFT"].latest_quote.ask_price == 0.2
    assert (one_quote["symbol"], one_quote["quote"]["bp"], one_quote["quote"]["ap"]) == (
        "MSFT", 0.1, 0.2,
    )  # fmt: skip
    assert one_trade["trade"]["p"] == 412.3456789


def test_symbols_without_data_are_left_out_and_their_single_form_is_a_404(data_client, standin):
    standin.set_latest_trade("SPY", 450)

    trades = data_client.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=["SPY", "NODATA"])
    )
    snapshots = requests.get(
        f"{standin.base_url}/v2/stocks/snapshots?symbols=SPY,NODATA", timeout=5
    ).json()
    missing = requests.get(f"{standin.base_url}/v2/stocks/NODATA/trades/latest", timeout=5)

    assert list(trades) == ["SPY"] and list(snapshots) == ["SPY"]
    assert snapshots["SPY"]["latestQuote"] is None
    assert missing.status_code == 404


def test_the_feed_is_validated_and_visible_in_the_request_log(data_client, standin):
    standin.set_latest_trade("SPY", 450)

    data_client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY", feed="iex"))
    with pytest.raises(APIError) as err:
        data_client.get("/stocks/trades/latest", {"symbols": "SPY", "feed": "nasdaq"})

    assert err.value.status_code == 400
    assert standin.requests()[0] == ("GET", "/v2/stocks/trades/latest?feed=iex&symbols=SPY")
    assert standin.request_count("GET", "/v2/stocks/") == 2


def test_data_faults_hit_data_requests_only_in_fifo_order(client, data_client, standin):
    standin.set_latest_trade("SPY", 450)
    standin.fail_next("data", 503)
    standin.fail_next("data", 200, '{"trades": {"SPY": ')
    standin.drop_next("data")
    request = StockLatestTradeRequest(symbol_or_symbols="SPY")

    client.post("/orders", MARKET_BUY)  # an order POST takes no data fault
    with pytest.raises(APIError) as err:
        data_client.get_stock_latest_trade(request)
    assert err.value.status_code == 503 and "<html>" in str(err.value)
    with pytest.raises(ValueError):  # malformed JSON with a 200
        data_client.get_stock_latest_trade(request)
    with pytest.raises(requests.exceptions.ConnectionError):
        data_client.get_stock_latest_trade(request)
    assert data_client.get_stock_latest_trade(request)["SPY"].price == 450


def test_a_delayed_data_request_times_the_client_out(data_client, standin):
    data_client._session = TimeoutSession()
    standin.set_latest_trade("SPY", 450)
    standin.delay_next("data", 5)

    with pytest.raises(requests.exceptions.Timeout):
        data_client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))


def test_faults_need_a_known_route(standin):
    with pytest.raises(ValueError, match="unknown route"):
        standin.fail_next("positions", 500)


def test_the_clock_says_what_set_clock_says_in_new_york_time(client, standin):
    at = datetime(2024, 1, 2, 20, 0, 0, 123456, tzinfo=UTC)  # 15:00 in New York
    standin.set_clock(
        is_open=True, at=at, next_close=datetime(2024, 1, 2, 21, 0, tzinfo=UTC),
        next_open=datetime(2024, 1, 3, 14, 30, tzinfo=UTC),
    )  # fmt: skip

    raw = client.get("/clock")
    model = client.get_clock()

    assert raw == {
        "timestamp": "2024-01-02T15:00:00.123456000-05:00",
        "is_open": True,
        "next_open": "2024-01-03T09:30:00-05:00",
        "next_close": "2024-01-02T16:00:00-05:00",
    }
    assert (model.is_open, model.next_close) == (True, datetime(2024, 1, 2, 21, 0, tzinfo=UTC))


def test_the_clock_is_open_by_default_and_a_closed_one_opens_within_the_hour(client, standin):
    assert client.get_clock().is_open is True

    standin.set_clock(is_open=False)
    clock = client.get_clock()

    assert clock.is_open is False
    assert clock.timestamp < clock.next_open < clock.next_close


def test_the_account_keeps_its_defaults_and_takes_overrides_until_reset(client, standin):
    assert client.get("/account")["account_number"] == "PA3STANDIN00"

    standin.set_account(account_number="PA9OTHER", status="ACCOUNT_UPDATED", trading_blocked=True)
    changed = client.get("/account")
    standin.reset()

    assert (changed["account_number"], changed["status"], changed["trading_blocked"]) == (
        "PA9OTHER", "ACCOUNT_UPDATED", True,
    )  # fmt: skip
    assert (changed["cash"], changed["buying_power"]) == ("100000", "200000")
    assert client.get("/account")["account_number"] == "PA3STANDIN00"
    with pytest.raises(ValueError, match="unknown account fields"):
        standin.set_account(acount_number="typo")


def test_clock_and_account_faults_are_injected_per_route(client, standin):
    standin.fail_next("clock", 500)
    standin.fail_next("account", 401)

    with pytest.raises(APIError) as clock_err:
        client.get("/clock")
    with pytest.raises(APIError) as account_err:
        client.get("/account")

    assert (clock_err.value.status_code, account_err.value.status_code) == (500, 401)
    assert client.get("/clock")["is_open"] is True


def test_delete_cancels_an_open_order_once_then_answers_422_and_unknown_ids_404(client, standin):
    order = client.post("/orders", MARKET_BUY)

    assert client.delete(f"/orders/{order['id']}") is None  # 204, no body
    canceled = standin.orders()[0]
    with pytest.raises(APIError) as again:
        client.delete(f"/orders/{order['id']}")
    with pytest.raises(APIError) as unknown:
        client.cancel_order_by_id("00000000-0000-4000-8000-000000000000")

    assert canceled["status"] == "canceled" and canceled["canceled_at"] == canceled["updated_at"]
    assert (again.value.status_code, again.value.code) == (422, 42210000)
    assert again.value.message == 'order is already in "canceled" state'
    assert (unknown.value.status_code, unknown.value.code) == (404, 40410000)
    assert standin.delete_count() == 3


def test_a_filled_order_cannot_be_canceled(client, standin):
    order = client.post("/orders", MARKET_BUY)
    standin.set_order_status(order["id"], "filled", "1.5", "100")

    with pytest.raises(APIError) as err:
        client.delete(f"/orders/{order['id']}")

    assert err.value.status_code == 422 and standin.orders()[0]["status"] == "filled"


def test_cancel_all_cancels_only_the_open_orders_with_a_multi_status_answer(client, standin):
    first, second, done = (client.post("/orders", MARKET_BUY) for _ in range(3))
    standin.set_order_status(done["id"], "filled", "1.5", "100")

    answers = client.cancel_orders()

    assert sorted(str(a.id) for a in answers) == sorted([first["id"], second["id"]])
    assert {a.status for a in answers} == {200}
    assert [o["status"] for o in standin.orders()] == ["canceled", "canceled", "filled"]


def test_a_cancel_fault_after_the_cancel_hides_that_it_happened(client, standin):
    order = client.post("/orders", MARKET_BUY)
    standin.fail_next("cancel", 500, accept_first=True)
    standin.drop_next("cancel")

    with pytest.raises(APIError) as err:
        client.delete(f"/orders/{order['id']}")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.delete(f"/orders/{order['id']}")

    assert err.value.status_code == 500 and standin.orders()[0]["status"] == "canceled"
    assert standin.delete_count() == 2


def test_reset_forgets_market_data_and_the_clock(client, standin):
    standin.set_latest_trade("SPY", 450)
    standin.set_clock(is_open=False)

    standin.reset()

    assert (
        requests.get(f"{standin.base_url}/v2/stocks/SPY/trades/latest", timeout=5).status_code
        == 404
    )
    assert client.get_clock().is_open is True


def test_a_live_trade_is_stamped_with_the_time_of_each_answer(standin):
    standin.set_latest_trade("SPY", "450.12", at="live")
    url = f"{standin.base_url}/v2/stocks/SPY/trades/latest"

    first = requests.get(url, timeout=5).json()["trade"]
    second = requests.get(url, timeout=5).json()["trade"]

    assert first["p"] == second["p"] == 450.12
    assert first["t"] < second["t"]  # same length, nanoseconds: text order is time order
    assert abs(datetime.fromisoformat(second["t"][:26] + "+00:00") - datetime.now(UTC)).seconds < 5


def test_the_standalone_stand_in_serves_the_prices_it_was_started_with():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.alpaca_standin", "--price", "SPY=450.125"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        answer = requests.get(f"{url}/v2/stocks/snapshots?symbols=SPY", timeout=5)
    finally:
        process.terminate()
        process.wait(10)

    assert '"p": 450.125' in answer.text
