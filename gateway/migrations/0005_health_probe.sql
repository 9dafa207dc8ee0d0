-- One row that readiness rewrites while audit writes are failing, to find out whether the
-- database takes writes again (a full disk freed, a server back up).
CREATE TABLE health_probe (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
