//! The media library's records: which stored files exist (by content hash), which posts use
//! them, and what the lifecycle job may delete. The files themselves live in the workspace
//! (`content/media/`); this module only records them.
//!
//! Lifecycle (seed 004; seed 000, pitfall 14): a file used by posts is deleted `keep_published`
//! after the last of those posts' deliveries was published (every post published or
//! cancelled); a file no post uses is deleted `keep_unattached` after it was last added.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::time::{from_ms, to_ms};
use crate::{Hub, StoreError, on_db, write_tx};

/// A file to record.
#[derive(Debug, Clone)]
pub struct NewMedia {
    pub sha256: String,
    pub created_by: String,
    pub path: String,
    pub kind: String,
    pub mime: String,
    pub bytes: u64,
    pub original_name: String,
    /// The probe results, as JSON.
    pub probe: serde_json::Value,
}

/// A recorded file.
#[derive(Debug, Clone, Serialize)]
pub struct MediaRecord {
    pub sha256: String,
    pub path: String,
    pub kind: String,
    pub mime: String,
    pub bytes: u64,
    pub original_name: String,
    pub probe: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub added_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Posts that use it.
    pub posts: Vec<String>,
}

/// What the lifecycle job found due.
#[derive(Debug, Clone, Serialize)]
pub struct MediaCleanup {
    pub sha256: String,
    pub path: String,
    /// `published` (kept its days after publishing) or `unattached`.
    pub reason: &'static str,
}

/// A platform container (Instagram, Threads, …) a delivery created but never published.
#[derive(Debug, Clone, Serialize)]
pub struct OrphanContainer {
    pub delivery_id: String,
    pub post_id: String,
    pub platform: String,
    pub status: String,
}

type Row = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
);

const COLUMNS: &str =
    "sha256, path, kind, mime, bytes, original_name, probe, created_at, added_at, deleted_at";

fn record(row: Row, posts: Vec<String>) -> MediaRecord {
    let (sha256, path, kind, mime, bytes, original_name, probe, created, added, deleted) = row;
    MediaRecord {
        sha256,
        path,
        kind,
        mime,
        bytes: bytes.max(0) as u64,
        original_name,
        probe: serde_json::from_str(&probe).unwrap_or(serde_json::Value::Null),
        created_at: from_ms(created),
        added_at: from_ms(added),
        deleted_at: deleted.map(from_ms),
        posts,
    }
}

impl Hub {
    /// Records a stored file (again): a deleted record comes back, and `added_at` restarts
    /// the unattached clock.
    pub async fn record_media(&self, m: &NewMedia, now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = to_ms(now);
        on_db!(&self.backend, db => {
            sqlx::query(
                "INSERT INTO media (sha256, created_by, path, kind, mime, bytes, original_name, probe, created_at, added_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (sha256) DO UPDATE SET path = excluded.path, added_at = excluded.added_at, \
                 deleted_at = NULL, original_name = excluded.original_name")
                .bind(&m.sha256).bind(&m.created_by).bind(&m.path).bind(&m.kind).bind(&m.mime)
                .bind(m.bytes as i64).bind(&m.original_name).bind(m.probe.to_string()).bind(now)
                .execute(db).await?;
        });
        Ok(())
    }

    /// Records that `post_id` uses these files (recorded with [`Hub::record_media`] first).
    pub async fn attach_media(
        &self,
        post_id: &str,
        sha256s: &[String],
        created_by: &str,
    ) -> Result<(), StoreError> {
        write_tx!(&self.backend, tx => {
            for sha in sha256s {
                sqlx::query(
                    "INSERT INTO post_media (post_id, sha256, created_by) VALUES ($1, $2, $3) \
                     ON CONFLICT (post_id, sha256) DO NOTHING")
                    .bind(post_id).bind(sha).bind(created_by)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn posts_of(&self, sha256: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(&self.backend, db => sqlx::query_scalar(
            "SELECT post_id FROM post_media WHERE sha256 = $1 ORDER BY post_id")
            .bind(sha256).fetch_all(db).await?))
    }

    /// The library, newest first; deleted files only with `include_deleted`.
    pub async fn list_media(&self, include_deleted: bool) -> Result<Vec<MediaRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM media {} ORDER BY added_at DESC, sha256",
            if include_deleted {
                ""
            } else {
                "WHERE deleted_at IS NULL"
            }
        );
        let rows: Vec<Row> = on_db!(&self.backend, db => sqlx::query_as(&sql).fetch_all(db).await?);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let posts = self.posts_of(&row.0).await?;
            out.push(record(row, posts));
        }
        Ok(out)
    }

    /// Files whose hash starts with `prefix` (at least 6 hex digits are asked of people).
    pub async fn find_media(&self, prefix: &str) -> Result<Vec<MediaRecord>, StoreError> {
        let pattern = format!("{}%", prefix.to_ascii_lowercase().replace(['%', '_'], ""));
        let sql = format!("SELECT {COLUMNS} FROM media WHERE sha256 LIKE $1 ORDER BY sha256");
        let rows: Vec<Row> = on_db!(&self.backend, db =>
            sqlx::query_as(&sql).bind(&pattern).fetch_all(db).await?);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let posts = self.posts_of(&row.0).await?;
            out.push(record(row, posts));
        }
        Ok(out)
    }

    /// Posts using this file that are not finished (neither published nor cancelled).
    pub async fn media_in_use(&self, sha256: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(&self.backend, db => sqlx::query_scalar(
            "SELECT p.id FROM post_media pm JOIN posts p ON p.id = pm.post_id \
             WHERE pm.sha256 = $1 AND p.status NOT IN ('published', 'cancelled') ORDER BY p.id")
            .bind(sha256).fetch_all(db).await?))
    }

    /// Marks a file deleted (its file is gone).
    pub async fn mark_media_deleted(
        &self,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE media SET deleted_at = $2 WHERE sha256 = $1 AND deleted_at IS NULL")
            .bind(sha256).bind(to_ms(now)).execute(db).await?.rows_affected());
        Ok(n == 1)
    }

    /// Files the lifecycle job should delete at `now`.
    pub async fn media_due_for_cleanup(
        &self,
        now: DateTime<Utc>,
        keep_published: Duration,
        keep_unattached: Duration,
    ) -> Result<Vec<MediaCleanup>, StoreError> {
        let now = to_ms(now);
        let unattached_before = now - keep_unattached.as_millis() as i64;
        let published_before = now - keep_published.as_millis() as i64;
        let unattached: Vec<(String, String)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT m.sha256, m.path FROM media m WHERE m.deleted_at IS NULL AND m.added_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM post_media pm WHERE pm.sha256 = m.sha256) ORDER BY m.sha256")
            .bind(unattached_before).fetch_all(db).await?);
        // Every post using the file is finished, and the last publication (or, for posts that
        // were all cancelled, the last change) is older than the retention.
        let published: Vec<(String, String)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT m.sha256, m.path FROM media m WHERE m.deleted_at IS NULL \
             AND EXISTS (SELECT 1 FROM post_media pm WHERE pm.sha256 = m.sha256) \
             AND NOT EXISTS (SELECT 1 FROM post_media pm JOIN posts p ON p.id = pm.post_id \
                 WHERE pm.sha256 = m.sha256 AND p.status NOT IN ('published', 'cancelled')) \
             AND NOT EXISTS (SELECT 1 FROM post_media pm JOIN deliveries d ON d.post_id = pm.post_id \
                 WHERE pm.sha256 = m.sha256 AND d.status NOT IN ('published', 'cancelled')) \
             AND COALESCE( \
                 (SELECT MAX(d.published_at) FROM post_media pm JOIN deliveries d ON d.post_id = pm.post_id \
                  WHERE pm.sha256 = m.sha256), \
                 (SELECT MAX(p.updated_at) FROM post_media pm JOIN posts p ON p.id = pm.post_id \
                  WHERE pm.sha256 = m.sha256)) < $1 \
             ORDER BY m.sha256")
            .bind(published_before).fetch_all(db).await?);
        Ok(published
            .into_iter()
            .map(|(sha256, path)| MediaCleanup {
                sha256,
                path,
                reason: "published",
            })
            .chain(unattached.into_iter().map(|(sha256, path)| MediaCleanup {
                sha256,
                path,
                reason: "unattached",
            }))
            .collect())
    }

    /// Deliveries that failed or were cancelled after creating a platform container (a step
    /// named `container…` in their progress) that was never published. Each is reported once,
    /// as a P1 alert; returns the newly reported ones.
    pub async fn report_orphan_containers(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrphanContainer>, StoreError> {
        let now = to_ms(now);
        let mut found = Vec::new();
        write_tx!(&self.backend, tx => {
            let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
                "SELECT d.id, d.post_id, d.platform, d.status, d.created_by FROM deliveries d \
                 WHERE d.status IN ('failed', 'cancelled') AND d.progress LIKE '%\"container%' \
                 AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.kind = 'orphan_container' \
                     AND a.subject_type = 'delivery' AND a.subject_id = d.id) \
                 ORDER BY d.id")
                .fetch_all(&mut *tx).await?;
            for (delivery_id, post_id, platform, status, created_by) in rows {
                sqlx::query(
                    "INSERT INTO alerts (created_by, priority, kind, subject_type, subject_id, message, created_at) \
                     VALUES ($1, 'P1', 'orphan_container', 'delivery', $2, $3, $4)")
                    .bind(&created_by).bind(&delivery_id)
                    .bind(format!(
                        "The {platform} delivery {delivery_id} of post {post_id} created a media container on the platform but was {status} before publishing it; the platform discards it (Instagram and Threads after 24 h) — nothing was posted"))
                    .bind(now).execute(&mut *tx).await?;
                found.push(OrphanContainer { delivery_id, post_id, platform, status });
            }
            tx.commit().await?;
        });
        Ok(found)
    }
}
