//! Wake-ups for the worker when a delivery becomes due sooner than it expected: PostgreSQL
//! `LISTEN psn_due` (every write that schedules something sends `pg_notify('psn_due', '')` in
//! its transaction), and on SQLite nothing — the worker polls there, at most every second.

use sqlx::postgres::PgListener;

use crate::{Backend, Hub, StoreError};

/// The channel writers notify on PostgreSQL.
pub(crate) const CHANNEL: &str = "psn_due";

/// Waits for "something became due" notifications.
#[derive(Debug)]
pub enum HubListener {
    Postgres(Box<PgListener>),
    /// SQLite has no notifications: `recv` never completes, the worker's poll does the work.
    None,
}

impl HubListener {
    /// Completes when another process scheduled something (PostgreSQL), never on SQLite.
    pub async fn recv(&mut self) {
        match self {
            HubListener::Postgres(listener) => {
                if let Err(e) = listener.recv().await {
                    tracing::warn!(error = %e, "lost the PostgreSQL notification connection; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
            HubListener::None => std::future::pending::<()>().await,
        }
    }
}

impl Hub {
    /// Subscribes to due-soon notifications.
    pub async fn listen(&self) -> Result<HubListener, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) | Backend::Company(crate::CompanyPool { pool, .. }) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                Ok(HubListener::Postgres(Box::new(listener)))
            }
            Backend::Sqlite(_) => Ok(HubListener::None),
        }
    }
}

/// Inside a write transaction: tells listening workers that something may be due sooner.
/// `notify_due!(backend_kind, &mut *tx)` — a no-op on SQLite.
macro_rules! notify_due {
    ($hub:expr, $tx:expr) => {
        if $hub.kind == $crate::BackendKind::Postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind($crate::listen::CHANNEL)
                .execute($tx)
                .await?;
        }
    };
}
pub(crate) use notify_due;
