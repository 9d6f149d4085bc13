//! `psn accounts check` (a lightweight identity call per account), `psn accounts rotate-key`
//! (every token re-encrypted under a new key), what each account's platform allows
//! (`platform_status`, enforced by `psn post`), and the token keepers the worker uses for
//! platforms whose connector does not refresh its own tokens.

use std::sync::Arc;

use chrono::Utc;
use psn_domain::{AccountId, Platform};
use psn_engine::{Registry, classify_check};
use psn_platforms::oauth::{self, TokenKeeper};
use psn_platforms::publish::{AccessToken, AccountContext, PublishError};
use psn_store::{Account, AccountStatus, CheckOutcome, TokenCipher};
use serde::Serialize;

use crate::cli::Global;
use crate::error::{CliError, CliResult, invalid};
use crate::output::{print_json, table};
use crate::workspace::{KEY_VAR, Workspace, actor, check_private};

/// Platforms whose publisher refreshes and checks its own tokens; every other OAuth platform
/// (LinkedIn included, whose publisher does not refresh) gets a token keeper.
pub const SELF_REFRESHING: &[Platform] = &[Platform::X, Platform::Mastodon];

/// Adds a token keeper (refresh and identity checks, no publishing) for every OAuth platform
/// whose publisher does not keep its own tokens ([`SELF_REFRESHING`]), with the app
/// credentials from the workspace, and gives the X publisher the same credentials
/// (`X_CLIENT_ID` / `X_CLIENT_SECRET` from the environment or `config/keys.env`) for its token
/// refreshes. The registry prefers a keeper over a publisher for token refreshes and identity
/// checks.
pub fn add_keepers(registry: &mut Registry, ws: Option<&Workspace>) {
    let config = ws.map(|w| w.config_dir());
    let credentials_of = |platform: Platform| {
        oauth::provider(platform)
            .and_then(|p| super::oauth_connect::client_credentials(config.as_deref(), p))
    };
    if registry.get(Platform::X).is_some() {
        registry.register(Arc::new(
            psn_platforms::publish::x::XPublisher::from_env()
                .with_credentials(credentials_of(Platform::X)),
        ));
    }
    for keeper in TokenKeeper::all_except(SELF_REFRESHING) {
        let platform = psn_platforms::publish::Publisher::platform(&keeper);
        registry.register_keeper(Arc::new(keeper.with_credentials(credentials_of(platform))));
    }
}

/// One line for `accounts list`: the platform status's key facts.
pub fn platform_status_summary(status: &serde_json::Value) -> String {
    let Some(map) = status.as_object() else {
        return "-".into();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "explanation")
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}: {v}")))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Refuses (exit 2, nothing written) a post to an account the platform will not let publish
/// (an unaudited TikTok app posts only privately; psn does not publish private posts), with
/// the platform's explanation and what to do about it.
pub fn enforce_platform_status(account: &Account) -> CliResult<()> {
    let posting = account
        .platform_status
        .get("posting")
        .and_then(|v| v.as_str())
        .unwrap_or("allowed");
    if posting == "allowed" {
        return Ok(());
    }
    let why = account
        .platform_status
        .get("explanation")
        .and_then(|v| v.as_str())
        .unwrap_or("the platform does not allow this account to publish");
    Err(invalid(format!(
        "{} account {} cannot publish this post ({posting}): {why}",
        account.platform.display_name(),
        account.handle
    )))
}

/// What an X API plan allows psn to post (X's published limits for `POST /2/tweets`; every
/// thread segment is one post). `None`: no cap beyond the publishing budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XTier {
    pub name: &'static str,
    /// Posts per 24 hours per user (per connected account).
    pub per_user_day: Option<usize>,
    /// Posts per 24 hours per app (every X account of the hub shares the app).
    pub per_app_day: Option<usize>,
    /// Posts per month per app (informational: X counts it per billing month).
    pub per_app_month: Option<usize>,
}

/// The X API plans `X_API_TIER` names. Free: 17 posts per 24 h per user and per app, 500 a
/// month; Basic: 100 per 24 h per user, 1,667 per 24 h per app; Pro and Enterprise: only the
/// per-15-minute limits the publishing budget already keeps.
pub const X_TIERS: &[XTier] = &[
    XTier {
        name: "free",
        per_user_day: Some(17),
        per_app_day: Some(17),
        per_app_month: Some(500),
    },
    XTier {
        name: "basic",
        per_user_day: Some(100),
        per_app_day: Some(1_667),
        per_app_month: Some(50_000),
    },
    XTier {
        name: "pro",
        per_user_day: None,
        per_app_day: None,
        per_app_month: None,
    },
    XTier {
        name: "enterprise",
        per_user_day: None,
        per_app_day: None,
        per_app_month: None,
    },
];

/// The setting that names the X API plan.
pub const X_TIER_VAR: &str = "X_API_TIER";

fn x_tier_named(name: &str) -> CliResult<&'static XTier> {
    let wanted = name.trim().to_ascii_lowercase();
    X_TIERS.iter().find(|t| t.name == wanted).ok_or_else(|| {
        invalid(format!(
            "{X_TIER_VAR}={name} is not an X API plan: use free, basic, pro or enterprise (in config/keys.env or the environment)"
        ))
    })
}

/// The X API plan set in the environment or `config/keys.env`, when one is set.
pub fn configured_x_tier(ws: &Workspace) -> CliResult<Option<&'static XTier>> {
    super::oauth_connect::setting(ws, X_TIER_VAR)
        .map(|v| x_tier_named(&v))
        .transpose()
}

/// The platform status of an X account on `tier`.
pub fn x_platform_status(tier: &XTier) -> serde_json::Value {
    let mut status = serde_json::json!({"api_tier": tier.name});
    if let (Some(user), Some(app)) = (tier.per_user_day, tier.per_app_day)
        && tier.name == "free"
    {
        status["explanation"] = format!(
            "the X API free tier allows {user} posts per 24 hours per account and {app} per app (about {} a month; every thread segment counts), so psn refuses posts beyond that. Set {X_TIER_VAR}=basic, pro or enterprise in config/keys.env if your X app has a paid plan",
            tier.per_app_month.unwrap_or_default()
        )
        .into();
    }
    status
}

/// The platform status of a new X account: the configured plan, else free.
pub fn new_x_platform_status(ws: &Workspace) -> CliResult<serde_json::Value> {
    let tier = configured_x_tier(ws)?.unwrap_or(&X_TIERS[0]);
    Ok(x_platform_status(tier))
}

/// What the platform allows `account` now: the recorded status, with the X API plan taken
/// from `X_API_TIER` when it is set (a plan changes without reconnecting).
pub fn effective_platform_status(ws: &Workspace, account: &Account) -> serde_json::Value {
    if account.platform != Platform::X {
        return account.platform_status.clone();
    }
    // An unreadable setting is refused where it matters (`psn post`, `accounts connect`).
    let tier = match configured_x_tier(ws).ok().flatten() {
        Some(t) => t,
        None => account
            .platform_status
            .get("api_tier")
            .and_then(|v| v.as_str())
            .and_then(|name| x_tier_named(name).ok())
            .unwrap_or(&X_TIERS[0]),
    };
    x_platform_status(tier)
}

/// Refuses (exit 2, nothing written) X posts that would exceed the X API plan's daily caps:
/// `posts` are the new deliveries' (account, number of posts) at `at`, counted with what is
/// already queued or published for the same account (per-user cap) and for every X account
/// of the hub (per-app cap) in any 24-hour window that contains `at`.
pub async fn enforce_x_tier(
    ws: &Workspace,
    hub: &psn_store::Hub,
    accounts: &[&Account],
    posts: &[(AccountId, usize)],
    at: chrono::DateTime<Utc>,
    moving: Option<&psn_domain::PostId>,
) -> CliResult<()> {
    if posts.is_empty() {
        return Ok(());
    }
    configured_x_tier(ws)?;
    let day = chrono::Duration::hours(24);
    // A post being moved does not count where it is now.
    let queued: Vec<psn_store::QueuedLoad> = hub
        .queued_load(Platform::X, at - day, at + day)
        .await?
        .into_iter()
        .filter(|q| Some(&q.post) != moving)
        .collect();
    for (account_id, n) in posts {
        let Some(account) = accounts.iter().find(|a| &a.id == account_id) else {
            continue;
        };
        let status = effective_platform_status(ws, account);
        let tier = status
            .get("api_tier")
            .and_then(|v| v.as_str())
            .and_then(|name| x_tier_named(name).ok())
            .unwrap_or(&X_TIERS[0]);
        let new_total: usize = posts.iter().map(|(_, k)| k).sum();
        let checks = [
            (
                tier.per_user_day,
                *n,
                queued
                    .iter()
                    .filter(|q| &q.account == account_id)
                    .collect::<Vec<_>>(),
                format!("for @{}", account.handle),
            ),
            (
                tier.per_app_day,
                new_total,
                queued.iter().collect::<Vec<_>>(),
                "for the X app (all X accounts of this hub)".to_owned(),
            ),
        ];
        for (cap, adding, existing, whom) in checks {
            let Some(cap) = cap else { continue };
            let (busiest, start) = busiest_window(&existing, at, day);
            if busiest + adding > cap {
                let tz = ws.tz;
                return Err(invalid(format!(
                    "the X API {} plan allows {cap} posts per 24 hours {whom}, and {busiest} are already queued or published between {} and {}; this post would add {adding} (every thread segment is a post). Schedule it at another time, or set {X_TIER_VAR}=basic, pro or enterprise in config/keys.env if your X app has a paid plan",
                    tier.name,
                    crate::output::local(start, tz),
                    crate::output::local(start + day, tz),
                )));
            }
        }
    }
    Ok(())
}

/// The most posts of `existing` in a 24-hour window `[s, s + day)` that contains `at`, and
/// that window's start.
fn busiest_window(
    existing: &[&psn_store::QueuedLoad],
    at: chrono::DateTime<Utc>,
    day: chrono::Duration,
) -> (usize, chrono::DateTime<Utc>) {
    let earliest = at - day + chrono::Duration::milliseconds(1);
    let mut starts: Vec<chrono::DateTime<Utc>> = existing
        .iter()
        .map(|q| q.at)
        .filter(|t| *t >= earliest && *t <= at)
        .collect();
    starts.push(earliest);
    starts.push(at);
    starts
        .into_iter()
        .map(|s| {
            let n = existing
                .iter()
                .filter(|q| q.at >= s && q.at < s + day)
                .map(|q| q.posts)
                .sum::<usize>();
            (n, s)
        })
        .max_by_key(|(n, s)| (*n, std::cmp::Reverse(*s)))
        .unwrap_or((0, at))
}

#[derive(Debug, Serialize)]
struct CheckResult {
    id: AccountId,
    platform: Platform,
    handle: String,
    /// `ok`, `unavailable`, `refused`, `not_supported` or `skipped`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    status: AccountStatus,
}

pub async fn check(global: &Global, ws: &Workspace, id: Option<String>) -> CliResult {
    let id: Option<AccountId> = id
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: psn_domain::ids::BadId| invalid(e.to_string()))?;
    let cipher = ws.cipher()?;
    let hub = ws.open_hub(&global.hub).await?;
    let accounts = match &id {
        Some(id) => vec![hub.account(id).await?],
        None => hub.accounts().await?,
    };
    let mut registry = super::worker::registry();
    add_keepers(&mut registry, Some(ws));
    let mut results = Vec::new();
    for account in accounts {
        let mut result = CheckResult {
            id: account.id.clone(),
            platform: account.platform,
            handle: account.handle.clone(),
            result: "skipped",
            message: None,
            status: account.status,
        };
        if account.status == AccountStatus::Disconnected {
            result.message = Some("disconnected".into());
            results.push(result);
            continue;
        }
        let Some(keeper) = registry.keeper(account.platform) else {
            result.result = "not_supported";
            result.message = Some(format!(
                "psn cannot check {} accounts yet",
                account.platform.display_name()
            ));
            results.push(result);
            continue;
        };
        let tokens = hub.account_tokens(&account.id, &cipher).await?;
        let actx = AccountContext {
            external_id: account.external_id.clone(),
            handle: account.handle.clone(),
            service_url: account.service_url.clone(),
            access_token: AccessToken(tokens.access_token.expose().to_string()),
        };
        let outcome = match keeper.identity(&actx).await {
            Ok(_) => CheckOutcome::Healthy,
            Err(PublishError::NotSupported { .. }) => {
                result.result = "not_supported";
                result.message = Some(format!(
                    "psn cannot check {} accounts yet",
                    account.platform.display_name()
                ));
                results.push(result);
                continue;
            }
            Err(e) => classify_check(&e, &[tokens.access_token.expose()]),
        };
        hub.record_check(&account.id, &outcome, Utc::now()).await?;
        match outcome {
            CheckOutcome::Healthy => result.result = "ok",
            CheckOutcome::Unavailable(m) => {
                result.result = "unavailable";
                result.message = Some(m);
            }
            CheckOutcome::Refused(m) => {
                result.result = "refused";
                result.message = Some(format!(
                    "{m}; reconnect with `psn accounts connect {}`",
                    account.platform
                ));
            }
        }
        result.status = hub.account(&account.id).await?.status;
        results.push(result);
    }
    if global.json {
        print_json(&results);
    } else if results.is_empty() {
        println!("No accounts yet. Connect one with `psn accounts connect <platform>`.");
    } else {
        let mut t = table(&["ID", "PLATFORM", "HANDLE", "CHECK", "STATUS", "DETAIL"]);
        for r in &results {
            t.add_row(vec![
                r.id.to_string(),
                r.platform.display_name().to_string(),
                r.handle.clone(),
                r.result.to_string(),
                r.status.as_str().to_string(),
                r.message.clone().unwrap_or_default(),
            ]);
        }
        println!("{t}");
    }
    let bad = results
        .iter()
        .filter(|r| matches!(r.result, "refused" | "unavailable"))
        .count();
    if bad > 0 {
        return Err(CliError::ReportedFailure(format!(
            "{bad} account(s) failed the check"
        )));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Rotated {
    hub: String,
    accounts: usize,
}

pub async fn rotate_key(global: &Global, ws: &Workspace) -> CliResult {
    if std::env::var(KEY_VAR).is_ok() {
        return Err(invalid(format!(
            "the key comes from the environment ({KEY_VAR}): psn can only rotate the key stored in config/keys.env; unset {KEY_VAR} (or rotate it yourself)"
        )));
    }
    let path = ws.config_dir().join("keys.env");
    // Refuses a key file readable by others before reading it.
    check_private(&path)?;
    let old = ws.cipher()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot read {}: {e}", path.display())))?;
    let new_key = TokenCipher::generate_key_base64();
    let new = TokenCipher::from_base64(&new_key)
        .map_err(|e| CliError::Failed(anyhow::anyhow!(e.to_string())))?;
    let mut replaced = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| {
            let bare = line.trim_start().trim_start_matches("export ").trim_start();
            if !replaced && bare.starts_with(&format!("{KEY_VAR}=")) {
                replaced = true;
                format!("{KEY_VAR}={new_key}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !replaced {
        lines.push(format!("{KEY_VAR}={new_key}"));
    }
    // The new key is on disk (next to the old file) before any token is sealed with it.
    let next = ws.config_dir().join("keys.env.next");
    write_private(&next, &(lines.join("\n") + "\n"))?;
    let mut hubs = Vec::new();
    for entry in ws.hubs()? {
        hubs.push(ws.open_hub(&entry.name).await?);
    }
    let who = actor(global);
    let mut done: Vec<(usize, Rotated)> = Vec::new();
    for (i, hub) in hubs.iter().enumerate() {
        match hub.rotate_key(&old, &new, &who).await {
            Ok(n) => done.push((
                i,
                Rotated {
                    hub: hub.name().to_string(),
                    accounts: n,
                },
            )),
            Err(e) => {
                // Put the hubs already rotated back under the old key.
                for (j, _) in &done {
                    if let Err(back) = hubs[*j].rotate_key(&new, &old, &who).await {
                        return Err(CliError::Failed(anyhow::anyhow!(
                            "rotating hub {} failed ({e}) and hub {} could not be put back ({back}): its tokens are under the key in {}; keep that file",
                            hub.name(),
                            hubs[*j].name(),
                            next.display()
                        )));
                    }
                }
                let _ = std::fs::remove_file(&next);
                return Err(CliError::Failed(anyhow::anyhow!(
                    "rotating hub {} failed: {e}; nothing changed (every hub is still under the old key)",
                    hub.name()
                )));
            }
        }
    }
    std::fs::rename(&next, &path).map_err(|e| {
        CliError::Failed(anyhow::anyhow!(
            "the tokens are re-encrypted but {} could not replace {}: {e}; move it there yourself",
            next.display(),
            path.display()
        ))
    })?;
    let rotated: Vec<Rotated> = done.into_iter().map(|(_, r)| r).collect();
    if global.json {
        print_json(&serde_json::json!({"rotated": rotated}));
    } else {
        for r in &rotated {
            println!(
                "Hub {}: {} account(s) re-encrypted under the new key.",
                r.hub, r.accounts
            );
        }
        println!(
            "The new key is in {}. Back it up: the old key no longer opens anything.",
            path.display()
        );
    }
    Ok(())
}

fn write_private(path: &std::path::Path, content: &str) -> CliResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write {}: {e}", path.display())))
}
