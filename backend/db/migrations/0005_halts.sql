-- Version 5: the operator's halt, kept where every check-and-reserve reads it.
--
-- POST /halt writes this row under the account's advisory lock, the same lock every live check
-- takes before it reserves. Once the row is committed no instance can reserve a new order for
-- the account, whatever its cached copy of the Firestore kill switch says; every reservation
-- committed before it is in the book for the cancel pass to find. POST /resume sets it 'off'.
CREATE TABLE IF NOT EXISTS public.execution_halts (
    broker_account_id text        PRIMARY KEY,
    state             text        NOT NULL CHECK (state IN ('halted', 'reduce_only', 'off')),
    set_at            timestamptz NOT NULL DEFAULT now(),
    set_by            text        NOT NULL,
    reason            text        NOT NULL
);
