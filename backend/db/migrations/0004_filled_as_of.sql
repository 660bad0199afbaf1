-- Version 4: when the broker's cumulative filled quantity was true.
--
-- The broker time (updated_at) of the order snapshot that reported filled_qty. Every fill in
-- filled_qty happened at or before it, so fills whose own times the fill sync has not seen yet
-- (orders carried over from version 1, or a sync that is behind) can still be placed before or
-- after the position row's updated_at instead of counting as working for ever.
ALTER TABLE public.execution_orders ADD COLUMN IF NOT EXISTS filled_as_of timestamptz;
