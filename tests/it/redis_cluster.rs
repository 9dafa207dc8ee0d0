//! The store contract on a real three-primary Redis Cluster, through a cluster connection:
//! proves that every script's keys share one hash slot (a script whose keys spanned slots
//! would fail with CROSSSLOT) and that scripts load on whichever primary owns a key.
//!
//! `./scripts/test.sh` starts the cluster and sets `REDIS_CLUSTER_NODES`. Without it these
//! tests say loudly that they skipped; with `CI` set a missing cluster fails the run.

#[cfg(not(feature = "redis-cluster"))]
#[test]
fn redis_cluster_tests_need_the_redis_cluster_feature() {
    crate::support::skip_loudly(
        "built without --features redis-cluster (./scripts/test.sh builds with it and starts a cluster)",
    );
}

#[cfg(feature = "redis-cluster")]
pub(crate) mod with_cluster {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use phone_otp::{OtpStore, RedisStore};

    use crate::store_contract;
    use crate::support::{TestResult, skip_loudly};

    /// A store on the suite's cluster under a fresh prefix.
    pub(crate) async fn store() -> Option<Arc<dyn OtpStore>> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let Some(nodes) = std::env::var("REDIS_CLUSTER_NODES").ok() else {
            skip_loudly("REDIS_CLUSTER_NODES is not set (./scripts/test.sh starts a cluster)");
            return None;
        };
        let nodes: Vec<&str> = nodes.split(',').collect();
        let prefix = format!(
            "cluster:{}:{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Some(Arc::new(
            RedisStore::connect_cluster(&nodes, &prefix)
                .await
                .expect("a cluster at REDIS_CLUSTER_NODES"),
        ))
    }

    store_contract::contract_tests!(store);

    /// `cmdstat_evalsha` calls so far on `node`.
    async fn script_calls(node: &str) -> Result<u64, redis::RedisError> {
        let client = redis::Client::open(node)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0))
    }

    /// Limits spread over the cluster: 3,000 starts for distinct numbers, users and
    /// addresses (the default limits: four keys each) leave each primary between 25% and
    /// 42% of the limit keys and of the script calls (other tests share the cluster, so
    /// the calls are a little noisy; the keys are exact).
    #[tokio::test]
    async fn limit_work_spreads_over_the_primaries() -> TestResult {
        let Some(nodes) = std::env::var("REDIS_CLUSTER_NODES").ok() else {
            skip_loudly("REDIS_CLUSTER_NODES is not set (./scripts/test.sh starts a cluster)");
            return Ok(());
        };
        let nodes: Vec<&str> = nodes.split(',').collect();
        let prefix = format!("spread:{}:", std::process::id());
        let store: Arc<dyn OtpStore> =
            Arc::new(RedisStore::connect_cluster(&nodes, &prefix).await?);
        let h =
            crate::support::Harness::with(|b| b.store(store).limits(phone_otp::Limits::default()));
        let mut before = Vec::new();
        for node in &nodes {
            before.push(script_calls(node).await?);
        }
        let starts = 3_000u32;
        let tasks: Vec<_> = (0..8u32)
            .map(|task| {
                let otp = h.otp.clone();
                tokio::spawn(async move {
                    for i in (task..starts).step_by(8) {
                        let request = phone_otp::StartRequest::sms(
                            crate::support::jp_mobile_n(100_000 + i),
                            phone_otp::Purpose::SignIn,
                        )
                        .subject(format!("spread-user-{i}"))
                        .client_ip(std::net::IpAddr::from(
                            (0x0a00_0000u32 + (i << 8)).to_be_bytes(),
                        ));
                        otp.start(request).await.expect("every start is sent");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        let (mut keys, mut calls) = (Vec::new(), Vec::new());
        for (node, before) in nodes.iter().zip(&before) {
            let client = redis::Client::open(*node)?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            let limit_keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}l:*"))
                .query_async(&mut connection)
                .await?;
            keys.push(limit_keys.len() as f64);
            calls.push((script_calls(node).await? - before) as f64);
        }
        let share = |counts: &[f64]| -> Vec<f64> {
            let total: f64 = counts.iter().sum();
            counts.iter().map(|c| c / total).collect()
        };
        assert_eq!(keys.iter().sum::<f64>(), f64::from(4 * starts), "{keys:?}");
        for (what, shares) in [
            ("limit keys", share(&keys)),
            ("script calls", share(&calls)),
        ] {
            eprintln!("{what} per primary: {shares:.3?}");
            assert!(
                shares.iter().all(|s| (0.25..=0.42).contains(s)),
                "{what} per primary: {shares:?}"
            );
        }
        Ok(())
    }

    /// The cluster really spreads challenges: accounts land on more than one primary.
    #[tokio::test]
    async fn challenges_of_different_accounts_spread_over_primaries() -> TestResult {
        let Some(nodes) = std::env::var("REDIS_CLUSTER_NODES").ok() else {
            skip_loudly("REDIS_CLUSTER_NODES is not set (./scripts/test.sh starts a cluster)");
            return Ok(());
        };
        let Some(store) = store().await else {
            return Ok(());
        };
        let h = crate::support::Harness::with_store(store);
        for i in 0..30 {
            h.start_request(
                phone_otp::StartRequest::sms(
                    crate::support::jp_mobile_n(i),
                    phone_otp::Purpose::SignIn,
                )
                .subject(format!("spread-{i}")),
            )
            .await;
        }
        let mut primaries_with_keys = 0;
        for node in nodes.split(',') {
            let client = redis::Client::open(node)?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            let size: i64 = redis::cmd("DBSIZE").query_async(&mut connection).await?;
            if size > 0 {
                primaries_with_keys += 1;
            }
        }
        assert!(primaries_with_keys >= 2, "all keys on one node");
        Ok(())
    }

    #[tokio::test]
    async fn probation_on_the_cluster() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let h = crate::support::Harness::with(move |b| {
            b.store(store).limits(crate::limits::listed_japan())
        });
        crate::limits::probation_for_a_country_never_served(&h).await
    }

    #[tokio::test]
    async fn range_probation_in_a_listed_market_on_the_cluster() -> TestResult {
        let Some(store) = store().await else {
            return Ok(());
        };
        let h = crate::support::Harness::with(move |b| {
            b.store(store).limits(crate::limits::listed_japan())
        });
        crate::limits::a_listed_market_keeps_range_probation(&h).await
    }
}
