//! `[store]`: where challenges, limits and hook dedupe live (this process, or Redis).

use serde::Deserialize;

use super::ConfigError;

/// The store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (one instance) or `redis` (many).
    #[serde(default)]
    pub kind: StoreKind,
    /// Environment variable holding the Redis URL (default `REDIS_URL`).
    pub url_env: Option<String>,
    /// Key prefix in Redis (default `potp:`).
    pub prefix: Option<String>,
}

/// Which store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process.
    #[default]
    Memory,
    /// Shared through Redis.
    Redis,
}

impl StoreConfig {
    #[cfg(feature = "redis")]
    pub(super) async fn redis(&self, url: &str) -> Result<phone_otp::RedisStore, ConfigError> {
        let prefix = self.prefix.as_deref().unwrap_or("potp:");
        phone_otp::RedisStore::connect(url, prefix)
            .await
            .map_err(ConfigError::Store)
    }

    #[cfg(not(feature = "redis"))]
    pub(super) async fn redis(&self, _: &str) -> Result<phone_otp::MemoryStore, ConfigError> {
        Err(super::invalid(
            "store.kind",
            "this build has no Redis support (feature `redis`)",
        ))
    }
}
