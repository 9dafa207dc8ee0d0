//! What one start costs, offline: parse the number, the destination policy, the limits,
//! the code and its HMAC, the store, the template, and a provider that does nothing, on
//! `MemoryStore` with the manual clock (one simulated second per start, so no quota is
//! ever reached).
//!
//! - `start/no_limits`: `Limits::danger_none()`, the path with nothing to count;
//! - `start/default_limits`: `Limits::default()` (cooldown, number, user, IP, network);
//! - `start/default_limits_and_guard`: the same with the conversion guard judging every
//!   send at its four levels (allowances large enough that none is refused);
//! - `start/guard_refuses`: sends the guard refuses (an attack's path: nothing is sent).
//!
//! Numbers come from five countries in turn, each start from a new user and address.
//! Compare the ratios of one run: this shared machine drifts between runs.
//!
//! `cargo bench --bench start`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phone_otp::{
    Channel, ConversionGuard, HmacKey, KeyRing, Limits, ManualClock, Message, OtpService,
    PhoneNumber, PhoneProvider, ProviderError, Purpose, Receipt, StartRequest,
};
use secrecy::SecretSlice;
use tokio::runtime::Runtime;

/// Accepts every message and keeps nothing.
#[derive(Debug)]
struct Null;

#[async_trait]
impl PhoneProvider for Null {
    fn name(&self) -> &str {
        "null"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        Ok(Receipt::new("null", "m", message.channel()))
    }
}

fn service(limits: Limits, clock: &ManualClock) -> OtpService {
    let key = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32])).unwrap();
    OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(Null)
        .clock(clock.clone())
        .limits(limits)
        .build()
        .unwrap()
}

/// 100,000 mobile numbers of Japan, the US, Great Britain, Brazil and India, in turn.
fn numbers() -> Vec<String> {
    (0..100_000u64)
        .map(|n| match n % 5 {
            0 => format!("+8190{:08}", n * 7_919 % 100_000_000),
            1 => format!("+1415{}{:06}", 2 + n % 8, n * 7_919 % 1_000_000),
            2 => format!("+4478{:08}", n * 7_919 % 100_000_000),
            3 => format!("+55119{:08}", 90_000_000 + n * 7_919 % 10_000_000),
            _ => format!("+9198{:08}", n * 7_919 % 100_000_000),
        })
        .filter(|text| PhoneNumber::parse(text).is_ok())
        .collect()
}

/// The guard judging every send at its four levels, never refusing one.
fn guard_that_allows() -> ConversionGuard {
    ConversionGuard {
        min_prefix_sends: u32::MAX / 2,
        min_country_sends: u32::MAX / 2,
        probation_sends: u32::MAX / 2,
        range_probation_sends: u32::MAX / 2,
        ..ConversionGuard::default()
    }
}

fn bench_one(c: &mut Criterion, runtime: &Runtime, name: &str, limits: Limits, sent: bool) {
    let clock = ManualClock::new();
    let otp = service(limits, &clock);
    let numbers = numbers();
    let mut n = 0u64;
    let mut group = c.benchmark_group("start");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            clock.advance(Duration::from_secs(1));
            let text = &numbers[(n as usize) % numbers.len()];
            let to = PhoneNumber::parse(text).unwrap();
            let request = StartRequest::sms(to, Purpose::SignIn)
                .subject(format!("user-{n}"))
                .client_ip(IpAddr::V4(Ipv4Addr::from(
                    0x0a00_0000u32 + ((n as u32) << 8),
                )));
            let result = runtime.block_on(otp.start(request));
            assert_eq!(result.is_ok(), sent, "{result:?}");
            black_box(result).ok();
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    PhoneNumber::warm_up();
    bench_one(c, &runtime, "no_limits", Limits::danger_none(), true);
    bench_one(c, &runtime, "default_limits", Limits::default(), true);
    let guarded = Limits {
        conversion_guard: Some(guard_that_allows()),
        ..Limits::default()
    };
    bench_one(c, &runtime, "default_limits_and_guard", guarded, true);
    // The default guard and no verified code: after its allowances, every send refused.
    let refusing = Limits {
        conversion_guard: Some(ConversionGuard {
            min_prefix_sends: 0,
            min_country_sends: 0,
            probation_sends: 0,
            range_probation_sends: 0,
            ..ConversionGuard::default()
        }),
        ..Limits::default()
    };
    bench_one(c, &runtime, "guard_refuses", refusing, false);
}

criterion_group!(start, benches);
criterion_main!(start);
