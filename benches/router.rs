//! Routing overhead: a send through a `Router` with three rules and a chain of three stub
//! providers (the first delivers), against calling the same stub directly.
//!
//! Run with `cargo bench --bench router`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use phone_otp::{Channel, Message, PhoneNumber, PhoneProvider, Router, StubProvider};

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let first = StubProvider::named("first");
    let router = Router::builder()
        .provider(first.clone())
        .provider(StubProvider::named("second"))
        .provider(StubProvider::named("third"))
        .prefix("+8150", Channel::Sms, &["third", "second", "first"])
        .country("JP", Channel::Sms, &["first", "second", "third"])
        .default_chain(Channel::Sms, &["second", "third", "first"])
        .build()
        .unwrap();
    let message = Message::sms(
        PhoneNumber::parse("+819012345678").unwrap(),
        "123456 is your code",
    )
    .with_code("123456");

    let mut group = c.benchmark_group("router");
    group.bench_function("stub_direct", |b| {
        b.iter(|| {
            let receipt = rt.block_on(first.send(&message)).unwrap();
            first.clear();
            receipt
        })
    });
    group.bench_function("router_3_rules_chain_of_3", |b| {
        b.iter(|| {
            let receipt = rt.block_on(router.send(&message)).unwrap();
            first.clear();
            receipt
        })
    });
    group.finish();
}

criterion_group!(router, benches);
criterion_main!(router);
