-- Version 2: the gateway's own book of orders, which replaces execution_risk_reservations.
--
-- One row per order this gateway let through its checks while routing for real (placed, or
-- adopted from an earlier attempt). It is written under advisory locks on (account, trading
-- day) and (account, symbol), in the same transaction that checked the limits, and kept current
-- by the fill sync. See docs/LEDGER.md#postgres-the-order-book.
--
-- state, the row's life in the book:
--   reserved  the checks passed; the broker may or may not have the order (outcome unknown
--             until settled). Counts in full as working.
--   working   the broker has the order and it is not final. Its unfilled quantity is working.
--   final     the broker reports a final status (filled, canceled, expired, rejected,
--             replaced). Nothing of it is working any more; its fills count as position.
--   released  the order surely never reached the broker. Counts for nothing.
CREATE TABLE IF NOT EXISTS public.execution_orders (
    client_intent_id  text        PRIMARY KEY,
    broker_account_id text        NOT NULL,
    -- NULL only on rows carried over from execution_risk_reservations (version 1 kept neither).
    strategy_id       text,
    symbol            text        NOT NULL,
    side              text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty               numeric     NOT NULL CHECK (qty > 0),
    order_type        text,
    limit_price       numeric,
    stop_price        numeric,
    trading_date      date        NOT NULL,
    state             text        NOT NULL
                      CHECK (state IN ('reserved', 'working', 'final', 'released')),
    broker_order_id   text        UNIQUE,
    broker_status     text,
    -- The broker's cumulative filled quantity, from order snapshots; it never decreases.
    filled_qty        numeric     NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    -- The sum of the FILL activities recorded in execution_fills for this order.
    fills_qty         numeric     NOT NULL DEFAULT 0 CHECK (fills_qty >= 0),
    last_fill_at      timestamptz,
    -- What may still fill: the unfilled rest of a reserved or working order.
    working_qty       numeric     GENERATED ALWAYS AS (
                          CASE WHEN state IN ('reserved', 'working')
                               THEN greatest(qty - filled_qty, 0) ELSE 0 END) STORED,
    -- The latest moment the order could have been sent: the last (re-)reservation.
    reserved_at       timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    final_at          timestamptz,
    migrated_from     text
);
-- The daily cap: the account's rows for a trading date that are not released.
CREATE INDEX IF NOT EXISTS execution_orders_daily
    ON public.execution_orders (broker_account_id, trading_date)
    WHERE state <> 'released';
-- Exposure: rows that may still fill, or whose fills are not all known yet.
CREATE INDEX IF NOT EXISTS execution_orders_open
    ON public.execution_orders (broker_account_id, symbol)
    WHERE state IN ('reserved', 'working') OR filled_qty > fills_qty;
-- Exposure: rows with fills recent enough that the position row may not include them.
CREATE INDEX IF NOT EXISTS execution_orders_recent_fills
    ON public.execution_orders (broker_account_id, symbol, last_fill_at)
    WHERE state <> 'released';

-- One row per FILL activity of one of the book's orders, recorded once by the fill sync.
CREATE TABLE IF NOT EXISTS public.execution_fills (
    activity_id          text        PRIMARY KEY,
    client_intent_id     text        NOT NULL REFERENCES public.execution_orders,
    broker_order_id      text        NOT NULL,
    qty                  numeric     NOT NULL CHECK (qty > 0),
    price                numeric,
    -- Alpaca's transaction_time (microseconds kept here; the ledger keeps the exact string).
    transaction_time     timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_fills_by_order
    ON public.execution_fills (client_intent_id, transaction_time);

-- Carry the previous version's reservations over. 'routed' becomes 'working' with no broker
-- status: the fill sync looks each one up at the broker and settles it (docs/RUNBOOK.md).
INSERT INTO public.execution_orders
    (client_intent_id, broker_account_id, symbol, side, qty, trading_date, state,
     broker_order_id, reserved_at, created_at, updated_at, migrated_from)
SELECT client_intent_id, broker_account_id, symbol,
       CASE WHEN signed_qty >= 0 THEN 'buy' ELSE 'sell' END, abs(signed_qty), trading_date,
       CASE state WHEN 'routed' THEN 'working' ELSE state END,
       broker_order_id, updated_at, created_at, updated_at, 'execution_risk_reservations'
FROM public.execution_risk_reservations
WHERE signed_qty <> 0
ON CONFLICT (client_intent_id) DO NOTHING;
