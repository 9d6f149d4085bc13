//! What the publishing engine asks of the store: atomic claims with leases, heartbeats,
//! write-ahead attempt records, step progress, outcomes, recovery of expired leases, circuit
//! breakers, rate budgets and alerts. The engine decides; these operations persist its
//! decisions, each in one transaction, and each through the domain's transition functions.
//!
//! A claim only succeeds for the worker that holds the lease: every later write checks
//! `lease_owner`, so a worker whose lease expired (and was recovered by another) cannot
//! overwrite what the recovery decided.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use psn_domain::{AccountId, DeliveryEvent, DeliveryId, DeliveryStatus, Platform, PostId};
use serde::{Deserialize, Serialize};

use crate::posts::refresh_post_status;
use crate::time::{from_ms, to_ms};
use crate::{Backend, Hub, StoreError, on_db, write_tx};

/// What a finished step left behind (a platform id and URL), kept in `deliveries.progress`
/// under the step's name (`segment:0`, `media:0`, …) so a resumed delivery skips it. A step in
/// progress (a media upload) keeps its resumable state in `state` under its own key
/// (`media:0:upload`, see [`Hub::save_step_progress`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub external_id: String,
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// A delivery a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub post_id: PostId,
    pub account_id: AccountId,
    pub platform: Platform,
    /// The status it had before the claim: `Unconfirmed` means recovery must reconcile first.
    pub claimed_from: DeliveryStatus,
    pub segments: Vec<String>,
    pub language: Option<String>,
    /// The post's attached media, as stored (`posts.media`).
    pub media: serde_json::Value,
    pub progress: BTreeMap<String, StepRecord>,
    /// Including this claim.
    pub attempt_count: i64,
    pub run_at: DateTime<Utc>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub lease_expires_at: DateTime<Utc>,
}

/// A write-ahead attempt whose outcome was never recorded (the worker died or the call was
/// ambiguous): recovery reconciles these before anything is sent again.
#[derive(Debug, Clone)]
pub struct OpenAttempt {
    pub id: i64,
    pub step: String,
    pub idempotency_key: String,
}

/// How a step attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    /// Sent, outcome unknown.
    Unknown,
    /// Found on the platform by reconciliation.
    Reconciled,
    /// Reconciliation showed it was never created.
    NotFound,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Unknown => "unknown",
            AttemptOutcome::Reconciled => "reconciled",
            AttemptOutcome::NotFound => "not_found",
        }
    }
}

/// Alert priorities (seed 000, pitfall 15): P0 immediate (token and post failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Priority {
    P0,
    P1,
    P2,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::P0 => "P0",
            Priority::P1 => "P1",
            Priority::P2 => "P2",
        }
    }
}

/// An alert for a human.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: i64,
    pub priority: String,
    pub kind: String,
    pub subject_type: String,
    pub subject_id: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// The outcome of a delivery the engine decided on.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    /// Every step is done.
    Published {
        external_id: String,
        url: Option<String>,
    },
    /// Try again at `run_at` (transient failure, rate limit, or a graceful release).
    RetryAt {
        run_at: DateTime<Utc>,
        error: Option<String>,
    },
    /// A call's outcome is unknown: recovery will reconcile at `run_at`.
    Unconfirmed {
        run_at: DateTime<Utc>,
        error: String,
    },
    /// psn cannot tell whether it was published and cannot check: a human must.
    NeedsAttention { error: String },
    /// The platform refused it for good, or the deadline passed.
    Failed { error: String },
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    post_id: String,
    account_id: String,
    platform: String,
    segments: String,
    progress: String,
    attempt_count: i64,
    run_at: i64,
    deadline_at: Option<i64>,
    lease_expires_at: Option<i64>,
    language: Option<String>,
    media: Option<String>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// What `finish_delivery` writes: the event, a new run time, the error, and the external id
/// and URL.
type Decision<'a> = (
    DeliveryEvent,
    Option<i64>,
    Option<&'a str>,
    Option<(&'a str, Option<&'a str>)>,
);

const CLAIMABLE: &str = "'scheduled', 'retry_wait', 'unconfirmed'";

impl Hub {
    /// Claims the due delivery with the earliest `run_at` among `platforms`, for `worker`,
    /// with a lease until `now + lease`. Skips accounts with a delivery in flight, accounts
    /// that are not active, open breakers and blocked budgets. `None` when nothing is due.
    ///
    /// An account with an `unconfirmed` delivery publishes nothing else until that delivery
    /// is reconciled: posting more would push the unknown post out of the recent posts that
    /// reconciliation reads (X: the last 100), and it would be sent twice.
    pub async fn claim_next(
        &self,
        worker: &str,
        platforms: &[Platform],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedDelivery>, StoreError> {
        self.ensure_writable()?;
        if platforms.is_empty() {
            return Ok(None);
        }
        let now_ms = to_ms(now);
        let lease_until = now_ms + lease.as_millis() as i64;
        let platform_list = platforms
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        // Walk due deliveries in claim order and stop at the first eligible one. SQLite's
        // planner, without statistics, prefers `deliveries_due` and sorts every due row; name
        // the index there.
        let (lock, hint) = match &self.backend {
            Backend::Postgres(_) | Backend::Company(_) => (" FOR UPDATE OF d SKIP LOCKED", ""),
            Backend::Sqlite(_) => ("", " INDEXED BY deliveries_claimable"),
        };
        let pick = format!(
            "SELECT d.id, d.status FROM deliveries d{hint} \
             WHERE d.status IN ({CLAIMABLE}) AND d.run_at <= $1 AND d.platform IN ({platform_list}) \
             AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.account_id = d.account_id AND x.status = 'claimed') \
             AND (d.status = 'unconfirmed' OR NOT EXISTS (SELECT 1 FROM deliveries u \
                 WHERE u.account_id = d.account_id AND u.status = 'unconfirmed')) \
             AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = d.account_id AND a.status = 'active') \
             AND NOT EXISTS (SELECT 1 FROM breakers b WHERE b.open_until > $1 \
                 AND (b.scope = 'platform:' || d.platform OR b.scope = 'account:' || d.account_id)) \
             AND NOT EXISTS (SELECT 1 FROM rate_budgets r WHERE r.account_id = d.account_id \
                 AND (r.blocked_until > $1 OR (r.window_start + r.window_ms > $1 AND r.used >= r.capacity))) \
             ORDER BY d.run_at, d.id LIMIT 1{lock}"
        );
        let update = "UPDATE deliveries SET status = 'claimed', lease_owner = $2, lease_expires_at = $3, \
             attempt_count = attempt_count + 1, updated_at = $4 WHERE id = $1 \
             RETURNING id, post_id, account_id, platform, segments, progress, attempt_count, run_at, \
             deadline_at, lease_expires_at, \
             (SELECT language FROM posts p WHERE p.id = deliveries.post_id) AS language, \
             (SELECT media FROM posts p WHERE p.id = deliveries.post_id) AS media";
        let result: Result<Option<(ClaimRow, String)>, StoreError> = async {
            write_tx!(&self.backend, tx => {
                let picked: Option<(String, String)> =
                    sqlx::query_as(&pick).bind(now_ms).fetch_optional(&mut *tx).await?;
                let Some((id, status)) = picked else { return Ok(None) };
                let from: DeliveryStatus = status.parse().map_err(corrupt)?;
                from.apply(DeliveryEvent::Claim)?;
                let row: ClaimRow = sqlx::query_as(update)
                    .bind(&id)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                let post_id = row.post_id.clone();
                refresh_post_status!(&mut *tx, post_id.as_str(), now_ms);
                tx.commit().await?;
                Ok(Some((row, status)))
            })
        }
        .await;
        let (row, status) = match result {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            // Another worker claimed a delivery of the same account at the same moment: the
            // one-in-flight index refused ours. Nothing changed; the caller tries again.
            Err(StoreError::Database(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(Some(ClaimedDelivery {
            id: row.id.parse().map_err(corrupt)?,
            post_id: row.post_id.parse().map_err(corrupt)?,
            account_id: row.account_id.parse().map_err(corrupt)?,
            platform: row.platform.parse().map_err(corrupt)?,
            claimed_from: status.parse().map_err(corrupt)?,
            segments: serde_json::from_str(&row.segments)?,
            language: row.language,
            media: match row.media.as_deref() {
                Some(m) if !m.trim().is_empty() => serde_json::from_str(m)?,
                _ => serde_json::Value::Null,
            },
            progress: serde_json::from_str(&row.progress)?,
            attempt_count: row.attempt_count,
            run_at: from_ms(row.run_at),
            deadline_at: row.deadline_at.map(from_ms),
            lease_expires_at: from_ms(row.lease_expires_at.unwrap_or(lease_until)),
        }))
    }

    /// Extends the lease. `false` when the worker no longer holds it (recovery took it).
    pub async fn heartbeat(
        &self,
        id: &DeliveryId,
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE deliveries SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'claimed'")
            .bind(id.as_str()).bind(worker).bind(to_ms(until)).execute(db).await?.rows_affected());
        Ok(n == 1)
    }

    /// Writes an attempt as `sending` and commits it, before the platform call. Fails with
    /// `Conflict` when the worker lost the lease.
    pub async fn begin_attempt(
        &self,
        id: &DeliveryId,
        worker: &str,
        step: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        write_tx!(&self.backend, tx => {
            let owner: Option<(String, String)> = sqlx::query_as(
                "SELECT created_by, status FROM deliveries WHERE id = $1 AND lease_owner = $2")
                .bind(id.as_str()).bind(worker).fetch_optional(&mut *tx).await?;
            match owner {
                Some((created_by, status)) if status == "claimed" => {
                    let attempt_id: i64 = sqlx::query_scalar(
                        "INSERT INTO delivery_attempts (delivery_id, created_by, step, idempotency_key, \
                         status, worker, started_at) VALUES ($1, $2, $3, $4, 'sending', $5, $6) RETURNING id")
                        .bind(id.as_str()).bind(&created_by).bind(step)
                        .bind(idempotency_key)
                        .bind(worker).bind(to_ms(now))
                        .fetch_one(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(attempt_id)
                }
                _ => Err(StoreError::Conflict(format!("worker {worker} no longer holds delivery {id}"))),
            }
        })
    }

    /// Records how an attempt ended; on success (or a reconciled find) also records the step's
    /// progress, in the same transaction.
    #[allow(clippy::too_many_arguments)] // one column per argument, all required
    pub async fn finish_attempt(
        &self,
        id: &DeliveryId,
        attempt_id: i64,
        outcome: AttemptOutcome,
        error_class: Option<&str>,
        error: Option<&str>,
        step_done: Option<(&str, &StepRecord)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        write_tx!(&self.backend, tx => {
            sqlx::query(
                "UPDATE delivery_attempts SET status = $2, finished_at = $3, error_class = $4, error = $5, \
                 external_id = $6 WHERE id = $1")
                .bind(attempt_id).bind(outcome.as_str()).bind(to_ms(now))
                .bind(error_class).bind(error)
                .bind(step_done.map(|(_, r)| r.external_id.clone()))
                .execute(&mut *tx).await?;
            if let Some((step, record)) = step_done {
                let progress: String = sqlx::query_scalar("SELECT progress FROM deliveries WHERE id = $1")
                    .bind(id.as_str()).fetch_one(&mut *tx).await?;
                let mut progress: BTreeMap<String, StepRecord> = serde_json::from_str(&progress)?;
                progress.insert(step.to_string(), record.clone());
                sqlx::query("UPDATE deliveries SET progress = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.as_str()).bind(serde_json::to_string(&progress)?).bind(to_ms(now))
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Saves the state of a step in progress under `key` in the delivery's progress (a media
    /// upload's session, offset, part ETags…), so a resumed delivery continues from it. Fails
    /// with `Conflict` when the worker lost the lease.
    pub async fn save_step_progress(
        &self,
        id: &DeliveryId,
        worker: &str,
        key: &str,
        record: &StepRecord,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        write_tx!(&self.backend, tx => {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT status, progress FROM deliveries WHERE id = $1 AND lease_owner = $2")
                .bind(id.as_str()).bind(worker).fetch_optional(&mut *tx).await?;
            match row {
                Some((status, progress)) if status == "claimed" => {
                    let mut progress: BTreeMap<String, StepRecord> = serde_json::from_str(&progress)?;
                    progress.insert(key.to_string(), record.clone());
                    sqlx::query("UPDATE deliveries SET progress = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.as_str()).bind(serde_json::to_string(&progress)?).bind(to_ms(now))
                        .execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(())
                }
                _ => Err(StoreError::Conflict(format!("worker {worker} no longer holds delivery {id}"))),
            }
        })
    }

    /// Attempts of a delivery that were begun and never finished, or whose outcome is unknown.
    pub async fn open_attempts(&self, id: &DeliveryId) -> Result<Vec<OpenAttempt>, StoreError> {
        let rows: Vec<(i64, String, String)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT id, step, idempotency_key FROM delivery_attempts WHERE delivery_id = $1 \
             AND status IN ('sending', 'unknown') ORDER BY id")
            .bind(id.as_str()).fetch_all(db).await?);
        Ok(rows
            .into_iter()
            .map(|(id, step, key)| OpenAttempt {
                id,
                step,
                idempotency_key: key,
            })
            .collect())
    }

    /// Ends the worker's claim with `outcome`. Writes a P0 alert for `Failed` and
    /// `NeedsAttention`. Fails with `Conflict` when the worker no longer holds the lease.
    pub async fn finish_delivery(
        &self,
        id: &DeliveryId,
        worker: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<DeliveryStatus, StoreError> {
        let now_ms = to_ms(now);
        let (event, run_at, error, external): Decision<'_> = match outcome {
            DeliveryOutcome::Published { external_id, url } => (
                DeliveryEvent::Succeed,
                None,
                None,
                Some((external_id.as_str(), url.as_deref())),
            ),
            DeliveryOutcome::RetryAt { run_at, error } => (
                DeliveryEvent::TransientFailure,
                Some(to_ms(*run_at)),
                error.as_deref(),
                None,
            ),
            DeliveryOutcome::Unconfirmed { run_at, error } => (
                DeliveryEvent::Ambiguous,
                Some(to_ms(*run_at)),
                Some(error.as_str()),
                None,
            ),
            DeliveryOutcome::NeedsAttention { error } => (
                DeliveryEvent::ReconcileImpossible,
                None,
                Some(error.as_str()),
                None,
            ),
            DeliveryOutcome::Failed { error } => (
                DeliveryEvent::PermanentFailure,
                None,
                Some(error.as_str()),
                None,
            ),
        };
        write_tx!(&self.backend, tx => {
            let row: Option<(String, String, String, String)> = sqlx::query_as(
                "SELECT status, post_id, created_by, platform FROM deliveries WHERE id = $1 AND lease_owner = $2")
                .bind(id.as_str()).bind(worker).fetch_optional(&mut *tx).await?;
            let Some((status, post_id, created_by, platform)) = row else {
                return Err(StoreError::Conflict(format!("worker {worker} no longer holds delivery {id}")));
            };
            let from: DeliveryStatus = status.parse().map_err(corrupt)?;
            if from != DeliveryStatus::Claimed {
                return Err(StoreError::Conflict(format!("delivery {id} is {from}, not claimed by {worker}")));
            }
            // NeedsAttention is reached from Unconfirmed; go through it explicitly.
            let from = if event == DeliveryEvent::ReconcileImpossible {
                from.apply(DeliveryEvent::Ambiguous)?
            } else {
                from
            };
            let next = from.apply(event)?;
            sqlx::query(
                "UPDATE deliveries SET status = $2, run_at = COALESCE($3, run_at), last_error = $4, \
                 external_id = COALESCE($5, external_id), external_url = COALESCE($6, external_url), \
                 published_at = CASE WHEN $2 = 'published' THEN $7 ELSE published_at END, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $7 WHERE id = $1")
                .bind(id.as_str()).bind(next.as_str()).bind(run_at).bind(error)
                .bind(external.map(|(e, _)| e.to_string()))
                .bind(external.and_then(|(_, u)| u.map(str::to_string)))
                .bind(now_ms)
                .execute(&mut *tx).await?;
            refresh_post_status!(&mut *tx, post_id.as_str(), now_ms);
            let alert = match next {
                DeliveryStatus::Failed => Some(("delivery_failed", format!(
                    "A post to {platform} failed: {}. Fix it and run `psn retry {post_id}`.", error.unwrap_or("unknown error")))),
                DeliveryStatus::NeedsAttention => Some(("delivery_needs_attention", format!(
                    "psn cannot tell whether a post to {platform} was published: {}. Check the account, then `psn retry {post_id}` if it is not there.",
                    error.unwrap_or("unknown outcome")))),
                _ => None,
            };
            if next == DeliveryStatus::Published {
                // Who published what, next to who wrote and who approved it.
                crate::audit::audit(&mut *tx, worker, "delivery.published", "post", &post_id,
                    &serde_json::json!({"delivery": id.as_str(), "platform": platform,
                                        "external_id": external.map(|(e, _)| e)})).await?;
            }
            if let Some((kind, message)) = alert {
                sqlx::query(
                    "INSERT INTO alerts (created_by, priority, kind, subject_type, subject_id, message, created_at) \
                     VALUES ($1, $2, $3, 'post', $4, $5, $6)")
                    .bind(&created_by).bind(Priority::P0.as_str()).bind(kind).bind(&post_id)
                    .bind(message).bind(now_ms)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(next)
        })
    }

    /// Recovery: every claimed delivery whose lease expired (its worker died) becomes
    /// `unconfirmed`, due now, so that the next claim reconciles its open attempts before
    /// anything is sent again. Returns how many were recovered.
    pub async fn recover_expired_leases(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.ensure_writable()?;
        let now_ms = to_ms(now);
        write_tx!(&self.backend, tx => {
            let expired: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, post_id FROM deliveries WHERE status = 'claimed' AND lease_expires_at <= $1")
                .bind(now_ms).fetch_all(&mut *tx).await?;
            for (id, post_id) in &expired {
                let next = DeliveryStatus::Claimed.apply(DeliveryEvent::LeaseExpired)?;
                sqlx::query(
                    "UPDATE deliveries SET status = $2, run_at = $3, lease_owner = NULL, lease_expires_at = NULL, \
                     last_error = 'the worker publishing it stopped; checking the platform before retrying', \
                     updated_at = $3 WHERE id = $1 AND status = 'claimed'")
                    .bind(id).bind(next.as_str()).bind(now_ms).execute(&mut *tx).await?;
                refresh_post_status!(&mut *tx, post_id.as_str(), now_ms);
            }
            tx.commit().await?;
            Ok(expired.len() as u64)
        })
    }

    /// When the next delivery becomes due (claimable statuses only), if any.
    pub async fn next_due_at(
        &self,
        platforms: &[Platform],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if platforms.is_empty() {
            return Ok(None);
        }
        let list = platforms
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT MIN(run_at) FROM deliveries WHERE status IN ({CLAIMABLE}) AND platform IN ({list})"
        );
        let at: Option<i64> =
            on_db!(&self.backend, db => sqlx::query_scalar(&sql).fetch_one(db).await?);
        let lease: Option<i64> = on_db!(&self.backend, db => sqlx::query_scalar(
            "SELECT MIN(lease_expires_at) FROM deliveries WHERE status = 'claimed'").fetch_one(db).await?);
        Ok(match (at, lease) {
            (Some(a), Some(l)) => Some(from_ms(a.min(l))),
            (a, l) => a.or(l).map(from_ms),
        })
    }

    /// Records a call's success or failure for the platform and account breakers. After
    /// `threshold` consecutive failures a breaker opens for `open_for` (doubling each time it
    /// reopens, up to ten times `open_for`); then it is half-open: one failure reopens it, a
    /// success closes it.
    pub async fn record_breaker(
        &self,
        scopes: &[String],
        success: bool,
        threshold: i64,
        open_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_ms = to_ms(now);
        write_tx!(&self.backend, tx => {
            for scope in scopes {
                if success {
                    sqlx::query("UPDATE breakers SET consecutive_failures = 0, open_until = NULL, times_opened = 0, \
                                 updated_at = $2 WHERE scope = $1")
                        .bind(scope).bind(now_ms).execute(&mut *tx).await?;
                    continue;
                }
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT consecutive_failures, times_opened FROM breakers WHERE scope = $1")
                    .bind(scope).fetch_optional(&mut *tx).await?;
                let (failures, opened) = row.unwrap_or((0, 0));
                let failures = failures + 1;
                let (open_until, opened) = if failures >= threshold {
                    let factor = 1i64 << opened.min(3);
                    let ms = (open_for.as_millis() as i64 * factor).min(open_for.as_millis() as i64 * 10);
                    (Some(now_ms + ms), opened + 1)
                } else {
                    (None, opened)
                };
                // Half-open after the open period: the first call decides. One more failure
                // reopens the breaker (for longer); a success closes it.
                let failures = if open_until.is_some() { threshold - 1 } else { failures };
                if row.is_some() {
                    sqlx::query("UPDATE breakers SET consecutive_failures = $2, open_until = COALESCE($3, open_until), \
                                 times_opened = $4, updated_at = $5 WHERE scope = $1")
                        .bind(scope).bind(failures).bind(open_until).bind(opened).bind(now_ms)
                        .execute(&mut *tx).await?;
                } else {
                    sqlx::query("INSERT INTO breakers (scope, consecutive_failures, open_until, times_opened, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5)")
                        .bind(scope).bind(failures).bind(open_until).bind(opened).bind(now_ms)
                        .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Breakers open at `now`: (scope, open until).
    pub async fn open_breakers(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(String, i64)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT scope, open_until FROM breakers WHERE open_until > $1 ORDER BY scope")
            .bind(to_ms(now)).fetch_all(db).await?);
        Ok(rows.into_iter().map(|(s, t)| (s, from_ms(t))).collect())
    }

    /// Blocks an account's budget until `until` (the platform's rate-limit reset).
    pub async fn block_budget(
        &self,
        account: &AccountId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_ms = to_ms(now);
        write_tx!(&self.backend, tx => {
            let n = sqlx::query("UPDATE rate_budgets SET blocked_until = $2, updated_at = $3 WHERE account_id = $1")
                .bind(account.as_str()).bind(to_ms(until)).bind(now_ms).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                sqlx::query("INSERT INTO rate_budgets (account_id, window_start, window_ms, capacity, used, blocked_until, updated_at) \
                             VALUES ($1, $2, 900000, 100, 0, $3, $2)")
                    .bind(account.as_str()).bind(now_ms).bind(to_ms(until)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Marks an account as needing re-authorization, with a P0 alert naming the command that
    /// reconnects it.
    pub async fn mark_needs_reauth(
        &self,
        account: &AccountId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_ms = to_ms(now);
        write_tx!(&self.backend, tx => {
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT created_by, platform, handle FROM accounts WHERE id = $1")
                .bind(account.as_str()).fetch_optional(&mut *tx).await?;
            let Some((created_by, platform, handle)) = row else {
                return Err(StoreError::NotFound { what: "account", id: account.to_string() });
            };
            let n = sqlx::query("UPDATE accounts SET status = 'needs_reauth', updated_at = $2 WHERE id = $1 AND status = 'active'")
                .bind(account.as_str()).bind(now_ms).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO alerts (created_by, priority, kind, subject_type, subject_id, message, created_at) \
                     VALUES ($1, 'P0', 'needs_reauth', 'account', $2, $3, $4)")
                    .bind(&created_by).bind(account.as_str())
                    .bind(format!("The {platform} account {handle} needs to be reconnected ({reason}): run `psn accounts connect {platform}`"))
                    .bind(now_ms).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores rotated tokens after a refresh (never replacing a refresh token with nothing)
    /// and forgets the last refresh failure.
    pub async fn store_refreshed_tokens(
        &self,
        account: &AccountId,
        access: &crate::Secret,
        refresh: Option<&crate::Secret>,
        expires_at: Option<DateTime<Utc>>,
        cipher: &crate::TokenCipher,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let access = cipher.seal(access, account.as_str(), "access_token")?;
        let refresh = refresh
            .filter(|r| !r.is_empty())
            .map(|r| cipher.seal(r, account.as_str(), "refresh_token"))
            .transpose()?;
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET access_token_enc = $2, refresh_token_enc = COALESCE($3, refresh_token_enc), \
             expires_at = $4, last_refresh_at = $5, last_refresh_error = NULL, \
             last_refresh_error_at = NULL, updated_at = $5 WHERE id = $1")
            .bind(account.as_str()).bind(access).bind(refresh).bind(expires_at.map(to_ms)).bind(to_ms(now))
            .execute(db).await?.rows_affected());
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "account",
                id: account.to_string(),
            });
        }
        Ok(())
    }

    /// Open alerts, most urgent first.
    pub async fn open_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let rows: Vec<(i64, String, String, String, String, String, i64)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT id, priority, kind, subject_type, subject_id, message, created_at FROM alerts \
             WHERE resolved_at IS NULL ORDER BY priority, id").fetch_all(db).await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, priority, kind, subject_type, subject_id, message, at)| Alert {
                    id,
                    priority,
                    kind,
                    subject_type,
                    subject_id,
                    message,
                    created_at: from_ms(at),
                },
            )
            .collect())
    }
}

/// Who spends an account's rate budget. Publishing may use all of a window; engagement and
/// analytics only part of it, so they can never starve publishing (seed 000, pitfall 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetUse {
    Publish,
    Engagement,
    Analytics,
}

impl BudgetUse {
    /// The share of the window's capacity this use may consume, in percent.
    pub fn share_percent(self) -> i64 {
        match self {
            BudgetUse::Publish => 100,
            BudgetUse::Engagement => 60,
            BudgetUse::Analytics => 30,
        }
    }
}

impl Hub {
    /// Takes one call from the account's budget (`capacity` calls per `window`). `Ok(None)`
    /// when granted; `Ok(Some(t))` when the budget for `use_` is spent or blocked until `t`.
    pub async fn consume_budget(
        &self,
        account: &AccountId,
        use_: BudgetUse,
        capacity: i64,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now_ms = to_ms(now);
        let window_ms = window.as_millis() as i64;
        write_tx!(&self.backend, tx => {
            let row: Option<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
                "SELECT window_start, window_ms, used, blocked_until FROM rate_budgets WHERE account_id = $1")
                .bind(account.as_str()).fetch_optional(&mut *tx).await?;
            let (mut start, mut used, blocked) = match row {
                Some((start, _, used, blocked)) => (start, used, blocked),
                None => {
                    sqlx::query("INSERT INTO rate_budgets (account_id, window_start, window_ms, capacity, used, updated_at) \
                                 VALUES ($1, $2, $3, $4, 0, $2)")
                        .bind(account.as_str()).bind(now_ms).bind(window_ms).bind(capacity)
                        .execute(&mut *tx).await?;
                    (now_ms, 0, None)
                }
            };
            if let Some(until) = blocked.filter(|b| *b > now_ms) {
                return Ok(Some(from_ms(until)));
            }
            if start + window_ms <= now_ms {
                start = now_ms;
                used = 0;
            }
            let allowed = capacity * use_.share_percent() / 100;
            if used >= allowed {
                tx.commit().await?;
                return Ok(Some(from_ms(start + window_ms)));
            }
            sqlx::query("UPDATE rate_budgets SET window_start = $2, window_ms = $3, capacity = $4, used = $5, \
                         blocked_until = NULL, updated_at = $6 WHERE account_id = $1")
                .bind(account.as_str()).bind(start).bind(window_ms).bind(capacity).bind(used + 1).bind(now_ms)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(None)
        })
    }
}

impl Hub {
    /// Refreshes the query planner's statistics for the claim's tables on PostgreSQL (a worker
    /// calls it when it starts serving a hub). With no statistics — a hub that just received
    /// many posts before autovacuum ran — PostgreSQL estimates one due row, skips the claim
    /// index and checks every due delivery on each claim (BENCHMARKS.md, B1). SQLite names the
    /// index in the query instead, so this is a no-op there.
    pub async fn refresh_planner_statistics(&self) -> Result<(), StoreError> {
        if let Backend::Postgres(pool) = &self.backend {
            sqlx::query("ANALYZE deliveries, accounts, breakers, rate_budgets")
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}
