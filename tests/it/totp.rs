//! TOTP codes against RFC 6238's own test vectors, and the key URI read back by a real
//! URL parser.

use std::time::Duration;

use phone_otp::totp::{TotpAlgorithm, TotpSecret, TotpSettings, key_uri};

use crate::support::TestResult;

/// RFC 6238 Appendix B: each time with its SHA-1, SHA-256 and SHA-512 code (8 digits).
const VECTORS: [(u64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1_111_111_109, "07081804", "68084774", "25091201"),
    (1_111_111_111, "14050471", "67062674", "99943326"),
    (1_234_567_890, "89005924", "91819424", "93441116"),
    (2_000_000_000, "69279037", "90698825", "38618901"),
    (20_000_000_000, "65353130", "77737706", "47863826"),
];

fn settings(algorithm: TotpAlgorithm) -> TotpSettings {
    TotpSettings {
        algorithm,
        digits: 8,
        ..TotpSettings::new("RFC 6238")
    }
}

#[test]
fn rfc_6238_appendix_b_vectors() {
    // The seeds of the appendix: 20, 32 and 64 bytes of ASCII digits.
    let seed =
        |len: usize| -> Vec<u8> { b"1234567890".iter().copied().cycle().take(len).collect() };
    for (time, sha1, sha256, sha512) in VECTORS {
        for (algorithm, key_len, expected) in [
            (TotpAlgorithm::Sha1, 20, sha1),
            (TotpAlgorithm::Sha256, 32, sha256),
            (TotpAlgorithm::Sha512, 64, sha512),
        ] {
            let settings = settings(algorithm);
            let secret = seed(key_len);
            assert_eq!(
                settings.code_at(&secret, time),
                expected,
                "{algorithm:?} at {time}"
            );
            // And each verifies at its own time, on its own step.
            assert_eq!(
                settings.matching_step(&secret, expected, time),
                Some(time / 30),
                "{algorithm:?} at {time}"
            );
        }
    }
}

#[test]
fn the_key_uri_parses_back_with_every_parameter() -> TestResult {
    let secret = TotpSecret::from_bytes(b"12345678901234567890");
    let settings = TotpSettings {
        algorithm: TotpAlgorithm::Sha256,
        digits: 8,
        period: Duration::from_secs(60),
        ..TotpSettings::new("Example Co")
    };
    let uri = key_uri(&settings, "alice@example.com", &secret);
    let parsed = url::Url::parse(&uri)?;
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    let label = url::form_urlencoded::parse(parsed.path().trim_start_matches('/').as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()
        .unwrap_or_default();
    assert_eq!(label, "Example Co:alice@example.com");
    let query: std::collections::HashMap<String, String> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(query.len(), 5, "{query:?}");
    assert_eq!(query["secret"], "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(query["issuer"], "Example Co");
    assert_eq!(query["algorithm"], "SHA256");
    assert_eq!(query["digits"], "8");
    assert_eq!(query["period"], "60");
    Ok(())
}

mod service {
    use std::num::NonZeroU32;
    use std::sync::Arc;
    use std::time::Duration;

    use phone_otp::totp::{TotpError, TotpKeys, TotpOutcome, TotpService, TotpSettings};
    use phone_otp::{Clock, FailureCap, OtpStore, Purpose, StartError, StartRequest};
    use secrecy::{ExposeSecret, SecretSlice};

    use crate::support::{Harness, TestResult, jp_mobile, wrong};

    fn keys(byte: u8) -> TotpKeys {
        TotpKeys::new(byte, &SecretSlice::from(vec![byte; 32])).unwrap()
    }

    struct Fixture {
        h: Harness,
        totp: TotpService,
        secret: Vec<u8>,
        recovery: Vec<String>,
    }

    impl Fixture {
        fn code(&self, offset_steps: i64) -> String {
            let settings = self.totp.settings();
            let now = self.h.clock.now().as_millis() / 1000;
            let step = (settings.step_at(now) as i64 + offset_steps) as u64;
            settings.code_for_step(&self.secret, step)
        }
    }

    async fn enrolled(h: Harness) -> Fixture {
        let totp = h.otp.totp(TotpSettings::new("Example"), keys(1)).unwrap();
        let enrollment = totp
            .enroll(Some("acme"), "alice", "alice@example.com")
            .await
            .unwrap();
        assert!(
            enrollment
                .uri
                .expose_secret()
                .starts_with("otpauth://totp/Example:alice%40example.com?secret=")
        );
        assert_eq!(format!("{enrollment:?}"), "Enrollment(..)");
        let secret =
            phone_otp::totp::base32_decode(enrollment.secret_base32.expose_secret()).unwrap();
        let recovery = enrollment
            .recovery_codes
            .iter()
            .map(|c| c.expose_secret().to_owned())
            .collect();
        let fixture = Fixture {
            h,
            totp,
            secret,
            recovery,
        };
        // Not usable until confirmed.
        assert_eq!(
            fixture
                .totp
                .verify(Some("acme"), "alice", &fixture.code(0))
                .await
                .unwrap(),
            TotpOutcome::NotEnrolled
        );
        assert_eq!(
            fixture
                .totp
                .confirm(Some("acme"), "alice", &fixture.code(0))
                .await
                .unwrap(),
            TotpOutcome::Verified
        );
        fixture
    }

    /// Submits `code` for acme's alice from 64 concurrent tasks: how many were `Verified`
    /// (every other answer must be `AlreadyUsed`).
    async fn verified_of_64(
        totp: &TotpService,
        code: &str,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (totp, code) = (totp.clone(), code.to_owned());
            tasks.push(tokio::spawn(async move {
                totp.verify(Some("acme"), "alice", &code).await
            }));
        }
        let mut verified = 0;
        for task in tasks {
            match task.await?? {
                TotpOutcome::Verified => verified += 1,
                other => assert_eq!(other, TotpOutcome::AlreadyUsed),
            }
        }
        Ok(verified)
    }

    pub async fn codes_verify_once_even_concurrently(h: Harness) -> TestResult {
        let f = enrolled(h).await;
        // Attempts high enough that all 64 reach the store's replay check.
        let totp = &f
            .totp
            .clone()
            .attempts(phone_otp::Quota::per_minute(NonZeroU32::new(1000).unwrap()));
        // The confirming code's step is spent.
        assert_eq!(
            totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::AlreadyUsed
        );
        f.h.clock.advance(Duration::from_secs(30));
        // 64 concurrent submissions of the new step's code: one is accepted.
        assert_eq!(verified_of_64(totp, &f.code(0)).await?, 1);
        // Another tenant's alice has no factor.
        assert_eq!(
            totp.verify(Some("other"), "alice", &f.code(0)).await?,
            TotpOutcome::NotEnrolled
        );
        Ok(())
    }

    pub async fn recovery_codes_are_single_use(h: Harness) -> TestResult {
        let f = enrolled(h).await;
        assert_eq!(f.recovery.len(), 10);
        let first = &f.recovery[0];
        assert_eq!(
            f.totp.verify_recovery(Some("acme"), "alice", first).await?,
            TotpOutcome::Verified
        );
        assert_eq!(
            f.totp.verify_recovery(Some("acme"), "alice", first).await?,
            TotpOutcome::Mismatch
        );
        // Typed in upper case without the hyphen, the next one works.
        let typed = f.recovery[1].replace('-', "").to_uppercase();
        assert_eq!(
            f.totp
                .verify_recovery(Some("acme"), "alice", &typed)
                .await?,
            TotpOutcome::Verified
        );
        Ok(())
    }

    /// Alice enrolled and confirmed on `store` under HMAC key 1, and a service over the
    /// same store with a new primary HMAC key (2) and key 1 kept: a rotation.
    async fn enrolled_then_rotated(
        store: Arc<dyn OtpStore>,
    ) -> Result<(Fixture, phone_otp::OtpService), Box<dyn std::error::Error + Send + Sync>> {
        let h = Harness::with({
            let store = Arc::clone(&store);
            move |b| b.store(store)
        });
        let f = enrolled(h).await;
        let ring = phone_otp::KeyRing::new(crate::support::key(2, 8))
            .with_previous(crate::support::key(1, 7))?;
        let rotated = phone_otp::OtpService::builder()
            .key_ring(ring)
            .provider(phone_otp::StubProvider::new())
            .store(store)
            .clock(f.h.clock.clone())
            .build()?;
        Ok((f, rotated))
    }

    /// After an HMAC key rotation (new primary, old key kept) over the same store: of 64
    /// concurrent first uses of one code, which also move the factor to the new account
    /// id, exactly one is accepted; recovery codes issued under the old key still work,
    /// once each; the old service no longer finds the moved factor.
    pub async fn a_rotation_keeps_replay_protection_and_recovery_codes(
        store: Arc<dyn OtpStore>,
    ) -> TestResult {
        let (f, rotated) = enrolled_then_rotated(store).await?;
        let totp = rotated
            .totp(TotpSettings::new("Example"), keys(1))
            .unwrap()
            .attempts(phone_otp::Quota::per_minute(NonZeroU32::new(1000).unwrap()));
        f.h.clock.advance(Duration::from_secs(30));
        assert_eq!(verified_of_64(&totp, &f.code(0)).await?, 1);
        for recovery in &f.recovery[..2] {
            assert_eq!(
                totp.verify_recovery(Some("acme"), "alice", recovery)
                    .await?,
                TotpOutcome::Verified
            );
            assert_eq!(
                totp.verify_recovery(Some("acme"), "alice", recovery)
                    .await?,
                TotpOutcome::Mismatch
            );
        }
        assert_eq!(
            f.totp
                .verify_recovery(Some("acme"), "alice", &f.recovery[2])
                .await?,
            TotpOutcome::NotEnrolled
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_rotation_keeps_replay_protection_and_recovery_codes_on_the_memory_store()
    -> TestResult {
        a_rotation_keeps_replay_protection_and_recovery_codes(Arc::new(
            phone_otp::MemoryStore::new(),
        ))
        .await
    }

    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_rotation_keeps_replay_protection_and_recovery_codes_on_redis() -> TestResult {
        let Some(store) = crate::redis::with_redis::store().await else {
            return Ok(());
        };
        a_rotation_keeps_replay_protection_and_recovery_codes(store).await
    }

    async fn run(
        check: fn(Harness) -> std::pin::Pin<Box<dyn std::future::Future<Output = TestResult>>>,
        store: Option<Arc<dyn OtpStore>>,
    ) -> TestResult {
        let h = match store {
            Some(store) => Harness::with(move |b| b.store(store)),
            None => Harness::new(),
        };
        check(h).await
    }

    #[tokio::test]
    async fn totp_codes_verify_once_on_the_memory_store() -> TestResult {
        run(|h| Box::pin(codes_verify_once_even_concurrently(h)), None).await
    }

    #[tokio::test]
    async fn totp_recovery_codes_on_the_memory_store() -> TestResult {
        run(|h| Box::pin(recovery_codes_are_single_use(h)), None).await
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn totp_codes_verify_once_on_redis() -> TestResult {
        let Some(store) = crate::redis::with_redis::store().await else {
            return Ok(());
        };
        run(
            |h| Box::pin(codes_verify_once_even_concurrently(h)),
            Some(store),
        )
        .await
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn totp_recovery_codes_on_redis() -> TestResult {
        let Some(store) = crate::redis::with_redis::store().await else {
            return Ok(());
        };
        run(|h| Box::pin(recovery_codes_are_single_use(h)), Some(store)).await
    }

    #[tokio::test]
    async fn wrong_totp_and_sms_codes_share_one_failure_cap() -> TestResult {
        let cap = FailureCap::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(3600));
        let h = Harness::with(move |b| b.failure_cap(cap));
        let f = enrolled(h).await;
        // Two wrong authenticator codes, then one wrong SMS code for the same user.
        for _ in 0..2 {
            let wrong_code = if f.code(0) == "000000" {
                "111111"
            } else {
                "000000"
            };
            assert_eq!(
                f.totp.verify(Some("acme"), "alice", wrong_code).await?,
                TotpOutcome::Mismatch
            );
        }
        let request = StartRequest::sms(jp_mobile(), Purpose::SignIn)
            .subject("alice")
            .tenant("acme");
        let (id, code) = f.h.start_request(request).await;
        let wrong_code = wrong(&code);
        let wrong_sms = phone_otp::VerifyRequest::new(id, &wrong_code).tenant("acme");
        assert!(matches!(
            f.h.otp.verify_with(wrong_sms).await?,
            phone_otp::VerifyOutcome::Mismatch { .. }
        ));
        // Locked for both factors, the right TOTP code included.
        f.h.clock.advance(Duration::from_secs(30));
        assert_eq!(
            f.totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::AccountLocked
        );
        let again = StartRequest::sms(jp_mobile(), Purpose::SignIn)
            .subject("alice")
            .tenant("acme");
        assert!(matches!(
            f.h.otp.start(again).await,
            Err(StartError::AccountLocked)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn unusable_names_are_refused_before_anything_is_counted_or_stored() -> TestResult {
        let store = Arc::new(phone_otp::MemoryStore::new());
        let f = enrolled(Harness::with({
            let store = Arc::clone(&store);
            move |b| b.store(store)
        }))
        .await;
        let (limit_keys, long) = (store.limit_keys(), "x".repeat(257));
        let refused = |result: Result<TotpOutcome, TotpError>| {
            assert!(
                matches!(result, Err(TotpError::InvalidRequest(_))),
                "{result:?}"
            );
        };
        for _ in 0..2 {
            refused(f.totp.verify(Some("acme"), "", &f.code(0)).await);
            refused(f.totp.verify(Some("acme"), &long, &f.code(0)).await);
            refused(f.totp.verify(Some(&long), "alice", &f.code(0)).await);
            refused(f.totp.confirm(Some("acme"), &long, &f.code(0)).await);
            refused(
                f.totp
                    .verify_recovery(Some("acme"), "", &f.recovery[0])
                    .await,
            );
        }
        assert!(matches!(
            f.totp.disable(Some("acme"), "").await,
            Err(TotpError::InvalidRequest(_))
        ));
        for label in ["", "a:b", long.as_str()] {
            let error = f.totp.enroll(Some("acme"), "bob", label).await.err();
            assert_eq!(
                error.map(|e| e.to_string()).as_deref(),
                Some("invalid TOTP request: the label must be 1-256 bytes without ':'")
            );
        }
        // No attempt was counted (no new limit state), nothing stored for bob, and alice's
        // next code still verifies.
        assert_eq!(store.limit_keys(), limit_keys);
        assert_eq!(
            f.totp.verify(Some("acme"), "bob", &f.code(0)).await?,
            TotpOutcome::NotEnrolled
        );
        f.h.clock.advance(Duration::from_secs(30));
        assert_eq!(
            f.totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::Verified
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_hmac_key_rotation_moves_the_factor_to_the_new_account_id() -> TestResult {
        let store: Arc<dyn OtpStore> = Arc::new(phone_otp::MemoryStore::new());
        let (f, rotated) = enrolled_then_rotated(store).await?;
        let totp = rotated.totp(TotpSettings::new("Example"), keys(1)).unwrap();
        f.h.clock.advance(Duration::from_secs(30));
        assert_eq!(
            totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::Verified
        );
        // Moved: the old service (old primary) no longer finds it, the new one does.
        f.h.clock.advance(Duration::from_secs(30));
        assert_eq!(
            f.totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::NotEnrolled
        );
        assert_eq!(
            totp.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::Verified
        );
        Ok(())
    }

    #[tokio::test]
    async fn rotated_keys_move_and_reseal_the_factor_and_a_foreign_key_cannot_read_it() -> TestResult
    {
        let store: Arc<dyn OtpStore> = Arc::new(phone_otp::MemoryStore::new());
        let h = Harness::with({
            let store = Arc::clone(&store);
            move |b| b.store(store)
        });
        let f = enrolled(h).await;
        // A service with other sealing keys cannot open the secret.
        let foreign = f.h.otp.totp(TotpSettings::new("Example"), keys(9)).unwrap();
        f.h.clock.advance(Duration::from_secs(30));
        assert!(
            foreign
                .verify(Some("acme"), "alice", &f.code(0))
                .await
                .is_err()
        );
        // New sealing keys with the old one kept: verifies, and the secret is sealed anew.
        let rotated_keys = TotpKeys::new(2, &SecretSlice::from(vec![2; 32]))?
            .with_older(1, &SecretSlice::from(vec![1; 32]))?;
        let rotated =
            f.h.otp
                .totp(TotpSettings::new("Example"), rotated_keys)
                .unwrap();
        assert_eq!(
            rotated.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::Verified
        );
        f.h.clock.advance(Duration::from_secs(30));
        let only_new = f.h.otp.totp(TotpSettings::new("Example"), keys(2)).unwrap();
        assert_eq!(
            only_new.verify(Some("acme"), "alice", &f.code(0)).await?,
            TotpOutcome::Verified
        );
        Ok(())
    }
}

/// The SVG's black squares drawn into a greyscale image (the renderer draws each module as
/// `M{x} {y}h{w}v{h}H{x}V{y}` in one path), then read by a real QR decoder.
#[cfg(feature = "totp-qr")]
fn read_qr_svg(svg: &str) -> Option<String> {
    let number = |text: &str| text.trim().parse::<usize>().ok();
    let size = number(svg.split("width=\"").nth(1)?.split('"').next()?)?;
    let path = svg.split(" d=\"").nth(1)?.split('"').next()?;
    let mut pixels = vec![255u8; size * size];
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let (x, rest) = square.split_once(' ')?;
        let (y, rest) = rest.split_once('h')?;
        let (w, rest) = rest.split_once('v')?;
        let (h, _) = rest.split_once('H')?;
        let (x, y, w, h) = (number(x)?, number(y)?, number(w)?, number(h)?);
        for row in y..(y + h).min(size) {
            for column in x..(x + w).min(size) {
                pixels[row * size + column] = 0;
            }
        }
    }
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| pixels[y * size + x]);
    let grids = image.detect_grids();
    let (_, content) = grids.first()?.decode().ok()?;
    Some(content)
}

#[cfg(feature = "totp-qr")]
#[test]
fn the_qr_code_reads_back_as_the_key_uri() -> TestResult {
    use secrecy::{ExposeSecret, SecretString};
    let secret = TotpSecret::generate()?;
    let uri = key_uri(
        &TotpSettings::new("Example Co"),
        "alice@example.com",
        &secret,
    );
    let svg = phone_otp::totp::qr_svg(&SecretString::from(uri.clone())).ok_or("no QR code")?;
    let svg = svg.expose_secret();
    assert!(svg.contains("<svg") && svg.contains("viewBox"), "{svg:.80}");
    assert_eq!(read_qr_svg(svg).as_deref(), Some(uri.as_str()));
    // A URI no QR code holds is refused, not truncated.
    assert!(phone_otp::totp::qr_svg(&SecretString::from("x".repeat(5000))).is_none());
    Ok(())
}
