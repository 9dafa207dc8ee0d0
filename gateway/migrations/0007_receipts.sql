-- The provider's delivery receipt for a send (`delivered` or `undelivered`), written by
-- its status callback: the send's reference given to the provider is the record's id, so
-- a receipt finds its row even when the instance that sent it died before completing it.
ALTER TABLE audit_records ADD COLUMN receipt TEXT;
