-- Postgres objects the execution gateway reads. Idempotent: safe to apply repeatedly.
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
