//! The store's errors. Messages never contain a token or a database password.

use psn_domain::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The hub's schema is newer than this psn understands (seed 000, pitfall 6).
    #[error(
        "the hub's schema is version {hub} but this psn knows only up to version {psn}; upgrade psn before writing to this hub"
    )]
    HubNewer { hub: i64, psn: i64 },

    /// A write was refused because the hub is open read-only.
    #[error("read-only hub: {0}")]
    ReadOnly(String),

    /// A company hub has migrations this psn would apply, and only admins migrate it.
    #[error(
        "pending migrations on hub '{hub}' (versions {pending:?}) — ask an admin to run `psn hub migrate {hub}`"
    )]
    PendingMigrations { hub: String, pending: Vec<i64> },

    /// The acting member's role does not allow this (or the hub's row-level security refused
    /// it).
    #[error("{0}")]
    Forbidden(String),

    /// A company hub whose database does not isolate members (a missing `FORCE ROW LEVEL
    /// SECURITY`, a role that bypasses row-level security or owns tables).
    #[error("hub '{hub}' is not isolated: {detail}")]
    NotIsolated { hub: String, detail: String },

    #[error("cannot reach hub '{hub}' at {url}: {detail}")]
    Unreachable {
        hub: String,
        url: String,
        detail: String,
    },

    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },

    #[error(transparent)]
    Transition(#[from] TransitionError),

    #[error("{0}")]
    Conflict(String),

    #[error("{0}")]
    Invalid(String),

    #[error("token encryption: {0}")]
    Crypto(String),

    #[error("database error: {0}")]
    Database(sqlx::Error),

    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn unreachable(hub: &str, url: &str, err: sqlx::Error) -> StoreError {
        StoreError::Unreachable {
            hub: hub.to_string(),
            url: crate::redact_url(url),
            detail: err.to_string(),
        }
    }

    /// Whether the error is the caller's fault (bad input, unknown id, refused transition):
    /// the CLI maps these to exit code 2.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::Transition(_)
                | StoreError::Conflict(_)
                | StoreError::Invalid(_)
                | StoreError::Forbidden(_)
        )
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    /// Row-level security and privilege refusals (SQLSTATE 42501) become [`StoreError::Forbidden`]
    /// with a message a member can act on; everything else stays a database error.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some("42501")
        {
            return StoreError::Forbidden(format!(
                "the hub refused this for your role ({}); ask an admin of the hub (`psn team list`)",
                db.message()
            ));
        }
        StoreError::Database(e)
    }
}
