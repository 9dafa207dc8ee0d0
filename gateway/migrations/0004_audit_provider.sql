-- The provider that delivered (NULL when nothing went out): the usage ledger groups and
-- counts sends by it. `providers` keeps every attempt's outcome for the trail.
ALTER TABLE audit_records ADD COLUMN provider TEXT;
CREATE INDEX audit_records_at_provider ON audit_records (at, provider);
