-- Version 3: the repeated-execution latch (EXEC_REPEAT_LIMIT).
--
-- One row per (account, strategy) that tripped the latch. While released_at is NULL every
-- intent of that strategy is refused (strategy_halted), on every instance; only an operator
-- lifts it (POST /strategies/<strategy_id>/enable), and who, when and why is kept here and in
-- Firestore (execution_operator_actions). A later trip latches the same row again.
CREATE TABLE IF NOT EXISTS public.execution_strategy_latches (
    broker_account_id text        NOT NULL,
    strategy_id       text        NOT NULL,
    latched_at        timestamptz NOT NULL DEFAULT now(),
    -- What tripped it: the intent, symbol, side and the count in the window.
    latch_detail      text        NOT NULL,
    released_at       timestamptz,
    released_by       text,
    release_reason    text,
    PRIMARY KEY (broker_account_id, strategy_id)
);

-- The order-rate and repeated-execution windows read the book by reservation time.
CREATE INDEX IF NOT EXISTS execution_orders_recent
    ON public.execution_orders (broker_account_id, reserved_at);
