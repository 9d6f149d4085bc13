//! Posts and their deliveries (one per post × account), and the person-driven changes to them:
//! create (idempotent per creator), reschedule, cancel, edit, retry. Every status change goes
//! through the domain's transition functions; the post's status column is a cache of
//! [`derive_post_status`] refreshed in the same transaction as any delivery change.

use chrono::{DateTime, Utc};
use psn_domain::status::derive_post_status;
use psn_domain::{
    AccountId, DeliveryEvent, DeliveryId, DeliveryStatus, Language, Platform, PostEvent, PostId,
    PostStatus,
};
use serde::Serialize;

use crate::audit::audit;
use crate::time::{from_ms, now_ms, to_ms};
use crate::{Hub, StoreError, on_db, random_id_bytes, write_tx};

/// A post to create.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub created_by: String,
    /// The same key from the same creator returns the first post and creates nothing.
    pub idempotency_key: Option<String>,
    /// `Draft`, `PendingApproval` or `Scheduled`.
    pub phase: PostStatus,
    pub body: String,
    pub language: Option<Language>,
    /// Attached media, as JSON (the media pipeline owns its shape).
    pub media: serde_json::Value,
    /// Composer options (thread, numbering, title, board…), as JSON.
    pub options: serde_json::Value,
    /// When to publish; `None` only for drafts.
    pub run_at: Option<DateTime<Utc>>,
    pub deliveries: Vec<NewDelivery>,
}

/// One account a new post goes to, with the validated text segments for its platform.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub account_id: AccountId,
    pub platform: Platform,
    pub segments: Vec<String>,
}

/// What `create_post` did.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(Post),
    /// A post with the same idempotency key already existed; nothing was written.
    Existing(Post),
}

impl CreateOutcome {
    pub fn post(&self) -> &Post {
        match self {
            CreateOutcome::Created(p) | CreateOutcome::Existing(p) => p,
        }
    }

    pub fn into_post(self) -> Post {
        match self {
            CreateOutcome::Created(p) | CreateOutcome::Existing(p) => p,
        }
    }
}

/// A post with its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    pub id: PostId,
    pub status: PostStatus,
    #[serde(rename = "text")]
    pub body: String,
    pub language: Option<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub idempotency_key: Option<String>,
    pub media: serde_json::Value,
    pub options: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deliveries: Vec<Delivery>,
}

/// One delivery: the post on one account.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub platform: Platform,
    pub account: AccountId,
    pub handle: String,
    pub status: DeliveryStatus,
    pub run_at: DateTime<Utc>,
    pub segments: Vec<String>,
    pub attempt_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// Filled by [`Hub::post_with_attempts`] only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// What each finished segment became on the platform, in thread order. Filled by
    /// [`Hub::post_with_attempts`] only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedSegment>,
}

/// One thread segment (or the single post) as the platform has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedSegment {
    /// Zero-based position in the thread.
    pub index: usize,
    pub external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One write-ahead attempt record of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub step: String,
    pub status: String,
    pub worker: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub external_id: Option<String>,
}

/// Which posts to list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<PostStatus>,
    /// Only posts due at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only posts due before this time.
    pub to: Option<DateTime<Utc>>,
    /// At most this many posts, soonest first.
    pub limit: Option<i64>,
}

/// A new text for a post that has not been published.
#[derive(Debug, Clone)]
pub struct PostEdit {
    pub body: String,
    pub language: Option<Language>,
    /// The validated segments for each platform of the post.
    pub segments: Vec<(Platform, Vec<String>)>,
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: String,
    status: String,
    body: String,
    language: Option<String>,
    run_at: Option<i64>,
    created_by: String,
    idempotency_key: Option<String>,
    media: String,
    options: String,
    created_at: i64,
    updated_at: i64,
}

const POST_COLUMNS: &str = "id, status, body, language, run_at, created_by, idempotency_key, \
    media, options, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct JoinedRow {
    id: String,
    status: String,
    body: String,
    language: Option<String>,
    run_at: Option<i64>,
    created_by: String,
    idempotency_key: Option<String>,
    media: String,
    options: String,
    created_at: i64,
    updated_at: i64,
    d_id: Option<String>,
    d_platform: Option<String>,
    d_account_id: Option<String>,
    d_handle: Option<String>,
    d_status: Option<String>,
    d_run_at: Option<i64>,
    d_segments: Option<String>,
    d_attempt_count: Option<i64>,
    d_external_id: Option<String>,
    d_external_url: Option<String>,
    d_last_error: Option<String>,
    d_published_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    post_id: String,
    platform: String,
    account_id: String,
    handle: String,
    status: String,
    run_at: i64,
    segments: String,
    attempt_count: i64,
    external_id: Option<String>,
    external_url: Option<String>,
    last_error: Option<String>,
    published_at: Option<i64>,
}

const DELIVERY_SELECT: &str = "SELECT d.id, d.post_id, d.platform, d.account_id, a.handle, d.status, \
    d.run_at, d.segments, d.attempt_count, d.external_id, d.external_url, d.last_error, \
    d.published_at FROM deliveries d JOIN accounts a ON a.id = d.account_id";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl PostRow {
    fn into_post(self, deliveries: Vec<Delivery>) -> Result<Post, StoreError> {
        Ok(Post {
            id: self.id.parse().map_err(corrupt)?,
            status: self.status.parse().map_err(corrupt)?,
            body: self.body,
            language: self.language,
            run_at: self.run_at.map(from_ms),
            created_by: self.created_by,
            idempotency_key: self.idempotency_key,
            media: serde_json::from_str(&self.media)?,
            options: serde_json::from_str(&self.options)?,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
            deliveries,
        })
    }
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: self.id.parse().map_err(corrupt)?,
            platform: self.platform.parse().map_err(corrupt)?,
            account: self.account_id.parse().map_err(corrupt)?,
            handle: self.handle,
            status: self.status.parse().map_err(corrupt)?,
            run_at: from_ms(self.run_at),
            segments: serde_json::from_str(&self.segments)?,
            attempt_count: self.attempt_count,
            external_id: self.external_id,
            url: self.external_url,
            last_error: self.last_error,
            published_at: self.published_at.map(from_ms),
            attempts: Vec::new(),
            published: Vec::new(),
        })
    }
}

/// Recomputes and stores a post's derived status inside the current transaction.
/// `refresh_post_status!(&mut *tx, post_id, now)`.
macro_rules! refresh_post_status {
    ($tx:expr, $post_id:expr, $now:expr) => {{
        // Lock the post row first (a no-op write takes the row lock on PostgreSQL; SQLite's
        // IMMEDIATE transaction already serializes). Two deliveries of one post finishing at
        // once would otherwise each see the other still in flight, and the last to commit
        // would store a stale status. After the lock, PostgreSQL's next statements see what
        // the other transaction committed.
        sqlx::query("UPDATE posts SET updated_at = updated_at WHERE id = $1")
            .bind($post_id)
            .execute($tx)
            .await?;
        let phase: String = sqlx::query_scalar("SELECT phase FROM posts WHERE id = $1")
            .bind($post_id)
            .fetch_one($tx)
            .await?;
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM deliveries WHERE post_id = $1")
                .bind($post_id)
                .fetch_all($tx)
                .await?;
        let phase: psn_domain::PostStatus = phase
            .parse()
            .map_err(|e: String| $crate::StoreError::Corrupt(e))?;
        let statuses = statuses
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<psn_domain::DeliveryStatus>, String>>()
            .map_err($crate::StoreError::Corrupt)?;
        let status = psn_domain::status::derive_post_status(phase, &statuses);
        sqlx::query("UPDATE posts SET status = $2, updated_at = $3 WHERE id = $1")
            .bind($post_id)
            .bind(status.as_str())
            .bind($now)
            .execute($tx)
            .await?;
        status
    }};
}
pub(crate) use refresh_post_status;

/// A value bound into a listing query.
#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Int(i64),
}

/// Placeholders `$start, $start+1, …` for an `IN (…)` list of `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// A post's stored phase and derived status, with its deliveries' ids and statuses, read
/// inside a write transaction before a change.
struct Snapshot {
    status: PostStatus,
    deliveries: Vec<(String, Platform, DeliveryStatus)>,
}

macro_rules! snapshot {
    ($tx:expr, $id:expr) => {{
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM posts WHERE id = $1")
            .bind($id.as_str())
            .fetch_optional($tx)
            .await?;
        let status = status.ok_or_else(|| StoreError::NotFound {
            what: "post",
            id: $id.to_string(),
        })?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, platform, status FROM deliveries WHERE post_id = $1 ORDER BY id",
        )
        .bind($id.as_str())
        .fetch_all($tx)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for (id, platform, status) in rows {
            deliveries.push((
                id,
                platform.parse().map_err(corrupt)?,
                status.parse().map_err(corrupt)?,
            ));
        }
        Snapshot {
            status: status.parse().map_err(corrupt)?,
            deliveries,
        }
    }};
}

impl Hub {
    /// Creates a post and its deliveries in one transaction. With an idempotency key that the
    /// same creator used before, returns the first post and writes nothing.
    pub async fn create_post(&self, new: &NewPost) -> Result<CreateOutcome, StoreError> {
        self.ensure_writable()?;
        if !matches!(
            new.phase,
            PostStatus::Draft | PostStatus::PendingApproval | PostStatus::Scheduled
        ) {
            return Err(StoreError::Invalid(format!(
                "a new post cannot start as {}",
                new.phase
            )));
        }
        if new.deliveries.is_empty() {
            return Err(StoreError::Invalid(
                "a post needs at least one account".to_string(),
            ));
        }
        if new.phase == PostStatus::Scheduled && new.run_at.is_none() {
            return Err(StoreError::Invalid(
                "a scheduled post needs a time".to_string(),
            ));
        }
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self.post_by_idempotency_key(&new.created_by, key).await?
        {
            return Ok(CreateOutcome::Existing(existing));
        }
        // On a company hub nothing is scheduled without an approval (`psn approve`): a post
        // that would be scheduled waits for one instead.
        let phase = if self.is_company() && new.phase == PostStatus::Scheduled {
            PostStatus::PendingApproval
        } else {
            new.phase
        };
        let now = now_ms();
        let id = PostId::from_random(random_id_bytes());
        let delivery_status = if phase == PostStatus::Scheduled {
            DeliveryStatus::Scheduled
        } else {
            DeliveryStatus::Held
        };
        let run_at = new.run_at.map(to_ms);
        let statuses = vec![delivery_status; new.deliveries.len()];
        let status = derive_post_status(phase, &statuses);
        let result: Result<(), StoreError> = async {
            write_tx!(&self.backend, tx => {
                sqlx::query(&format!(
                    "INSERT INTO posts ({POST_COLUMNS}, phase) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)"))
                    .bind(id.as_str())
                    .bind(status.as_str())
                    .bind(&new.body)
                    .bind(new.language.as_ref().map(|l| l.as_str().to_string()))
                    .bind(run_at)
                    .bind(&new.created_by)
                    .bind(&new.idempotency_key)
                    .bind(new.media.to_string())
                    .bind(new.options.to_string())
                    .bind(now)
                    .bind(phase.as_str())
                    .execute(&mut *tx)
                    .await?;
                for d in &new.deliveries {
                    let account_status: Option<String> =
                        sqlx::query_scalar("SELECT status FROM accounts WHERE id = $1")
                            .bind(d.account_id.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                    match account_status.as_deref() {
                        Some("active") => {}
                        Some(other) => return Err(StoreError::Conflict(format!(
                            "account {} is {other}; reconnect it with `psn accounts connect {}`",
                            d.account_id, d.platform))),
                        None => return Err(StoreError::NotFound { what: "account", id: d.account_id.to_string() }),
                    }
                    sqlx::query(
                        "INSERT INTO deliveries (id, post_id, account_id, created_by, platform, status, \
                         run_at, segments, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)")
                        .bind(DeliveryId::from_random(random_id_bytes()).as_str())
                        .bind(id.as_str())
                        .bind(d.account_id.as_str())
                        .bind(&new.created_by)
                        .bind(d.platform.as_str())
                        .bind(delivery_status.as_str())
                        .bind(run_at.unwrap_or(now))
                        .bind(serde_json::to_string(&d.segments)?)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                crate::listen::notify_due!(self, &mut *tx);
                audit(&mut *tx, &new.created_by, "post.create", "post", id.as_str(),
                    &serde_json::json!({"phase": phase, "accounts": new.deliveries.len()})).await?;
                tx.commit().await?;
                Ok(())
            })
        }
        .await;
        match result {
            Ok(()) => Ok(CreateOutcome::Created(self.post(&id).await?)),
            Err(StoreError::Database(e))
                if is_unique_violation(&e) && new.idempotency_key.is_some() =>
            {
                // Another process created it between our check and our insert.
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                match self.post_by_idempotency_key(&new.created_by, key).await? {
                    Some(existing) => Ok(CreateOutcome::Existing(existing)),
                    None => Err(StoreError::Database(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn post_by_idempotency_key(
        &self,
        created_by: &str,
        key: &str,
    ) -> Result<Option<Post>, StoreError> {
        let id: Option<String> = on_db!(&self.backend, db =>
            sqlx::query_scalar("SELECT id FROM posts WHERE created_by = $1 AND idempotency_key = $2")
                .bind(created_by).bind(key).fetch_optional(db).await?);
        match id {
            Some(id) => Ok(Some(self.post(&id.parse().map_err(corrupt)?).await?)),
            None => Ok(None),
        }
    }

    /// One post with its deliveries.
    pub async fn post(&self, id: &PostId) -> Result<Post, StoreError> {
        let mut posts = self.posts_by_ids(&[id.to_string()]).await?;
        posts.pop().ok_or_else(|| StoreError::NotFound {
            what: "post",
            id: id.to_string(),
        })
    }

    /// One post with its deliveries and every delivery's attempt history.
    pub async fn post_with_attempts(&self, id: &PostId) -> Result<Post, StoreError> {
        let mut post = self.post(id).await?;
        for d in &mut post.deliveries {
            let rows: Vec<AttemptRow> = on_db!(&self.backend, db =>
                sqlx::query_as("SELECT step, status, worker, started_at, finished_at, error_class, error, \
                                external_id FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id")
                    .bind(d.id.as_str()).fetch_all(db).await?);
            d.attempts = rows.into_iter().map(AttemptRow::into_attempt).collect();
            let progress: String = on_db!(&self.backend, db =>
                sqlx::query_scalar("SELECT progress FROM deliveries WHERE id = $1")
                    .bind(d.id.as_str()).fetch_one(db).await?);
            d.published = published_segments(&progress)?;
        }
        Ok(post)
    }

    async fn posts_by_ids(&self, ids: &[String]) -> Result<Vec<Post>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let post_sql = format!(
            "SELECT {POST_COLUMNS} FROM posts WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let delivery_sql = format!(
            "{DELIVERY_SELECT} WHERE d.post_id IN ({}) ORDER BY d.post_id, d.platform, a.handle",
            placeholders(1, ids.len())
        );
        let post_rows: Vec<PostRow> = on_db!(&self.backend, db => {
            let mut q = sqlx::query_as(&post_sql);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(db).await?
        });
        let delivery_rows: Vec<DeliveryRow> = on_db!(&self.backend, db => {
            let mut q = sqlx::query_as(&delivery_sql);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(db).await?
        });
        let mut by_post: std::collections::HashMap<String, Vec<Delivery>> =
            std::collections::HashMap::new();
        for row in delivery_rows {
            let post_id = row.post_id.clone();
            by_post
                .entry(post_id)
                .or_default()
                .push(row.into_delivery()?);
        }
        let mut posts = Vec::with_capacity(post_rows.len());
        for row in post_rows {
            let deliveries = by_post.remove(&row.id).unwrap_or_default();
            posts.push(row.into_post(deliveries)?);
        }
        // Keep the caller's order.
        let order: std::collections::HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        posts.sort_by_key(|p| order.get(p.id.as_str()).copied().unwrap_or(usize::MAX));
        Ok(posts)
    }

    /// Posts matching `filter`, soonest first (drafts without a time last).
    ///
    /// Two index-friendly parts instead of one `ORDER BY CASE …` (which sorts every matching
    /// row): posts with a time by `(run_at, id)`, then, when the limit is not reached, posts
    /// without one by id. The filter is a subquery of the fetch, never a `$1…$N` list of ids
    /// (SQLite binds those in quadratic time and refuses more than 32766).
    pub async fn posts(&self, filter: &PostFilter) -> Result<Vec<Post>, StoreError> {
        let mut conds = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        if !filter.statuses.is_empty() {
            conds.push(format!(
                "status IN ({})",
                placeholders(params.len() + 1, filter.statuses.len())
            ));
            params.extend(
                filter
                    .statuses
                    .iter()
                    .map(|s| Param::Text(s.as_str().to_string())),
            );
        }
        if let Some(from) = filter.from {
            conds.push(format!("run_at >= ${}", params.len() + 1));
            params.push(Param::Int(to_ms(from)));
        }
        if let Some(to) = filter.to {
            conds.push(format!("run_at < ${}", params.len() + 1));
            params.push(Param::Int(to_ms(to)));
        }
        let base: String = conds.iter().map(|c| format!("{c} AND ")).collect();
        let mut timed_params = params.clone();
        let timed = match filter.limit {
            Some(limit) => {
                let l = timed_params.len() + 1;
                timed_params.push(Param::Int(limit));
                // The latest time among the first `limit` rows bounds the sorted range, so
                // the sort by (run_at, id) sees about `limit` rows, not every match.
                format!(
                    "SELECT id FROM posts WHERE {base}run_at IS NOT NULL AND run_at <= \
                     (SELECT MAX(run_at) FROM (SELECT run_at FROM posts WHERE {base}run_at IS NOT NULL \
                     ORDER BY run_at LIMIT ${l}) horizon) ORDER BY run_at, id LIMIT ${l}"
                )
            }
            None => format!("SELECT id FROM posts WHERE {base}run_at IS NOT NULL"),
        };
        let mut posts = self.posts_in(&timed, &timed_params, "run_at, id").await?;
        let remaining = filter.limit.map(|l| l - posts.len() as i64);
        if filter.from.is_none() && filter.to.is_none() && remaining.is_none_or(|r| r > 0) {
            let mut untimed =
                format!("SELECT id FROM posts WHERE {base}run_at IS NULL ORDER BY id");
            if let Some(r) = remaining {
                untimed.push_str(&format!(" LIMIT ${}", params.len() + 1));
                params.push(Param::Int(r));
            }
            posts.extend(self.posts_in(&untimed, &params, "id").await?);
        }
        Ok(posts)
    }

    /// The posts whose ids `id_sql` selects (with `params` bound), in `order`, with their
    /// deliveries: one statement, one row per delivery.
    async fn posts_in(
        &self,
        id_sql: &str,
        params: &[Param],
        order: &str,
    ) -> Result<Vec<Post>, StoreError> {
        let order: String = order
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT p.id, p.status, p.body, p.language, p.run_at, p.created_by, p.idempotency_key, \
             p.media, p.options, p.created_at, p.updated_at, d.id AS d_id, d.platform AS d_platform, \
             d.account_id AS d_account_id, a.handle AS d_handle, d.status AS d_status, d.run_at AS d_run_at, \
             d.segments AS d_segments, d.attempt_count AS d_attempt_count, d.external_id AS d_external_id, \
             d.external_url AS d_external_url, d.last_error AS d_last_error, d.published_at AS d_published_at \
             FROM posts p LEFT JOIN deliveries d ON d.post_id = p.id LEFT JOIN accounts a ON a.id = d.account_id \
             WHERE p.id IN ({id_sql}) ORDER BY {order}, d.platform, a.handle"
        );
        let rows: Vec<JoinedRow> = on_db!(&self.backend, db => {
            let mut q = sqlx::query_as(&sql);
            for p in params {
                q = match p { Param::Text(s) => q.bind(s.clone()), Param::Int(i) => q.bind(*i) };
            }
            q.fetch_all(db).await?
        });
        let mut posts: Vec<Post> = Vec::new();
        for r in rows {
            if posts.last().is_none_or(|p| p.id.as_str() != r.id) {
                let post = PostRow {
                    id: r.id.clone(),
                    status: r.status,
                    body: r.body,
                    language: r.language,
                    run_at: r.run_at,
                    created_by: r.created_by,
                    idempotency_key: r.idempotency_key,
                    media: r.media,
                    options: r.options,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                };
                posts.push(post.into_post(Vec::new())?);
            }
            if let (
                Some(id),
                Some(platform),
                Some(account_id),
                Some(status),
                Some(run_at),
                Some(segments),
            ) = (
                r.d_id,
                r.d_platform,
                r.d_account_id,
                r.d_status,
                r.d_run_at,
                r.d_segments,
            ) {
                let d = DeliveryRow {
                    id,
                    post_id: r.id,
                    platform,
                    account_id,
                    handle: r.d_handle.unwrap_or_default(),
                    status,
                    run_at,
                    segments,
                    attempt_count: r.d_attempt_count.unwrap_or(0),
                    external_id: r.d_external_id,
                    external_url: r.d_external_url,
                    last_error: r.d_last_error,
                    published_at: r.d_published_at,
                };
                posts
                    .last_mut()
                    .expect("pushed above")
                    .deliveries
                    .push(d.into_delivery()?);
            }
        }
        Ok(posts)
    }

    /// Moves a post that has not been published to a new time.
    pub async fn reschedule_post(
        &self,
        id: &PostId,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<Post, StoreError> {
        self.apply_post_event(
            id,
            PostEvent::Reschedule,
            DeliveryEvent::Reschedule,
            actor,
            Some(at),
            None,
        )
        .await
    }

    /// Cancels a post that has not been published.
    pub async fn cancel_post(&self, id: &PostId, actor: &str) -> Result<Post, StoreError> {
        self.apply_post_event(
            id,
            PostEvent::Cancel,
            DeliveryEvent::Cancel,
            actor,
            None,
            None,
        )
        .await
    }

    /// Re-queues the failed (or needs-attention) deliveries of a post, due now. Published
    /// deliveries are left alone, so nothing is posted twice.
    pub async fn retry_post(&self, id: &PostId, actor: &str) -> Result<Post, StoreError> {
        self.apply_post_event(
            id,
            PostEvent::Retry,
            DeliveryEvent::ManualRetry,
            actor,
            None,
            None,
        )
        .await
    }

    /// Replaces the text of a post that has not been published.
    pub async fn edit_post(
        &self,
        id: &PostId,
        edit: &PostEdit,
        actor: &str,
    ) -> Result<Post, StoreError> {
        self.apply_post_event(
            id,
            PostEvent::Edit,
            DeliveryEvent::Edit,
            actor,
            None,
            Some(edit),
        )
        .await
    }

    async fn apply_post_event(
        &self,
        id: &PostId,
        post_event: PostEvent,
        delivery_event: DeliveryEvent,
        actor: &str,
        at: Option<DateTime<Utc>>,
        edit: Option<&PostEdit>,
    ) -> Result<Post, StoreError> {
        self.ensure_writable()?;
        let now = now_ms();
        write_tx!(&self.backend, tx => {
            let snap = snapshot!(&mut *tx, id);
            let next = snap.status.apply(post_event)?;
            let mut changed = 0;
            for (delivery_id, platform, status) in &snap.deliveries {
                // Only deliveries the event applies to move; published ones never do.
                let Ok(next_delivery) = status.apply(delivery_event) else { continue };
                let segments = match edit {
                    Some(edit) => {
                        let segs = edit.segments.iter().find(|(p, _)| p == platform).map(|(_, s)| s)
                            .ok_or_else(|| StoreError::Invalid(format!("the edit has no text for {platform}")))?;
                        Some(serde_json::to_string(segs)?)
                    }
                    None => None,
                };
                let run_at = match (post_event, at) {
                    (PostEvent::Retry, _) => Some(now),
                    (_, Some(at)) => Some(to_ms(at)),
                    _ => None,
                };
                sqlx::query(
                    "UPDATE deliveries SET status = $2, run_at = COALESCE($3, run_at), \
                     segments = COALESCE($4, segments), \
                     last_error = CASE WHEN $5 = 1 THEN NULL ELSE last_error END, updated_at = $6 \
                     WHERE id = $1 AND status = $7")
                    .bind(delivery_id)
                    .bind(next_delivery.as_str())
                    .bind(run_at)
                    .bind(segments)
                    .bind(i64::from(post_event == PostEvent::Retry))
                    .bind(now)
                    .bind(status.as_str())
                    .execute(&mut *tx)
                    .await?;
                changed += 1;
            }
            if changed == 0 && post_event != PostEvent::Cancel {
                return Err(StoreError::Conflict(format!(
                    "nothing to {} in post {id}: none of its deliveries is in a state that allows it",
                    post_event.as_str())));
            }
            let phase = match post_event {
                PostEvent::Cancel => Some(next.as_str()),
                _ => None,
            };
            sqlx::query(
                "UPDATE posts SET phase = COALESCE($2, phase), run_at = COALESCE($3, run_at), \
                 body = COALESCE($4, body), language = CASE WHEN $5 = 1 THEN $6 ELSE language END, \
                 updated_at = $7 WHERE id = $1")
                .bind(id.as_str())
                .bind(phase)
                .bind(at.map(to_ms))
                .bind(edit.map(|e| e.body.clone()))
                .bind(i64::from(edit.is_some()))
                .bind(edit.and_then(|e| e.language.as_ref().map(|l| l.as_str().to_string())))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            refresh_post_status!(&mut *tx, id.as_str(), now);
            crate::listen::notify_due!(self, &mut *tx);
            audit(&mut *tx, actor, &format!("post.{}", post_event.as_str()), "post", id.as_str(),
                &serde_json::json!({"from": snap.status, "deliveries_changed": changed,
                                    "run_at": at.map(|t| t.to_rfc3339())})).await?;
            tx.commit().await?;
        });
        self.post(id).await
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    step: String,
    status: String,
    worker: Option<String>,
    started_at: i64,
    finished_at: Option<i64>,
    error_class: Option<String>,
    error: Option<String>,
    external_id: Option<String>,
}

impl AttemptRow {
    fn into_attempt(self) -> Attempt {
        Attempt {
            step: self.step,
            status: self.status,
            worker: self.worker,
            started_at: from_ms(self.started_at),
            finished_at: self.finished_at.map(from_ms),
            error_class: self.error_class,
            error: self.error,
            external_id: self.external_id,
        }
    }
}

/// The finished `segment:N` steps of a delivery's progress, in thread order.
fn published_segments(progress: &str) -> Result<Vec<PublishedSegment>, StoreError> {
    let steps: std::collections::BTreeMap<String, crate::engine::StepRecord> =
        serde_json::from_str(progress)?;
    let mut out: Vec<PublishedSegment> = steps
        .into_iter()
        .filter_map(|(step, record)| {
            let index = step.strip_prefix("segment:")?.parse().ok()?;
            Some(PublishedSegment {
                index,
                external_id: record.external_id,
                url: record.url,
            })
        })
        .collect();
    out.sort_by_key(|s| s.index);
    Ok(out)
}
