-- API keys and personal access tokens: the public id and the SHA-256 of the secret, never
-- the secret. Times are Unix milliseconds (BIGINT), the same on SQLite and PostgreSQL.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    owner         TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    allowed_cidrs TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner);
