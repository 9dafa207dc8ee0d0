//! `RedisStore` against a real Redis: the shared store contract, two service instances on
//! one Redis, and faults (Redis stopped and restarted).
//!
//! `./scripts/test.sh` installs and starts `redis-server` and sets `REDIS_URL`. Without it
//! these tests say loudly that they skipped; with `CI` set a missing server fails the run.

#[cfg(not(feature = "redis"))]
#[test]
fn redis_tests_need_the_redis_feature() {
    crate::support::skip_loudly(
        "built without --features redis (./scripts/test.sh builds with it and starts Redis)",
    );
}

#[cfg(feature = "redis")]
pub(crate) mod with_redis {
    use std::sync::Arc;
    use std::time::Duration;

    use phone_otp::{
        HmacKey, KeyRing, LimitKind, Limits, ManualClock, OtpService, OtpStore, Purpose,
        RedisStore, StartError, StartRequest, StubProvider, VerifyError, VerifyOutcome,
    };
    use secrecy::SecretSlice;

    use crate::redis_server::RedisServer;
    use crate::store_contract;
    use crate::support::{TestResult, jp_mobile, last_code, skip_loudly, verify_from_64_tasks};

    /// A store on the suite's Redis under a fresh prefix, so tests never share keys.
    pub(crate) async fn store() -> Option<Arc<dyn OtpStore>> {
        let Some(url) = std::env::var("REDIS_URL").ok() else {
            skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
            return None;
        };
        let prefix = format!("test:{}:", phone_otp::ChallengeId::from_bytes(rand_bytes()));
        Some(Arc::new(
            RedisStore::connect(&url, &prefix)
                .await
                .expect("Redis at REDIS_URL"),
        ))
    }

    fn rand_bytes() -> [u8; 33] {
        let mut bytes = [0u8; 33];
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
        bytes[16] = (std::process::id() & 0xff) as u8;
        static COUNTER: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        bytes[17] = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        bytes
    }

    store_contract::contract_tests!(store);

    /// Two instances, each with its own connection to one Redis, share every abuse
    /// control's state: backoff streaks, budgets and the guard's counts.
    #[tokio::test]
    async fn two_instances_share_backoff_budgets_and_the_guard() -> TestResult {
        let Some(url) = std::env::var("REDIS_URL").ok() else {
            skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
            return Ok(());
        };
        let prefix = format!("test:{}:", phone_otp::ChallengeId::from_bytes(rand_bytes()));
        let connect = || RedisStore::connect(&url, &prefix);
        let (first, second): (Arc<dyn OtpStore>, Arc<dyn OtpStore>) =
            (Arc::new(connect().await?), Arc::new(connect().await?));
        let limits = Limits {
            backoff: Some(phone_otp::Backoff::default()),
            budgets: Some(phone_otp::Budgets {
                prices: phone_otp::PriceTable::new("USD"),
                caps: vec![phone_otp::Budget {
                    scope: phone_otp::BudgetScope::Tenant("billing".into()),
                    per_day: phone_otp::BudgetCap::Messages(4),
                }],
            }),
            ..crate::limits::guarded()
        };
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let a = service(first, &stub, &clock, limits.clone());
        let b = service(second, &stub, &clock, limits);
        let number = |n: u32| format!("+8190555{n:05}").parse::<phone_otp::PhoneNumber>();
        let refused = |result: Result<phone_otp::Started, StartError>| match result {
            Err(StartError::Limited { limit, .. }) => limit,
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Backoff: three at once on A, the fourth on B waits.
        for n in 0..3 {
            a.start(StartRequest::sms(number(n)?, Purpose::SignIn).subject("u-1"))
                .await?;
        }
        let fourth = b
            .start(StartRequest::sms(number(3)?, Purpose::SignIn).subject("u-1"))
            .await;
        assert_eq!(refused(fourth), LimitKind::Backoff);
        // Budget: billing's four messages, two on each instance, then none on either.
        for (n, otp) in [(10, &a), (11, &b), (12, &a), (13, &b)] {
            otp.start(StartRequest::sms(number(n)?, Purpose::SignIn).tenant("billing"))
                .await?;
        }
        let over = a
            .start(StartRequest::sms(number(14)?, Purpose::SignIn).tenant("billing"))
            .await;
        assert_eq!(refused(over), LimitKind::Budget);
        // Guard: the prefix had 7 sends; 13 more alternating, then the 21st is refused on
        // either instance.
        for n in 20..33 {
            let otp = if n % 2 == 0 { &a } else { &b };
            otp.start(StartRequest::sms(number(n)?, Purpose::SignIn))
                .await?;
        }
        let pumped = b
            .start(StartRequest::sms(number(40)?, Purpose::SignIn))
            .await;
        assert_eq!(refused(pumped), LimitKind::Conversion);
        // A verification on one instance counts for both: after six, sends resume.
        clock.advance(Duration::from_secs(1));
        // Probation and its hold are shared too: a country never served gets five sends
        // between both instances, then neither sends a sixth.
        let gb = |n: u32| format!("+4479111{n:05}").parse::<phone_otp::PhoneNumber>();
        for n in 0..5 {
            let otp = if n % 2 == 0 { &a } else { &b };
            otp.start(StartRequest::sms(gb(n)?, Purpose::SignIn))
                .await?;
        }
        for otp in [&a, &b] {
            let sixth = otp.start(StartRequest::sms(gb(9)?, Purpose::SignIn)).await;
            assert_eq!(refused(sixth), LimitKind::Conversion);
        }
        Ok(())
    }

    #[tokio::test]
    async fn probation_on_redis() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let h = crate::support::Harness::with(move |b| {
            b.store(store).limits(crate::limits::listed_japan())
        });
        crate::limits::probation_for_a_country_never_served(&h).await
    }

    #[tokio::test]
    async fn range_probation_in_a_listed_market_on_redis() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let h = crate::support::Harness::with(move |b| {
            b.store(store).limits(crate::limits::listed_japan())
        });
        crate::limits::a_listed_market_keeps_range_probation(&h).await
    }

    #[tokio::test]
    async fn conversion_guard_end_to_end_on_redis() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let h =
            crate::support::Harness::with(move |b| b.store(store).limits(crate::limits::guarded()));
        crate::limits::conversion_guard_end_to_end(&h).await
    }

    #[tokio::test]
    async fn relayed_request_keys_hold_across_instances() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        crate::relay::duplicates_across_instances(store).await
    }

    /// Starts a challenge (retrying while the connection is remade) and verifies it: the
    /// store works end to end once Redis is up, without a new service.
    async fn start_and_verify_once_redis_answers(
        otp: &OtpService,
        stub: &StubProvider,
    ) -> TestResult {
        let mut started = None;
        for _ in 0..20 {
            if let Ok(ok) = otp
                .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
                .await
            {
                started = Some(ok);
                break;
            }
        }
        let started = started.expect("the store connects once Redis is up");
        let code = last_code(stub, &jp_mobile());
        assert!(
            otp.verify(&started.challenge_id, &code)
                .await?
                .is_verified()
        );
        Ok(())
    }

    fn service(
        store: Arc<dyn OtpStore>,
        stub: &StubProvider,
        clock: &ManualClock,
        limits: Limits,
    ) -> OtpService {
        OtpService::builder()
            .key_ring(KeyRing::new(
                HmacKey::new(1, &SecretSlice::from(vec![5u8; 32])).unwrap(),
            ))
            .provider(stub.clone())
            .store(store)
            .clock(clock.clone())
            .limits(limits)
            .build()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_instances_share_challenges_and_limits() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let a = service(Arc::clone(&store), &stub, &clock, Limits::danger_none());
        let b = service(Arc::clone(&store), &stub, &clock, Limits::danger_none());

        // Started on one, verified on the other.
        let started = a
            .start(StartRequest::sms(jp_mobile(), Purpose::SignIn).subject("u-1"))
            .await?;
        let code = last_code(&stub, &jp_mobile());
        assert_eq!(
            b.verify(&started.challenge_id, &code).await?,
            VerifyOutcome::Verified {
                purpose: Purpose::SignIn,
                subject: Some("u-1".into())
            }
        );

        // 64 concurrent correct checks spread over both: exactly one wins.
        let started = b
            .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
            .await?;
        let code = last_code(&stub, &jp_mobile());
        let outcomes = verify_from_64_tasks(&[a, b], started.challenge_id, &code).await?;
        let verified = outcomes.iter().filter(|o| o.is_verified()).count();
        assert_eq!(verified, 1);

        // A destination's send limit holds across both instances.
        let limits = Limits {
            resend_cooldown: None,
            ..Limits::default()
        };
        let a = service(Arc::clone(&store), &stub, &clock, limits.clone());
        let b = service(Arc::clone(&store), &stub, &clock, limits);
        let to = crate::support::jp_mobile_n(4242);
        for i in 0..5 {
            let otp = if i % 2 == 0 { &a } else { &b };
            otp.start(StartRequest::sms(to.clone(), Purpose::SignIn))
                .await?;
        }
        match b.start(StartRequest::sms(to, Purpose::SignIn)).await {
            Err(StartError::Limited { limit, retry_after }) => {
                assert_eq!(
                    (limit, retry_after),
                    (LimitKind::Destination, Duration::from_secs(120))
                )
            }
            other => panic!("expected the shared limit to refuse, got {other:?}"),
        }
        Ok(())
    }

    /// Limit keys name numbers, users and client addresses by keyed fingerprints and
    /// records keep numbers sealed: a dump of Redis holds no phone number, and no key names
    /// a user or an address; every limit key shares one hash tag (so one script can decide
    /// them together on a cluster).
    #[tokio::test]
    async fn a_dump_holds_no_phone_number_and_limit_keys_share_one_hash_tag() -> TestResult {
        let Some(url) = std::env::var("REDIS_URL").ok() else {
            skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
            return Ok(());
        };
        let prefix = format!("nokeys:{}:", std::process::id());
        let store: Arc<dyn OtpStore> = Arc::new(RedisStore::connect(&url, &prefix).await?);
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let limits = Limits {
            backoff: Some(phone_otp::Backoff::default()),
            per_tenant: Some(phone_otp::Quota::per_hour(
                std::num::NonZeroU32::new(100).unwrap(),
            )),
            ..Limits::default()
        };
        let otp = service(store, &stub, &clock, limits);
        otp.start(
            StartRequest::sms(jp_mobile(), Purpose::SignIn)
                .subject("dump-user-9")
                .tenant("acme")
                .client_ip("2001:db8:5:6::1".parse()?),
        )
        .await?;
        otp.start(
            StartRequest::sms(crate::support::jp_mobile_n(77), Purpose::SignIn)
                .subject("dump-user-10")
                .client_ip("203.0.113.77".parse()?),
        )
        .await?;
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut connection)
            .await?;
        let limit_keys: Vec<&String> = keys.iter().filter(|k| k.contains("limits}:")).collect();
        // The first: IP, IPv6 /48, subject, tenant, cooldown, number, two backoffs; the
        // second the same but the network and tenant.
        assert_eq!(limit_keys.len(), 14, "{keys:?}");
        for key in &keys {
            for clear in ["9012345678", "dump-user", "2001:db8", "203.0.113"] {
                assert!(!key.contains(clear), "a key names {clear}: {key}");
            }
        }
        // The tenant, a calling system's name, stays readable.
        assert!(keys.iter().any(|k| k.ends_with(":ten:acme")), "{keys:?}");
        // Nor does any record: the challenge keeps its destination sealed.
        let challenge = keys
            .iter()
            .find(|k| k.starts_with(&format!("{prefix}c:{{")))
            .expect("a challenge");
        let fields: Vec<Vec<u8>> = redis::cmd("HGETALL")
            .arg(challenge)
            .query_async(&mut connection)
            .await?;
        assert!(fields.len() >= 20, "{} fields", fields.len());
        for field in &fields {
            let text = String::from_utf8_lossy(field);
            assert!(
                !text.contains("9012345678"),
                "a record holds the number: {text}"
            );
        }
        let tag = format!("{prefix}{{{prefix}limits}}:");
        assert!(
            limit_keys.iter().all(|k| k.starts_with(&tag)),
            "{limit_keys:?}"
        );
        assert!(matches!(
            RedisStore::connect("redis://127.0.0.1:1/0", "bad{prefix}").await,
            Err(phone_otp::StoreError::Config(_))
        ));
        Ok(())
    }

    /// A service starts while Redis is down: the store connects on first use, fails each
    /// operation (nothing sent) until Redis is up, then works without a restart.
    #[tokio::test]
    async fn a_store_made_while_redis_is_down_works_once_it_is_up() -> TestResult {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("redis://127.0.0.1:{port}/0");
        let store: Arc<dyn OtpStore> = Arc::new(RedisStore::connect(&url, "lazy:").await?);
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let otp = service(store, &stub, &clock, Limits::danger_none());
        assert!(matches!(
            otp.start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
                .await,
            Err(StartError::Store(_))
        ));
        assert_eq!(stub.attempts(), 0);
        let Some(_server) = RedisServer::start_on(port) else {
            return Ok(());
        };
        start_and_verify_once_redis_answers(&otp, &stub).await
    }

    /// A sealed destination opens under any key of the ring that sealed it, so a resend
    /// works across a key rotation; without that key it fails as a store error, with
    /// nothing sent.
    #[tokio::test]
    async fn sealed_destinations_survive_key_rotation() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let key = |id: u8, fill: u8| HmacKey::new(id, &SecretSlice::from(vec![fill; 32])).unwrap();
        let with_ring = |ring: KeyRing| {
            OtpService::builder()
                .key_ring(ring)
                .provider(stub.clone())
                .store(Arc::clone(&store))
                .clock(clock.clone())
                .limits(Limits::danger_none())
                .build()
                .unwrap()
        };
        let old = with_ring(KeyRing::new(key(1, 5)));
        let started = old
            .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
            .await?;
        let rotated = with_ring(KeyRing::new(key(2, 6)).with_previous(key(1, 5))?);
        let resent = rotated.resend(&started.challenge_id).await?;
        assert_eq!(resent.masked_destination, "+8190****5678");
        let code = last_code(&stub, &jp_mobile());
        assert!(
            rotated
                .verify(&started.challenge_id, &code)
                .await?
                .is_verified()
        );

        let started = old
            .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
            .await?;
        let sent = stub.attempts();
        let stranger = with_ring(KeyRing::new(key(3, 7)));
        assert!(matches!(
            stranger.resend(&started.challenge_id).await,
            Err(phone_otp::ResendError::Store(
                phone_otp::StoreError::Corrupt(_)
            ))
        ));
        assert_eq!(stub.attempts(), sent, "nothing was sent");
        Ok(())
    }

    #[tokio::test]
    async fn redis_down_is_a_store_error_and_recovery_needs_no_restart() -> TestResult {
        let Some(mut server) = RedisServer::start() else {
            return Ok(());
        };
        let store: Arc<dyn OtpStore> =
            Arc::new(RedisStore::connect(&server.url(), "fault:").await?);
        let (stub, clock) = (StubProvider::new(), ManualClock::new());
        let otp = service(store, &stub, &clock, Limits::danger_none());
        let started = otp
            .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
            .await?;
        let code = last_code(&stub, &jp_mobile());

        server.stop();
        let sent_before = stub.attempts();
        assert!(matches!(
            otp.start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
                .await,
            Err(StartError::Store(_))
        ));
        assert_eq!(
            stub.attempts(),
            sent_before,
            "no SMS may go out without a stored challenge"
        );
        match otp.verify(&started.challenge_id, &code).await {
            Err(VerifyError::Store(error)) => assert_eq!(error.to_string(), "store unavailable"),
            other => panic!("expected a store error, never an outcome: {other:?}"),
        }

        // Same process, same service: works again once Redis is back (data was in memory
        // only, so the old challenge is gone; a new one works end to end).
        server.restart();
        start_and_verify_once_redis_answers(&otp, &stub).await
    }
}
