-- What the console's abuse page reads without parsing other columns:
-- `refused_by`: the limit that refused a send (`conversion`, `backoff`, `budget`, ...),
-- NULL when none did; `prefix`: the destination's leading digits as the masked number
-- shows them (calling code and two digits, `+4478`), for sends per prefix;
-- `challenge`: a fingerprint of the challenge id (never the id), so a verification's row
-- finds its start's and conversion can be counted per country and prefix.
ALTER TABLE audit_records ADD COLUMN refused_by TEXT;
ALTER TABLE audit_records ADD COLUMN prefix TEXT;
ALTER TABLE audit_records ADD COLUMN challenge TEXT;
CREATE INDEX audit_records_refused ON audit_records (at, refused_by) WHERE refused_by IS NOT NULL;
CREATE INDEX audit_records_challenge ON audit_records (challenge) WHERE challenge IS NOT NULL;
