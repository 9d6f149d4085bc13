//! Embedded migrations, one SQL file per backend per version, applied on first use.
//!
//! PostgreSQL: under a session advisory lock, so two psn processes migrating at once take
//! turns — the second finds the work done. SQLite: inside one `BEGIN IMMEDIATE` transaction,
//! which serializes writers the same way. Each hub records the versions it has applied in
//! `psn_migrations`; a hub that has a version this psn does not know is refused for writing
//! (seed 000, pitfall 6).

use sqlx::{Connection, Executor as _};

use crate::time::now_ms;
use crate::{Backend, Hub, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "engine",
        sqlite: include_str!("../migrations/sqlite/0002_engine.sql"),
        postgres: include_str!("../migrations/postgres/0002_engine.sql"),
    },
    Migration {
        version: 3,
        name: "refresh",
        sqlite: include_str!("../migrations/sqlite/0003_refresh.sql"),
        postgres: include_str!("../migrations/postgres/0003_refresh.sql"),
    },
    Migration {
        version: 4,
        name: "claim_index",
        sqlite: include_str!("../migrations/sqlite/0004_claim_index.sql"),
        postgres: include_str!("../migrations/postgres/0004_claim_index.sql"),
    },
    Migration {
        version: 5,
        name: "accounts",
        sqlite: include_str!("../migrations/sqlite/0005_accounts.sql"),
        postgres: include_str!("../migrations/postgres/0005_accounts.sql"),
    },
    Migration {
        version: 6,
        name: "media",
        sqlite: include_str!("../migrations/sqlite/0006_media.sql"),
        postgres: include_str!("../migrations/postgres/0006_media.sql"),
    },
    Migration {
        version: 7,
        name: "company",
        sqlite: include_str!("../migrations/sqlite/0007_company.sql"),
        postgres: include_str!("../migrations/postgres/0007_company.sql"),
    },
];

/// The newest schema version this psn knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Every version this psn knows, in order (versions may have gaps).
pub fn migration_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

/// `pg_advisory_lock` key for migrations ("psn-migrate" as a number).
const MIGRATION_LOCK_KEY: i64 = 0x7073_6e2d_6d69_6772;

const CREATE_TRACKING: &str = "CREATE TABLE IF NOT EXISTS psn_migrations (\
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Where a hub's schema stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationState {
    /// The highest version applied to the hub (0 for an empty database).
    pub hub_version: i64,
    /// The highest version this psn knows.
    pub psn_version: i64,
    /// Versions this psn would apply.
    pub pending: Vec<i64>,
}

impl MigrationState {
    pub fn hub_is_newer(&self) -> bool {
        self.hub_version > self.psn_version
    }
}

fn pending_after(version: i64) -> Vec<i64> {
    MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > version)
        .collect()
}

impl Hub {
    /// Reads the schema state without changing anything.
    pub async fn migration_state(&self) -> Result<MigrationState, StoreError> {
        let exists_sql = match &self.backend {
            Backend::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'psn_migrations'"
            }
            Backend::Postgres(_) | Backend::Company(_) => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_name = 'psn_migrations' AND table_schema = current_schema()"
            }
        };
        let exists: i64 =
            crate::on_db!(&self.backend, db => sqlx::query_scalar(exists_sql).fetch_one(db).await?);
        let hub_version: i64 = if exists == 0 {
            0
        } else {
            crate::on_db!(&self.backend, db => sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MAX(version) FROM psn_migrations").fetch_one(db).await?)
            .unwrap_or(0)
        };
        Ok(MigrationState {
            hub_version,
            psn_version: SCHEMA_VERSION,
            pending: pending_after(hub_version),
        })
    }

    /// Applies every pending migration and returns the versions applied (empty when the hub was
    /// up to date). Refuses with [`StoreError::HubNewer`] when the hub is ahead of this psn.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(CREATE_TRACKING).execute(&mut *tx).await?;
                let current: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM psn_migrations")
                        .fetch_one(&mut *tx)
                        .await?;
                let current = current.unwrap_or(0);
                if current > SCHEMA_VERSION {
                    return Err(StoreError::HubNewer {
                        hub: current,
                        psn: SCHEMA_VERSION,
                    });
                }
                let mut applied = Vec::new();
                for m in MIGRATIONS.iter().filter(|m| m.version > current) {
                    // Through `Executor::execute` (a boxed `Send` future), not `RawSql::execute`, whose
                    // generic future makes `migrate` not `Send` (so `Hub::open` could not be spawned).
                    (&mut *tx).execute(sqlx::raw_sql(m.sqlite)).await?;
                    record(&mut *tx, m).await?;
                    applied.push(m.version);
                }
                tx.commit().await?;
                Ok(applied)
            }
            Backend::Postgres(pool) | Backend::Company(crate::CompanyPool { pool, .. }) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await?;
                let result = async {
                    sqlx::query(CREATE_TRACKING).execute(&mut *conn).await?;
                    let current: Option<i64> =
                        sqlx::query_scalar("SELECT MAX(version) FROM psn_migrations")
                            .fetch_one(&mut *conn)
                            .await?;
                    let current = current.unwrap_or(0);
                    if current > SCHEMA_VERSION {
                        return Err(StoreError::HubNewer {
                            hub: current,
                            psn: SCHEMA_VERSION,
                        });
                    }
                    let mut applied = Vec::new();
                    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
                        let mut tx = conn.begin().await?;
                        (&mut *tx).execute(sqlx::raw_sql(m.postgres)).await?;
                        record(&mut *tx, m).await?;
                        tx.commit().await?;
                        applied.push(m.version);
                    }
                    Ok(applied)
                }
                .await;
                let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await;
                let applied = result?;
                unlock?;
                if !applied.is_empty() {
                    tracing::info!(hub = %self.name, versions = ?applied, "applied migrations");
                }
                Ok(applied)
            }
        }
    }
}

async fn record<'c, E, DB>(executor: E, m: &Migration) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query("INSERT INTO psn_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(executor)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_both_backends_have_every_version() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "migration {} out of order", m.version);
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
            last = m.version;
        }
        assert_eq!(SCHEMA_VERSION, last);
    }
}
