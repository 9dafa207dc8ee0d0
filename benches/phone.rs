//! `PhoneNumber::parse` (the `phonenumber` crate's parse, validity and number type, plus
//! this crate's checks): one country's numbers in E.164 and in national form (the latter
//! parses twice: the E.164 round trip), and E.164 numbers of every region in turn, which
//! is what an SMS service sending worldwide sees.
//!
//! `cargo bench --bench phone`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use phone_otp::PhoneNumber;

/// Each region's example mobile number from the metadata, in E.164, if it parses.
fn worldwide() -> Vec<String> {
    let mut numbers: Vec<String> = phonenumber::metadata::DATABASE
        .iter()
        .filter_map(|meta| {
            let example = meta.descriptors().mobile()?.example()?;
            let e164 = format!("+{}{}", meta.country_code(), example);
            PhoneNumber::parse(&e164).ok().map(|_| e164)
        })
        .collect();
    numbers.sort();
    numbers.dedup();
    numbers
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("phone");
    group.measurement_time(Duration::from_secs(5));
    let jp: Vec<String> = (0..1000)
        .map(|i| format!("+8190{:08}", 12_340_000 + i))
        .collect();
    let mut at = 0;
    group.bench_function("E.164, one country (JP mobiles)", |b| {
        b.iter(|| {
            at = (at + 1) % jp.len();
            black_box(PhoneNumber::parse(&jp[at]).unwrap())
        });
    });
    let national: Vec<String> = (0..1000)
        .map(|i| format!("98{:08}", 10_000_000 + i))
        .collect();
    group.bench_function("national, one country (IN mobiles, parsed twice)", |b| {
        b.iter(|| {
            at = (at + 1) % national.len();
            black_box(PhoneNumber::parse_with_region(&national[at], "IN").unwrap())
        });
    });
    let world = worldwide();
    println!("worldwide: {} regions' example mobile numbers", world.len());
    group.bench_function("E.164, every region in turn", |b| {
        b.iter(|| {
            at = (at + 1) % world.len();
            black_box(PhoneNumber::parse(&world[at]).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
