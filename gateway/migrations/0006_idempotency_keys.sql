-- The first answer to a request sent with an `Idempotency-Key`, per calling system, so a
-- client retrying a start it got no answer to receives that answer instead of a second
-- code. `status` and `body` stay NULL while the first request runs. Rows older than a day
-- are purged.
CREATE TABLE idempotency_keys (
    system      TEXT NOT NULL,
    request_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    status      BIGINT,
    body        TEXT,
    PRIMARY KEY (system, request_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
