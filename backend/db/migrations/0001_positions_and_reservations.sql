-- Version 1: the tables of the first release (positions, read; risk reservations, written).
--
-- public.broker_positions is owned by the position-sync job, not by this service:
-- the gateway only reads it for the max-position pre-trade check. One row per
-- (account, symbol); no row means the position is flat.
CREATE TABLE IF NOT EXISTS public.broker_positions (
    broker_account_id text        NOT NULL,
    symbol            text        NOT NULL,
    -- Signed quantity: positive long, negative short. numeric keeps it exact.
    qty               numeric     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broker_account_id, symbol)
);

-- The gateway's own book of orders it has let through its risk checks. Owned by this service.
--
-- One row per client_intent_id. A row is written, under advisory locks on (account, trading
-- day) and (account, symbol), in the same transaction that checked the limits, so concurrent
-- checks on any number of instances can never both take the last daily slot or the last
-- shares of headroom. States: 'reserved' (checked; the order may or may not have reached the
-- broker), 'routed' (the broker has it), 'released' (given back: refused by the broker, or the
-- attempt ended before the broker could have seen it). Only 'released' rows stop counting.
CREATE TABLE IF NOT EXISTS public.execution_risk_reservations (
    client_intent_id  text        PRIMARY KEY,
    broker_account_id text        NOT NULL,
    symbol            text        NOT NULL,
    trading_date      date        NOT NULL,
    -- Signed quantity the order adds to the position if fully filled.
    signed_qty        numeric     NOT NULL,
    state             text        NOT NULL CHECK (state IN ('reserved', 'routed', 'released')),
    broker_order_id   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_risk_reservations_daily
    ON public.execution_risk_reservations (broker_account_id, trading_date)
    WHERE state <> 'released';
CREATE INDEX IF NOT EXISTS execution_risk_reservations_exposure
    ON public.execution_risk_reservations (broker_account_id, symbol, created_at)
    WHERE state <> 'released';
