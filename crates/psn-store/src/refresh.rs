//! What the worker's proactive token refresh asks of the store: which accounts are due, a
//! lease so that only one worker (of any process) spends an account's refresh token at a
//! time, and where a failed refresh is remembered.
//!
//! A token is due for refresh at half its lifetime, measured from the last refresh (or the
//! connection) to `expires_at`, or once it has expired. Refresh tokens rotate on most
//! platforms: a refresh token used twice is refused and the session is gone, so a refresh
//! happens only under [`Hub::claim_refresh`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use psn_domain::{AccountId, Platform};
use serde::Serialize;

use crate::time::{from_ms, to_ms};
use crate::{Hub, StoreError, on_db};

/// Whether a token obtained at `start` and expiring at `expires_at` is due for refresh at
/// `now`: at half its lifetime, or already expired. The same rule as
/// [`Hub::accounts_due_for_refresh`] (in milliseconds, rounding the half down).
pub fn refresh_due(start: DateTime<Utc>, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let (start, expires, now) = (to_ms(start), to_ms(expires_at), to_ms(now));
    now >= expires || now >= start + (expires - start) / 2
}

/// The last transient refresh failure of an account that is still active.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshError {
    pub account: AccountId,
    pub platform: Platform,
    pub handle: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Hub {
    /// Active accounts of `platforms` with a refresh token and an expiry whose token is due
    /// for refresh at `now` (see [`refresh_due`]) and whose refresh no worker holds, soonest
    /// expiry first.
    pub async fn accounts_due_for_refresh(
        &self,
        platforms: &[Platform],
        now: DateTime<Utc>,
    ) -> Result<Vec<AccountId>, StoreError> {
        if platforms.is_empty() {
            return Ok(Vec::new());
        }
        let list = platforms
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id FROM accounts WHERE status = 'active' AND platform IN ({list}) \
             AND access_token_enc IS NOT NULL AND refresh_token_enc IS NOT NULL \
             AND expires_at IS NOT NULL \
             AND (refresh_lease_until IS NULL OR refresh_lease_until <= $1) \
             AND (expires_at <= $1 OR $1 >= COALESCE(last_refresh_at, created_at) \
                  + (expires_at - COALESCE(last_refresh_at, created_at)) / 2) \
             ORDER BY expires_at, id"
        );
        let ids: Vec<String> = on_db!(&self.backend, db =>
            sqlx::query_scalar(&sql).bind(to_ms(now)).fetch_all(db).await?);
        ids.into_iter()
            .map(|id| id.parse().map_err(corrupt))
            .collect()
    }

    /// Takes the refresh lease of an active account for `worker` until `now + lease`, with one
    /// conditional UPDATE: `true` for exactly one of any number of concurrent callers, `false`
    /// while another worker holds an unexpired lease (or the account is not active). Only the
    /// winner may call the platform; it ends the lease with [`Hub::release_refresh`] or
    /// [`Hub::record_refresh_failure`].
    pub async fn claim_refresh(
        &self,
        account: &AccountId,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_writable()?;
        let now_ms = to_ms(now);
        let until = now_ms.saturating_add(lease.as_millis() as i64);
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET refresh_lease_owner = $2, refresh_lease_until = $3 \
             WHERE id = $1 AND status = 'active' \
             AND (refresh_lease_until IS NULL OR refresh_lease_until <= $4)")
            .bind(account.as_str()).bind(worker).bind(until).bind(now_ms)
            .execute(db).await?.rows_affected());
        Ok(n == 1)
    }

    /// Ends `worker`'s refresh lease (a no-op when it no longer holds it).
    pub async fn release_refresh(
        &self,
        account: &AccountId,
        worker: &str,
    ) -> Result<(), StoreError> {
        on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
             WHERE id = $1 AND refresh_lease_owner = $2")
            .bind(account.as_str()).bind(worker).execute(db).await?.rows_affected());
        Ok(())
    }

    /// Records a failed refresh and ends the refresh lease. `transient` (the platform was
    /// unavailable or rate limited): the account stays active, the error is kept for
    /// `psn doctor` and the next round tries again. Otherwise the token is dead: the account
    /// needs re-authorization, with a P0 alert naming `psn accounts connect <platform>`.
    /// `message` must already be free of secrets.
    pub async fn record_refresh_failure(
        &self,
        account: &AccountId,
        transient: bool,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A dead token's reason goes to the alert; only a transient failure is kept on the
        // account (a reconnected account must not show the old failure).
        let (error, at) = if transient {
            (Some(message), Some(to_ms(now)))
        } else {
            (None, None)
        };
        let n = on_db!(&self.backend, db => sqlx::query(
            "UPDATE accounts SET last_refresh_error = $2, last_refresh_error_at = $3, \
             refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE id = $1")
            .bind(account.as_str()).bind(error).bind(at)
            .execute(db).await?.rows_affected());
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "account",
                id: account.to_string(),
            });
        }
        if !transient {
            self.mark_needs_reauth(account, message, now).await?;
        }
        Ok(())
    }

    /// Active accounts whose last refresh failed transiently (cleared by the next successful
    /// refresh), for `psn doctor`.
    pub async fn refresh_errors(&self) -> Result<Vec<RefreshError>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = on_db!(&self.backend, db => sqlx::query_as(
            "SELECT id, platform, handle, last_refresh_error, last_refresh_error_at FROM accounts \
             WHERE status = 'active' AND last_refresh_error IS NOT NULL \
             AND last_refresh_error_at IS NOT NULL ORDER BY platform, handle, id")
            .fetch_all(db).await?);
        rows.into_iter()
            .map(|(id, platform, handle, message, at)| {
                Ok(RefreshError {
                    account: id.parse().map_err(corrupt)?,
                    platform: platform.parse().map_err(corrupt)?,
                    handle,
                    message,
                    at: from_ms(at),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_half_the_lifetime_or_when_expired() {
        let start = from_ms(1_000_000);
        let expires = from_ms(1_000_000 + 7_200_000);
        assert!(!refresh_due(start, expires, from_ms(1_000_000 + 720_000)));
        assert!(!refresh_due(start, expires, from_ms(1_000_000 + 3_599_999)));
        assert!(refresh_due(start, expires, from_ms(1_000_000 + 3_600_000)));
        assert!(refresh_due(start, expires, from_ms(1_000_000 + 9_000_000)));
        // An expiry before the start (a clock jump): due.
        assert!(refresh_due(expires, start, from_ms(1_000_000 + 3_700_000)));
    }
}
