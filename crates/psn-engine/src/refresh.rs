//! Proactive token refresh: every `refresh_every` (and once when a hub loop starts), each
//! account whose token is at half its lifetime (or expired) is refreshed before a post needs it.
//!
//! Refresh tokens rotate: the platform spends the old one, and presenting it again is refused
//! (`invalid_grant`) and on some platforms revokes the session. So an account's refresh token
//! is only ever sent by the worker that won [`psn_store::Hub::claim_refresh`]; a loser does not
//! call the platform. The winner reads the tokens after winning, checks that the account is
//! still due (another worker may have refreshed it just before), and ends the lease when done.
//!
//! A refused refresh token (`Auth`, or a permanent refusal) is dead: the account needs
//! re-authorization, with a P0 alert. A platform outage or rate limit is transient: the
//! account stays active, the error is kept for `psn doctor`, and the next round tries again.
//! Tokens never reach a log or a stored message.

use chrono::Utc;
use psn_domain::{AccountId, Platform};
use psn_platforms::publish::sanitize::sanitize_error;
use psn_platforms::publish::{AccessToken, AccountContext, PublishError, Publisher};
use psn_store::{AccountStatus, Secret, StoreError, refresh_due};

use crate::HubContext;

/// Platforms whose connector can refresh tokens.
fn refreshable(ctx: &HubContext) -> Vec<Platform> {
    ctx.registry
        .kept_platforms()
        .into_iter()
        .filter(|p| {
            ctx.registry
                .keeper(*p)
                .is_some_and(|publisher| publisher.capabilities().refresh)
        })
        .collect()
}

/// One round: refreshes every due account this worker can claim. Store failures are logged;
/// the publishing loop goes on.
pub(crate) async fn run_round(ctx: &HubContext) {
    let platforms = refreshable(ctx);
    if platforms.is_empty() {
        return;
    }
    let due = match ctx
        .hub
        .accounts_due_for_refresh(&platforms, Utc::now())
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(hub = ctx.hub.name(), error = %e, "could not list accounts due for a token refresh");
            return;
        }
    };
    for account in due {
        if *ctx.shutdown.borrow() {
            break;
        }
        if let Err(e) = refresh_account(ctx, &account).await {
            tracing::error!(hub = ctx.hub.name(), %account, error = %e, "store error during a token refresh; the next round tries again");
        }
    }
}

async fn refresh_account(ctx: &HubContext, id: &AccountId) -> Result<(), StoreError> {
    let worker = ctx.config.worker_id.as_str();
    if !ctx
        .hub
        .claim_refresh(id, worker, Utc::now(), ctx.config.refresh_lease)
        .await?
    {
        tracing::debug!(account = %id, "another worker is refreshing this account's token");
        return Ok(());
    }
    let result = refresh_claimed(ctx, id).await;
    if result.is_err() {
        // Best effort: let the next round (of any worker) try again.
        let _ = ctx.hub.release_refresh(id, worker).await;
    }
    result
}

/// Refreshes an account whose refresh lease this worker holds, and ends the lease.
async fn refresh_claimed(ctx: &HubContext, id: &AccountId) -> Result<(), StoreError> {
    let hub = &ctx.hub;
    let worker = ctx.config.worker_id.as_str();
    let account = hub.account(id).await?;
    let now = Utc::now();
    let still_due = account.status == AccountStatus::Active
        && account.expires_at.is_some_and(|expires| {
            refresh_due(
                account.last_refresh_at.unwrap_or(account.created_at),
                expires,
                now,
            )
        });
    let start = account.last_refresh_at.unwrap_or(account.created_at);
    let still_due = still_due
        && psn_platforms::oauth::refresh_allowed(
            account.platform,
            (now - start).to_std().unwrap_or_default(),
        );
    let publisher = ctx
        .registry
        .keeper(account.platform)
        .filter(|p| p.capabilities().refresh);
    let Some(publisher) = publisher.filter(|_| still_due) else {
        // Refreshed by another worker meanwhile (or reconnected, or disconnected).
        return hub.release_refresh(id, worker).await;
    };
    let tokens = match hub.account_tokens(id, &ctx.cipher).await {
        Ok(tokens) => tokens,
        Err(e @ StoreError::Crypto(_)) => {
            // The key cannot open this account's tokens: not the platform's doing.
            let message = format!("cannot refresh the token: {e}");
            tracing::error!(account = %id, platform = %account.platform, "{message}");
            return hub.record_refresh_failure(id, true, &message, now).await;
        }
        Err(StoreError::Invalid(_)) => return hub.release_refresh(id, worker).await,
        Err(e) => return Err(e),
    };
    let Some(current) = tokens.refresh_token.filter(|t| !t.is_empty()) else {
        return hub.release_refresh(id, worker).await;
    };
    let access = tokens.access_token;
    let actx = AccountContext {
        external_id: account.external_id.clone(),
        handle: account.handle.clone(),
        service_url: account.service_url.clone(),
        access_token: AccessToken(access.expose().to_string()),
    };
    match exchange(ctx, id, publisher.as_ref(), &actx, &current, &access).await? {
        Exchanged::Fresh {
            expires_at,
            rotated,
        } => tracing::info!(
            account = %id,
            platform = %account.platform,
            expires_at = ?expires_at,
            rotated,
            "refreshed the access token ahead of its expiry"
        ),
        Exchanged::Transient(message) => {
            tracing::warn!(account = %id, platform = %account.platform, error = %message, "token refresh failed; the next round tries again")
        }
        Exchanged::Dead(message) => {
            tracing::error!(account = %id, platform = %account.platform, error = %message, "the refresh token is dead; the account needs re-authorization")
        }
        Exchanged::Unsupported => {}
    }
    Ok(())
}

/// How a refresh under the lease ended (the lease is ended in every case).
enum Exchanged {
    /// New tokens are stored.
    Fresh {
        expires_at: Option<chrono::DateTime<Utc>>,
        rotated: bool,
    },
    /// The platform was unavailable: the account stays active (error recorded for doctor).
    Transient(String),
    /// The refresh token was refused: the account needs re-authorization (P0 alert written).
    Dead(String),
    Unsupported,
}

/// Spends `current` (the account's refresh token, read after winning the lease) for new
/// tokens, stores them or records the failure, and ends the lease.
async fn exchange(
    ctx: &HubContext,
    id: &AccountId,
    publisher: &dyn Publisher,
    actx: &AccountContext,
    current: &Secret,
    access: &Secret,
) -> Result<Exchanged, StoreError> {
    let hub = &ctx.hub;
    let worker = ctx.config.worker_id.as_str();
    let result = publisher
        .refresh(actx, &AccessToken(current.expose().to_string()))
        .await;
    let now = Utc::now();
    match result {
        Ok(fresh) => {
            let new_access = Secret::new(fresh.access_token.0.clone());
            let rotated = fresh
                .refresh_token
                .as_ref()
                .map(|t| Secret::new(t.0.clone()))
                .filter(|t| !t.is_empty());
            let expires_at = fresh
                .expires_in
                .map(|d| now + chrono::Duration::from_std(d).unwrap_or_default());
            hub.store_refreshed_tokens(
                id,
                &new_access,
                rotated.as_ref(),
                expires_at,
                &ctx.cipher,
                now,
            )
            .await?;
            hub.release_refresh(id, worker).await?;
            ctx.metrics.add(&ctx.metrics.token_refreshes, 1);
            Ok(Exchanged::Fresh {
                expires_at,
                rotated: rotated.is_some(),
            })
        }
        Err(PublishError::NotSupported { .. }) => {
            hub.release_refresh(id, worker).await?;
            Ok(Exchanged::Unsupported)
        }
        Err(e) => {
            let transient = matches!(
                e,
                PublishError::Transient { .. }
                    | PublishError::RateLimited { .. }
                    | PublishError::Ambiguous { .. }
            );
            let message = sanitize_error(
                &format!("token refresh failed: {e}"),
                &[current.expose(), access.expose()],
            );
            hub.record_refresh_failure(id, transient, &message, now)
                .await?;
            Ok(if transient {
                Exchanged::Transient(message)
            } else {
                Exchanged::Dead(message)
            })
        }
    }
}

/// What a delivery that got a 401 should do next.
pub(crate) enum AfterUnauthorized {
    /// Use these tokens (refreshed here, or by another worker just before).
    Fresh {
        access: Secret,
        refresh: Option<Secret>,
    },
    /// Another worker is refreshing the token right now: try again shortly.
    Busy,
    /// The platform could not refresh it now; the account stays active.
    Transient(String),
    /// The refresh token is dead (or missing): the account needs re-authorization, already
    /// recorded with its alert.
    Dead(String),
}

/// The refresh after a 401, under the same lease as the proactive refresh, so that a
/// publishing worker and a refreshing one never spend the same refresh token twice.
/// `failed` is the access token the platform refused.
pub(crate) async fn after_unauthorized(
    ctx: &HubContext,
    id: &AccountId,
    publisher: &dyn Publisher,
    actx: &AccountContext,
    failed: &Secret,
) -> Result<AfterUnauthorized, StoreError> {
    let hub = &ctx.hub;
    let worker = ctx.config.worker_id.as_str();
    if !hub
        .claim_refresh(id, worker, Utc::now(), ctx.config.refresh_lease)
        .await?
    {
        return Ok(AfterUnauthorized::Busy);
    }
    let result = async {
        let tokens = hub.account_tokens(id, &ctx.cipher).await?;
        if tokens.access_token.expose() != failed.expose() && !tokens.access_token.is_empty() {
            // Another worker refreshed it after we read it: use theirs, spend nothing.
            hub.release_refresh(id, worker).await?;
            return Ok(AfterUnauthorized::Fresh {
                access: tokens.access_token,
                refresh: tokens.refresh_token,
            });
        }
        let Some(current) = tokens.refresh_token.filter(|t| !t.is_empty()) else {
            let message = "the access token was refused and there is no refresh token".to_string();
            hub.record_refresh_failure(id, false, &message, Utc::now())
                .await?;
            return Ok(AfterUnauthorized::Dead(message));
        };
        Ok(
            match exchange(ctx, id, publisher, actx, &current, &tokens.access_token).await? {
                Exchanged::Fresh { .. } => {
                    let tokens = hub.account_tokens(id, &ctx.cipher).await?;
                    AfterUnauthorized::Fresh {
                        access: tokens.access_token,
                        refresh: tokens.refresh_token,
                    }
                }
                Exchanged::Transient(message) => AfterUnauthorized::Transient(message),
                Exchanged::Dead(message) => AfterUnauthorized::Dead(message),
                Exchanged::Unsupported => {
                    let message =
                        "the access token was refused and it cannot be refreshed".to_string();
                    hub.record_refresh_failure(id, false, &message, Utc::now())
                        .await?;
                    AfterUnauthorized::Dead(message)
                }
            },
        )
    }
    .await;
    if result.is_err() {
        let _ = hub.release_refresh(id, worker).await;
    }
    result
}
