//! `verify` through `RedisStore` at 1 and 64 concurrent tasks (wrong code: the full
//! mismatch path). `scripts/bench-redis.sh` starts Redis, runs this bench and
//! `redis-benchmark` with EVALSHA of the same check script on the same server.
//!
//! Needs `REDIS_URL`; without it the bench says so and measures nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phone_otp::{
    ChallengeId, HmacKey, KeyRing, Limits, OtpService, PhoneNumber, Purpose, RedisStore,
    StartRequest, StubProvider,
};
use secrecy::SecretSlice;

fn benches(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL not set: run scripts/bench-redis.sh");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (otp, id) = rt.block_on(async {
        let store = RedisStore::connect(&url, "bench:").await.unwrap();
        let otp = OtpService::builder()
            .key_ring(KeyRing::new(
                HmacKey::new(1, &SecretSlice::from(vec![1u8; 32])).unwrap(),
            ))
            .provider(StubProvider::new())
            .store(store)
            .limits(Limits::danger_none())
            .build()
            .unwrap();
        let to = PhoneNumber::parse("+819012345678").unwrap();
        let started = otp
            .start(StartRequest::sms(to, Purpose::SignIn))
            .await
            .unwrap();
        // Enough attempts that every timed verify takes the full mismatch path.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("bench:c:{{{}}}", started.challenge_id.store_key_hex());
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("att")
            .arg(1_000_000_000u64)
            .query_async(&mut admin)
            .await
            .unwrap();
        println!("bench challenge key: {key}");
        (otp, started.challenge_id)
    });

    let mut group = c.benchmark_group("redis_verify");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for tasks in [1usize, 64] {
        group.bench_function(format!("wrong_code/{tasks}_tasks"), |b| {
            b.iter_custom(|iters| {
                let per_task = (iters as usize).div_ceil(tasks);
                let start = Instant::now();
                rt.block_on(async {
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let otp = otp.clone();
                            let id: ChallengeId = id;
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    otp.verify(&id, "000000").await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
                // Per verify, over all tasks.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * tasks) as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(redis_bench, benches);
criterion_main!(redis_bench);
