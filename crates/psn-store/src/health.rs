//! Account health: identity checks (`psn accounts check` and the worker's weekly round),
//! what the platform allows each account (`platform_status`), refreshes that have not
//! succeeded for days (`psn doctor`), and re-encrypting every token under a new key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use psn_domain::{AccountId, Platform, PostId};
use serde::Serialize;

use crate::audit::audit;
use crate::crypto::TokenCipher;
use crate::time::{from_ms, now_ms, to_ms};
use crate::{Hub, StoreError, on_db, write_tx};

/// The result of one identity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The platform recognized the token.
    Healthy,
    /// The platform could not answer (outage, rate limit): the account stays as it is.
    Unavailable(String),
    /// The platform refused the token: the account needs re-authorization (P0 alert).
    Refused(String),
}

/// An account whose token refresh has been due for a long time without succeeding.
#[derive(Debug, Clone, Serialize)]
pub struct StaleRefresh {
    pub account: AccountId,
    pub platform: Platform,
    pub handle: String,
    /// The last successful refresh (or the connection, when it never refreshed).
    pub since: DateTime<Utc>,
    /// When the refresh became due.
    pub due_since: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// One delivery's share of a platform's posting caps: its account, when it is (or was)
/// published, and how many posts it makes there (its segments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedLoad {
    pub post: PostId,
    pub account: AccountId,
    pub at: DateTime<Utc>,
    pub posts: usize,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Hub {
    /// Replaces what the platform allows an account (a JSON object; see
    /// [`crate::Account::platform_status`]).
    pub async fn set_platform_status(
        &self,
        account: &AccountId,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let text = status.to_string();
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET platform_status = $2, updated_at = $3 WHERE id = $1")
            .bind(account.as_str()).bind(&text).bind(now_ms())
            .execute(db).await?.rows_affected());
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "account",
                id: account.to_string(),
            });
        }
        Ok(())
    }

    /// The deliveries to `platform` that are published or still going to be, timed (publication
    /// time, else the scheduled time) in `[from, to)`: what counts against a platform's posting
    /// caps. Drafts, rejected, cancelled and failed posts and deliveries do not count.
    pub async fn queued_load(
        &self,
        platform: Platform,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<QueuedLoad>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT d.post_id, d.account_id, COALESCE(d.published_at, d.run_at), d.segments \
             FROM deliveries d JOIN posts p ON p.id = d.post_id \
             WHERE d.platform = $1 AND d.status NOT IN ('failed', 'cancelled') \
             AND p.status NOT IN ('draft', 'rejected', 'cancelled') \
             AND COALESCE(d.published_at, d.run_at) >= $2 AND COALESCE(d.published_at, d.run_at) < $3 \
             ORDER BY 3")
            .bind(platform.as_str()).bind(to_ms(from)).bind(to_ms(to))
            .fetch_all(db).await?);
        rows.into_iter()
            .map(|(post, account, at, segments)| {
                let segments: Vec<serde_json::Value> =
                    serde_json::from_str(&segments).map_err(corrupt)?;
                Ok(QueuedLoad {
                    post: post.parse().map_err(corrupt)?,
                    account: account.parse().map_err(corrupt)?,
                    at: from_ms(at),
                    posts: segments.len().max(1),
                })
            })
            .collect()
    }

    /// Records an identity check made at `now`. A refused token makes the account
    /// `needs_reauth` with a P0 alert naming the command that reconnects it. `message` must
    /// already be free of secrets.
    pub async fn record_check(
        &self,
        account: &AccountId,
        outcome: &CheckOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let error = match outcome {
            CheckOutcome::Healthy => None,
            CheckOutcome::Unavailable(m) | CheckOutcome::Refused(m) => Some(m.as_str()),
        };
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET last_check_at = $2, last_check_error = $3 WHERE id = $1")
            .bind(account.as_str()).bind(to_ms(now)).bind(error)
            .execute(db).await?.rows_affected());
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "account",
                id: account.to_string(),
            });
        }
        if let CheckOutcome::Refused(message) = outcome {
            self.mark_needs_reauth(account, message, now).await?;
        }
        Ok(())
    }

    /// Active accounts not checked (or connected) within `every` of `now`, oldest first.
    pub async fn accounts_due_for_check(
        &self,
        now: DateTime<Utc>,
        every: Duration,
    ) -> Result<Vec<AccountId>, StoreError> {
        let cutoff = to_ms(now).saturating_sub(every.as_millis() as i64);
        let ids: Vec<String> = on_db!(&self.backend, db => sqlx::query_scalar(
            "SELECT id FROM accounts WHERE status = 'active' AND access_token_enc IS NOT NULL \
             AND COALESCE(last_check_at, created_at) <= $1 \
             ORDER BY COALESCE(last_check_at, created_at), id")
            .bind(cutoff).fetch_all(db).await?);
        ids.into_iter()
            .map(|id| id.parse().map_err(corrupt))
            .collect()
    }

    /// Active accounts with a refresh token whose refresh has been due for at least `age`
    /// (half their lifetime passed that long ago) without succeeding.
    pub async fn stale_refreshes(
        &self,
        now: DateTime<Utc>,
        age: Duration,
    ) -> Result<Vec<StaleRefresh>, StoreError> {
        let cutoff = to_ms(now).saturating_sub(age.as_millis() as i64);
        type Row = (String, String, String, i64, i64, Option<String>);
        let rows: Vec<Row> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT id, platform, handle, COALESCE(last_refresh_at, created_at), expires_at, \
             last_refresh_error FROM accounts WHERE status = 'active' \
             AND refresh_token_enc IS NOT NULL AND expires_at IS NOT NULL \
             AND COALESCE(last_refresh_at, created_at) \
                 + (expires_at - COALESCE(last_refresh_at, created_at)) / 2 <= $1 \
             ORDER BY platform, handle, id")
            .bind(cutoff).fetch_all(db).await?);
        rows.into_iter()
            .map(|(id, platform, handle, since, expires, error)| {
                Ok(StaleRefresh {
                    account: id.parse().map_err(corrupt)?,
                    platform: platform.parse().map_err(corrupt)?,
                    handle,
                    since: from_ms(since),
                    due_since: from_ms(since + (expires - since) / 2),
                    last_error: error,
                })
            })
            .collect()
    }

    /// Re-encrypts every stored token from `old` to `new` in one transaction: either every
    /// token is under the new key or (on any failure) none is. Returns how many accounts
    /// were re-encrypted.
    pub async fn rotate_key(
        &self,
        old: &TokenCipher,
        new: &TokenCipher,
        actor: &str,
    ) -> Result<usize, StoreError> {
        self.ensure_writable()?;
        type Row = (String, Option<Vec<u8>>, Option<Vec<u8>>);
        let now = now_ms();
        let count = write_tx!(&self.backend, tx => {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, access_token_enc, refresh_token_enc FROM accounts \
                 WHERE access_token_enc IS NOT NULL OR refresh_token_enc IS NOT NULL ORDER BY id")
                .fetch_all(&mut *tx).await?;
            for (id, access, refresh) in &rows {
                let reseal = |sealed: &Option<Vec<u8>>, field: &str| -> Result<Option<Vec<u8>>, StoreError> {
                    sealed.as_ref().map(|s| {
                        let plain = old.open(s, id, field)?;
                        new.seal(&plain, id, field)
                    }).transpose()
                };
                let access = reseal(access, "access_token")?;
                let refresh = reseal(refresh, "refresh_token")?;
                sqlx::query("UPDATE accounts SET access_token_enc = $2, refresh_token_enc = $3 WHERE id = $1")
                    .bind(id).bind(access).bind(refresh).execute(&mut *tx).await?;
            }
            audit(&mut *tx, actor, "key.rotate", "hub", "tokens",
                &serde_json::json!({"accounts": rows.len(), "at": now})).await?;
            tx.commit().await?;
            rows.len()
        });
        Ok(count)
    }
}
