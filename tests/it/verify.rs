use std::sync::Arc;
use std::time::Duration;

use phone_otp::{
    ChallengeId, Clock, KeyRing, MemoryStore, OtpService, Purpose, StartRequest, StubProvider,
    VerifyOutcome,
};
use tokio::sync::Barrier;

use crate::support::{Harness, TestResult, jp_mobile, key, wrong};

#[tokio::test]
async fn right_code_verifies_with_purpose_and_subject() -> TestResult {
    let h = Harness::new();
    let request = StartRequest::sms(jp_mobile(), Purpose::PasswordReset).subject("user-7");
    let (id, code) = h.start_request(request).await;
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::Verified {
            purpose: Purpose::PasswordReset,
            subject: Some("user-7".into())
        }
    );
    Ok(())
}

#[tokio::test]
async fn wrong_code_counts_down_attempts() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    for left in (0..5u8).rev() {
        assert_eq!(
            h.otp.verify(&id, &wrong(&code)).await?,
            VerifyOutcome::Mismatch {
                attempts_left: left
            }
        );
    }
    Ok(())
}

#[tokio::test]
async fn right_code_after_five_wrong_ones_is_refused() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    for _ in 0..5 {
        h.otp.verify(&id, &wrong(&code)).await?;
    }
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::AttemptsExhausted
    );
    assert_eq!(
        h.otp.verify(&id, &wrong(&code)).await?,
        VerifyOutcome::AttemptsExhausted
    );
    Ok(())
}

#[tokio::test]
async fn a_code_works_once() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    assert_eq!(h.otp.verify(&id, &code).await?, VerifyOutcome::AlreadyUsed);
    assert_eq!(
        h.otp.verify(&id, &wrong(&code)).await?,
        VerifyOutcome::AlreadyUsed
    );
    Ok(())
}

#[tokio::test]
async fn code_expires_after_its_lifetime() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(h.otp.verify(&id, &code).await?, VerifyOutcome::Expired);
    Ok(())
}

#[tokio::test]
async fn code_is_valid_until_the_last_millisecond() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_millis(299_999));
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn unknown_challenge_is_not_found() -> TestResult {
    let h = Harness::new();
    let made_up = ChallengeId::from_bytes([3u8; 33]);
    assert_eq!(
        h.otp.verify(&made_up, "123456").await?,
        VerifyOutcome::NotFound
    );
    Ok(())
}

#[tokio::test]
async fn expired_records_are_eventually_forgotten() -> TestResult {
    let store = MemoryStore::new();
    let h = Harness::with_store(Arc::new(store.clone()));
    let (id, code) = h.start(&jp_mobile()).await;
    assert_eq!(store.len(), 1);
    h.clock.advance(Duration::from_secs(300 + 600));
    store.sweep(h.clock.now());
    assert_eq!(store.len(), 0);
    assert_eq!(h.otp.verify(&id, &code).await?, VerifyOutcome::NotFound);
    Ok(())
}

#[tokio::test]
async fn malformed_input_is_a_mismatch_that_counts() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    // Spaces, hyphens and full-width digits around the right code are not malformed (see
    // typed_and_pasted_forms_of_the_code_verify); these are, or are simply wrong.
    let malformed = [
        "abcdef".to_owned(),
        format!("{code}x"),
        format!("{code}\u{200B}"),
        code[..5].to_owned(),
        format!("{code}0"),
        "12".to_owned(),
        "9".repeat(10_000),
        String::new(),
    ];
    for (index, input) in malformed.iter().take(4).enumerate() {
        assert_eq!(
            h.otp.verify(&id, input).await?,
            VerifyOutcome::Mismatch {
                attempts_left: 4 - index as u8
            },
            "input #{index}"
        );
    }
    assert_eq!(
        h.otp.verify(&id, &malformed[4]).await?,
        VerifyOutcome::Mismatch { attempts_left: 0 }
    );
    for input in &malformed[5..] {
        assert_eq!(
            h.otp.verify(&id, input).await?,
            VerifyOutcome::AttemptsExhausted
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_64_concurrent_correct_checks_exactly_one_verifies() -> TestResult {
    for _round in 0..10 {
        let h = Harness::new();
        let (id, code) = h.start(&jp_mobile()).await;
        let barrier = Arc::new(Barrier::new(64));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let otp = h.otp.clone();
            let code = code.clone();
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                otp.verify(&id, &code).await
            }));
        }
        let mut verified = 0;
        let mut already_used = 0;
        for task in tasks {
            match task.await?? {
                VerifyOutcome::Verified { .. } => verified += 1,
                VerifyOutcome::AlreadyUsed => already_used += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!((verified, already_used), (1, 63));
    }
    Ok(())
}

#[tokio::test]
async fn a_code_of_one_challenge_fails_on_another() -> TestResult {
    let h = Harness::unlimited();
    let (first, first_code) = h.start(&jp_mobile()).await;
    let (second, second_code) = h.start(&jp_mobile()).await;
    if first_code != second_code {
        assert_eq!(
            h.otp.verify(&second, &first_code).await?,
            VerifyOutcome::Mismatch { attempts_left: 4 }
        );
    }
    assert!(h.otp.verify(&first, &first_code).await?.is_verified());
    assert!(h.otp.verify(&second, &second_code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn the_same_code_for_another_purpose_or_destination_fails() -> TestResult {
    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    // The purpose byte sits after the 16 random bytes, the destination fingerprint after it.
    let mut other_purpose = <[u8; 33]>::try_from(id.as_bytes())?;
    other_purpose[16] = 4; // password reset instead of sign-in
    let tampered = ChallengeId::from_bytes(other_purpose);
    assert_eq!(tampered.purpose(), Some(Purpose::PasswordReset));
    assert_eq!(
        h.otp.verify(&tampered, &code).await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );

    let mut other_destination = <[u8; 33]>::try_from(id.as_bytes())?;
    other_destination[24] ^= 1;
    let tampered = ChallengeId::from_bytes(other_destination);
    assert_eq!(
        h.otp.verify(&tampered, &code).await?,
        VerifyOutcome::Mismatch { attempts_left: 3 }
    );

    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn caller_context_is_bound_into_the_code() -> TestResult {
    let h = Harness::new();
    let request = StartRequest::sms(jp_mobile(), Purpose::TransactionApproval)
        .context(b"amount=120.00 EUR;payee=ACME".to_vec());
    let (id, code) = h.start_request(request).await;
    assert_eq!(
        h.otp
            .verify_with_context(&id, &code, b"amount=9999.00 EUR;payee=EVIL")
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::Mismatch { attempts_left: 3 }
    );
    assert!(
        h.otp
            .verify_with_context(&id, &code, b"amount=120.00 EUR;payee=ACME")
            .await?
            .is_verified()
    );
    Ok(())
}

#[tokio::test]
async fn rotated_keys_verify_until_removed() -> TestResult {
    let store = MemoryStore::new();
    let stub = StubProvider::new();
    let service = |ring: KeyRing| {
        OtpService::builder()
            .key_ring(ring)
            .provider(stub.clone())
            .store(store.clone())
            .limits(phone_otp::Limits::danger_none())
            .build()
    };
    let before = service(KeyRing::new(key(1, 1)))?;
    let to = jp_mobile();
    let old_a = before
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await?;
    let code_a = stub.last_code_for(&to).unwrap();
    let old_b = before
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await?;
    let code_b = stub.last_code_for(&to).unwrap();

    // Rotation: key 2 issues, key 1 still verifies.
    let rotated = service(KeyRing::new(key(2, 2)).with_previous(key(1, 1))?)?;
    use secrecy::ExposeSecret;
    assert!(
        rotated
            .verify(&old_a.challenge_id, code_a.expose_secret())
            .await?
            .is_verified()
    );
    let fresh = rotated
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await?;
    let fresh_code = stub.last_code_for(&to).unwrap();

    // Key 1 removed: its codes stop verifying; key 2's still do.
    let retired = KeyRing::new(key(2, 2))
        .with_previous(key(1, 1))?
        .without(phone_otp::KeyId(1))?;
    let retired = service(retired)?;
    assert_eq!(
        retired
            .verify(&old_b.challenge_id, code_b.expose_secret())
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    assert!(
        retired
            .verify(&fresh.challenge_id, fresh_code.expose_secret())
            .await?
            .is_verified()
    );
    Ok(())
}

#[test]
fn key_ring_refuses_short_keys_duplicates_and_removing_the_primary() {
    use phone_otp::{HmacKey, KeyError, KeyId};
    use secrecy::SecretSlice;
    let short = HmacKey::new(1, &SecretSlice::from(vec![1u8; 31]));
    assert_eq!(short.unwrap_err(), KeyError::TooShort { length: 31 });
    let ring = KeyRing::new(key(1, 1));
    assert_eq!(
        ring.clone().with_previous(key(1, 2)).unwrap_err(),
        KeyError::DuplicateId(1)
    );
    assert_eq!(
        ring.clone().without(KeyId(1)).unwrap_err(),
        KeyError::RemovingPrimary(1)
    );
    let full = ring
        .with_previous(key(2, 2))
        .and_then(|r| r.with_previous(key(3, 3)))
        .and_then(|r| r.with_previous(key(4, 4)))
        .unwrap();
    assert_eq!(
        full.with_previous(key(5, 5)).unwrap_err(),
        KeyError::TooManyKeys
    );
}

/// Providers are told a reference derived one way from the id, never its store key: a
/// reader of provider logs could otherwise forge ids that spend the challenge's attempts.
#[tokio::test]
async fn providers_never_see_the_challenge_store_key() -> TestResult {
    let h = Harness::unlimited();
    let (id, _) = h.start(&jp_mobile()).await;
    let first = h
        .stub
        .last_message_to(&jp_mobile())
        .unwrap()
        .reference()
        .to_owned();
    h.clock.advance(std::time::Duration::from_secs(1));
    h.otp.resend(&id).await?;
    let second = h
        .stub
        .last_message_to(&jp_mobile())
        .unwrap()
        .reference()
        .to_owned();
    let key_hex = id.store_key_hex();
    for reference in [&first, &second] {
        // No 8-character window of the store key (32 bits) appears in it.
        for window in key_hex.as_bytes().windows(8) {
            let window = std::str::from_utf8(window)?;
            assert!(
                !reference.contains(window),
                "{reference} shows {window} of {key_hex}"
            );
        }
        assert!(!reference.contains(&id.to_string()));
    }
    // One challenge's sends share the derived part and differ per send.
    let (stem, _) = first.split_once('-').unwrap();
    assert_eq!(stem.len(), 24);
    assert!(second.starts_with(stem));
    assert_ne!(first, second);
    Ok(())
}

/// Users paste codes with spaces or hyphens and Japanese input methods type full-width
/// digits: those verify, where they used to cost an attempt.
#[tokio::test]
async fn typed_and_pasted_forms_of_the_code_verify() -> TestResult {
    let h = Harness::unlimited();
    fn full_width(code: &str) -> String {
        code.chars()
            .map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap())
            .collect()
    }
    let forms: [fn(&str) -> String; 4] = [
        |code| format!("{} {}", &code[..3], &code[3..]),
        |code| format!("{}-{}\n", &code[..3], &code[3..]),
        full_width,
        |code| format!(" {}\u{3000}{} ", full_width(&code[..3]), &code[3..]),
    ];
    for form in forms {
        let (id, code) = h.start(&jp_mobile()).await;
        let typed = form(&code);
        assert!(h.otp.verify(&id, &typed).await?.is_verified(), "{typed:?}");
    }
    // A wrong code in any of those forms is still wrong, and a letter makes it malformed.
    let (id, code) = h.start(&jp_mobile()).await;
    let wrong_spaced = format!("{} {}", &wrong(&code)[..3], &wrong(&code)[3..]);
    assert_eq!(
        h.otp.verify(&id, &wrong_spaced).await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    assert_eq!(
        h.otp.verify(&id, &format!("{}x", &code[..5])).await?,
        VerifyOutcome::Mismatch { attempts_left: 3 }
    );
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}
