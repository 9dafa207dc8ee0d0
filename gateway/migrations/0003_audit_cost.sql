-- The estimated cost of each send, from the configured price table: millionths of the
-- currency unit, and the currency. NULL without a matching rate.
ALTER TABLE audit_records ADD COLUMN cost_micros BIGINT;
ALTER TABLE audit_records ADD COLUMN currency TEXT;
