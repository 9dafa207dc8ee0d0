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
