-- The usage ledger summed per day, so a month's report reads a few thousand sums instead
-- of every record. `usage_days` lists the days summed: the sums hold the day's records
-- from its start up to `summed_until` (Unix ms; the day's end once it has settled, an
-- hour ago for today). `dirty = 1` when a summed record changed after it was summed (a
-- late delivery receipt, the reconciler, a late verification): such a day is read from
-- `audit_records` until summed again. While a day is being summed, `pending_until` is the
-- watermark being summed to, `generation` names the latest sum begun (only it may write)
-- and `fresh = 0` once a record under the watermark changed meanwhile.
CREATE TABLE usage_days (
    day           BIGINT PRIMARY KEY,
    dirty         BIGINT NOT NULL,
    summed_until  BIGINT NOT NULL,
    pending_until BIGINT NOT NULL,
    generation    BIGINT NOT NULL,
    fresh         BIGINT NOT NULL
);
CREATE TABLE usage_daily (
    day                 BIGINT NOT NULL,
    system              TEXT,
    endpoint            TEXT NOT NULL,
    country             TEXT,
    prefix              TEXT,
    provider            TEXT,
    channel             TEXT,
    outcome             TEXT NOT NULL,
    refused_by          TEXT,
    currency            TEXT,
    providers           TEXT,
    requests            BIGINT NOT NULL,
    sends               BIGINT NOT NULL,
    unknown             BIGINT NOT NULL,
    possible_duplicates BIGINT NOT NULL,
    delivered           BIGINT NOT NULL,
    undelivered         BIGINT NOT NULL,
    segments            BIGINT NOT NULL,
    cost_micros         BIGINT NOT NULL,
    started             BIGINT NOT NULL,
    verified            BIGINT NOT NULL
);
CREATE INDEX usage_daily_day ON usage_daily (day);
