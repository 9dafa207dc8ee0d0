//! `[database]`: the SQL database of keys, the audit trail and the ledger.

use serde::Deserialize;

use super::{Config, ConfigError, invalid};
use crate::db::Db;

/// The SQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A URL without secrets (`sqlite://gateway.db?mode=rwc`).
    pub url: Option<String>,
    /// Or the environment variable holding it (a PostgreSQL URL carries a password).
    pub url_env: Option<String>,
}

impl Config {
    /// Opens the configured database, for the `keys` commands.
    ///
    /// # Errors
    /// No database configured, its variable unset, or the database unreachable.
    pub async fn open_database(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Db, ConfigError> {
        let url = match &self.database {
            Some(DatabaseConfig { url: Some(url), .. }) => url.clone(),
            Some(DatabaseConfig {
                url_env: Some(name),
                ..
            }) => env(name).ok_or_else(|| ConfigError::MissingEnv(vec![name.clone()]))?,
            _ => return Err(invalid("database", "no [database] is configured")),
        };
        Db::connect(&url).await.map_err(ConfigError::Database)
    }
}
