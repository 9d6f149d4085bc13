//! `psn accounts list | connect | check | rotate-key | disconnect`. This module handles the
//! headless connection (tokens on stdin; tokens go from stdin straight into [`Secret`]s and are
//! sealed by the store) and dispatches OAuth connections to `oauth_connect`, checks and key
//! rotation to `account_health`. Nothing here prints a token.

use std::io::Read;

use chrono::{Duration, Utc};
use psn_domain::{AccountId, Platform};
use psn_store::{Account, NewAccount, Secret, TokenSet};
use serde::Deserialize;

use crate::cli::{AccountsCommand, ConnectArgs, Global};
use crate::error::{CliResult, invalid};
use crate::output::{local, print_json, table};
use crate::workspace::{Workspace, actor};

/// The headless token JSON (the brief's contract).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    account_id: Option<String>,
    handle: Option<String>,
    // Accepted for compatibility with token endpoint responses; unused.
    #[serde(default)]
    #[allow(dead_code)]
    token_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    scope: Option<String>,
}

pub async fn run(global: &Global, cmd: AccountsCommand) -> CliResult {
    let ws = Workspace::locate(global)?;
    match cmd {
        AccountsCommand::List => {
            let hub = ws.open_hub(&global.hub).await?;
            let mut accounts = hub.accounts().await?;
            // The X API plan as configured now (`X_API_TIER`), not only as recorded.
            for a in &mut accounts {
                a.platform_status = super::account_health::effective_platform_status(&ws, a);
            }
            if global.json {
                print_json(&accounts);
            } else if accounts.is_empty() {
                println!("No accounts yet. Connect one with `psn accounts connect <platform>`.");
            } else {
                let mut t = table(&[
                    "ID",
                    "PLATFORM",
                    "HANDLE",
                    "STATUS",
                    "EXPIRES",
                    "LAST REFRESH",
                    "LAST CHECK",
                    "PLATFORM STATUS",
                ]);
                for a in &accounts {
                    let when = |t: Option<chrono::DateTime<Utc>>, none: &str| {
                        t.map(|t| local(t, ws.tz)).unwrap_or_else(|| none.into())
                    };
                    let check = match (&a.last_check_error, a.last_check_at) {
                        (Some(_), Some(t)) => format!("{} (failed)", local(t, ws.tz)),
                        (_, t) => when(t, "never"),
                    };
                    t.add_row(vec![
                        a.id.to_string(),
                        a.platform.display_name().to_string(),
                        a.handle.clone(),
                        a.status.as_str().to_string(),
                        when(a.expires_at, "never"),
                        when(a.last_refresh_at, "-"),
                        check,
                        super::account_health::platform_status_summary(&a.platform_status),
                    ]);
                }
                println!("{t}");
                for a in &accounts {
                    if let Some(why) = a
                        .platform_status
                        .get("explanation")
                        .and_then(|v| v.as_str())
                    {
                        println!("{} {}: {why}", a.platform.display_name(), a.handle);
                    }
                }
            }
            Ok(())
        }
        AccountsCommand::Connect(args) => connect(global, &ws, args).await,
        AccountsCommand::Check { id } => super::account_health::check(global, &ws, id).await,
        AccountsCommand::RotateKey => super::account_health::rotate_key(global, &ws).await,
        AccountsCommand::Disconnect { id, cancel_pending } => {
            let id: AccountId = id
                .parse()
                .map_err(|e: psn_domain::ids::BadId| invalid(e.to_string()))?;
            let hub = ws.open_hub(&global.hub).await?;
            let (account, cancelled) = hub
                .disconnect_account(&id, &actor(global), cancel_pending)
                .await?;
            if global.json {
                print_json(
                    &serde_json::json!({"account": account, "cancelled_deliveries": cancelled}),
                );
            } else {
                println!(
                    "Disconnected {} {} ({}); its tokens are erased.{}",
                    account.platform.display_name(),
                    account.handle,
                    account.id,
                    if cancelled > 0 {
                        format!(" Cancelled {cancelled} waiting delivery(ies).")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(())
        }
    }
}

fn read_stdin() -> CliResult<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| invalid(format!("cannot read stdin: {e}")))?;
    Ok(s)
}

async fn connect(global: &Global, ws: &Workspace, args: ConnectArgs) -> CliResult {
    let platform: Platform = args
        .platform
        .parse()
        .map_err(|e: psn_domain::platform::UnknownPlatform| invalid(e.to_string()))?;
    let mut platform_status = None;
    let mut pages = Vec::new();
    let new = if platform == Platform::Bluesky && !args.token_stdin {
        let interactive = !args.app_password_stdin;
        let handle = match args.handle.as_deref() {
            Some(h) => Some(h.to_string()),
            None if interactive => Some(prompt("Bluesky handle (you.bsky.social): ", false)?),
            None => None,
        };
        let handle = handle
            .as_deref()
            .map(|h| h.trim().trim_start_matches('@').to_string())
            .filter(|h| h.contains('.'))
            .ok_or_else(|| {
                invalid("--handle is required for Bluesky (e.g. --handle you.bsky.social)")
            })?;
        let password = if interactive {
            Secret::new(prompt(
                "App password (create one at https://bsky.app/settings/app-passwords): ",
                true,
            )?)
        } else {
            Secret::new(read_stdin()?.trim())
        };
        if password.is_empty() {
            return Err(invalid("no app password on stdin"));
        }
        let service = normalize_url(&args.service)?;
        // Fail on a bad key before logging in; then prove the password before storing it.
        ws.cipher()?;
        let identity = bluesky_login(&service, &handle, password.expose()).await?;
        // An account connected before psn keyed Bluesky accounts by DID keeps its handle key,
        // so reconnecting it updates it instead of adding a second one.
        let legacy = ws
            .open_hub(&global.hub)
            .await?
            .accounts()
            .await?
            .into_iter()
            .find(|a| {
                a.platform == Platform::Bluesky
                    && a.service_url == service
                    && !a.external_id.starts_with("did:")
                    && a.external_id.eq_ignore_ascii_case(&handle)
            })
            .map(|a| a.external_id);
        NewAccount {
            platform,
            external_id: legacy.unwrap_or(identity.id),
            handle: identity.handle,
            service_url: service,
            tokens: TokenSet {
                access_token: password,
                refresh_token: None,
            },
            expires_at: None,
            created_by: actor(global),
        }
    } else if args.token_stdin {
        let raw = read_stdin()?;
        let input: TokenInput = serde_json::from_str(raw.trim()).map_err(|e| {
            // serde's message can quote a string value ("invalid type: string \"…\""), which
            // may be a token: strip every quoted string from it.
            invalid(format!(
                "stdin is not the token JSON ({}); expected {{\"access_token\": …, \"refresh_token\"?: …, \"expires_in\"?: seconds, \"account_id\"?: …, \"handle\"?: …}}",
                redact_quoted(&e.to_string())
            ))
        })?;
        drop(raw);
        let access_token = Secret::new(input.access_token);
        if access_token.is_empty() {
            return Err(invalid("access_token is empty"));
        }
        let service_url = match platform {
            Platform::Mastodon => normalize_url(args.instance.as_deref().ok_or_else(|| {
                invalid(
                    "--instance is required for Mastodon (e.g. --instance https://mastodon.social)",
                )
            })?)?,
            Platform::Bluesky => normalize_url(&args.service)?,
            _ => String::new(),
        };
        let handle = input
            .handle
            .map(|h| h.trim().trim_start_matches('@').to_string())
            .filter(|h| !h.is_empty());
        let external_id = input
            .account_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let (handle, external_id) = match (handle, external_id) {
            (Some(h), Some(id)) => (h, id),
            (Some(h), None) => (h.clone(), h),
            (None, Some(id)) => (id.clone(), id),
            (None, None) => {
                return Err(invalid(
                    "the token JSON needs account_id or handle, so psn can tell accounts apart",
                ));
            }
        };
        let expires_at = match input.expires_in {
            Some(s) if s <= 0 => {
                return Err(invalid("expires_in must be a positive number of seconds"));
            }
            Some(s) => Some(Utc::now() + Duration::seconds(s)),
            None => None,
        };
        NewAccount {
            platform,
            handle,
            external_id,
            service_url,
            tokens: TokenSet {
                access_token,
                refresh_token: input.refresh_token.map(Secret::new),
            },
            expires_at,
            created_by: actor(global),
        }
    } else {
        // Fail on a bad key or hub before the user goes through the browser.
        ws.cipher()?;
        let (new, status, connected_pages) =
            super::oauth_connect::connect(global, ws, platform, &args).await?;
        platform_status = Some(status);
        pages = connected_pages;
        new
    };
    if platform_status.is_none() && platform == Platform::X {
        // Headless X accounts record the API plan too (enforced by `psn post`).
        platform_status = Some(super::account_health::new_x_platform_status(ws)?);
    }
    let cipher = ws.cipher()?;
    let hub = ws.open_hub(&global.hub).await?;
    let (mut account, created) = hub.upsert_account(&new, &cipher).await?;
    if let Some(status) = platform_status {
        hub.set_platform_status(&account.id, &status).await?;
        account = hub.account(&account.id).await?;
    }
    if pages.is_empty() {
        print_connected(global, &account, created);
        return Ok(());
    }
    // Pages connected with the account (LinkedIn organization pages): `--json` lists them all.
    let mut connected = vec![(account, created)];
    for (page, status) in &pages {
        let (page, created) = hub.upsert_account(page, &cipher).await?;
        hub.set_platform_status(&page.id, status).await?;
        connected.push((hub.account(&page.id).await?, created));
    }
    if global.json {
        print_json(&connected.iter().map(|(a, _)| a).collect::<Vec<_>>());
    } else {
        for (a, created) in &connected {
            print_connected(global, a, *created);
        }
    }
    Ok(())
}

/// Logs in to the PDS with the app password (`com.atproto.server.createSession`): the
/// account's DID and current handle. A refused password is invalid input (exit 2, nothing
/// written); an unreachable PDS is a failure (exit 1).
async fn bluesky_login(
    service: &str,
    handle: &str,
    password: &str,
) -> CliResult<psn_platforms::oauth::Identity> {
    use psn_platforms::publish::PublishError;
    use psn_platforms::publish::bluesky::BlueskyPublisher;
    match BlueskyPublisher::new()
        .login(service, handle, password)
        .await
    {
        Ok(identity) => Ok(identity),
        Err(PublishError::Auth { message }) => Err(invalid(format!(
            "Bluesky refused the handle or app password for {handle} ({message}); nothing was stored. Check the handle and create an app password at https://bsky.app/settings/app-passwords"
        ))),
        Err(PublishError::Permanent { message }) => Err(invalid(format!(
            "Bluesky refused the login for {handle}: {message}; nothing was stored"
        ))),
        Err(e) => Err(crate::error::CliError::Failed(anyhow::anyhow!(
            "the Bluesky server {service} could not check the app password now ({e}); nothing was stored, try again"
        ))),
    }
}

/// Asks on stderr and reads one line from stdin (`secret`: without echo on a terminal).
fn prompt(question: &str, secret: bool) -> CliResult<String> {
    use std::io::{IsTerminal, Write};
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let tty = secret && std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        if let Ok(tty) = std::fs::File::open("/dev/tty") {
            let _ = std::process::Command::new("stty")
                .arg(arg)
                .stdin(tty)
                .status();
        }
    };
    if tty {
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read.map_err(|e| invalid(format!("cannot read stdin: {e}")))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(invalid("nothing was entered"));
    }
    Ok(line)
}

fn print_connected(global: &Global, account: &Account, created: bool) {
    if global.json {
        print_json(account);
    } else {
        println!(
            "{} {} account {} ({}).",
            if created { "Connected" } else { "Reconnected" },
            account.platform.display_name(),
            account.handle,
            account.id
        );
    }
}

/// Replaces every double-quoted string in a parser message with `"…"`, so a value read from
/// stdin (possibly a token) is never echoed.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            let mut escaped = false;
            for c in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                }
            }
            out.push_str("…\"");
        }
    }
    out
}

pub(crate) fn normalize_url(url: &str) -> CliResult<String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        return Err(invalid(format!(
            "'{url}' is not a URL (expected https://host)"
        )));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted_from_parser_messages() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "tok\"en", expected i64 at line 1"#),
            r#"invalid type: string "…", expected i64 at line 1"#
        );
        assert_eq!(
            redact_quoted("missing field `access_token`"),
            "missing field `access_token`"
        );
    }
}
