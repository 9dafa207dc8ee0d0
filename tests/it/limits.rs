use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{
    Admission, Backoff, Budget, BudgetCap, BudgetScope, Budgets, ConversionGuard, GuardLevel,
    Limit, LimitKey, LimitKind, Limits, MemoryStore, Micros, OtpStore, PriceTable, Purpose, Quota,
    Rate, SafeList, StartError, StartRequest,
};

use crate::support::{Harness, TestResult, jp_mobile, jp_mobile_n};

fn n(count: u32) -> NonZeroU32 {
    NonZeroU32::new(count).unwrap()
}

async fn refusal(h: &Harness, request: StartRequest) -> (LimitKind, Duration) {
    match h.otp.start(request).await {
        Err(StartError::Limited { limit, retry_after }) => (limit, retry_after),
        other => panic!("expected a limit refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn destination_allows_five_per_ten_minutes() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            resend_cooldown: None,
            ..Limits::default()
        })
    });
    for _ in 0..5 {
        h.start(&jp_mobile()).await;
    }
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn);
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::Destination, Duration::from_secs(120))
    );
    // Nothing was generated or sent for the refused request.
    assert_eq!(h.stub.attempts(), 5);
    h.clock.advance(Duration::from_secs(120));
    h.start(&jp_mobile()).await;
    Ok(())
}

#[tokio::test]
async fn cooldown_spaces_sends_to_one_number() -> TestResult {
    let h = Harness::new();
    h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(5));
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn);
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::ResendCooldown, Duration::from_secs(25))
    );
    Ok(())
}

#[tokio::test]
async fn subject_allows_ten_per_hour_across_numbers() -> TestResult {
    let h = Harness::new();
    for i in 0..10 {
        h.start_request(StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).subject("user-1"))
            .await;
    }
    let request = StartRequest::sms(jp_mobile_n(99), Purpose::SignIn).subject("user-1");
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::Subject, Duration::from_secs(360))
    );
    // Another user is unaffected.
    h.start_request(StartRequest::sms(jp_mobile_n(98), Purpose::SignIn).subject("user-2"))
        .await;
    Ok(())
}

#[tokio::test]
async fn client_ip_tenant_country_and_global_limits() -> TestResult {
    let ip: IpAddr = "203.0.113.9".parse()?;
    let cases: [(Limits, LimitKind); 4] = [
        (
            Limits {
                per_client_ip: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::ClientIp,
        ),
        (
            Limits {
                per_tenant: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Tenant,
        ),
        (
            Limits {
                per_country: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Country,
        ),
        (
            Limits {
                global: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Global,
        ),
    ];
    for (limits, kind) in cases {
        let h = Harness::with(|b| b.limits(limits));
        let request = |i| {
            StartRequest::sms(jp_mobile_n(i), Purpose::SignIn)
                .client_ip(ip)
                .tenant("acme")
        };
        h.start_request(request(1)).await;
        h.start_request(request(2)).await;
        assert_eq!(
            refusal(&h, request(3)).await,
            (kind, Duration::from_secs(1800)),
            "{kind}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64_block() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: Some(Quota::per_hour(n(1))),
            ..Limits::danger_none()
        })
    });
    let first: IpAddr = "2001:db8:1:2::1".parse()?;
    let same_block: IpAddr = "2001:db8:1:2:ffff::9".parse()?;
    h.start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).client_ip(first))
        .await;
    let request = StartRequest::sms(jp_mobile_n(2), Purpose::SignIn).client_ip(same_block);
    assert_eq!(refusal(&h, request).await.0, LimitKind::ClientIp);
    Ok(())
}

#[tokio::test]
async fn limits_can_be_switched_off() -> TestResult {
    let h = Harness::unlimited();
    for _ in 0..50 {
        h.start(&jp_mobile()).await;
    }
    assert_eq!(h.stub.attempts(), 50);
    Ok(())
}

#[tokio::test]
async fn throttle_refusals_do_not_count() -> TestResult {
    let store = MemoryStore::new();
    let clock = phone_otp::ManualClock::new();
    use phone_otp::Clock;
    let limits = [Limit::new(LimitKey::global(), Quota::per_minute(n(1)))];
    assert_eq!(
        store.throttle(&limits, clock.now()).await?,
        Admission::Allowed
    );
    for _ in 0..10 {
        assert_eq!(
            store.throttle(&limits, clock.now()).await?,
            Admission::Limited {
                limit: LimitKind::Global,
                retry_after: Duration::from_secs(60),
                index: 0,
            }
        );
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        store.throttle(&limits, clock.now()).await?,
        Admission::Allowed
    );
    Ok(())
}

#[test]
fn limited_error_names_the_limit_and_wait() {
    let error = StartError::Limited {
        limit: LimitKind::Destination,
        retry_after: Duration::from_millis(119_200),
    };
    assert_eq!(
        error.to_string(),
        "destination rate limit reached, retry after 120s"
    );
}

/// Subjects and tenants become stored fields and rate-limit keys: one over
/// `MAX_LABEL_BYTES` is refused before any quota is spent or any code is sent.
#[tokio::test]
async fn oversized_subject_or_tenant_is_refused_before_anything_is_spent() -> TestResult {
    // One send per destination: a refusal that spent it would make the last start fail.
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_destination: Some(Quota::per_period(n(1), Duration::from_secs(600))),
            resend_cooldown: None,
            ..Limits::default()
        })
    });
    let long = "u".repeat(phone_otp::MAX_LABEL_BYTES + 1);
    let cases = [
        (
            StartRequest::sms(jp_mobile(), Purpose::SignIn).subject(long.clone()),
            "invalid start request: subject is longer than 256 bytes",
        ),
        (
            StartRequest::sms(jp_mobile(), Purpose::SignIn).tenant(long.clone()),
            "invalid start request: tenant is longer than 256 bytes",
        ),
    ];
    for (request, message) in cases {
        let error = h.otp.start(request).await.expect_err("refused");
        assert!(matches!(error, StartError::InvalidRequest(_)), "{error:?}");
        assert_eq!(error.to_string(), message);
    }
    assert_eq!(h.stub.attempts(), 0, "nothing was sent");

    // At the limit is fine, and the destination's one send was not spent by the refusals.
    let at_limit = "u".repeat(phone_otp::MAX_LABEL_BYTES);
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn)
        .subject(at_limit.clone())
        .tenant(at_limit);
    h.otp.start(request).await?;
    Ok(())
}

/// An IP that is over its limit must not spend the victim number's cooldown or budget:
/// all limits are decided before any is charged (issue: 58 of 58 victim starts refused).
#[tokio::test]
async fn a_refused_abuser_spends_no_one_elses_budget() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: Some(Quota::per_hour(n(1))),
            ..Limits::default()
        })
    });
    let attacker: IpAddr = "198.51.100.66".parse()?;
    let victim = jp_mobile_n(4040);
    h.start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).client_ip(attacker))
        .await;
    for _ in 0..58 {
        let request = StartRequest::sms(victim.clone(), Purpose::SignIn).client_ip(attacker);
        assert_eq!(refusal(&h, request).await.0, LimitKind::ClientIp);
        h.clock.advance(Duration::from_secs(30));
    }
    assert_eq!(h.stub.attempts(), 1, "nothing went to the victim");
    // The victim gets a code at once, and all five of the number's sends are left: no
    // cooldown or per-number send was spent by the refused requests.
    for last in 10..15 {
        let victim_ip = IpAddr::from([192, 0, 2, last]);
        h.start_request(StartRequest::sms(victim.clone(), Purpose::SignIn).client_ip(victim_ip))
            .await;
        h.clock.advance(Duration::from_secs(30));
    }
    Ok(())
}

/// A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`: each must count as its
/// own IPv4 address, not share one IPv6 /64 with every other IPv4 client.
#[tokio::test]
async fn ipv4_mapped_clients_are_counted_per_ipv4_address() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: Some(Quota::per_hour(n(1))),
            ..Limits::danger_none()
        })
    });
    let mapped = |last: u8| -> IpAddr {
        std::net::Ipv4Addr::new(203, 0, 113, last)
            .to_ipv6_mapped()
            .into()
    };
    h.start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).client_ip(mapped(9)))
        .await;
    // Another IPv4 client behind the same listener is not affected...
    h.start_request(StartRequest::sms(jp_mobile_n(2), Purpose::SignIn).client_ip(mapped(10)))
        .await;
    // ...and the same client, mapped or not, is one client.
    let plain: IpAddr = "203.0.113.9".parse()?;
    let request = StartRequest::sms(jp_mobile_n(3), Purpose::SignIn).client_ip(plain);
    assert_eq!(refusal(&h, request).await.0, LimitKind::ClientIp);
    Ok(())
}

#[tokio::test]
async fn ipv6_clients_are_also_counted_per_48_block() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: Some(Quota::per_hour(n(1))),
            per_client_network: Some(Quota::per_hour(n(2))),
            ..Limits::danger_none()
        })
    });
    // Three /64s of one /48: each /64 is fresh, the /48 allows two.
    for (i, ip) in ["2001:db8:7:1::1", "2001:db8:7:2::1"].iter().enumerate() {
        let request =
            StartRequest::sms(jp_mobile_n(i as u32), Purpose::SignIn).client_ip(ip.parse()?);
        h.start_request(request).await;
    }
    let third =
        StartRequest::sms(jp_mobile_n(9), Purpose::SignIn).client_ip("2001:db8:7:3::1".parse()?);
    assert_eq!(
        refusal(&h, third).await,
        (LimitKind::ClientNetwork, Duration::from_secs(1800))
    );
    // Another /48 is unaffected.
    h.start_request(
        StartRequest::sms(jp_mobile_n(10), Purpose::SignIn).client_ip("2001:db8:8:1::1".parse()?),
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn subjects_are_counted_per_tenant() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_subject: Some(Quota::per_hour(n(1))),
            ..Limits::danger_none()
        })
    });
    let request = |tenant: &str, i| {
        StartRequest::sms(jp_mobile_n(i), Purpose::SignIn)
            .subject("user-1")
            .tenant(tenant)
    };
    h.start_request(request("acme", 1)).await;
    // The other tenant's user-1 is another user.
    h.start_request(request("globex", 2)).await;
    assert_eq!(refusal(&h, request("acme", 3)).await.0, LimitKind::Subject);
    Ok(())
}

/// Refused requests write no limit state, so a flood from one IP leaves the table as the
/// one allowed send left it (the issue saw 600,001 keys after 200,000 requests).
#[tokio::test]
async fn a_refused_flood_adds_no_limit_keys() -> TestResult {
    let store = MemoryStore::new();
    let h = Harness::with(|b| b.store(store.clone()));
    let ip: IpAddr = "198.51.100.7".parse()?;
    h.start_request(StartRequest::sms(jp_mobile_n(0), Purpose::SignIn).client_ip(ip))
        .await;
    let after_one = store.limit_keys();
    for i in 1..20_000 {
        let request = StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).client_ip(ip);
        if i > 29 {
            assert_eq!(refusal(&h, request).await.0, LimitKind::ClientIp);
        } else {
            h.start_request(request).await;
        }
    }
    // 29 more allowed sends to new numbers add their cooldown and destination keys; the
    // 19,970 refused ones add nothing.
    assert_eq!(store.limit_keys(), after_one + 29 * 2);
    assert_eq!(h.stub.attempts(), 30);
    Ok(())
}

/// The limit table is bounded: past its capacity a send that needs a new key fails with a
/// store error (nothing sent), and works again once old state has expired.
#[tokio::test]
async fn the_limit_table_is_bounded_and_recovers_after_expiry() -> TestResult {
    let capacity = 128;
    let store = MemoryStore::new().limit_key_capacity(capacity);
    let h = Harness::with(|b| {
        b.store(store.clone()).limits(Limits {
            per_client_ip: Some(Quota::per_minute(n(1))),
            ..Limits::danger_none()
        })
    });
    let ip = |i: u32| IpAddr::from((0xC633_6400u32 + i).to_be_bytes());
    let mut sent = 0;
    let mut full_at = None;
    for i in 0..(capacity as u32 * 4) {
        match h
            .otp
            .start(StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).client_ip(ip(i)))
            .await
        {
            Ok(_) => sent += 1,
            Err(StartError::Store(phone_otp::StoreError::Full(_))) => {
                full_at = Some(i);
                break;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(full_at.is_some(), "the table never filled");
    assert!(
        store.limit_keys() <= capacity,
        "{} keys",
        store.limit_keys()
    );
    assert_eq!(
        h.stub.attempts(),
        sent,
        "nothing was sent for the refused start"
    );
    // A minute later every IP's state has expired and sends work again.
    h.clock.advance(Duration::from_secs(60));
    h.start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).client_ip(ip(99_999)))
        .await;
    Ok(())
}

#[tokio::test]
async fn backoff_grows_per_user_with_bounded_jitter_and_sends_nothing_when_refused() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            backoff: Some(Backoff::default()),
            ..Limits::danger_none()
        })
    });
    // 200 users, each on their own number, each sending three codes at once: the fourth
    // waits one minute plus up to 20% jitter, drawn per send.
    let mut waits = Vec::new();
    for user in 0..200u32 {
        let to = jp_mobile_n(user);
        let request = || StartRequest::sms(to.clone(), Purpose::SignIn).subject(format!("u{user}"));
        for _ in 0..3 {
            h.start_request(request()).await;
        }
        let (limit, wait) = refusal(&h, request()).await;
        assert_eq!(limit, LimitKind::Backoff);
        waits.push(wait);
    }
    assert_eq!(h.stub.attempts(), 600, "refused starts sent nothing");
    let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
    assert!(*min >= Duration::from_secs(60), "{min:?}");
    assert!(*max <= Duration::from_secs(72), "{max:?}");
    // Jitter spreads the retries (200 draws all in one quarter of the range: p < 1e-24).
    assert!(*max - *min > Duration::from_secs(6), "{min:?}..{max:?}");

    // The same user on a fresh number is still in backoff: it follows the user.
    let moved = StartRequest::sms(jp_mobile_n(999), Purpose::SignIn).subject("u0");
    assert_eq!(refusal(&h, moved).await.0, LimitKind::Backoff);
    Ok(())
}

/// JP SMS at 0.062 by the dearest provider (0.05 elsewhere); no rate outside Japan.
fn jp_prices() -> PriceTable {
    let rate = |provider: &str, sms: f64| Rate {
        provider: provider.into(),
        country: "JP".into(),
        sms: Micros::from_decimal(sms),
        voice: None,
    };
    PriceTable::new("USD")
        .with(rate("twilio", 0.062))
        .with(rate("*", 0.05))
}

fn budgets(caps: Vec<Budget>) -> Limits {
    Limits {
        budgets: Some(Budgets {
            prices: jp_prices(),
            caps,
        }),
        ..Limits::danger_none()
    }
}

#[tokio::test]
async fn money_and_message_budgets_refuse_before_the_send_and_reset_daily() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(budgets(vec![
            Budget {
                scope: BudgetScope::EachTenant,
                per_day: BudgetCap::Messages(2),
            },
            Budget {
                scope: BudgetScope::Country("JP".into()),
                // Three sends at the dearest rate (0.186) fit; a fourth (0.248) does not.
                per_day: BudgetCap::Money(Micros(200_000)),
            },
        ]))
    });
    let send =
        |tenant: &str, n: u32| StartRequest::sms(jp_mobile_n(n), Purpose::SignIn).tenant(tenant);
    h.start_request(send("billing", 1)).await;
    h.start_request(send("billing", 2)).await;
    let (limit, _) = refusal(&h, send("billing", 3)).await;
    assert_eq!(limit, LimitKind::Budget, "billing's two messages are spent");
    h.start_request(send("crm", 4)).await;
    // Japan's money: 3 x 0.062 spent; the fourth would pass 0.20.
    let (limit, retry_after) = refusal(&h, send("hr", 5)).await;
    assert_eq!(limit, LimitKind::Budget);
    assert_eq!(h.stub.attempts(), 3, "refused starts sent nothing");
    // The budget resets with the UTC day: the wait is exactly until then.
    h.clock.advance(retry_after);
    h.start_request(send("hr", 6)).await;
    Ok(())
}

/// A cap for every country not listed: each such country has its own count (one
/// pumped market cannot spend another's), a listed country is counted by its own cap
/// only, and a refused start sends nothing.
#[tokio::test]
async fn other_countries_share_a_default_cap_each_and_listed_ones_keep_theirs() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(budgets(vec![
            Budget {
                scope: BudgetScope::Country("JP".into()),
                per_day: BudgetCap::Messages(4),
            },
            Budget {
                scope: BudgetScope::OtherCountries,
                per_day: BudgetCap::Messages(2),
            },
        ]))
    });
    let number = |text: String| phone_otp::PhoneNumber::parse(&text).expect("valid number");
    let gb = |n: u32| number(format!("+4474001234{n:02}"));
    let br = |n: u32| number(format!("+55119876543{n:02}"));
    let start = |to| StartRequest::sms(to, Purpose::SignIn);
    // Japan, listed, gets its four: the default cap of two does not count it.
    for n in 0..4 {
        h.start_request(start(jp_mobile_n(n))).await;
    }
    assert_eq!(
        refusal(&h, start(jp_mobile_n(4))).await.0,
        LimitKind::Budget
    );
    // Great Britain and Brazil, not listed: two each, counted apart.
    for n in 0..2 {
        h.start_request(start(gb(n))).await;
    }
    assert_eq!(refusal(&h, start(gb(2))).await.0, LimitKind::Budget);
    for n in 0..2 {
        h.start_request(start(br(n))).await;
    }
    assert_eq!(refusal(&h, start(br(2))).await.0, LimitKind::Budget);
    assert_eq!(h.stub.attempts(), 8, "refused starts sent nothing");
    let read = h.otp.budget_use(&[], &["JP", "GB", "BR", "US"]).await?;
    let found: Vec<(BudgetScope, Option<&str>, u64)> = read
        .iter()
        .map(|u| (u.budget.scope.clone(), u.of.as_deref(), u.used))
        .collect();
    assert_eq!(
        found,
        vec![
            (BudgetScope::Country("JP".into()), None, 4),
            // Japan is not read under the default cap: it does not count there.
            (BudgetScope::OtherCountries, Some("GB"), 2),
            (BudgetScope::OtherCountries, Some("BR"), 2),
            (BudgetScope::OtherCountries, Some("US"), 0),
        ]
    );
    Ok(())
}

/// What the dashboards and the console read: each cap's use today, per tenant and
/// country asked for, the same numbers the sends were charged; a refusal adds nothing and
/// reading creates nothing.
#[tokio::test]
async fn budget_use_reads_back_what_sends_charged() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(budgets(vec![
            Budget {
                scope: BudgetScope::EachTenant,
                per_day: BudgetCap::Messages(2),
            },
            Budget {
                scope: BudgetScope::Country("JP".into()),
                per_day: BudgetCap::Money(Micros(200_000)),
            },
            Budget {
                scope: BudgetScope::EachCountry,
                per_day: BudgetCap::Messages(100),
            },
            Budget {
                scope: BudgetScope::Total,
                per_day: BudgetCap::Messages(1_000),
            },
        ]))
    });
    let send =
        |tenant: &str, n: u32| StartRequest::sms(jp_mobile_n(n), Purpose::SignIn).tenant(tenant);
    h.start_request(send("billing", 1)).await;
    h.start_request(send("billing", 2)).await;
    let (limit, _) = refusal(&h, send("billing", 3)).await;
    assert_eq!(limit, LimitKind::Budget);
    h.start_request(send("crm", 4)).await;
    let read = h
        .otp
        .budget_use(&["billing", "crm", "nobody"], &["JP", "US"])
        .await?;
    let found: Vec<(BudgetScope, Option<&str>, u64, u64)> = read
        .iter()
        .map(|u| (u.budget.scope.clone(), u.of.as_deref(), u.used, u.cap))
        .collect();
    assert_eq!(
        found,
        vec![
            (BudgetScope::EachTenant, Some("billing"), 2, 2),
            (BudgetScope::EachTenant, Some("crm"), 1, 2),
            (BudgetScope::EachTenant, Some("nobody"), 0, 2),
            // Three sends at the dearest JP rate (0.062), the refused one not among them.
            (BudgetScope::Country("JP".into()), None, 186_000, 200_000),
            (BudgetScope::EachCountry, Some("JP"), 3, 100),
            (BudgetScope::EachCountry, Some("US"), 0, 100),
            (BudgetScope::Total, None, 3, 1_000),
        ]
    );
    assert!((read[0].ratio() - 1.0).abs() < f64::EPSILON);
    assert!((read[3].ratio() - 0.93).abs() < 1e-9);
    // Reading again changes nothing.
    assert_eq!(
        h.otp
            .budget_use(&["billing", "crm", "nobody"], &["JP", "US"])
            .await?,
        read
    );
    assert_eq!(h.stub.attempts(), 3);
    // The day ends: every cap reads zero again.
    h.clock.set(read[0].resets_at);
    let tomorrow = h.otp.budget_use(&["billing"], &[]).await?;
    assert!(tomorrow.iter().all(|u| u.used == 0), "{tomorrow:?}");
    Ok(())
}

#[tokio::test]
async fn a_money_budget_refuses_what_it_cannot_price() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(budgets(vec![Budget {
            scope: BudgetScope::Total,
            per_day: BudgetCap::Money(Micros(10_000_000)),
        }]))
    });
    // No rate covers the US: fail closed.
    let us: phone_otp::PhoneNumber = "+12025550123".parse()?;
    let (limit, _) = refusal(&h, StartRequest::sms(us, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Budget);
    assert_eq!(h.stub.attempts(), 0);
    h.start(&jp_mobile()).await;
    Ok(())
}

#[tokio::test]
async fn a_budget_holds_under_64_concurrent_starts() -> TestResult {
    let h = std::sync::Arc::new(Harness::with(|b| {
        b.limits(budgets(vec![Budget {
            scope: BudgetScope::EachTenant,
            // Ten sends at 0.062.
            per_day: BudgetCap::Money(Micros(650_000)),
        }]))
    }));
    let mut tasks = Vec::new();
    for n in 0..64 {
        let h = std::sync::Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            let request = StartRequest::sms(jp_mobile_n(n), Purpose::SignIn).tenant("billing");
            h.otp.start(request).await.is_ok()
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += usize::from(task.await?);
    }
    assert_eq!(sent, 10);
    assert_eq!(h.stub.attempts(), 10);
    Ok(())
}

#[tokio::test]
async fn money_budgets_price_every_sms_segment() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(budgets(vec![Budget {
            scope: BudgetScope::EachTenant,
            per_day: BudgetCap::Money(Micros(150_000)),
        }]))
    });
    let relay = |n: u32, text: String| {
        phone_otp::RelayRequest::new(
            jp_mobile_n(n),
            phone_otp::Channel::Sms,
            "482913",
            Purpose::SignIn,
        )
        .text(text)
        .tenant("billing")
    };
    // Two GSM-7 segments (161 to 306 characters): 2 x 0.062 = 0.124 of 0.15.
    let long = format!("Your code is 482913. {}", "x".repeat(200));
    let sent = h.otp.relay(relay(1, long)).await?;
    assert_eq!(sent.segments.map(|s| s.segments), Some(2));
    // One more segment would make 0.186.
    match h
        .otp
        .relay(relay(2, "Your code is 482913".to_owned()))
        .await
    {
        Err(phone_otp::RelayError::Limited { limit, .. }) => assert_eq!(limit, LimitKind::Budget),
        other => panic!("expected the budget to refuse, got {other:?}"),
    }
    assert_eq!(h.stub.attempts(), 1);
    Ok(())
}

/// The guard end to end on `h`'s store: a pumped prefix is throttled after its first
/// sends, real users in another prefix of the same country are not, and the pumped prefix
/// is allowed again once the window has passed.
pub async fn conversion_guard_end_to_end(h: &Harness) -> TestResult {
    let pumped = |n: u32| format!("+8190111{n:05}").parse::<phone_otp::PhoneNumber>();
    let real = |n: u32| format!("+8190222{n:05}").parse::<phone_otp::PhoneNumber>();
    for n in 0..20 {
        h.start(&pumped(n)?).await;
    }
    let (limit, retry_after) = refusal(h, StartRequest::sms(pumped(20)?, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Conversion);
    assert!(retry_after <= ConversionGuard::default().window);
    assert_eq!(h.stub.attempts(), 20, "the refused send went nowhere");
    // Thirty real users who verify their codes are never refused.
    for n in 0..30 {
        let (id, code) = h.start(&real(n)?).await;
        assert!(h.otp.verify(&id, &code).await?.is_verified());
    }
    let refusals = h.otp.refusals();
    let conversion = refusals
        .iter()
        .find(|(kind, _)| *kind == LimitKind::Conversion);
    assert_eq!(conversion.map(|(_, n)| *n), Some(1));
    // Why, for an operator: the pumped block (not the subscriber), 20 sends, none verified,
    // under the default floor (half of the default 60%).
    let why = h.otp.guard_refusals();
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(
        (why[0].prefix.as_str(), why[0].country.as_str()),
        ("8190111", "JP")
    );
    assert_eq!((why[0].sends.round(), why[0].verified), (20.0, 0.0));
    assert_eq!((why[0].rate_permille, why[0].floor_permille), (0, 300));
    assert_eq!(why[0].refusals, 1);
    assert_eq!(why[0].level, GuardLevel::Prefix);
    assert_eq!(
        h.otp.guard_refusals_by_level(),
        vec![
            (GuardLevel::Prefix, 1),
            (GuardLevel::Range, 0),
            (GuardLevel::Country, 0),
            (GuardLevel::CountryDay, 0)
        ]
    );
    // Two windows on, the pumped prefix's sends have left the window, but it is still
    // held: one probe, then refused again (no fresh allowance to leak).
    h.clock.advance(2 * ConversionGuard::default().window);
    h.start(&pumped(21)?).await;
    let (limit, _) = refusal(h, StartRequest::sms(pumped(22)?, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Conversion);
    Ok(())
}

/// The guard with Japan and its ranges on a large probation, as a market the service
/// already serves, so these tests reach the prefix level; probation has its own tests.
pub fn guarded() -> Limits {
    let mut guard = ConversionGuard::default();
    guard.probation.insert("JP".to_owned(), 1_000);
    guard.range_probation_sends = 1_000;
    Limits {
        conversion_guard: Some(guard),
        ..Limits::danger_none()
    }
}

/// Probation on `h`'s store: a country the service has never served (no listed
/// probation) gets five unverified sends a day; then each verified code pays for five
/// more at the minimum floor (20%), and the range is named as the level that refused.
pub async fn probation_for_a_country_never_served(h: &Harness) -> TestResult {
    let number = |n: u32| format!("+4479111{n:05}").parse::<phone_otp::PhoneNumber>();
    let mut first = None;
    for n in 0..5 {
        let started = h.start(&number(n)?).await;
        first.get_or_insert(started);
    }
    let (limit, _) = refusal(h, StartRequest::sms(number(5)?, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Conversion);
    assert_eq!(h.stub.attempts(), 5, "the refused send went nowhere");
    assert_eq!(h.otp.guard_refusals()[0].level, GuardLevel::Range);
    // A verified code pays for one more send (20% of five), not two.
    let (id, code) = first.expect("five were sent");
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    h.start(&number(6)?).await;
    let (limit, _) = refusal(h, StartRequest::sms(number(7)?, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Conversion);
    assert_eq!(h.stub.attempts(), 6);
    Ok(())
}

/// Probation of a listed market on `h`'s store: Japan, listed for a thousand unverified
/// sends a day, takes them over many ranges, but each range it never converts in keeps
/// the range probation (five), so a spread into one of its ranges is caught there.
pub async fn a_listed_market_keeps_range_probation(h: &Harness) -> TestResult {
    // Ten ranges of Japan (five leading digits each), five sends each: more than the
    // range probation would allow in one, but the country's own probation takes them all.
    let ranges = (1..10)
        .map(|d| format!("8190{d}"))
        .chain(["81801".to_owned()]);
    for (r, range) in ranges.enumerate() {
        for n in 0..5 {
            let number = format!("+{range}{:07}", 10 * r + n);
            h.start(&number.parse()?).await;
        }
    }
    assert_eq!(h.stub.attempts(), 50);
    // A sixth unverified send in one range is refused there.
    let sixth: phone_otp::PhoneNumber = "+819020000001".parse()?;
    let (limit, _) = refusal(h, StartRequest::sms(sixth, Purpose::SignIn)).await;
    assert_eq!(limit, LimitKind::Conversion);
    assert_eq!(h.stub.attempts(), 50, "the refused send went nowhere");
    assert_eq!(h.otp.guard_refusals()[0].level, GuardLevel::Range);
    Ok(())
}

/// Japan listed for a thousand sends a day, ranges at the default.
pub fn listed_japan() -> Limits {
    let mut guard = ConversionGuard::default();
    guard.probation.insert("JP".to_owned(), 1_000);
    Limits {
        conversion_guard: Some(guard),
        ..Limits::danger_none()
    }
}

#[tokio::test]
async fn probation_on_the_memory_store() -> TestResult {
    let h = Harness::with(|b| b.limits(listed_japan()));
    probation_for_a_country_never_served(&h).await
}

#[tokio::test]
async fn range_probation_in_a_listed_market_on_the_memory_store() -> TestResult {
    let h = Harness::with(|b| b.limits(listed_japan()));
    a_listed_market_keeps_range_probation(&h).await
}

#[tokio::test]
async fn conversion_guard_on_the_memory_store() -> TestResult {
    let h = Harness::with(|b| b.limits(guarded()));
    conversion_guard_end_to_end(&h).await
}

#[tokio::test]
async fn the_safe_list_exempts_from_the_guard_and_backoff_but_not_from_quotas() -> TestResult {
    let mut safe = SafeList::default();
    safe.prefixes.push("+8190111".to_owned());
    safe.prefixes.push(String::new()); // an empty prefix exempts nothing
    safe.subjects.insert("support-desk".to_owned());
    let h = Harness::with(|b| {
        b.limits(Limits {
            backoff: Some(Backoff::default()),
            per_subject: Some(Quota::per_hour(n(12))),
            safe_list: safe,
            ..guarded()
        })
    });
    // A partner's test range: 30 unverified sends, never throttled by the guard.
    for i in 0..30u32 {
        h.start(&format!("+8190111{i:05}").parse()?).await;
    }
    // The support desk sends twelve codes back to back: no backoff...
    for i in 0..12u32 {
        let to = format!("+8190333{i:05}").parse()?;
        h.start_request(StartRequest::sms(to, Purpose::SignIn).subject("support-desk"))
            .await;
    }
    // ...but its fixed quota still holds.
    let to = "+819033300099".parse()?;
    let request = StartRequest::sms(to, Purpose::SignIn).subject("support-desk");
    assert_eq!(refusal(&h, request).await.0, LimitKind::Subject);
    // Anyone else is in backoff after three.
    for i in 0..3u32 {
        let to = format!("+8190444{i:05}").parse()?;
        h.start_request(StartRequest::sms(to, Purpose::SignIn).subject("someone"))
            .await;
    }
    let request = StartRequest::sms("+819044400099".parse()?, Purpose::SignIn).subject("someone");
    assert_eq!(refusal(&h, request).await.0, LimitKind::Backoff);
    Ok(())
}
