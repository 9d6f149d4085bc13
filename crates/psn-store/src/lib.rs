//! The hub store: one set of operations over SQLite (the embedded default) and PostgreSQL.
//!
//! A hub is one database and the data boundary (seed 001). Everything psn persists goes through
//! [`Hub`]. Only this crate knows SQL. Queries are written once in SQL that both backends
//! accept — times are Unix milliseconds, JSON is text, placeholders are `$1…` — and run on the
//! backend's own typed pool through the [`on_db!`] macro, so each query exists once but is
//! compiled against both drivers. Code branches per backend only where the databases really
//! differ: migrations (DDL), locking (advisory locks, `BEGIN IMMEDIATE`), and later claiming
//! and notifications.
//!
//! This crate must not know platform HTTP, and must never store a token unencrypted: tokens
//! enter as [`Secret`]s and are sealed with [`TokenCipher`] before any query sees them.

mod accounts;
mod audit;
pub mod crypto;
mod engine;
mod error;
mod listen;
mod media;
mod migrate;
mod posts;
mod refresh;
pub mod testing;
mod time;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{Account, AccountStatus, NewAccount, TokenSet};
pub use audit::AuditEntry;
pub use crypto::{Secret, TokenCipher};
pub use engine::{
    Alert, AttemptOutcome, BudgetUse, ClaimedDelivery, DeliveryOutcome, OpenAttempt, Priority,
    StepRecord,
};
pub use error::StoreError;
pub use listen::HubListener;
pub use media::{MediaCleanup, MediaRecord, NewMedia, OrphanContainer};
pub use migrate::{MigrationState, SCHEMA_VERSION, migration_versions};
pub use posts::{
    Attempt, CreateOutcome, Delivery, NewDelivery, NewPost, Post, PostEdit, PostFilter,
};
pub use refresh::{RefreshError, refresh_due};

/// Which database engine a hub lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    /// The backend a database URL names, or an error that says which URLs psn accepts.
    pub fn of_url(url: &str) -> Result<BackendKind, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(BackendKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(BackendKind::Postgres)
        } else {
            Err(StoreError::Invalid(format!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            )))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

/// A database URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{}{}", &url[..scheme_end], masked, &rest[at..])
        }
        None => url.to_string(),
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query code against whichever pool or transaction the hub has.
///
/// `on_db!(hub, db => expr)` binds `db` to the `&SqlitePool` or `&PgPool` and evaluates `expr`
/// once per backend (the expression is compiled twice, once per driver).
macro_rules! on_db {
    ($backend:expr, $db:ident => $body:expr) => {
        match $backend {
            $crate::Backend::Sqlite($db) => $body,
            $crate::Backend::Postgres($db) => $body,
        }
    };
}
pub(crate) use on_db;

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (a deferred transaction that reads
/// and then writes fails with SQLITE_BUSY instead of waiting), a plain `BEGIN` on PostgreSQL.
/// Binds `tx` to the transaction inside `body`, which must end with `tx.commit()`.
macro_rules! write_tx {
    ($backend:expr, $tx:ident => $body:expr) => {
        match $backend {
            $crate::Backend::Sqlite(pool) => {
                #[allow(unused_mut)]
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                $body
            }
            $crate::Backend::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = pool.begin().await?;
                $body
            }
        }
    };
}
pub(crate) use write_tx;

/// An open hub.
#[derive(Debug, Clone)]
pub struct Hub {
    name: String,
    kind: BackendKind,
    backend: Backend,
    /// Set when the hub's schema is newer than this psn: reads work, writes are refused.
    write_block: Option<String>,
}

impl Hub {
    /// Connects to the hub at `url` without touching its schema. Use [`Hub::open`] to migrate.
    pub async fn connect(name: &str, url: &str) -> Result<Hub, StoreError> {
        let kind = BackendKind::of_url(url)?;
        let backend = match kind {
            BackendKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                if let Some(parent) = Path::new(options.get_filename()).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Invalid(format!(
                            "cannot create the hub folder {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_with(options)
                    .await
                    .map_err(|e| StoreError::unreachable(name, url, e))?;
                Backend::Sqlite(pool)
            }
            BackendKind::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?
                    .application_name("psn");
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(|e| StoreError::unreachable(name, url, e))?;
                Backend::Postgres(pool)
            }
        };
        Ok(Hub {
            name: name.to_string(),
            kind,
            backend,
            write_block: None,
        })
    }

    /// Connects and brings the schema up to date (migrations are applied on first use). A hub
    /// whose schema is newer than this psn opens read-only; writes name both versions.
    pub async fn open(name: &str, url: &str) -> Result<Hub, StoreError> {
        let mut hub = Hub::connect(name, url).await?;
        match hub.migrate().await {
            Ok(_) => {}
            Err(StoreError::HubNewer {
                hub: hub_version,
                psn,
            }) => {
                hub.write_block = Some(
                    StoreError::HubNewer {
                        hub: hub_version,
                        psn,
                    }
                    .to_string(),
                );
            }
            Err(e) => return Err(e),
        }
        Ok(hub)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        on_db!(&self.backend, db => db.close().await)
    }

    pub(crate) fn ensure_writable(&self) -> Result<(), StoreError> {
        match &self.write_block {
            Some(reason) => Err(StoreError::ReadOnly(reason.clone())),
            None => Ok(()),
        }
    }

    /// Row counts of every table, for `psn doctor` and for tests that prove nothing was written.
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut out = Vec::new();
        for table in [
            "accounts",
            "posts",
            "deliveries",
            "delivery_attempts",
            "audit_log",
            "media",
            "post_media",
        ] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = on_db!(&self.backend, db => sqlx::query_scalar(&sql).fetch_one(db).await?);
            out.push((table, n));
        }
        Ok(out)
    }
}

/// Eight random bytes for a new id.
pub(crate) fn random_id_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://psn:s3cret@db.example:5432/acme"),
            "postgres://psn:***@db.example:5432/acme"
        );
        assert_eq!(
            redact_url("postgres://psn@db/acme"),
            "postgres://psn@db/acme"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn backends_are_named_by_url() {
        assert_eq!(
            BackendKind::of_url("sqlite://a.db").unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            BackendKind::of_url("postgresql://x/y").unwrap(),
            BackendKind::Postgres
        );
        assert!(BackendKind::of_url("mysql://x/y").is_err());
    }
}
