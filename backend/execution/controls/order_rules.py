"""Controls on the order itself, decided before the book is read (SEC 15c3-5 (c)(1)(ii) and
(c)(2)(ii), FIA 2024 §1.1 and §1.3, RTS 6 Art. 15). Pure: each is a function of the intent,
the order context and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from backend.execution.controls.context import ControlContext
from backend.execution.decisions import CheckResult
from backend.execution.intent import OrderIntent, Side
from backend.execution.settings import Settings
from backend.execution.vocabulary import CheckOutcome, Reason

HUNDRED = Decimal(100)
# Market data stamped a little ahead of our clock is normal (clocks drift, and "now" is taken
# when the intent arrives); more than this, and the price's age cannot be known.
REFERENCE_FUTURE_TOLERANCE_S = 5.0


def restricted_symbol(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    listed = ctx.order.restricted
    inputs = {
        "symbol": intent.symbol,
        "allowed_symbols": sorted(settings.allowed_symbols or ()),
        "restricted_symbols": sorted(listed.value or ()),
    }
    if listed.value is None:
        return _unreadable("symbol_restricted", inputs, "restricted-symbol list", listed.error)
    if intent.symbol in listed.value:
        return _failed(
            "symbol_restricted", inputs, Reason.SYMBOL_RESTRICTED, f"{intent.symbol} is restricted"
        )
    if settings.allowed_symbols is not None and intent.symbol not in settings.allowed_symbols:
        detail = f"{intent.symbol} is not in EXEC_ALLOWED_SYMBOLS"
        return _failed("symbol_restricted", inputs, Reason.SYMBOL_RESTRICTED, detail)
    return CheckResult("symbol_restricted", CheckOutcome.PASSED, inputs)


def market_hours(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """regular: Alpaca's clock says the session is open. extended: now falls inside today's
    session from Alpaca's calendar, pre-market and after-hours included."""
    now, extended = ctx.order.now, settings.trading_hours == "extended"
    inputs: dict[str, object] = {"trading_hours": settings.trading_hours, "at": now}
    if extended:
        sessions = ctx.order.session
        if sessions.value is None:
            return _unreadable("market_hours", inputs, "trading calendar", sessions.error)
        inputs["sessions"] = [(s.session_open, s.session_close) for s in sessions.value]
        if any(session.contains(now) for session in sessions.value):
            return CheckResult("market_hours", CheckOutcome.PASSED, inputs)
        detail = "outside today's trading session (extended hours included)"
        if not sessions.value:
            detail = "the market does not open today"
        return _failed("market_hours", inputs, Reason.MARKET_CLOSED, detail)
    market = ctx.order.market
    if market.value is None:
        return _unreadable("market_hours", inputs, "market clock", market.error)
    clock = market.value
    inputs |= {"is_open": clock.is_open_at(now), "next_open": clock.next_open,
               "next_close": clock.next_close}  # fmt: skip
    if clock.is_open_at(now):
        return CheckResult("market_hours", CheckOutcome.PASSED, inputs)
    detail = f"the market is closed (regular session only); next open {clock.next_open.isoformat()}"
    return _failed("market_hours", inputs, Reason.MARKET_CLOSED, detail)


def _unreadable(
    name: str, inputs: Mapping[str, object], what: str, error: str | None
) -> CheckResult:
    return CheckResult(
        name,
        CheckOutcome.ERROR,
        inputs,
        Reason.RISK_DATA_UNAVAILABLE,
        f"the {what} cannot be read, refusing (fail closed): {error}",
    )


def max_order_qty(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    limit = settings.max_order_qty
    assert limit is not None  # the table skips switched-off controls
    inputs = {"qty": intent.qty, "limit": limit}
    if intent.qty <= limit:
        return CheckResult("max_order_qty", CheckOutcome.PASSED, inputs)
    detail = f"order quantity {_plain(intent.qty)} exceeds EXEC_MAX_ORDER_QTY {_plain(limit)}"
    return _failed("max_order_qty", inputs, Reason.MAX_ORDER_QTY_EXCEEDED, detail)


def reference_price(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """Present and fresh enough: within EXEC_REFERENCE_PRICE_MAX_AGE_S while the market is open
    (a closed market's last trade is old by nature). An unreadable clock counts as open."""
    reading, now = ctx.order.reference, ctx.order.now
    if reading.value is None:
        return CheckResult(
            "reference_price",
            CheckOutcome.ERROR,
            {"symbol": intent.symbol},
            Reason.REFERENCE_PRICE_UNAVAILABLE,
            f"no reference price for {intent.symbol}: {reading.error}",
        )
    price = reading.value
    market_open = ctx.order.market.value is None or ctx.order.market.value.is_open_at(now)
    age = price.age_s(now)
    inputs = {
        "symbol": intent.symbol,
        "price": price.price,
        "source": price.source,
        "feed": price.feed,
        "at": price.at,
        "age_s": round(age, 3),
        "max_age_s": settings.reference_price_max_age_s,
        "market_open": market_open,
    }
    if age < -REFERENCE_FUTURE_TOLERANCE_S:
        return CheckResult(
            "reference_price",
            CheckOutcome.ERROR,
            inputs,
            Reason.REFERENCE_PRICE_UNAVAILABLE,
            f"the reference price of {intent.symbol} is dated {-age:.0f}s in the future: its "
            "age is unknown, so it is not used",
        )
    if market_open and age > settings.reference_price_max_age_s:
        return CheckResult(
            "reference_price",
            CheckOutcome.ERROR,
            inputs,
            Reason.REFERENCE_PRICE_UNAVAILABLE,
            f"the reference price of {intent.symbol} is {age:.0f}s old while the market is "
            f"open; maximum {settings.reference_price_max_age_s:g}s",
        )
    return CheckResult("reference_price", CheckOutcome.PASSED, inputs)


def max_order_notional(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """qty x the reference price; for a buy, its limit or stop price when higher (what it may
    pay). Without a reference price the reference_price control has already refused."""
    limit = settings.max_order_notional
    assert limit is not None
    reference = ctx.order.reference.value
    if reference is None:
        return CheckResult("max_order_notional", CheckOutcome.SKIPPED, {"limit": limit},
                           detail="no reference price (see reference_price)")  # fmt: skip
    price = reference.price
    if intent.side is Side.BUY:
        price = max(p for p in (price, intent.limit_price, intent.stop_price) if p is not None)
    notional = intent.qty * price
    inputs = {"qty": intent.qty, "price": price, "notional": notional, "limit": limit}
    if notional <= limit:
        return CheckResult("max_order_notional", CheckOutcome.PASSED, inputs)
    detail = (
        f"order notional {_plain(notional)} ({_plain(intent.qty)} x {_plain(price)}) exceeds "
        f"EXEC_MAX_ORDER_NOTIONAL {_plain(limit)}"
    )
    return _failed("max_order_notional", inputs, Reason.MAX_ORDER_NOTIONAL_EXCEEDED, detail)


def price_collar(intent: OrderIntent, ctx: ControlContext, settings: Settings) -> CheckResult:
    """A buy's limit or stop price at most X % above the reference, a sell's at most X % below:
    the erroneous-price check. A market order has no price of its own to check."""
    pct = settings.price_collar_pct
    assert pct is not None
    reference = ctx.order.reference.value
    prices = [p for p in (intent.limit_price, intent.stop_price) if p is not None]
    if reference is None or not prices:
        why = "no reference price (see reference_price)" if prices else "a market order"
        return CheckResult("price_collar", CheckOutcome.SKIPPED, {"collar_pct": pct}, detail=why)
    if intent.side is Side.BUY:
        bound = reference.price * (HUNDRED + pct) / HUNDRED
        outside = [p for p in prices if p > bound]
    else:
        bound = reference.price * (HUNDRED - pct) / HUNDRED
        outside = [p for p in prices if p < bound]
    inputs = {"side": intent.side.value, "prices": prices, "reference": reference.price,
              "collar_pct": pct, "bound": bound}  # fmt: skip
    if not outside:
        return CheckResult("price_collar", CheckOutcome.PASSED, inputs)
    direction = "above" if intent.side is Side.BUY else "below"
    detail = (
        f"{intent.side.value} price {_plain(outside[0])} is more than {_plain(pct)}% {direction} "
        f"the reference {_plain(reference.price)} (bound {_plain(bound)})"
    )
    return _failed("price_collar", inputs, Reason.PRICE_OUTSIDE_COLLAR, detail)


def _failed(name: str, inputs: Mapping[str, object], reason: Reason, detail: str) -> CheckResult:
    return CheckResult(name, CheckOutcome.FAILED, inputs, reason, detail)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
