//! The weekly account health check: each active account not checked for `check_every` gets
//! one lightweight identity call. A refused token makes the account `needs_reauth` with a P0
//! alert (the day a token dies, not the day a post fails); an unavailable platform is noted on
//! the account (`accounts list`, `doctor`) and checked again at the next interval.
//!
//! Identity calls are read-only, so two workers checking the same account at once is
//! harmless; no lease is taken.

use chrono::Utc;
use psn_domain::AccountId;
use psn_platforms::publish::sanitize::sanitize_error;
use psn_platforms::publish::{AccessToken, AccountContext, PublishError};
use psn_store::{CheckOutcome, StoreError};

use crate::HubContext;

/// One round: checks every account due for its identity check. Store failures are logged.
pub(crate) async fn run_round(ctx: &HubContext) {
    let due = match ctx
        .hub
        .accounts_due_for_check(Utc::now(), ctx.config.check_every)
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(hub = ctx.hub.name(), error = %e, "could not list accounts due for a health check");
            return;
        }
    };
    for account in due {
        if *ctx.shutdown.borrow() {
            break;
        }
        if let Err(e) = check_account(ctx, &account).await {
            tracing::error!(hub = ctx.hub.name(), %account, error = %e, "store error during a health check");
        }
    }
}

async fn check_account(ctx: &HubContext, id: &AccountId) -> Result<(), StoreError> {
    let account = ctx.hub.account(id).await?;
    let Some(keeper) = ctx.registry.keeper(account.platform) else {
        return Ok(());
    };
    let tokens = match ctx.hub.account_tokens(id, &ctx.cipher).await {
        Ok(t) => t,
        Err(StoreError::Invalid(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let actx = AccountContext {
        external_id: account.external_id.clone(),
        handle: account.handle.clone(),
        service_url: account.service_url.clone(),
        access_token: AccessToken(tokens.access_token.expose().to_string()),
    };
    let outcome = match keeper.identity(&actx).await {
        Ok(_) => CheckOutcome::Healthy,
        Err(PublishError::NotSupported { .. }) => return Ok(()),
        Err(e) => classify_check(&e, &[tokens.access_token.expose()]),
    };
    if matches!(outcome, CheckOutcome::Refused(_)) {
        // Another worker may have refreshed the token while this one was checking it: only a
        // refusal of the current token means the account needs re-authorization.
        let current = ctx.hub.account_tokens(id, &ctx.cipher).await?;
        if current.access_token.expose() != tokens.access_token.expose() {
            tracing::debug!(account = %id, "the token changed during the health check; checking again next round");
            return Ok(());
        }
    }
    match &outcome {
        CheckOutcome::Healthy => {
            tracing::debug!(account = %id, platform = %account.platform, "health check passed")
        }
        CheckOutcome::Unavailable(m) => {
            tracing::warn!(account = %id, platform = %account.platform, error = %m, "health check could not reach the platform")
        }
        CheckOutcome::Refused(m) => {
            tracing::error!(account = %id, platform = %account.platform, error = %m, "health check: the token was refused; the account needs re-authorization")
        }
    }
    ctx.hub.record_check(id, &outcome, Utc::now()).await
}

/// A failed identity call as a check outcome: a refused token is dead, everything else is
/// the platform being unavailable.
pub fn classify_check(e: &PublishError, secrets: &[&str]) -> CheckOutcome {
    let message = sanitize_error(&format!("identity check failed: {e}"), secrets);
    match e {
        PublishError::Auth { .. } => CheckOutcome::Refused(message),
        _ => CheckOutcome::Unavailable(message),
    }
}
