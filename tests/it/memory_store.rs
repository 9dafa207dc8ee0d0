//! What is particular to `MemoryStore`: ids carry a slot number, so stale, forged and
//! never-reserved ids must all find nothing, and reservations must not leak.

use std::time::Duration;

use phone_otp::store::ChallengeRecord;
use phone_otp::{
    ChallengeId, Clock, Digest, FailureCap, KeyId, ManualClock, MemoryStore, OtpStore, Purpose,
    StartRequest, StoreError, Timestamp, VerifyOutcome,
};

use crate::support::{Harness, TestResult, jp_mobile, jp_mobile_n, record};

/// One shard, so a freed slot is the next one handed out.
fn single_shard() -> (MemoryStore, Harness) {
    let store = MemoryStore::with_shards(1);
    let h = Harness::with_store(store.clone());
    (store, h)
}

fn with_key_byte(id: &ChallengeId, index: usize, value: u8) -> ChallengeId {
    let mut bytes: [u8; 33] = id.as_bytes().try_into().expect("33 bytes");
    bytes[index] = value;
    ChallengeId::from_bytes(bytes)
}

/// A record keyed `key`, expiring `expires_in` after `now`, whose digest is `[4; 32]`
/// under key 1.
fn keyed_record(key: [u8; 16], expires_in: Duration, now: Timestamp) -> ChallengeRecord {
    let mut bytes = [0u8; 33];
    bytes[..16].copy_from_slice(&key);
    bytes[16] = 1;
    record(
        ChallengeId::from_bytes(bytes),
        4,
        now.saturating_add(expires_in),
    )
}

#[tokio::test]
async fn an_id_whose_slot_was_reused_finds_nothing() -> TestResult {
    let (store, h) = single_shard();
    let (old, old_code) = h.start(&jp_mobile_n(1)).await;
    // Past expiry and the retention window: the sweep frees the slot.
    h.clock.advance(Duration::from_secs(3600));
    store.sweep(h.clock.now());
    assert_eq!(store.len(), 0);

    let (new, new_code) = h.start(&jp_mobile_n(2)).await;
    assert_eq!(
        old.as_bytes()[..4],
        new.as_bytes()[..4],
        "the new challenge reuses the freed slot"
    );
    assert_eq!(
        h.otp.verify(&old, &old_code).await?,
        VerifyOutcome::NotFound
    );
    assert_eq!(
        h.otp.verify(&old, &new_code).await?,
        VerifyOutcome::NotFound
    );
    assert!(h.otp.verify(&new, &new_code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn a_forged_id_naming_a_live_slot_finds_nothing_and_costs_it_no_attempt() -> TestResult {
    let (_store, h) = single_shard();
    let (id, code) = h.start(&jp_mobile()).await;
    // Same slot number, one random byte changed.
    let forged = with_key_byte(&id, 9, id.as_bytes()[9] ^ 1);
    for _ in 0..10 {
        assert_eq!(h.otp.verify(&forged, &code).await?, VerifyOutcome::NotFound);
    }
    // A slot number far past anything allocated.
    let far = with_key_byte(&id, 3, 0xFF);
    assert_eq!(h.otp.verify(&far, &code).await?, VerifyOutcome::NotFound);
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn insert_refuses_a_key_the_store_did_not_reserve() -> TestResult {
    let store = MemoryStore::new();
    let clock = ManualClock::new();
    let now = clock.now();
    let made_up = keyed_record([0x42; 16], Duration::from_secs(60), now);
    assert!(matches!(
        store.insert(made_up, now).await,
        Err(StoreError::UnreservedKey)
    ));

    let key = store.reserve_key([0x42; 16], now)?;
    assert_eq!(key[4..], [0x42; 12], "only the slot number is written");
    store
        .insert(keyed_record(key, Duration::from_secs(60), now), now)
        .await?;
    assert_eq!(store.len(), 1);
    assert!(matches!(
        store
            .insert(keyed_record(key, Duration::from_secs(60), now), now)
            .await,
        Err(StoreError::Duplicate)
    ));
    Ok(())
}

#[tokio::test]
async fn a_reservation_without_an_insert_is_swept() -> TestResult {
    let store = MemoryStore::with_shards(1);
    let clock = ManualClock::new();
    let abandoned = store.reserve_key([0x11; 16], clock.now())?;
    assert_eq!(store.len(), 0, "a reservation is not a challenge");

    clock.advance(Duration::from_secs(3600));
    store.sweep(clock.now());
    let now = clock.now();
    assert!(matches!(
        store
            .insert(keyed_record(abandoned, Duration::from_secs(60), now), now)
            .await,
        Err(StoreError::UnreservedKey)
    ));
    // The slot went back to the free list: the next reservation gets it.
    let next = store.reserve_key([0x22; 16], now)?;
    assert_eq!(next[..4], abandoned[..4]);
    Ok(())
}

/// The service verifies through `check_prepared`; `check` is the same step for callers that
/// hold their candidates already, and must agree with it.
#[tokio::test]
async fn check_with_ready_candidates_counts_attempts_and_consumes() -> TestResult {
    let store = MemoryStore::new();
    let clock = ManualClock::new();
    let now = clock.now();
    let key = store.reserve_key([0x33; 16], now)?;
    let record = keyed_record(key, Duration::from_secs(60), now);
    let id = record.id;
    store.insert(record, now).await?;

    let wrong = Digest::from_parts(KeyId(1), [5; 32]);
    let right = Digest::from_parts(KeyId(1), [4; 32]);
    let other_key = Digest::from_parts(KeyId(2), [4; 32]);
    assert_eq!(
        store
            .check(&id, None, &[wrong], FailureCap::default(), now)
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    assert_eq!(
        store
            .check(&id, None, &[other_key], FailureCap::default(), now)
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 3 },
        "same bytes under another key id do not match"
    );
    assert_eq!(
        store
            .check(&id, None, &[], FailureCap::default(), now)
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 2 },
        "no candidates is a wrong attempt"
    );
    assert!(
        store
            .check(&id, None, &[wrong, right], FailureCap::default(), now)
            .await?
            .is_verified()
    );
    assert_eq!(
        store
            .check(&id, None, &[right], FailureCap::default(), now)
            .await?,
        VerifyOutcome::AlreadyUsed
    );
    Ok(())
}

/// Short subjects live inside the slot and long ones on the heap; both must come back
/// byte for byte, multi-byte characters included.
#[tokio::test]
async fn subjects_of_every_length_come_back_from_verify_and_pending() -> TestResult {
    let store = MemoryStore::new();
    let h = Harness::with_store(store.clone());
    let subjects = [
        String::new(),
        "u".repeat(38),
        "u".repeat(39),
        "利用者-".repeat(13),
        "x".repeat(phone_otp::MAX_LABEL_BYTES),
    ];
    for (n, subject) in (0u32..).zip(subjects) {
        let request = StartRequest::sms(jp_mobile_n(n), Purpose::SignIn).subject(subject.clone());
        let (id, code) = h.start_request(request).await;
        let pending = store
            .pending(&id, None, h.clock.now())
            .await?
            .expect("live");
        assert_eq!(pending.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(
            h.otp.verify(&id, &code).await?,
            VerifyOutcome::Verified {
                purpose: Purpose::SignIn,
                subject: Some(subject),
            }
        );
    }
    Ok(())
}

/// A shard whose every slot is in use refuses further reservations with `Full`, and takes
/// them again once a slot is freed.
#[tokio::test]
async fn a_full_shard_refuses_clearly_until_a_slot_is_freed() -> TestResult {
    // 256 shards: each addresses 16,384 / 256 chunks of 512 slots.
    let store = MemoryStore::with_shards(256);
    let clock = ManualClock::new();
    let now = clock.now();
    let per_shard = 16_384 / 256 * 512;
    // Key byte 15 picks the shard: every reservation below lands in shard 0.
    for _ in 0..per_shard {
        store.reserve_key([0; 16], now)?;
    }
    let error = store
        .reserve_key([0; 16], now)
        .expect_err("the shard is full");
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(error.to_string().starts_with("store is full"), "{error}");
    // Other shards still have room.
    let mut elsewhere = [0; 16];
    elsewhere[15] = 1;
    store.reserve_key(elsewhere, now)?;

    // Reservations without an insert are swept, which frees the whole shard.
    clock.advance(Duration::from_secs(3600));
    store.sweep(clock.now());
    let again = store.reserve_key([0; 16], clock.now())?;
    assert!(u32::from_le_bytes(again[..4].try_into()?) < per_shard);
    Ok(())
}

/// Starts (shard lock, then slot lock), verifies (slot lock only) and sweeps (shard lock,
/// then every slot lock) racing on two shards: no deadlock, every challenge verifies
/// exactly once, and the count of held challenges ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starts_verifies_and_sweeps_race_without_losing_a_challenge() -> TestResult {
    const TASKS: u32 = 8;
    const PER_TASK: u32 = 200;
    let store = MemoryStore::with_shards(2);
    let h = std::sync::Arc::new(Harness::with_store(store.clone()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweeper = {
        let (store, clock, done) = (store.clone(), h.clock.clone(), done.clone());
        tokio::spawn(async move {
            let mut sweeps = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // Nothing has expired, so a sweep must free nothing.
                store.sweep(clock.now());
                sweeps += 1;
                tokio::task::yield_now().await;
            }
            sweeps
        })
    };
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut verified = 0u32;
                for i in 0..PER_TASK {
                    let (id, code) = h.start(&jp_mobile_n(task * PER_TASK + i)).await;
                    let first = h.otp.verify(&id, &crate::support::wrong(&code)).await?;
                    assert_eq!(first, VerifyOutcome::Mismatch { attempts_left: 4 });
                    if h.otp.verify(&id, &code).await?.is_verified() {
                        verified += 1;
                    }
                    assert_eq!(h.otp.verify(&id, &code).await?, VerifyOutcome::AlreadyUsed);
                }
                Ok::<_, phone_otp::VerifyError>(verified)
            })
        })
        .collect();
    let mut verified = 0;
    for worker in workers {
        verified += worker.await??;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(sweeper.await? > 0);
    assert_eq!(verified, TASKS * PER_TASK);
    assert_eq!(store.len(), (TASKS * PER_TASK) as usize);
    Ok(())
}
