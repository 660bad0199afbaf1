"""A local HTTP stand-in for Alpaca's Trading API v2 and Market Data API v2, for tests.

It serves the endpoints the execution gateway uses over real HTTP on 127.0.0.1, so alpaca-py's
real ``TradingClient(url_override=standin.base_url)`` and
``StockHistoricalDataClient(url_override=standin.base_url)`` (in the test process or in gunicorn
workers under test) talk to it exactly as to Alpaca: same paths, same JSON shapes, same error
bodies. Both APIs share one server, as the two hosts share one set of keys.

Trading API (numbers are strings, RFC 3339 nanosecond timestamps):
- ``POST /v2/orders``; ``GET /v2/orders`` (status, limit, after, until, direction, symbols);
  ``GET /v2/orders/{id}``; ``GET /v2/orders:by_client_order_id``.
- ``DELETE /v2/orders/{id}``: 204 and the order becomes ``canceled`` (``canceled_at`` set) while
  it is open; 422 once it is final; 404 for an unknown id. ``DELETE /v2/orders``: cancels every
  open order, 207 with ``[{"id", "status": 200, "body": order}]``.
- ``GET /v2/account/activities/FILL``; ``GET /v2/account`` (``set_account`` changes
  ``account_number``, ``status``, ``trading_blocked``, ``account_blocked``).
- ``GET /v2/clock`` → ``{"timestamp", "is_open", "next_open", "next_close"}`` in New York time
  (``set_clock``; open by default, so local runs work at any hour).

Market Data API (prices are JSON **numbers**, written with exactly the digits they were set
with, so a client that reads them as floats visibly loses digits):
- ``GET /v2/stocks/trades/latest?symbols=A,B&feed=iex`` → ``{"trades": {"A": {...}}}`` and
  ``GET /v2/stocks/quotes/latest`` → ``{"quotes": {...}}``; a symbol without data is left out.
- ``GET /v2/stocks/{symbol}/trades/latest`` → ``{"symbol", "trade"}`` and
  ``GET /v2/stocks/{symbol}/quotes/latest`` → ``{"symbol", "quote"}``; 404 without data (the
  stand-in's choice).
- ``GET /v2/stocks/snapshots?symbols=A`` → ``{"A": {"latestTrade", "latestQuote", "minuteBar",
  "dailyBar", "prevDailyBar"}}`` (bars are null here).
  ``set_latest_trade`` / ``set_latest_quote`` set the data (``at="live"``: stamped with the
  time of each answer); ``feed`` is validated, not used.

Faults that matter (a 5xx after the broker acted, timeouts, dropped connections, malformed JSON)
are injected per route: ``orders`` (POST /v2/orders, also through ``fail_next_posts`` etc.),
``cancel`` (both DELETEs), ``data`` (every /v2/stocks request), ``clock`` and ``account``.

Standalone: ``python -m tests.support.alpaca_standin --port 8765 [--price SPY=450.12 ...]``
prints its URL on one line and serves until SIGTERM/SIGINT; each ``--price`` is a latest trade
that has always just happened, for local runs with the reference-price controls on.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

ORDER_STATUSES = {
    "new", "partially_filled", "filled", "done_for_day", "canceled", "expired", "replaced",
    "pending_cancel", "pending_replace", "pending_review", "accepted", "pending_new",
    "accepted_for_bidding", "stopped", "rejected", "suspended", "calculated", "held",
}  # fmt: skip
CLOSED_STATUSES = {"filled", "canceled", "expired", "replaced", "rejected"}  # status=closed
CHOICES = {
    "side": {"buy", "sell"},
    "type": {"market", "limit", "stop", "stop_limit", "trailing_stop"},
    "time_in_force": {"day", "gtc", "opg", "cls", "ioc", "fok"},
}
SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,11}")
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d)?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?")
ACCOUNT_ID = "0f9a7b9e-6f0c-4a3e-9c1d-5a7f3b2e1d00"
# Injected 4xx default to Alpaca's JSON errors (5xx default to a load balancer's HTML page).
DEFAULT_4XX = {
    401: (40110000, "request is not authorized"), 403: (40310000, "insufficient buying power"),
    404: (40410000, "not found"), 422: (40010001, "invalid order"),
    429: (42910000, "rate limit exceeded"),
}  # fmt: skip
DEFAULT_ACCOUNT = {
    "id": ACCOUNT_ID, "account_number": "PA3STANDIN00", "status": "ACTIVE", "currency": "USD",
    "cash": "100000", "buying_power": "200000", "equity": "100000", "multiplier": "2",
    "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
    "trade_suspended_by_user": False, "pattern_day_trader": False,
}  # fmt: skip
FEEDS = {"iex", "sip", "delayed_sip", "boats", "overnight", "otc"}
# Fault-injection queues: which requests consume a fault of each route (see route_of).
ROUTES = {"orders", "cancel", "data", "clock", "account"}
NEW_YORK = ZoneInfo("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ONE = re.compile(r"/v2/stocks/([^/]+)/(trade|quote)s/latest")


class ApiError(Exception):
    """An Alpaca error response: HTTP status plus a {"code", "message"} JSON body."""

    def __init__(self, status: int, message: str, code: int = 40010001) -> None:
        super().__init__(message)
        self.status, self.body = status, {"code": code, "message": message}


def format_ts(ns: int) -> str:
    """Nanosecond epoch -> '2022-04-19T17:45:05.024916716Z', Alpaca's timestamp shape."""
    secs, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def format_ny(ns: int, *, fraction: bool = True) -> str:
    """Nanosecond epoch -> '2024-01-02T10:00:00.024916716-05:00': /v2/clock speaks New York time."""
    secs, frac = divmod(ns, 10**9)
    local = datetime.fromtimestamp(secs, NEW_YORK)
    offset = local.strftime("%z")
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}" if fraction else "")
    return f"{text}{offset[:3]}:{offset[3:]}"


def instant_ns(at: datetime | str) -> int:
    """An aware datetime or an RFC 3339 string -> nanosecond epoch."""
    if isinstance(at, str):
        return parse_ts(at)
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def dumps(value: object) -> str:
    """json.dumps, except that a Decimal becomes a JSON number with exactly its digits.

    The market-data API sends prices as numbers. json.dumps refuses Decimal, and going through
    float would round 187.25000000000000001 to 187.25 before any client could see it.
    """
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def exact_price(value: Decimal | str | int | float) -> Decimal:
    """A price as the test wrote it (a float by its shortest repr, so 0.1 stays 0.1)."""
    price = Decimal(str(value))
    if not price.is_finite() or price < 0:
        raise ValueError(f"invalid price {value!r}")
    return price


def route_of(method: str, path: str) -> str | None:
    """The fault-injection route a request belongs to; None for requests that take no faults."""
    if path.startswith("/v2/stocks/"):
        return "data"
    if path in ("/v2/clock", "/v2/account", "/v2/calendar") and method == "GET":
        return path.removeprefix("/v2/")
    if method == "DELETE" and (path == "/v2/orders" or path.startswith("/v2/orders/")):
        return "cancel"
    if (method, path) == ("POST", "/v2/orders"):
        return "orders"
    return None


def parse_ts(text: str) -> int:
    """RFC 3339 timestamp or date -> nanosecond epoch. All 9 fractional digits are kept, so an
    order's own timestamp passed back as an exclusive bound really excludes that order."""
    m = TIMESTAMP.fullmatch(text.strip())
    if not m:
        raise ApiError(422, f"invalid timestamp {text!r}")
    whole = datetime.fromisoformat(m[1] + ("" if "T" in m[1] else "T00:00") + (m[3] or "Z"))
    return int(whole.timestamp()) * 10**9 + int((m[2] or "").ljust(9, "0"))


def decimal_field(body: dict, field: str) -> str | None:
    """Validate a positive number and return it as Alpaca echoes it: a string exactly as sent,
    a JSON number (parsed as Decimal, never float) in plain notation."""
    value = body.get(field)
    if value is None:
        return None
    try:
        number = Decimal(value if isinstance(value, (str, int, Decimal)) else "x")
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number <= 0:
        raise ApiError(422, f"invalid {field} {value!r}: must be a decimal number > 0")
    return value if isinstance(value, str) else format(number, "f")


def plain(number: Decimal) -> str:
    """Decimal -> string without exponent or trailing zeros ("100", "0.5")."""
    text = format(number.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class AlpacaStandIn:
    """In-memory fake Alpaca trading account behind a ThreadingHTTPServer.

    All state sits behind one lock, because handler threads, the test thread (assertions, fault
    injection, set_order_status) and client processes all hit it concurrently.
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.required_key_id: str | None = None
        self.required_secret: str | None = None
        self.log_requests = False  # access log on stderr (script mode turns it on)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def start(self, port: int = 0) -> Self:
        """Bind 127.0.0.1:port (0 = OS-assigned) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        handler = type("Handler", (_Handler,), {"standin": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval keeps stop() (server.shutdown) fast in test teardown.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; handlers sleeping in an injected delay wake up and answer nothing."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def orders(self) -> list[dict]:
        """Every accepted order (copies), in acceptance order."""
        with self._lock:
            return copy.deepcopy(self._orders)

    def post_count(self) -> int:
        """POST /v2/orders requests received, including refused and fault-injected ones."""
        with self._lock:
            return self._post_count

    def requests(self) -> list[tuple[str, str]]:
        """(method, path-with-query) of every request received."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        """Requests received with this method (any if None) whose path starts with the prefix,
        including refused and fault-injected ones: what a cache saved is what is not here."""
        with self._lock:
            return sum(
                1
                for m, path in self._requests
                if (method is None or m == method) and path.startswith(path_prefix)
            )

    def delete_count(self) -> int:
        """DELETE /v2/orders and DELETE /v2/orders/{id} requests received."""
        return self.request_count("DELETE", "/v2/orders")

    # Fault injection: a FIFO queue per route (see route_of), one fault consumed per request of
    # that route. accept_first=True lets the request take effect first (the order is stored, the
    # cancel applied) and then answers with the fault: the client cannot tell what happened.
    def fail_next(
        self,
        route: str,
        status: int,
        body: str | dict | None = None,
        count: int = 1,
        accept_first: bool = False,
    ) -> None:
        """Answer the next `count` requests of `route` with `status`. A 5xx defaults to a load
        balancer's HTML page, a 4xx to Alpaca's JSON error; a 200 with a str body that is not
        JSON ('{"trades": ') serves malformed JSON."""
        self._queue(route, count, ("fail", status, body, accept_first))

    def delay_next(
        self, route: str, seconds: float, count: int = 1, accept_first: bool = False
    ) -> None:
        """Sleep before answering, to trip client timeouts; then answer normally (for
        accept_first, with the answer computed before the sleep)."""
        self._queue(route, count, ("delay", seconds, None, accept_first))

    def drop_next(self, route: str, count: int = 1, accept_first: bool = False) -> None:
        """Close the connection without any HTTP response."""
        self._queue(route, count, ("drop", None, None, accept_first))

    def fail_next_posts(
        self,
        status: int,
        body: str | dict | None = None,
        count: int = 1,
        accept_first: bool = False,
    ) -> None:
        """Answer the next `count` order POSTs with `status`. accept_first=True stores the order
        first: the broker took it but the client sees an error (the "unknown outcome" case).
        alpaca-py itself retries 429 and 504 (3 times, 3 s apart), consuming further faults."""
        self.fail_next("orders", status, body, count, accept_first)

    def delay_next_posts(self, seconds: float, count: int = 1, accept_first: bool = True) -> None:
        """Sleep before answering, to trip client timeouts. accept_first=True stores the order
        before sleeping; False handles the request normally after the sleep (a late accept)."""
        self.delay_next("orders", seconds, count, accept_first)

    def drop_next_posts(self, count: int = 1, accept_first: bool = True) -> None:
        """Close the connection without any HTTP response (after storing the order if asked)."""
        self.drop_next("orders", count, accept_first)

    def _queue(self, route: str, count: int, fault: tuple) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}, use one of {sorted(ROUTES)}")
        with self._lock:
            self._faults[route].extend([fault] * count)

    def _take_fault(self, route: str | None) -> tuple:
        with self._lock:
            queue = self._faults.get(route or "")
            return queue.popleft() if queue else (None,) * 4

    # What the market-data, clock and account reads will see.
    def set_latest_trade(
        self,
        symbol: str,
        price: Decimal | str | int | float,
        *,
        at: datetime | str | None = None,
        size: int = 100,
        exchange: str = "V",
    ) -> dict:
        """The symbol's latest trade, as /trades/latest and /snapshots serve it. The price goes
        out as a JSON number with exactly the digits given. `at` defaults to now; "live" stamps
        each answer with the time of the request, like a liquid symbol that always just traded."""
        with self._lock:
            self._trade_id += 1
            trade = {
                "t": None, "x": exchange, "p": exact_price(price), "s": size, "c": ["@"],
                "i": self._trade_id, "z": "C",
            }  # fmt: skip
            self._trades[symbol] = self._stamp("trade", symbol, trade, at)
            return self._record("trade", symbol) or {}

    def set_latest_quote(
        self,
        symbol: str,
        bid: Decimal | str | int | float,
        ask: Decimal | str | int | float,
        *,
        at: datetime | str | None = None,
        bid_size: int = 1,
        ask_size: int = 1,
    ) -> dict:
        """The symbol's latest NBBO quote (a bid or ask of 0 means none, as Alpaca sends it);
        `at` as for set_latest_trade."""
        with self._lock:
            quote = {
                "t": None, "ax": "V", "ap": exact_price(ask), "as": ask_size,
                "bx": "V", "bp": exact_price(bid), "bs": bid_size, "c": ["R"], "z": "C",
            }  # fmt: skip
            self._quotes[symbol] = self._stamp("quote", symbol, quote, at)
            return self._record("quote", symbol) or {}

    def _stamp(self, kind: str, symbol: str, record: dict, at: datetime | str | None) -> dict:
        self._live.discard((kind, symbol))
        if at == "live":
            self._live.add((kind, symbol))
        else:
            record["t"] = format_ts(self._now() if at is None else instant_ns(at))
        return record

    def _record(self, kind: str, symbol: str) -> dict | None:
        """A copy of the latest trade or quote as served now (None if there is none)."""
        with self._lock:
            table = self._trades if kind == "trade" else self._quotes
            record = copy.deepcopy(table.get(symbol))
            if record is not None and (kind, symbol) in self._live:
                record["t"] = format_ts(self._now())
            return record

    def set_calendar(self, day: str, session: tuple[str, str] | None) -> None:
        """Override one day of /v2/calendar: (session_open, session_close) as "HHMM" New York
        times, or None for a day the market does not open. Other weekdays open 04:00-20:00
        (regular 09:30-16:00); weekends never."""
        with self._lock:
            self._calendar_days[day] = session

    def _calendar(self, query: dict[str, str]) -> list[dict]:
        """GET /v2/calendar?start=YYYY-MM-DD&end=YYYY-MM-DD, Alpaca's shape."""
        try:
            start = date.fromisoformat(query["start"])
            end = date.fromisoformat(query.get("end", query["start"]))
        except (KeyError, ValueError):
            raise ApiError(422, "start and end must be dates (YYYY-MM-DD)") from None
        days, day = [], start
        with self._lock:
            while day <= end:
                default = None if day.weekday() >= 5 else ("0400", "2000")
                session = self._calendar_days.get(day.isoformat(), default)
                if session is not None:
                    days.append({"date": day.isoformat(), "open": "09:30", "close": "16:00",
                                 "session_open": session[0], "session_close": session[1],
                                 "settlement_date": (day + timedelta(days=2)).isoformat()})  # fmt: skip
                day += timedelta(days=1)
        return days

    def set_clock(
        self,
        *,
        is_open: bool,
        next_open: datetime | None = None,
        next_close: datetime | None = None,
        at: datetime | None = None,
    ) -> None:
        """What /v2/clock says. `at` pins its timestamp (default: the time of each request);
        next_open/next_close default to plausible instants an hour or a day away."""
        with self._lock:
            self._clock = {
                "is_open": is_open, "at": at, "next_open": next_open, "next_close": next_close,
            }  # fmt: skip

    def set_account(self, **fields: Any) -> None:
        """Override fields of GET /v2/account (account_number, status, trading_blocked, ...)."""
        unknown = set(fields) - set(DEFAULT_ACCOUNT)
        if unknown:
            raise ValueError(f"unknown account fields {sorted(unknown)}")
        with self._lock:
            self._account.update(fields)

    def set_order_status(
        self,
        order_id: str,
        status: str,
        filled_qty: str | None = None,
        filled_avg_price: str | None = None,
    ) -> dict:
        """Move an order along as the broker would (for fill-sync tests); returns a copy.

        A rise in filled_qty records a FILL activity for the increment, priced so that the
        order's filled_avg_price stays the volume-weighted average of its fills.
        """
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown order status {status!r}")
        with self._lock:
            order, now = self._by_id[order_id], self._now()
            old_qty, old_avg = Decimal(order["filled_qty"]), Decimal(order["filled_avg_price"] or 0)
            order.update(status=status, updated_at=format_ts(now))
            order["filled_qty"] = filled_qty or order["filled_qty"]
            order["filled_avg_price"] = filled_avg_price or order["filled_avg_price"]
            stamp = {"filled": "filled_at", "canceled": "canceled_at", "expired": "expired_at"}
            if status in stamp or status == "rejected":
                order[stamp.get(status, "failed_at")] = format_ts(now)
            cum, avg = Decimal(order["filled_qty"]), Decimal(order["filled_avg_price"] or 0)
            if cum > old_qty:
                price = (avg * cum - old_avg * old_qty) / (cum - old_qty)
                self._add_fill(order, now, cum - old_qty, price, cum)
            return copy.deepcopy(order)

    def fill_at_once(self, order_id: str, qtys: list[str], price: str) -> dict:
        """Fill the order in several executions that share one transaction_time, as when one
        order is matched against several resting orders at once; returns a copy of the order.
        Each execution is its own FILL activity, with its own id."""
        with self._lock:
            order, now = self._by_id[order_id], self._now()
            cum, value = Decimal(order["filled_qty"]), Decimal(order["filled_avg_price"] or 0)
            value *= cum
            total = Decimal(order["qty"] or 0)
            for qty in map(Decimal, qtys):
                cum, value = cum + qty, value + qty * Decimal(price)
                order["status"] = "filled" if cum >= total else "partially_filled"
                self._add_fill(order, now, qty, Decimal(price), cum)
            order.update(
                filled_qty=plain(cum),
                filled_avg_price=plain(value / cum),
                updated_at=format_ts(now),
            )
            if order["status"] == "filled":
                order["filled_at"] = format_ts(now)
            return copy.deepcopy(order)

    def _add_fill(self, order: dict, now: int, qty: Decimal, price: Decimal, cum: Decimal) -> None:
        self._fill_seq += 1
        # fmt: off
        fill = {
            # Alpaca activity ids look like "20220419174505024::<uuid>" and sort in time order:
            # here a sequence number leads the uuid part, so ids within one millisecond (or
            # one transaction_time) sort in the order the fills happened.
            "id": re.sub(r"\D", "", format_ts(now)[:23])
            + f"::{self._fill_seq:08x}{str(uuid.uuid4())[8:]}",
            "account_id": ACCOUNT_ID, "activity_type": "FILL",
            "transaction_time": format_ts(now),
            "type": "fill" if order["status"] == "filled" else "partial_fill",
            "price": plain(price), "qty": plain(qty), "cum_qty": plain(cum),
            "leaves_qty": plain(Decimal(order["qty"] or cum) - cum),
            "side": order["side"], "symbol": order["symbol"], "order_id": order["id"],
            "order_status": order["status"],
        }
        # fmt: on
        self._fills.append((now, fill))

    def reset(self) -> None:
        """Forget orders, fills, market data, faults, counters and the request log; the clock
        and the account go back to their defaults."""
        with self._lock:
            self._orders: list[dict] = []
            self._by_id: dict[str, dict] = {}
            self._by_client_id: dict[str, dict] = {}
            self._submitted_ns: dict[str, int] = {}
            self._fills: list[tuple[int, dict]] = []
            self._faults: dict[str, deque[tuple]] = {route: deque() for route in ROUTES}
            self._requests: list[tuple[str, str]] = []
            self._post_count = self._last_ns = self._trade_id = self._fill_seq = 0
            self._trades: dict[str, dict] = {}
            self._calendar_days: dict[str, tuple[str, str] | None] = {}
            self._quotes: dict[str, dict] = {}
            self._live: set[tuple[str, str]] = set()  # (kind, symbol) stamped at each answer
            self._clock: dict[str, Any] = {"is_open": True}
            self._account: dict[str, Any] = dict(DEFAULT_ACCOUNT)

    def _now(self) -> int:
        """Strictly increasing nanosecond clock, so sorting by timestamp is never ambiguous."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def _cancel(self, order_id: str) -> dict:
        """Cancel an open order at once (Alpaca may pass through pending_cancel first)."""
        with self._lock:
            order = self._by_id.get(order_id)
            if order is None:
                raise ApiError(404, "order not found", 40410000)
            if order["status"] in CLOSED_STATUSES:
                raise ApiError(422, f'order is already in "{order["status"]}" state', 42210000)
            ts = format_ts(self._now())
            order.update(status="canceled", canceled_at=ts, updated_at=ts)
            return copy.deepcopy(order)

    def _cancel_all(self) -> list[dict]:
        """DELETE /v2/orders: every open order, one multi-status entry each."""
        with self._lock:
            open_ids = [o["id"] for o in self._orders if o["status"] not in CLOSED_STATUSES]
            return [{"id": i, "status": 200, "body": self._cancel(i)} for i in open_ids]

    def _clock_now(self) -> dict:
        """GET /v2/clock. Unset instants default to an hour or a day from the timestamp: open
        now means a close within the hour, closed now means an open within the hour."""
        with self._lock:
            clock = self._clock
            at = self._now() if clock.get("at") is None else instant_ns(clock["at"])
            hour, session = 3600 * 10**9, 23400 * 10**9
            if clock["is_open"]:
                next_open, next_close = at + 24 * hour, at + hour
            else:
                next_open, next_close = at + hour, at + hour + session
            if clock.get("next_open") is not None:
                next_open = instant_ns(clock["next_open"])
            if clock.get("next_close") is not None:
                next_close = instant_ns(clock["next_close"])
            return {
                "timestamp": format_ny(at),
                "is_open": clock["is_open"],
                "next_open": format_ny(next_open, fraction=False),
                "next_close": format_ny(next_close, fraction=False),
            }

    def _market_data(self, path: str, query: dict[str, str]) -> object:
        feed = query.get("feed", "iex")
        if feed not in FEEDS:
            raise ApiError(400, f"invalid feed {feed!r}", 40010000)
        with self._lock:  # one consistent answer, snapshots included
            one = LATEST_ONE.fullmatch(path)
            if one:
                symbol, kind = one[1], one[2]
                record = self._record(kind, symbol)
                if record is None:
                    raise ApiError(404, f"no {kind} found for {symbol}", 40410000)
                return {"symbol": symbol, kind: record}
            symbols = [x for x in query.get("symbols", "").split(",") if x]
            if not symbols:
                raise ApiError(400, "missing symbols", 40010000)
            if path in ("/v2/stocks/trades/latest", "/v2/stocks/quotes/latest"):
                kind = path.split("/")[3].removesuffix("s")
                found = {x: self._record(kind, x) for x in symbols}
                return {
                    kind + "s": {x: record for x, record in found.items() if record is not None}
                }
            if path == "/v2/stocks/snapshots":
                snapshots = {
                    x: {
                        "latestTrade": self._record("trade", x),
                        "latestQuote": self._record("quote", x),
                    }
                    for x in symbols
                }
                bars = {"minuteBar": None, "dailyBar": None, "prevDailyBar": None}
                return {
                    x: snapshot | bars
                    for x, snapshot in snapshots.items()
                    if snapshot["latestTrade"] or snapshot["latestQuote"]
                }
            raise ApiError(404, "endpoint not found", 40410000)

    def _create_order(self, body: object) -> dict:
        """Validate like Alpaca on the main paths (422 code 40010001), then store the order."""
        if not isinstance(body, dict):
            raise ApiError(400, "request body format is invalid", 40010000)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
            raise ApiError(422, f"invalid symbol {symbol!r}: expected an upper-case equity ticker")
        for field, allowed in CHOICES.items():
            if body.get(field) not in allowed:
                raise ApiError(422, f"invalid {field} {body.get(field)!r}, use one of {allowed}")
        otype, tif = body["type"], body["time_in_force"]
        qty, notional, limit_price, stop_price = (
            decimal_field(body, f) for f in ("qty", "notional", "limit_price", "stop_price")
        )
        if (qty is None) == (notional is None):
            raise ApiError(422, "exactly one of qty or notional is required")
        if otype in ("limit", "stop_limit") and limit_price is None:
            raise ApiError(422, f"limit_price is required for {otype} orders")
        if otype in ("stop", "stop_limit") and stop_price is None:
            raise ApiError(422, f"stop_price is required for {otype} orders")
        for name, price in (("limit_price", limit_price), ("stop_price", stop_price)):
            # Alpaca refuses sub-penny prices: at most 2 decimals from $1 up, 4 below.
            if price and -Decimal(price).as_tuple().exponent > (2 if Decimal(price) >= 1 else 4):
                message = f"invalid {name} {price}. sub-penny increment does not fulfill minimum"
                raise ApiError(422, message + " pricing criteria", 42210000)
        if body.get("order_class") not in (None, "", "simple"):
            raise ApiError(422, f"order_class {body['order_class']!r} is not supported here")
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(client_order_id, str) or len(client_order_id) > 128:
            raise ApiError(422, "client_order_id must be a string of at most 128 characters")
        with self._lock:
            # Alpaca keeps client_order_ids unique forever, canceled orders included.
            if client_order_id in self._by_client_id:
                raise ApiError(422, "client_order_id must be unique")
            now = self._now()
            ts = format_ts(now)
            # fmt: off
            order = {
                "id": str(uuid.uuid4()), "client_order_id": client_order_id,
                "created_at": ts, "updated_at": ts, "submitted_at": ts, "filled_at": None,
                "expired_at": None, "expires_at": None, "canceled_at": None, "failed_at": None,
                "replaced_at": None, "replaced_by": None, "replaces": None,
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-asset:{symbol}")),
                "symbol": symbol, "asset_class": "us_equity", "notional": notional, "qty": qty,
                "filled_qty": "0", "filled_avg_price": None, "order_class": "",
                "order_type": otype, "type": otype, "side": body["side"], "time_in_force": tif,
                "limit_price": limit_price, "stop_price": stop_price, "status": "accepted",
                "extended_hours": bool(body.get("extended_hours")), "legs": None,
                "trail_percent": None, "trail_price": None, "hwm": None,
                "position_intent": body.get("position_intent"),
            }
            # fmt: on
            self._orders.append(order)
            self._by_id[order["id"]] = self._by_client_id[client_order_id] = order
            self._submitted_ns[order["id"]] = now
            return copy.deepcopy(order)

    def _list_orders(self, query: dict[str, str]) -> list[dict]:
        """As Alpaca: status=open by default, limit 50 by default (capped at 500), and
        after/until compare exclusively against submitted_at (not updated_at)."""
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise ApiError(422, "status must be one of open, closed, all")
        if not query.get("limit", "50").isdigit():
            raise ApiError(422, "limit must be a positive integer")
        symbols = query["symbols"].split(",") if query.get("symbols") else None
        with self._lock:
            hits = [
                (self._submitted_ns[o["id"]], o)
                for o in self._orders
                if (status == "all" or (o["status"] in CLOSED_STATUSES) == (status == "closed"))
                and (symbols is None or o["symbol"] in symbols)
            ]
            return window(hits, query)[: min(int(query.get("limit", "50")), 500)]

    def _list_fills(self, query: dict[str, str]) -> list[dict]:
        """FILL activities, paged as Alpaca pages them: after/until compare against
        transaction_time; page_token is the id of the last activity of the previous page, and
        the page begins right after it (direction=asc) or ends right before it (desc). Ids
        sort in time order, so the token compares as text. page_size: default 100, max 100."""
        size = query.get("page_size", "100")
        if not size.isdigit() or not 1 <= int(size) <= 100:
            raise ApiError(422, "page_size must be an integer between 1 and 100")
        token = query.get("page_token")
        with self._lock:
            fills = window(self._fills, query)
        if token:
            ascending = query.get("direction", "desc") == "asc"
            fills = [f for f in fills if (f["id"] > token if ascending else f["id"] < token)]
        return fills[: int(size)]


def window(items: list[tuple[int, dict]], query: dict[str, str]) -> list[dict]:
    """Filter (timestamp_ns, item) pairs by after/until (exclusive) and sort them by
    `direction`, newest first by default as Alpaca does; returns copies of the items."""
    after = parse_ts(query["after"]) if "after" in query else -1
    until = parse_ts(query["until"]) if "until" in query else float("inf")
    direction = query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise ApiError(422, "direction must be asc or desc")
    hits = sorted((i for i in items if after < i[0] < until), key=lambda i: i[0])
    return copy.deepcopy([item for _, item in (hits[::-1] if direction == "desc" else hits)])


class _Handler(BaseHTTPRequestHandler):
    """One HTTP request. HTTP/1.0 (the default), so every request has its own connection and a
    dropped connection or stop() never leaves a kept-alive socket behind."""

    standin: AlpacaStandIn

    def log_message(self, format: str, *args: object) -> None:
        if self.standin.log_requests:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        s, url = self.standin, urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_order_post = (self.command, url.path) == ("POST", "/v2/orders")
        with s._lock:
            s._requests.append((self.command, self.path))
            s._post_count += is_order_post
        try:
            for required, header in ((s.required_key_id, "APCA-API-KEY-ID"),
                                     (s.required_secret, "APCA-API-SECRET-KEY")):  # fmt: skip
                if required is not None and self.headers.get(header) != required:
                    raise ApiError(401, "request is not authorized", 40110000)
            fault = s._take_fault(route_of(self.command, url.path))
            self._serve(fault, lambda: self._answer(url.path, query, raw))
        except ApiError as err:
            self._send(err.status, err.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _serve(self, fault: tuple, answer: Callable[[], tuple[int, object]]) -> None:
        kind, arg, body, accept_first = fault
        early = None
        if accept_first:
            try:
                early = answer()
            except ApiError:
                early = None  # nothing took effect (an invalid order); the fault still answers
        if kind == "drop":
            return  # nothing written: the server just closes the socket
        if kind == "fail":
            return self._send_fault(arg, body)
        if kind == "delay" and self.standin._stopping.wait(arg):
            return  # stopped while sleeping
        self._send(*(early or answer()))

    def _answer(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, object]:
        s = self.standin
        if (self.command, path) == ("POST", "/v2/orders"):
            try:
                payload = json.loads(raw or b"null", parse_float=Decimal)
            except ValueError:
                payload = None
            return 200, s._create_order(payload)
        if self.command == "DELETE" and path == "/v2/orders":
            return 207, s._cancel_all()
        if self.command == "DELETE" and path.startswith("/v2/orders/"):
            s._cancel(path.removeprefix("/v2/orders/"))
            return 204, None
        if self.command != "GET":
            raise ApiError(404, "endpoint not found", 40410000)
        return 200, self._get(path, query)

    def _get(self, path: str, query: dict[str, str]) -> object:
        s = self.standin
        if path == "/v2/orders":
            return s._list_orders(query)
        if path == "/v2/account/activities/FILL":
            return s._list_fills(query)
        if path.startswith("/v2/stocks/"):
            return s._market_data(path, query)
        if path == "/v2/clock":
            return s._clock_now()
        if path == "/v2/calendar":
            return s._calendar(query)
        with s._lock:
            if path == "/v2/account":
                return dict(s._account)
            if path == "/v2/orders:by_client_order_id":
                order = s._by_client_id.get(query.get("client_order_id", ""))
            elif path.startswith("/v2/orders/"):
                order = s._by_id.get(path.removeprefix("/v2/orders/"))
            else:
                raise ApiError(404, "endpoint not found", 40410000)
            if order is None:
                raise ApiError(404, "order not found", 40410000)
            return copy.deepcopy(order)

    def _send_fault(self, status: int, body: str | dict | None) -> None:
        if body is None and status >= 500:
            title = f"{status} {HTTPStatus(status).phrase}"
            body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        elif body is None:
            code, message = DEFAULT_4XX.get(status, (status * 100000, HTTPStatus(status).phrase))
            body = {"code": code, "message": message}
        is_json = isinstance(body, dict) or body.lstrip().startswith(("{", "["))
        self._send(status, body, "application/json" if is_json else "text/html")

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = b"" if status == 204 else (body if isinstance(body, str) else dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Local stand-in for Alpaca's Trading and Market Data APIs v2."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="serve a latest trade at this price, always just traded (repeatable)",
    )
    args = parser.parse_args()
    standin = AlpacaStandIn()
    standin.log_requests = True
    for item in args.price:
        symbol, _, price = item.partition("=")
        standin.set_latest_trade(symbol, price, at="live")
    print(standin.start(args.port).base_url, flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        pass
    standin.stop()


if __name__ == "__main__":
    main()
