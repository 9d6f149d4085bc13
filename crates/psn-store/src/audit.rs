//! The audit log: who did what, when. Written in the same transaction as the change it records.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::time::{from_ms, now_ms};
use crate::{Hub, StoreError, on_db};

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject_type: String,
    pub subject_id: String,
    pub detail: serde_json::Value,
}

/// Appends an audit record on `executor` (a transaction of either backend).
pub(crate) async fn audit<'c, E, DB>(
    executor: E,
    actor: &str,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject_type, subject_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms())
    .bind(actor.to_string())
    .bind(action.to_string())
    .bind(subject_type.to_string())
    .bind(subject_id.to_string())
    .bind(detail.to_string())
    .execute(executor)
    .await?;
    Ok(())
}

impl Hub {
    /// The audit trail of one subject (a post, an account), oldest first.
    pub async fn audit_trail(&self, subject_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<(i64, String, String, String, String, String)> = on_db!(&self.backend, db =>
            sqlx::query_as("SELECT at, actor, action, subject_type, subject_id, detail FROM audit_log \
                            WHERE subject_id = $1 ORDER BY id").bind(subject_id).fetch_all(db).await?);
        rows.into_iter()
            .map(|(at, actor, action, subject_type, subject_id, detail)| {
                Ok(AuditEntry {
                    at: from_ms(at),
                    actor,
                    action,
                    subject_type,
                    subject_id,
                    detail: serde_json::from_str(&detail)?,
                })
            })
            .collect()
    }
}
