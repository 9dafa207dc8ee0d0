//! The gateway database, one contract run against SQLite and against a real PostgreSQL
//! (`POSTGRES_URL`, started by ./scripts/test.sh; skipped loudly without it, required
//! under CI).

use phone_otp_gateway::auth::api_key::{KeyKind, NewKey};
use phone_otp_gateway::auth::scope::{Scope, Scopes};
use phone_otp_gateway::db::{Db, KeyRecord};

use crate::support::{TestResult, skip_loudly, unique};

/// A fresh SQLite database file.
pub async fn sqlite() -> Option<Db> {
    let path = std::env::temp_dir().join(format!("potp-gw-{}.db", unique()));
    Some(
        Db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("SQLite opens"),
    )
}

/// A fresh database on the suite's PostgreSQL server.
pub async fn postgres() -> Option<Db> {
    postgres_with_url().await.map(|(db, _)| db)
}

/// A fresh database on the suite's PostgreSQL server, and its URL.
pub async fn postgres_with_url() -> Option<(Db, String)> {
    let Ok(url) = std::env::var("POSTGRES_URL") else {
        skip_loudly("POSTGRES_URL is not set (./scripts/test.sh sets it)");
        return None;
    };
    let name = format!("potp_{}", unique());
    let admin = Db::connect(&url).await.expect("PostgreSQL at POSTGRES_URL");
    admin
        .execute_admin(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("POSTGRES_URL needs a database path"),
    };
    Some((Db::connect(&url).await.expect("the new database"), url))
}

fn record(id: &str, owner: &str, at: i64) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        kind: KeyKind::System,
        owner: owner.to_owned(),
        scopes: Scopes::default()
            .with(Scope::MessagesSend)
            .with(Scope::UsageRead),
        allowed: vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        created_at: at,
        expires_at: Some(at + 86_400_000),
        revoked_at: None,
        last_used_at: None,
    }
}

macro_rules! db_contract {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn keys_round_trip_without_their_secret() -> TestResult {
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let key = NewKey::generate(KeyKind::System)?;
                let stored = record(&key.id, "billing", 1_000);
                db.insert_key(&stored, &key.hash).await?;
                let (found, hash) = db.key(&key.id).await?.expect("stored");
                assert_eq!(found, stored);
                assert_eq!(hash, key.hash);
                assert!(db.key("nope").await?.is_none());
                // A second key with the same id is refused.
                assert!(db.insert_key(&stored, &key.hash).await.is_err());
                Ok(())
            }

            #[tokio::test]
            async fn revocation_is_seen_by_every_connection() -> TestResult {
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let key = NewKey::generate(KeyKind::Personal)?;
                db.insert_key(&record(&key.id, "alice", 1_000), &key.hash)
                    .await?;
                assert!(db.revoke_key(&key.id, 5_000).await?);
                assert!(!db.revoke_key(&key.id, 6_000).await?, "already revoked");
                assert!(!db.revoke_key("nope", 6_000).await?);
                let (found, _) = db.key(&key.id).await?.expect("kept for the trail");
                assert_eq!(found.revoked_at, Some(5_000));
                assert!(found.is_live(4_999) && !found.is_live(5_000));
                Ok(())
            }

            #[tokio::test]
            async fn last_use_is_written_at_most_once_a_minute() -> TestResult {
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let key = NewKey::generate(KeyKind::System)?;
                db.insert_key(&record(&key.id, "crm", 0), &key.hash).await?;
                db.touch_key(&key.id, 100_000).await?;
                db.touch_key(&key.id, 130_000).await?;
                assert_eq!(
                    db.key(&key.id).await?.unwrap().0.last_used_at,
                    Some(100_000)
                );
                db.touch_key(&key.id, 160_001).await?;
                assert_eq!(
                    db.key(&key.id).await?.unwrap().0.last_used_at,
                    Some(160_001)
                );
                Ok(())
            }

            #[tokio::test]
            async fn listing_is_oldest_first() -> TestResult {
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let (a, b) = (
                    NewKey::generate(KeyKind::System)?,
                    NewKey::generate(KeyKind::System)?,
                );
                db.insert_key(&record(&b.id, "second", 2_000), &b.hash)
                    .await?;
                db.insert_key(&record(&a.id, "first", 1_000), &a.hash)
                    .await?;
                let owners: Vec<String> = db.keys().await?.into_iter().map(|k| k.owner).collect();
                assert_eq!(owners, ["first", "second"]);
                Ok(())
            }

            #[tokio::test]
            async fn batched_lookups_find_each_key_by_id() -> TestResult {
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let mut ids = Vec::new();
                for n in 0..300 {
                    let key = NewKey::generate(KeyKind::System)?;
                    db.insert_key(&record(&key.id, &format!("system-{n}"), n), &key.hash)
                        .await?;
                    ids.push(key.id);
                }
                // More than one query's worth of ids, and some unknown ones.
                let mut wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
                wanted.extend(["nope", "also-nope"]);
                let found = db.keys_by_id(&wanted).await?;
                assert_eq!(found.len(), 300);
                for (n, id) in ids.iter().enumerate() {
                    assert_eq!(found[id].0.owner, format!("system-{n}"));
                }
                Ok(())
            }

            #[tokio::test]
            async fn audit_batches_commit_inserts_and_completions_together() -> TestResult {
                use phone_otp_gateway::db::{AuditRecord, AuditWrite};
                let Some(db) = super::$backend().await else {
                    return Ok(());
                };
                let pending = |n: i64| AuditRecord {
                    id: format!("r{n}"),
                    request_id: format!("q{n}"),
                    at: n,
                    endpoint: "messages".to_owned(),
                    outcome: "pending".to_owned(),
                    ..AuditRecord::default()
                };
                // 300 rows: chunks of 256, 32, 8 and 4 in one transaction.
                let inserts: Vec<AuditWrite> =
                    (0..300).map(|n| AuditWrite::Insert(pending(n))).collect();
                db.write_audit_batch(&inserts).await?;
                let done = |n: i64| AuditRecord {
                    provider: Some("twilio".to_owned()),
                    status: 200,
                    outcome: "ok".to_owned(),
                    ..pending(n)
                };
                let mixed = vec![
                    AuditWrite::Complete(done(7)),
                    AuditWrite::Insert(pending(300)),
                    AuditWrite::Complete(done(299)),
                ];
                db.write_audit_batch(&mixed).await?;
                let all = db.audit_records(0, i64::MAX).await?;
                assert_eq!(all.len(), 301);
                let outcome = |n: usize| (all[n].outcome.as_str(), all[n].provider.as_deref());
                assert_eq!(outcome(7), ("ok", Some("twilio")));
                assert_eq!(outcome(299), ("ok", Some("twilio")));
                assert_eq!(outcome(8), ("pending", None));
                assert_eq!(outcome(300), ("pending", None));
                Ok(())
            }
        }
    };
}

db_contract!(sqlite);
db_contract!(postgres);

#[tokio::test]
async fn instances_starting_at_once_migrate_once() -> TestResult {
    let Ok(url) = std::env::var("POSTGRES_URL") else {
        skip_loudly("POSTGRES_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    let Some(first) = postgres().await else {
        return Ok(());
    };
    drop(first);
    // A fresh database, then four instances connecting together: the advisory lock makes
    // the migrations run once, and each instance sees the schema.
    let name = format!("potp_{}", unique());
    Db::connect(&url)
        .await?
        .execute_admin(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = format!("{}/{name}", url.rsplit_once('/').map_or("", |(s, _)| s));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Db::connect(&url).await })
        })
        .collect();
    for task in tasks {
        let db = task.await??;
        assert!(db.keys().await?.is_empty());
    }
    Ok(())
}
