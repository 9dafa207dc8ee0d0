//! Exactly one Redis round trip per verify, counted with `INFO commandstats`.
//!
//! A binary of its own with its own `redis-server`: command statistics are server-wide, so
//! no other test may talk to this server while it counts.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/redis_server.rs"]
mod redis_server;
#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;

use phone_otp::{Purpose, RedisStore, StartRequest};
use secrecy::ExposeSecret;

use support::{Harness, TestResult, jp_mobile, wrong};

/// Calls per command since the last `CONFIG RESETSTAT`, sorted, ignoring the counting
/// itself. Redis counts the commands a script runs too, so a verify shows its one `evalsha`
/// plus the script's own `hmget`/`hset`/`hincrby`; any extra client round trip (a separate
/// read or write of any command) would change these exact counts.
async fn command_calls(connection: &mut redis::aio::MultiplexedConnection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .filter(|(name, _)| name != "info" && !name.starts_with("config"))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn one_round_trip_per_verify() -> TestResult {
    let Some(server) = redis_server::RedisServer::start() else {
        return Ok(());
    };
    let store = RedisStore::connect(&server.url(), "rt:").await?;
    let h = Harness::with_store(Arc::new(store));
    let client = redis::Client::open(server.url())?;
    let mut admin = client.get_multiplexed_async_connection().await?;

    // Warm up: the first call of each script loads it (EVALSHA, NOSCRIPT, then EVAL).
    let (id, code) = h.start(&jp_mobile()).await;
    h.otp.verify(&id, &wrong(&code)).await?;

    let expected = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs
            .iter()
            .map(|(name, calls)| ((*name).to_owned(), *calls))
            .collect()
    };
    let cases = [
        // The script also counts the account's failure (get, incr, pexpire) or clears it
        // (del) in the same step.
        (
            "wrong code",
            wrong(&code),
            expected(&[
                ("evalsha", 1),
                ("hincrby", 1),
                ("hmget", 3),
                ("hset", 1),
                ("pexpire", 1),
            ]),
        ),
        (
            "right code",
            code.clone(),
            expected(&[("del", 1), ("evalsha", 1), ("hmget", 3), ("hset", 1)]),
        ),
        (
            "already used",
            code.clone(),
            expected(&[("evalsha", 1), ("hmget", 1)]),
        ),
    ];
    for (label, input, want) in cases {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin)
            .await?;
        h.otp.verify(&id, &input).await?;
        assert_eq!(command_calls(&mut admin).await, want, "{label}");
    }

    // A start (limits off) is one script that reads the account's failure count (its
    // `hmget`), then the insert script: two round trips (with limits on, still two: the
    // first script decides them too).
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await?;
    h.otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await?;
    assert_eq!(
        command_calls(&mut admin).await,
        expected(&[
            ("evalsha", 2),
            ("exists", 1),
            ("hmget", 1),
            ("hset", 1),
            ("pexpire", 1)
        ])
    );
    assert!(
        h.stub
            .last_code_for(&jp_mobile())
            .unwrap()
            .expose_secret()
            .len()
            == 6
    );

    // Every key is under the prefix; a challenge's key carries its account as the hash
    // tag, then its store key.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut admin).await?;
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let (tag, store_key) = key
            .strip_prefix("rt:c:{")
            .and_then(|rest| rest.split_once("}:"))
            .expect("a challenge key");
        assert_eq!((tag.len(), store_key.len()), (16, 32), "{key}");
    }
    Ok(())
}
