//! The usage and cost ledger: the audit trail summed by system, country, provider, day
//! (any combination), for cost reports, `GET /v1/usage` and `phone-otp-gateway usage`.
//! BI tools can run the same query on `audit_records` directly.

use std::fmt::Write as _;

use serde_json::Value;
use sqlx::Row as _;

use super::rollup::{DAY_MS, Split, fetch_over, only_system, within};
use super::{Db, DbError};

/// What a usage report can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dimension {
    /// The calling system (key owner or token client).
    System,
    /// The destination's region (`JP`).
    Country,
    /// The provider that delivered.
    Provider,
    /// The UTC day (`2026-11-28`).
    Day,
    /// `sms` or `voice`.
    Channel,
    /// The endpoint called.
    Endpoint,
    /// The UTC hour (`2026-11-28T13:00Z`); a range of at most 31 days.
    Hour,
    /// What the request ended as: `ok`, or the refusal's code (`rate_limited`, ...).
    Outcome,
    /// The limit that refused a send (`conversion`, `backoff`, `budget`, ...).
    RefusedBy,
    /// The destination's leading digits as its masked form shows them (`+4478`).
    Prefix,
}

/// The longest range a report grouped by hour may cover, in days (its rows stay bounded).
pub const MAX_HOURLY_DAYS: i64 = 31;

impl Dimension {
    /// Every dimension.
    pub const ALL: [Self; 10] = [
        Self::System,
        Self::Country,
        Self::Provider,
        Self::Day,
        Self::Channel,
        Self::Endpoint,
        Self::Hour,
        Self::Outcome,
        Self::RefusedBy,
        Self::Prefix,
    ];

    /// The name in `group_by` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Country => "country",
            Self::Provider => "provider",
            Self::Day => "day",
            Self::Channel => "channel",
            Self::Endpoint => "endpoint",
            Self::Hour => "hour",
            Self::Outcome => "outcome",
            Self::RefusedBy => "refused_by",
            Self::Prefix => "prefix",
        }
    }

    /// The SQL expression: a fixed text per dimension, never the caller's input.
    fn sql(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Country => "country",
            Self::Provider => "provider",
            Self::Day => "(at / 86400000)",
            Self::Channel => "channel",
            Self::Endpoint => "endpoint",
            Self::Hour => "(at / 3600000)",
            Self::Outcome => "outcome",
            Self::RefusedBy => "refused_by",
            Self::Prefix => "prefix",
        }
    }

    /// Reads `system,country,day` (each at most once).
    ///
    /// # Errors
    /// Names the first word that is not a dimension, or a repeated one.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut dimensions = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let dimension = Self::ALL
                .into_iter()
                .find(|d| d.name() == word)
                .ok_or_else(|| format!("unknown group_by {word:?} (system, country, provider, day, channel, endpoint, hour, outcome, refused_by, prefix)"))?;
            if dimensions.contains(&dimension) {
                return Err(format!("group_by {word:?} given twice"));
            }
            dimensions.push(dimension);
        }
        Ok(dimensions)
    }
}

/// The usage report as JSON (`GET /v1/usage`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Usage)]
pub(crate) struct UsageDocument {
    /// The period's start (RFC 3339, inclusive).
    from: String,
    /// Its end (exclusive).
    to: String,
    /// What the rows are grouped by (`system`, `country`, `provider`, `day`, `channel`,
    /// `endpoint`, `hour`, `outcome`, `refused_by`, `prefix`).
    group_by: Vec<String>,
    rows: Vec<UsageRowDocument>,
}

/// One group's totals, with each dimension's value under its name (`"system": "billing"`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = UsageRow)]
pub(crate) struct UsageRowDocument {
    /// Each dimension's value (null: not recorded).
    #[serde(flatten)]
    groups: std::collections::BTreeMap<String, Option<String>>,
    /// Requests recorded, refused ones included.
    requests: i64,
    /// Messages and calls that went out.
    sends: i64,
    /// Sends whose outcome is not known.
    unknown: i64,
    /// Delivered after an earlier provider of the same send timed out.
    possible_duplicates: i64,
    /// Sends the provider's receipt says reached the handset.
    delivered: i64,
    /// Sends the provider's receipt says did not.
    undelivered: i64,
    /// SMS parts billed.
    segments: i64,
    /// Estimated cost, an exact decimal string.
    cost: String,
    /// The same in millionths of the currency.
    cost_micros: i64,
    /// The price table's currency (null: nothing priced).
    currency: Option<String>,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The group's values, in the order of the report's dimensions (`None`: not recorded,
    /// e.g. the country of a request refused before it was read).
    pub key: Vec<Option<String>>,
    /// Requests recorded (refused ones included).
    pub requests: i64,
    /// Messages and calls that went out.
    pub sends: i64,
    /// Sends whose outcome is not known: the provider may have delivered (`unknown`: the
    /// instance stopped mid-send, reconciled later; `cancelled`: the client went away
    /// while it was sent). Not in `sends`, not priced.
    pub unknown: i64,
    /// Sends delivered by a provider after an earlier one of the same send timed out
    /// (that one may have delivered too): possible duplicates, billed twice. Zero unless
    /// `[routing] failover_after_timeout` is on.
    pub possible_duplicates: i64,
    /// Sends the provider's receipt says reached the handset.
    pub delivered: i64,
    /// Sends the provider's receipt says did not (failed, expired, rejected).
    pub undelivered: i64,
    /// SMS parts billed.
    pub segments: i64,
    /// Estimated cost, in millionths of `currency` (unpriced sends count zero).
    pub cost_micros: i64,
    /// The price table's currency, when any send in the group was priced.
    pub currency: Option<String>,
}

/// Totals per group over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    /// What the rows are grouped by.
    pub group_by: Vec<Dimension>,
    /// One row per group, ordered by its key.
    pub rows: Vec<UsageRow>,
}

impl Db {
    /// Sums the audit trail over `[from, to)` (Unix ms) by `group_by`, of one calling
    /// system's requests when `system` is given, else of all.
    ///
    /// # Errors
    /// The database failed.
    pub async fn usage(
        &self,
        from: i64,
        to: i64,
        system: Option<&str>,
        group_by: &[Dimension],
    ) -> Result<UsageReport, DbError> {
        // Whole days summed and clean are read from `usage_daily`, the rest from the
        // records, in one snapshot (see `rollup`). Hours are never summed.
        let Split { rolled, live } = if group_by.contains(&Dimension::Hour) {
            Split::live(from, to)
        } else {
            self.split(from, to).await?
        };
        let mut connection = self.pool().acquire().await?;
        let mut tx = self.snapshot(&mut connection).await?;
        let mut rows = Vec::new();
        for (ranges, source) in [(&live, Source::Records), (&rolled, Source::Days)] {
            let sql = usage_sql(group_by, system.is_some(), ranges, source);
            for row in fetch_over(&mut tx, &sql, ranges, system).await? {
                rows.push(read_row(&row, group_by)?);
            }
        }
        tx.commit().await?;
        Ok(UsageReport {
            from,
            to,
            group_by: group_by.to_vec(),
            rows: settle(rows),
        })
    }
}

/// Where a report's sums come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `audit_records`, over ranges of Unix ms.
    Records,
    /// `usage_daily`, over ranges of days.
    Days,
}

/// The report's query over `ranges` (each `[a, b)`, two parameters in order), then `$n`
/// for the system when `one_system`. Fixed texts only, never the caller's input.
fn usage_sql(
    group_by: &[Dimension],
    one_system: bool,
    ranges: &[(i64, i64)],
    source: Source,
) -> String {
    let mut select = String::new();
    for (index, dimension) in group_by.iter().enumerate() {
        let expression = match (source, dimension) {
            (Source::Days, Dimension::Day) => "day",
            _ => dimension.sql(),
        };
        let _ = write!(select, "{expression} AS g{index}, ");
    }
    let mut groups: Vec<String> = (0..group_by.len()).map(|i| format!("g{i}")).collect();
    groups.push("currency".to_owned());
    let column = if source == Source::Days { "day" } else { "at" };
    let only = only_system(one_system.then_some(""), ranges.len(), "");
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back so both databases answer alike.
    let measures = match source {
        Source::Records => "COUNT(*) AS requests, COUNT(provider) AS sends,
                 CAST(COALESCE(SUM(CASE WHEN outcome IN ('unknown', 'cancelled') THEN 1 ELSE 0 END), 0) AS BIGINT) AS unknown,
                 CAST(COALESCE(SUM(CASE WHEN provider IS NOT NULL AND providers LIKE '%:timeout%' AND outcome <> 'confirmed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS possible_duplicates,
                 CAST(COALESCE(SUM(CASE WHEN receipt = 'delivered' THEN 1 ELSE 0 END), 0) AS BIGINT) AS delivered,
                 CAST(COALESCE(SUM(CASE WHEN receipt = 'undelivered' THEN 1 ELSE 0 END), 0) AS BIGINT) AS undelivered,
                 CAST(COALESCE(SUM(CASE WHEN provider IS NULL THEN 0 ELSE segments END), 0) AS BIGINT) AS segments,
                 CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros",
        Source::Days => "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(sends) AS BIGINT) AS sends,
                 CAST(SUM(unknown) AS BIGINT) AS unknown,
                 CAST(SUM(possible_duplicates) AS BIGINT) AS possible_duplicates,
                 CAST(SUM(delivered) AS BIGINT) AS delivered,
                 CAST(SUM(undelivered) AS BIGINT) AS undelivered,
                 CAST(SUM(segments) AS BIGINT) AS segments,
                 CAST(SUM(cost_micros) AS BIGINT) AS cost_micros",
    };
    let table = if source == Source::Days {
        "usage_daily"
    } else {
        "audit_records"
    };
    format!(
        "SELECT {select}currency, {measures} FROM {table} WHERE {}{only} GROUP BY {groups}",
        within(column, ranges.len()),
        groups = groups.join(", "),
    )
}

fn read_row(row: &sqlx::any::AnyRow, group_by: &[Dimension]) -> Result<UsageRow, DbError> {
    let key = group_by
        .iter()
        .enumerate()
        .map(|(index, dimension)| {
            let column = format!("g{index}");
            Ok(match dimension {
                Dimension::Day => row
                    .try_get::<Option<i64>, _>(column.as_str())?
                    .map(day_text),
                Dimension::Hour => row
                    .try_get::<Option<i64>, _>(column.as_str())?
                    .map(hour_text),
                _ => row.try_get::<Option<String>, _>(column.as_str())?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(UsageRow {
        key,
        requests: row.try_get("requests")?,
        sends: row.try_get("sends")?,
        unknown: row.try_get("unknown")?,
        possible_duplicates: row.try_get("possible_duplicates")?,
        delivered: row.try_get("delivered")?,
        undelivered: row.try_get("undelivered")?,
        segments: row.try_get("segments")?,
        cost_micros: row.try_get("cost_micros")?,
        currency: row.try_get("currency")?,
    })
}

/// Rows as a report gives them: alike ones summed, in one order on both databases (they
/// sort NULL differently), unpriced rows merged into their group's currency.
fn settle(rows: Vec<UsageRow>) -> Vec<UsageRow> {
    let mut rows = sum_alike(rows);
    rows.sort_by(|a, b| (&a.key, &a.currency).cmp(&(&b.key, &b.currency)));
    merge_currencies(rows)
}

/// Rows with the same key and currency (one from the sums, one from the records) as one.
fn sum_alike(rows: Vec<UsageRow>) -> Vec<UsageRow> {
    let mut sums: std::collections::BTreeMap<(Vec<Option<String>>, Option<String>), UsageRow> =
        std::collections::BTreeMap::new();
    for row in rows {
        match sums.entry((row.key.clone(), row.currency.clone())) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(row);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                let sum = entry.get_mut();
                sum.requests += row.requests;
                sum.sends += row.sends;
                sum.unknown += row.unknown;
                sum.possible_duplicates += row.possible_duplicates;
                sum.delivered += row.delivered;
                sum.undelivered += row.undelivered;
                sum.segments += row.segments;
                sum.cost_micros += row.cost_micros;
            }
        }
    }
    sums.into_values().collect()
}

/// Rows differing only in `currency` because some sends were unpriced (NULL) are one
/// group: the priced currency wins.
fn merge_currencies(rows: Vec<UsageRow>) -> Vec<UsageRow> {
    let mut merged: Vec<UsageRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match merged.last_mut() {
            Some(last)
                if last.key == row.key && (last.currency.is_none() || row.currency.is_none()) =>
            {
                last.requests += row.requests;
                last.sends += row.sends;
                last.unknown += row.unknown;
                last.possible_duplicates += row.possible_duplicates;
                last.delivered += row.delivered;
                last.undelivered += row.undelivered;
                last.segments += row.segments;
                last.cost_micros += row.cost_micros;
                if last.currency.is_none() {
                    last.currency = row.currency;
                }
            }
            _ => merged.push(row),
        }
    }
    merged
}

/// `2026-11-28` for a day number since the Unix epoch (civil-from-days, UTC).
fn day_text(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `2026-11-28T13:00Z` for an hour number since the Unix epoch (UTC).
fn hour_text(hours: i64) -> String {
    format!(
        "{}T{:02}:00Z",
        day_text(hours.div_euclid(24)),
        hours.rem_euclid(24)
    )
}

/// Millionths as a decimal (`1234567` → `1.234567`), exact.
pub fn micros_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// A parsed query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    /// Dimensions (default: `system`).
    pub group_by: Vec<Dimension>,
    /// `format=csv`.
    pub csv: bool,
    /// `system=`: one calling system's usage only.
    pub system: Option<String>,
}

impl UsageQuery {
    /// Reads `from`, `to` (RFC 3339 times, or `YYYY-MM-DD` days in UTC; a day as `to`
    /// includes that day), `group_by`, `system` and `format`. Defaults: the last 30 days up to
    /// `now`, grouped by system.
    ///
    /// # Errors
    /// Names the parameter that is wrong.
    pub fn parse(query: &str, now: i64) -> Result<Self, String> {
        let mut parsed = Self {
            from: now - 30 * DAY_MS,
            to: now,
            group_by: vec![Dimension::System],
            csv: false,
            system: None,
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "from" => {
                    parsed.from =
                        instant(&value, false).ok_or("from: not a date or RFC 3339 time")?
                }
                "to" => {
                    parsed.to = instant(&value, true).ok_or("to: not a date or RFC 3339 time")?
                }
                "group_by" => parsed.group_by = Dimension::parse_list(&value)?,
                "system" => parsed.system = Some(value.into_owned()),
                "format" => {
                    parsed.csv = match value.as_ref() {
                        "csv" => true,
                        "json" => false,
                        _ => return Err("format: csv or json".to_owned()),
                    }
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        if parsed.to <= parsed.from {
            return Err("to must be after from".to_owned());
        }
        if parsed.group_by.contains(&Dimension::Hour)
            && parsed.to - parsed.from > MAX_HOURLY_DAYS * DAY_MS
        {
            return Err(format!(
                "group_by hour covers at most {MAX_HOURLY_DAYS} days: narrow from and to"
            ));
        }
        Ok(parsed)
    }
}

/// Unix ms of `2026-11-28T10:00:00Z`, or of the start of day `2026-11-28` (UTC); for an
/// end, a day means the start of the next.
pub(crate) fn instant(text: &str, end: bool) -> Option<i64> {
    if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok();
    }
    let mut parts = text.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let start = date.midnight().assume_utc().unix_timestamp() * 1000;
    Some(if end { start + DAY_MS } else { start })
}

impl UsageReport {
    /// The same totals grouped by `group_by` only, each a dimension of this report (others
    /// are left out): one query by hour, system and outcome answers three views.
    pub fn regroup(&self, group_by: &[Dimension]) -> Self {
        let group_by: Vec<Dimension> = group_by
            .iter()
            .copied()
            .filter(|d| self.group_by.contains(d))
            .collect();
        let columns: Vec<usize> = group_by
            .iter()
            .filter_map(|d| self.group_by.iter().position(|own| own == d))
            .collect();
        let rows = self
            .rows
            .iter()
            .map(|row| UsageRow {
                key: columns.iter().map(|&i| row.key[i].clone()).collect(),
                ..row.clone()
            })
            .collect();
        Self {
            from: self.from,
            to: self.to,
            group_by,
            rows: settle(rows),
        }
    }

    /// The report as JSON: `from`, `to` (RFC 3339), `group_by`, and `rows` with each
    /// dimension's value, `requests`, `sends`, `unknown`, `possible_duplicates`, `delivered`,
    /// `undelivered`, `segments`, `cost` (a decimal string, exact),
    /// `cost_micros` and `currency`.
    pub fn to_json(&self) -> Value {
        let rows = self
            .rows
            .iter()
            .map(|row| UsageRowDocument {
                groups: self
                    .group_by
                    .iter()
                    .zip(&row.key)
                    .map(|(dimension, value)| (dimension.name().to_owned(), value.clone()))
                    .collect(),
                requests: row.requests,
                sends: row.sends,
                unknown: row.unknown,
                possible_duplicates: row.possible_duplicates,
                delivered: row.delivered,
                undelivered: row.undelivered,
                segments: row.segments,
                cost: micros_text(row.cost_micros),
                cost_micros: row.cost_micros,
                currency: row.currency.clone(),
            })
            .collect();
        serde_json::to_value(UsageDocument {
            from: rfc3339_millis(self.from),
            to: rfc3339_millis(self.to),
            group_by: self.group_by.iter().map(|d| d.name().to_owned()).collect(),
            rows,
        })
        .unwrap_or_default()
    }

    /// RFC 4180 CSV with a header row: the dimensions, then `requests, sends, unknown,
    /// possible_duplicates, delivered, undelivered, segments, cost, currency`. Cells a spreadsheet would run as a formula are quoted with a
    /// leading `'`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut header: Vec<&str> = self.group_by.iter().map(|d| d.name()).collect();
        header.extend([
            "requests",
            "sends",
            "unknown",
            "possible_duplicates",
            "delivered",
            "undelivered",
            "segments",
            "cost",
            "currency",
        ]);
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let mut cells: Vec<String> = row
                .key
                .iter()
                .map(|value| csv_cell(value.as_deref().unwrap_or("")))
                .collect();
            cells.extend([
                row.requests.to_string(),
                row.sends.to_string(),
                row.unknown.to_string(),
                row.possible_duplicates.to_string(),
                row.delivered.to_string(),
                row.undelivered.to_string(),
                row.segments.to_string(),
                micros_text(row.cost_micros),
                csv_cell(row.currency.as_deref().unwrap_or("")),
            ]);
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn rfc3339_millis(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(crate) fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn days_and_money_print_exactly() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(19_020), "2022-01-28");
        assert_eq!(day_text(20_420), "2025-11-28");
        assert_eq!(day_text(-1), "1969-12-31");
        assert_eq!(day_text(11_016), "2000-02-29");
        assert_eq!(micros_text(1_234_567), "1.234567");
        assert_eq!(micros_text(50_000), "0.050000");
        assert_eq!(micros_text(-5), "-0.000005");
    }

    #[test]
    fn group_by_is_checked() {
        assert_eq!(
            Dimension::parse_list("system, day"),
            Ok(vec![Dimension::System, Dimension::Day])
        );
        assert!(Dimension::parse_list("system;drop").is_err());
        assert!(Dimension::parse_list("day,day").is_err());
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let report = UsageReport {
            from: 0,
            to: 1,
            group_by: vec![Dimension::System],
            rows: vec![UsageRow {
                key: vec![Some("=HYPERLINK(\"x\",\"y\")".to_owned())],
                requests: 2,
                sends: 1,
                unknown: 0,
                possible_duplicates: 0,
                delivered: 1,
                undelivered: 0,
                segments: 1,
                cost_micros: 50_000,
                currency: Some("USD".to_owned()),
            }],
        };
        assert_eq!(
            report.to_csv(),
            "system,requests,sends,unknown,possible_duplicates,delivered,undelivered,segments,cost,currency\r\n\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\",2,1,0,0,1,0,1,0.050000,USD\r\n"
        );
    }
    #[test]
    fn reads_days_times_and_defaults() {
        let now = 1_764_288_000_000; // 2025-11-28T00:00:00Z
        let q = UsageQuery::parse("", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((q.from, q.to), (now - 30 * DAY_MS, now));
        assert_eq!(q.group_by, vec![Dimension::System]);
        let q = UsageQuery::parse(
            "from=2025-11-01&to=2025-11-27&group_by=system%2Cday&format=csv",
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.from, 1_761_955_200_000);
        assert_eq!(q.to, now, "a day as `to` includes it");
        assert_eq!(q.group_by, vec![Dimension::System, Dimension::Day]);
        assert!(q.csv);
        let q =
            UsageQuery::parse("from=2025-11-27T12:00:00Z", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.from, now - DAY_MS / 2);
        for bad in [
            "from=yesterday",
            "to=2025-10-01",
            "group_by=cost",
            "format=xml",
            "limit=5",
        ] {
            assert!(UsageQuery::parse(bad, now).is_err(), "{bad}");
        }
    }
}
