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
mod company;
pub mod crypto;
mod engine;
mod error;
mod health;
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
pub use company::{
    CompanyRoles, ISOLATED_TABLES, Review, RoleOutcome, TeamMember, TeamRole, company_security_sql,
    role_sql,
};
pub use crypto::{Secret, TokenCipher};
pub use engine::{
    Alert, AttemptOutcome, BudgetUse, ClaimedDelivery, DeliveryOutcome, OpenAttempt, Priority,
    StepRecord,
};
pub use error::StoreError;
pub use health::{CheckOutcome, QueuedLoad, StaleRefresh};
pub use listen::HubListener;
pub use media::{MediaCleanup, MediaRecord, NewMedia, OrphanContainer};
pub use migrate::{MigrationState, SCHEMA_VERSION, migration_versions};
pub use posts::{
    Attempt, CreateOutcome, Delivery, NewDelivery, NewPost, Post, PostEdit, PostFilter,
    PublishedSegment,
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

/// `url` (a PostgreSQL URL) connecting as `user` with `password` instead, its host, database
/// and parameters unchanged. The user name and password are percent-encoded.
pub fn url_with_user(url: &str, user: &str, password: &str) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..authority_end],
        None => &rest[..authority_end],
    };
    let credentials = if password.is_empty() {
        encode(user)
    } else {
        format!("{}:{}", encode(user), encode(password))
    };
    format!(
        "{}://{credentials}@{host}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

/// The (percent-decoded) password of a PostgreSQL URL, if it has one.
pub fn url_password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    let bytes = password.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A random password for a role psn creates (32 hex characters).
pub fn random_password() -> String {
    let mut out = String::new();
    for _ in 0..2 {
        for b in random_id_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// The user name a PostgreSQL URL connects as, if it names one.
pub fn url_user(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let user = userinfo.split(':').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_string())
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    /// A company hub: PostgreSQL with row-level security. Every statement runs in a
    /// transaction that first sets `app.user_id` to the acting member (see [`CompanyPool`]).
    Company(CompanyPool),
}

/// The pool of a company hub and the member acting through it. Clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct CompanyPool {
    pub(crate) pool: PgPool,
    /// The acting team member; `None` (the worker role, or nobody) sets nothing, and the
    /// policies then show the runtime role nothing (fail closed).
    pub(crate) user: Option<std::sync::Arc<str>>,
}

impl CompanyPool {
    /// Begins a transaction and sets the acting member for it alone
    /// (`set_config('app.user_id', …, true)` lasts until the transaction ends), so a pooled
    /// connection never carries one member's identity into another's transaction.
    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if let Some(user) = &self.user {
            sqlx::query("SELECT set_config('app.user_id', $1, true)")
                .bind(user.as_ref())
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }
}

/// Runs the same query code against whichever pool or transaction the hub has.
///
/// `on_db!(hub, db => expr)` binds `db` to the `&SqlitePool` or `&PgPool` and evaluates `expr`
/// once per backend (the expression is compiled twice, once per driver).
///
/// On a company hub `db` is a transaction that set the acting member first; it is committed
/// after `expr` (an early return rolls it back).
macro_rules! on_db {
    ($backend:expr, $db:ident => $body:expr) => {
        match $backend {
            $crate::Backend::Sqlite($db) => $body,
            $crate::Backend::Postgres($db) => $body,
            $crate::Backend::Company(company) => {
                let mut company_tx = company.begin().await?;
                let result = {
                    let $db = &mut *company_tx;
                    $body
                };
                company_tx.commit().await?;
                result
            }
        }
    };
}
pub(crate) use on_db;

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (a deferred transaction that reads
/// and then writes fails with SQLITE_BUSY instead of waiting), a plain `BEGIN` on PostgreSQL,
/// and on a company hub a `BEGIN` followed by setting the acting member.
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
            $crate::Backend::Company(company) => {
                #[allow(unused_mut)]
                let mut $tx = company.begin().await?;
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
                // The database says whether it is a company hub, not the local config, so an
                // edited connection file cannot switch the member context off.
                if company::is_company_database(&pool).await? {
                    Backend::Company(CompanyPool { pool, user: None })
                } else {
                    Backend::Postgres(pool)
                }
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
    ///
    /// A company hub is never migrated here: the runtime and worker roles own no tables, and
    /// only admins migrate (`psn hub migrate NAME` with the owner URL). With migrations pending
    /// it is refused with [`StoreError::PendingMigrations`]; its isolation is checked
    /// ([`Hub::check_isolation`]) before anything is read.
    pub async fn open(name: &str, url: &str) -> Result<Hub, StoreError> {
        let mut hub = Hub::connect(name, url).await?;
        if hub.is_company() {
            let state = hub.migration_state().await?;
            if state.hub_is_newer() {
                hub.write_block = Some(
                    StoreError::HubNewer {
                        hub: state.hub_version,
                        psn: state.psn_version,
                    }
                    .to_string(),
                );
            } else if !state.pending.is_empty() {
                return Err(StoreError::PendingMigrations {
                    hub: name.to_string(),
                    pending: state.pending,
                });
            }
            hub.check_isolation().await?;
            return Ok(hub);
        }
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
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) | Backend::Company(CompanyPool { pool, .. }) => {
                pool.close().await
            }
        }
    }

    /// Whether this is a company hub (PostgreSQL with team roles and row-level security).
    pub fn is_company(&self) -> bool {
        matches!(self.backend, Backend::Company(_))
    }

    /// The same hub (sharing its pool) acting as team member `user`: on a company hub every
    /// transaction sets `app.user_id` to `user` first. Other hubs have one user and ignore it.
    pub fn as_user(&self, user: &str) -> Hub {
        let mut hub = self.clone();
        if let Backend::Company(company) = &mut hub.backend {
            company.user = Some(std::sync::Arc::from(user));
        }
        hub
    }

    /// The member this hub acts as (company hubs).
    pub fn acting_user(&self) -> Option<&str> {
        match &self.backend {
            Backend::Company(company) => company.user.as_deref(),
            _ => None,
        }
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
    fn urls_swap_their_credentials() {
        assert_eq!(
            url_with_user("postgres://postgres@127.0.0.1:5432/acme", "app", "p w"),
            "postgres://app:p%20w@127.0.0.1:5432/acme"
        );
        assert_eq!(
            url_with_user("postgres://o:secret@h/acme?sslmode=disable", "w", ""),
            "postgres://w@h/acme?sslmode=disable"
        );
        assert_eq!(url_user("postgres://o:secret@h/acme").as_deref(), Some("o"));
        assert_eq!(url_user("postgres://h/acme"), None);
        assert_eq!(
            url_password("postgres://o:p%20w@h/acme").as_deref(),
            Some("p w")
        );
        assert_eq!(url_password("postgres://o@h/acme"), None);
        assert_eq!(random_password().len(), 32);
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
