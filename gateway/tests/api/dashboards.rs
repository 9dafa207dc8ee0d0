//! What Prometheus users get: budget use and breaker state on `/metrics`, and the shipped
//! dashboard and alert rules (`gateway/dashboards/`) naming only series and labels a
//! live gateway exports. (promtool runs the rules' own unit tests: scripts/check-dashboards.sh.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use phone_otp::{
    Budget, BudgetCap, BudgetScope, Budgets, Limits, Micros, PriceTable, ProviderErrorKind, Rate,
};
use serde_json::json;

use crate::support::{API_TOKEN, NTT_CALLBACK_TOKEN, Setup, TestGateway, TestResult};

const MESSAGES: &str = "/v1/messages";

fn budgets() -> Limits {
    Limits {
        budgets: Some(Budgets {
            prices: PriceTable::new("USD").with(Rate {
                provider: "*".into(),
                country: "*".into(),
                sms: Micros::from_decimal(0.05),
                voice: None,
            }),
            caps: vec![
                Budget {
                    scope: BudgetScope::EachTenant,
                    per_day: BudgetCap::Messages(10),
                },
                Budget {
                    scope: BudgetScope::Country("JP".into()),
                    per_day: BudgetCap::Money(Micros(1_000_000)),
                },
                Budget {
                    scope: BudgetScope::Total,
                    per_day: BudgetCap::Messages(1_000),
                },
            ],
        }),
        ..Limits::danger_none()
    }
}

async fn send(gw: &TestGateway, n: u32) {
    let to = format!("+8190{:08}", 12_340_000 + n);
    let message = json!({"to": to, "code": "482913", "channel": "sms"});
    let response = gw.post(MESSAGES, API_TOKEN, &message).await;
    assert_eq!(response.status(), 200, "send {n}");
}

async fn metrics_text(gw: &TestGateway) -> Result<String, reqwest::Error> {
    gw.client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await?
        .text()
        .await
}

/// The value of the sample written exactly as `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn budget_use_and_breaker_state_are_on_metrics() -> TestResult {
    let gw = TestGateway::with(Setup {
        limits: budgets(),
        ..Setup::default()
    })
    .await;
    for n in 0..3 {
        send(&gw, n).await;
    }
    let text = metrics_text(&gw).await?;
    let used = |scope: &str, name: &str, unit: &str| {
        format!("phone_otp_budget_used{{scope=\"{scope}\",name=\"{name}\",unit=\"{unit}\"}}")
    };
    let cap = |scope: &str, name: &str, unit: &str| {
        format!("phone_otp_budget_cap{{scope=\"{scope}\",name=\"{name}\",unit=\"{unit}\"}}")
    };
    // The static API token's tenant is `internal`; Okta's and Auth0's spent nothing.
    assert_eq!(
        sample(&text, &used("each_tenant", "internal", "messages")),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &cap("each_tenant", "internal", "messages")),
        Some(10.0)
    );
    assert_eq!(
        sample(&text, &used("each_tenant", "okta", "messages")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &used("country", "JP", "micros")),
        Some(150_000.0)
    );
    assert_eq!(
        sample(&text, &cap("country", "JP", "micros")),
        Some(1_000_000.0)
    );
    assert_eq!(sample(&text, &used("total", "", "messages")), Some(3.0));
    let state = |provider: &str, state: &str| {
        format!("phone_otp_provider_breaker_state{{provider=\"{provider}\",state=\"{state}\"}}")
    };
    assert_eq!(sample(&text, &state("primary", "closed")), Some(1.0));
    assert_eq!(sample(&text, &state("primary", "open")), Some(0.0));

    // Five failures in a row open the primary's breaker; the secondary delivers them.
    gw.primary.fail_always(ProviderErrorKind::Unavailable);
    for n in 3..8 {
        send(&gw, n).await;
    }
    let text = metrics_text(&gw).await?;
    assert_eq!(sample(&text, &state("primary", "open")), Some(1.0));
    assert_eq!(sample(&text, &state("primary", "closed")), Some(0.0));
    assert_eq!(sample(&text, &state("secondary", "closed")), Some(1.0));
    // Budget use is read from the store at most every 10 s: a scrape flood costs one read.
    assert_eq!(
        sample(&text, &used("total", "", "messages")),
        Some(3.0),
        "the reading of a moment ago"
    );
    gw.clock.advance(Duration::from_secs(10));
    let text = metrics_text(&gw).await?;
    assert_eq!(sample(&text, &used("total", "", "messages")), Some(8.0));
    assert_eq!(
        sample(&text, &used("each_tenant", "internal", "messages")),
        Some(8.0)
    );
    Ok(())
}

/// The exported families and, for each, the label names its samples carry.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            families.entry(name.to_owned()).or_default();
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    families.entry(format!("{name}{suffix}")).or_default();
                }
            }
        } else if !line.starts_with('#') {
            let (name, labels) = selector(line, 0);
            if let Some(labels) = labels {
                families.entry(name).or_default().extend(labels);
            }
        }
    }
    families
}

/// The metric name starting at `at` in `text`, and the label names of its `{...}`
/// selector if one follows.
fn selector(text: &str, at: usize) -> (String, Option<Vec<String>>) {
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let name = rest[..end].to_owned();
    let labels = rest[end..].strip_prefix('{').map(|inside| {
        let inside = &inside[..inside.find('}').unwrap_or(inside.len())];
        split_labels(inside)
            .into_iter()
            .filter_map(|pair| {
                let label: String = pair
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!label.is_empty()).then_some(label)
            })
            .collect()
    });
    (name, labels)
}

/// `a="x,y",b!="z"` split at the commas outside quotes.
fn split_labels(inside: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in inside.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inside[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inside[start..]);
    parts
}

#[tokio::test]
async fn dashboards_and_alerts_name_only_exported_series() -> TestResult {
    let db = crate::db::sqlite().await.expect("SQLite");
    let gw = TestGateway::with(Setup {
        keys: Some(db),
        limits: budgets(),
        ..Setup::default()
    })
    .await;
    // Traffic that gives every family its samples: sends, a failover, receipts, a
    // refused receipt and a failed authentication.
    send(&gw, 0).await;
    gw.primary.fail_next(ProviderErrorKind::Unavailable);
    send(&gw, 1).await;
    let reports = json!({"results": [
        {"messageId": "m1", "to": "819012345678", "status": {"groupName": "DELIVERED"}},
        {"messageId": "m2", "to": "819012345679", "status": {"groupName": "REJECTED"}}
    ]});
    let receipts = format!("{}/callbacks/ntt-cpaas/delivery", gw.url);
    for token in [NTT_CALLBACK_TOKEN, "wrong"] {
        gw.client
            .post(&receipts)
            .header("x-callback-token", token)
            .json(&reports)
            .send()
            .await?;
    }
    gw.post(MESSAGES, "not-a-token", &json!({})).await;
    let families = exported(&metrics_text(&gw).await?);

    // Labels Prometheus adds when it scrapes, and the histogram's own.
    let scrape_labels = ["instance", "job", "le"];
    // Families whose samples appear only on a fault (here: a failed database write).
    let only_on_faults = ["phone_otp_gateway_database_write_failures_total"];
    let every_label: BTreeSet<&str> = families
        .values()
        .flatten()
        .map(String::as_str)
        .chain(scrape_labels)
        .chain(["fault"])
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let (mut named, mut problems) = (BTreeSet::new(), Vec::new());
    for file in ["phone-otp.json", "alerts.yml", "alerts.test.yml"] {
        let text = std::fs::read_to_string(dir.join(file))?;
        for (at, _) in text.match_indices("phone_otp_") {
            let (name, labels) = selector(&text, at);
            named.insert(name.clone());
            let Some(exported_labels) = families.get(&name) else {
                problems.push(format!("{file}: {name} is not exported"));
                continue;
            };
            if exported_labels.is_empty() && !only_on_faults.contains(&name.as_str()) {
                // Every other family has samples after the traffic above.
                let unlabelled = [
                    "phone_otp_gateway_auth_failures_total",
                    "phone_otp_gateway_auth_throttled_total",
                    "phone_otp_gateway_database_up",
                ];
                if !unlabelled.contains(&name.as_str()) {
                    problems.push(format!("{file}: {name} has no samples to check"));
                }
            }
            for label in labels.unwrap_or_default() {
                let known = exported_labels.contains(&label)
                    || scrape_labels.contains(&label.as_str())
                    || (only_on_faults.contains(&name.as_str()) && label == "fault");
                if !known {
                    problems.push(format!("{file}: {name} has no label {label}"));
                }
            }
        }
        // Aggregations: `by (a, b)` names labels some exported series carries.
        for (at, _) in text.match_indices("by (") {
            let inside = &text[at + 4..];
            let inside = &inside[..inside.find(')').unwrap_or(0)];
            for label in inside.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                if !every_label.contains(label) {
                    problems.push(format!("{file}: no exported series has the label {label}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        named.len() >= 15,
        "the dashboards name {} series: {named:?}",
        named.len()
    );
    Ok(())
}
