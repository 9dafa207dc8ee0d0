-- One row per request that reached a handler, refused ones included. Never a code, a
-- message text, a secret or a whole number: the number is masked, the country is kept
-- for usage reports. A send's row is written (as `pending`) before the provider is
-- called, so a send is never left unrecorded.
CREATE TABLE audit_records (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    endpoint    TEXT NOT NULL,
    system      TEXT,
    key_id      TEXT,
    purpose     TEXT,
    country     TEXT,
    masked_to   TEXT,
    channel     TEXT,
    providers   TEXT,
    segments    BIGINT,
    status      BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    latency_ms  BIGINT NOT NULL
);
CREATE INDEX audit_records_system_at ON audit_records (system, at);
CREATE INDEX audit_records_at ON audit_records (at);
