//! Model-based test: random sequences of starts, resends, right and wrong codes, clock
//! steps and sweeps drive an `OtpService` over a real store, and every outcome is checked
//! against a small reference model of what the crate promises (single use, expiry, the
//! attempt budget, the newest three codes, the per-account failure cap). Runs on
//! `MemoryStore`, and on `RedisStore` when `REDIS_URL` is set.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use phone_otp::{
    ChallengeId, Clock, FailureCap, Limits, MemoryStore, NotPending, OtpStore, Purpose,
    ResendError, StartError, StartRequest, VerifyOutcome,
};
use proptest::prelude::*;

use crate::support::{Harness, jp_mobile_n, last_code};

const LIFETIME_MS: u64 = 300_000;
const RETAIN_MS: u64 = 600_000;
const CAP: u32 = 7;
const FORGET_MS: u64 = 600_000;

#[derive(Debug, Clone)]
enum Op {
    Start {
        number: u32,
        subject: Option<u8>,
    },
    Resend {
        challenge: usize,
    },
    VerifyRight {
        challenge: usize,
        which: usize,
    },
    VerifyWrong {
        challenge: usize,
    },
    Advance {
        seconds: u64,
    },
    Sweep,
    /// Reads an account's failure count, which otherwise shows only at the cap.
    Failures {
        number: u32,
        subject: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Few accounts, so wrong codes pile up on them and the failure cap is reached.
        2 => (0u32..2, proptest::option::of(0u8..1))
            .prop_map(|(number, subject)| Op::Start { number, subject }),
        3 => any::<usize>().prop_map(|challenge| Op::Resend { challenge }),
        2 => (any::<usize>(), any::<usize>())
            .prop_map(|(challenge, which)| Op::VerifyRight { challenge, which }),
        5 => any::<usize>().prop_map(|challenge| Op::VerifyWrong { challenge }),
        // Mostly small steps; some land right at the code lifetime (300 s) or the
        // failure-forgetting time (600 s), some past the retention window.
        2 => prop_oneof![
            4 => 0u64..5,
            2 => 60u64..400,
            1 => 295u64..305,
            1 => 595u64..605,
            1 => 600u64..1300,
        ]
        .prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Sweep),
        2 => (0u32..2, proptest::option::of(0u8..1))
            .prop_map(|(number, subject)| Op::Failures { number, subject }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Account {
    Subject(u8),
    Number(u32),
}

#[derive(Debug)]
struct Challenge {
    id: ChallengeId,
    number: u32,
    account: Account,
    subject: Option<u8>,
    /// Live codes, newest last (at most three).
    codes: Vec<String>,
    attempts_left: u8,
    expires_at: u64,
    used: bool,
}

#[derive(Default)]
struct Model {
    now: u64,
    challenges: Vec<Challenge>,
    /// Consecutive failures and when they are forgotten.
    failures: HashMap<Account, (u32, u64)>,
}

impl Model {
    fn failures(&self, account: Account) -> u32 {
        match self.failures.get(&account) {
            Some(&(count, forget_at)) if forget_at > self.now => count,
            _ => 0,
        }
    }

    fn locked(&self, account: Account) -> bool {
        self.failures(account) >= CAP
    }

    /// Why challenge `c` cannot take or check a code, as the stores check it, in order.
    fn not_pending(&self, c: usize) -> Option<NotPending> {
        let challenge = &self.challenges[c];
        if challenge.used {
            Some(NotPending::AlreadyUsed)
        } else if self.now >= challenge.expires_at {
            Some(NotPending::Expired)
        } else if challenge.attempts_left == 0 {
            Some(NotPending::AttemptsExhausted)
        } else {
            None
        }
    }

    /// Past its retention a record may be swept (memory) or not yet (Redis expires it on
    /// its own clock): then `NotFound` is as right as the reason.
    fn may_be_gone(&self, c: usize) -> bool {
        self.now >= self.challenges[c].expires_at + RETAIN_MS
    }
}

async fn run(store: Arc<dyn OtpStore>, memory: Option<MemoryStore>, ops: Vec<Op>) {
    let h = Harness::with(|b| {
        b.store(Arc::clone(&store))
            .limits(Limits::danger_none())
            .failure_cap(FailureCap::new(
                NonZeroU32::new(CAP).unwrap(),
                Duration::from_millis(FORGET_MS),
            ))
    });
    let mut model = Model {
        now: h.clock.now().as_millis(),
        ..Model::default()
    };
    for (step, op) in ops.into_iter().enumerate() {
        // Mostly one of the newest three challenges, so resends and wrong codes pile up
        // on the same ones; sometimes any.
        let pick = |index: usize, model: &Model| {
            let len = model.challenges.len();
            if index.is_multiple_of(4) {
                (index / 4) % len
            } else {
                len - 1 - (index / 4) % len.min(3)
            }
        };
        match op {
            Op::Start { number, subject } => {
                let to = jp_mobile_n(number);
                let mut request = StartRequest::sms(to.clone(), Purpose::SignIn);
                if let Some(subject) = subject {
                    request = request.subject(format!("s{subject}"));
                }
                let account = subject.map_or(Account::Number(number), Account::Subject);
                let result = h.otp.start(request).await;
                if model.locked(account) {
                    assert!(
                        matches!(result, Err(StartError::AccountLocked)),
                        "step {step}: {result:?}"
                    );
                    continue;
                }
                let started = result.unwrap_or_else(|e| panic!("step {step}: start: {e:?}"));
                model.challenges.push(Challenge {
                    id: started.challenge_id,
                    number,
                    account,
                    subject,
                    codes: vec![last_code(&h.stub, &to)],
                    attempts_left: 5,
                    expires_at: model.now + LIFETIME_MS,
                    used: false,
                });
            }
            Op::Resend { challenge } if !model.challenges.is_empty() => {
                let c = pick(challenge, &model);
                let result = h.otp.resend(&model.challenges[c].id).await;
                match (model.not_pending(c), result) {
                    (Some(_), Err(ResendError::NotPending(NotPending::NotFound)))
                        if model.may_be_gone(c) => {}
                    (Some(reason), result) => assert!(
                        matches!(result, Err(ResendError::NotPending(r)) if r == reason),
                        "step {step}: expected {reason:?}, got {result:?}"
                    ),
                    (None, result) if model.locked(model.challenges[c].account) => assert!(
                        matches!(result, Err(ResendError::AccountLocked)),
                        "step {step}: {result:?}"
                    ),
                    (None, result) => {
                        result.unwrap_or_else(|e| panic!("step {step}: resend: {e:?}"));
                        let to = jp_mobile_n(model.challenges[c].number);
                        let codes = &mut model.challenges[c].codes;
                        codes.push(last_code(&h.stub, &to));
                        if codes.len() > 3 {
                            codes.remove(0);
                        }
                    }
                }
            }
            Op::VerifyRight { challenge, which } if !model.challenges.is_empty() => {
                let c = pick(challenge, &model);
                let code = {
                    let codes = &model.challenges[c].codes;
                    codes[which % codes.len()].clone()
                };
                let outcome = h.otp.verify(&model.challenges[c].id, &code).await.unwrap();
                check_verify(&mut model, c, outcome, true, step);
            }
            Op::VerifyWrong { challenge } if !model.challenges.is_empty() => {
                let c = pick(challenge, &model);
                let wrong = (0..1_000_000)
                    .map(|n| format!("{n:06}"))
                    .find(|candidate| !model.challenges[c].codes.contains(candidate))
                    .unwrap();
                let outcome = h.otp.verify(&model.challenges[c].id, &wrong).await.unwrap();
                check_verify(&mut model, c, outcome, false, step);
            }
            Op::Advance { seconds } => {
                h.clock.advance(Duration::from_secs(seconds));
                model.now += seconds * 1000;
            }
            Op::Failures { number, subject } => {
                let to = jp_mobile_n(number);
                let subject_name = subject.map(|s| format!("s{s}"));
                let account = match &subject_name {
                    Some(subject) => phone_otp::Account::Subject {
                        tenant: None,
                        subject,
                    },
                    None => phone_otp::Account::Number(&to),
                };
                let expected =
                    model.failures(subject.map_or(Account::Number(number), Account::Subject));
                assert_eq!(
                    h.otp.failures(account).await.unwrap(),
                    expected,
                    "step {step}"
                );
            }
            Op::Sweep => {
                if let Some(memory) = &memory {
                    memory.sweep(h.clock.now());
                }
            }
            _ => {}
        }
    }
}

fn check_verify(model: &mut Model, c: usize, outcome: VerifyOutcome, right: bool, step: usize) {
    let account = model.challenges[c].account;
    if let Some(reason) = model.not_pending(c) {
        if outcome == VerifyOutcome::NotFound && model.may_be_gone(c) {
            return;
        }
        assert_eq!(outcome, VerifyOutcome::from(reason), "step {step}");
        return;
    }
    if model.locked(account) {
        assert_eq!(outcome, VerifyOutcome::AccountLocked, "step {step}");
        return;
    }
    if right {
        let subject = model.challenges[c].subject.map(|s| format!("s{s}"));
        assert_eq!(
            outcome,
            VerifyOutcome::Verified {
                purpose: Purpose::SignIn,
                subject
            },
            "step {step}"
        );
        model.challenges[c].used = true;
        model.failures.remove(&account);
    } else {
        let challenge = &mut model.challenges[c];
        challenge.attempts_left -= 1;
        assert_eq!(
            outcome,
            VerifyOutcome::Mismatch {
                attempts_left: challenge.attempts_left
            },
            "step {step}"
        );
        let count = model.failures(account) + 1;
        // Forgotten at the first whole second after now + forget-after.
        let forget_at = (model.now + FORGET_MS).div_ceil(1000) * 1000;
        model.failures.insert(account, (count, forget_at));
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..120)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn memory_store_matches_the_model(ops in ops()) {
        let memory = MemoryStore::new();
        runtime().block_on(run(Arc::new(memory.clone()), Some(memory), ops));
    }
}

/// Runs `ops` on the store `store` gives, if that backend is available (it says loudly
/// when it is not).
#[cfg(feature = "redis")]
fn run_on<F: std::future::Future<Output = Option<Arc<dyn OtpStore>>>>(
    store: impl FnOnce() -> F,
    ops: Vec<Op>,
) {
    runtime().block_on(async {
        if let Some(store) = store().await {
            run(store, None, ops).await;
        }
    });
}

#[cfg(feature = "redis")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn redis_store_matches_the_model(ops in ops()) {
        run_on(crate::redis::with_redis::store, ops);
    }
}

#[cfg(feature = "redis-cluster")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn redis_cluster_store_matches_the_model(ops in ops()) {
        run_on(crate::redis_cluster::with_cluster::store, ops);
    }
}
