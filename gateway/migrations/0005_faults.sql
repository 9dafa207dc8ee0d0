-- One row that readiness rewrites while audit writes are failing, to find out whether the
-- database takes writes again (a full disk freed, a server back up).
CREATE TABLE health_probe (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
-- Rows still `pending` (reserved, never completed: the instance died mid-send, or the
-- completion could not be written) are found by age and reconciled to `unknown`.
CREATE INDEX audit_records_pending ON audit_records (at) WHERE outcome = 'pending';
