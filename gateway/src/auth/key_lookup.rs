//! Key lookups for request authentication, batched: concurrent requests share one
//! `SELECT ... WHERE id IN (...)` (see [`Batcher`]). Each lookup is still served by a query
//! that started after its request arrived, so a revocation committed before the request
//! is seen: there is no cache.

use std::collections::HashSet;

use super::api_key::SecretHash;
use crate::db::batch::{BatchFuture, Batcher};
use crate::db::{Db, KeyRecord};

/// The stored key and its secret's hash, by public id.
pub(crate) type KeyLookup = Batcher<String, Option<(KeyRecord, SecretHash)>>;

pub(crate) fn key_lookup(db: Db) -> KeyLookup {
    Batcher::new(db, look_up)
}

fn look_up(db: Db, ids: Vec<String>) -> BatchFuture<Option<(KeyRecord, SecretHash)>> {
    Box::pin(async move {
        let distinct: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        match db.keys_by_id(&distinct).await {
            Ok(found) => ids.iter().map(|id| Ok(found.get(id).cloned())).collect(),
            Err(error) => ids.iter().map(|_| Err(error.to_string())).collect(),
        }
    })
}
