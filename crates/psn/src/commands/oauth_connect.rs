//! `psn accounts connect PLATFORM` with OAuth: the authorization URL is opened in the browser
//! (or printed), a one-shot callback listener on `127.0.0.1:18923` (`--callback-port`,
//! `PSN_OAUTH_PORT`) checks `state`, answers the browser with a readable page and closes after
//! the first valid callback or five minutes (`PSN_OAUTH_TIMEOUT_MS`). When the port is taken
//! (or with `--paste`), the user pastes the address the browser was sent to instead.
//!
//! Then the code is exchanged for tokens (PKCE verifier where the platform takes one), Meta's
//! user token is exchanged for a long-lived one and the Page / Instagram business account is
//! picked, the identity call names the account, and the tokens are sealed by the store. No
//! token is ever printed or logged.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use psn_domain::Platform;
use psn_platforms::oauth::{
    self, CallbackError, ClientCredentials, Endpoints, Provider, TokenResponse,
};
use psn_platforms::publish::PublishError;
use psn_platforms::publish::http;
use psn_store::{NewAccount, Secret, TokenSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cli::{ConnectArgs, Global};
use crate::error::{CliError, CliResult, invalid};
use crate::workspace::{Workspace, actor, check_private, read_env_file};

/// Overrides how long the listener waits for the browser (milliseconds; default five minutes).
pub const TIMEOUT_ENV: &str = "PSN_OAUTH_TIMEOUT_MS";

fn failed(msg: impl Into<String>) -> CliError {
    CliError::Failed(anyhow::anyhow!(msg.into()))
}

/// The app credentials of `provider`: the environment first, then `config/keys.env`.
pub fn client_credentials(
    ws_config: Option<&Path>,
    provider: &Provider,
) -> Option<ClientCredentials> {
    if provider.client_id_env.is_empty() {
        return None;
    }
    if let Some(c) = oauth::credentials_from_env(provider) {
        return Some(c);
    }
    let path = ws_config?.join("keys.env");
    check_private(&path).ok()?;
    let vars = read_env_file(&path).ok()?;
    let get = |name: &str| {
        vars.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Some(ClientCredentials {
        id: get(provider.client_id_env)?,
        secret: get(provider.client_secret_env),
    })
}

/// A setting from the environment, else `config/keys.env` (e.g. `X_API_TIER`).
pub fn setting(ws: &Workspace, name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name)
        && !v.trim().is_empty()
    {
        return Some(v.trim().to_owned());
    }
    let path = ws.config_dir().join("keys.env");
    let vars = read_env_file(&path).ok()?;
    vars.get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(300))
}

fn publish_error(what: &str, platform: Platform, e: PublishError) -> CliError {
    let hint = match &e {
        PublishError::Auth { .. } | PublishError::Permanent { .. } => {
            " — check the app's client id, secret and redirect URI, then run the command again"
        }
        _ => " — the platform may be unavailable; try again in a moment",
    };
    failed(format!(
        "{what} on {} failed: {e}{hint}",
        platform.display_name()
    ))
}

/// What the OAuth dance produced: the account to store and what the platform allows it, and
/// the pages connected with it (LinkedIn organization pages, same tokens).
struct Connected {
    account: NewAccount,
    platform_status: serde_json::Value,
    pages: Vec<(NewAccount, serde_json::Value)>,
}

/// LinkedIn: whether organization pages were asked for (`--organization` or `--page`).
fn wants_organization(args: &ConnectArgs) -> bool {
    args.organization || args.page.is_some()
}

pub async fn connect(
    global: &Global,
    ws: &Workspace,
    platform: Platform,
    args: &ConnectArgs,
) -> CliResult<(
    NewAccount,
    serde_json::Value,
    Vec<(NewAccount, serde_json::Value)>,
)> {
    let provider = oauth::provider(platform).ok_or_else(|| {
        invalid(format!(
            "{} does not use OAuth; see `psn accounts connect --help`",
            platform.display_name()
        ))
    })?;
    if platform == Platform::X {
        // A mistyped X_API_TIER is refused before the browser, not after.
        super::account_health::configured_x_tier(ws)?;
    }
    let instance = if platform == Platform::Mastodon {
        Some(crate::commands::accounts::normalize_url(
            args.instance.as_deref().ok_or_else(|| {
                invalid(
                    "--instance is required for Mastodon (e.g. --instance https://mastodon.social)",
                )
            })?,
        )?)
    } else {
        None
    };
    let credentials = if platform == Platform::Mastodon {
        None
    } else {
        Some(
            client_credentials(Some(&ws.config_dir()), provider).ok_or_else(|| {
                invalid(format!(
                    "{} is not set: add it{} to config/keys.env (get them at {}), or connect headlessly with --token-stdin",
                    provider.client_id_env,
                    if provider.secret_required {
                        format!(" and {}", provider.client_secret_env)
                    } else {
                        String::new()
                    },
                    provider.console
                ))
            })?,
        )
    };
    if let Some(c) = &credentials
        && provider.secret_required
        && c.secret.is_none()
    {
        return Err(invalid(format!(
            "{} is not set: add it to config/keys.env (from {})",
            provider.client_secret_env, provider.console
        )));
    }
    let port = args.callback_port;
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    // The listener first: when the port is taken, the paste fallback is announced up front.
    let listener = if args.paste {
        None
    } else {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!(
                    "Port {port} is not available ({e}): after you approve, copy the address your browser shows (it starts with {redirect_uri}) and paste it here."
                );
                None
            }
        }
    };
    let client = http::client();
    let endpoints = provider.endpoints(instance.as_deref());
    let credentials = match credentials {
        Some(c) => c,
        None => {
            let instance = instance.as_deref().unwrap_or_default();
            oauth::register_mastodon_app(&client, instance, &redirect_uri)
                .await
                .map_err(|e| publish_error("registering psn on the instance", platform, e))?
        }
    };
    let extra: &[&str] = if platform == Platform::Linkedin && wants_organization(args) {
        oauth::LINKEDIN_ORGANIZATION_SCOPES
    } else {
        &[]
    };
    let request =
        oauth::authorization_request(provider, &endpoints, &credentials, &redirect_uri, extra);
    eprintln!(
        "To connect {}, open this address and approve psn:\n\n  {}\n",
        platform.display_name(),
        request.url
    );
    let opened = !args.no_browser && open_browser(&request.url);
    if opened {
        eprintln!("(opened in your browser)");
    }
    let wait = timeout();
    let code = match listener {
        Some(listener) => {
            eprintln!(
                "Waiting for the browser on {redirect_uri} (up to {} s)…",
                wait.as_secs().max(1)
            );
            if opened {
                wait_for_callback(listener, &request.state, wait).await?
            } else {
                // No browser here: the approval may happen on another machine, whose browser
                // cannot reach this listener. Accept a pasted address as well.
                eprintln!(
                    "(If you approve on another machine, paste the address its browser lands on here and press Enter.)"
                );
                tokio::select! {
                    code = wait_for_callback(listener, &request.state, wait) => code?,
                    line = pasted_forever() => {
                        oauth::parse_callback(&line, &request.state).map_err(callback_error)?
                    }
                }
            }
        }
        None => {
            eprintln!("Paste the address here and press Enter:");
            let line = read_line(wait).await?;
            oauth::parse_callback(&line, &request.state).map_err(callback_error)?
        }
    };
    let verifier = request.pkce.as_ref().map(|p| p.verifier.as_str());
    let tokens = oauth::exchange_code(
        &client,
        provider,
        &endpoints,
        &credentials,
        &code,
        &redirect_uri,
        verifier,
    )
    .await
    .map_err(|e| publish_error("exchanging the authorization code", platform, e))?;
    let connected = finish(
        global,
        ws,
        &client,
        provider,
        &endpoints,
        &credentials,
        tokens,
        instance,
        args,
    )
    .await?;
    Ok((
        connected.account,
        connected.platform_status,
        connected.pages,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    global: &Global,
    ws: &Workspace,
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    credentials: &ClientCredentials,
    tokens: TokenResponse,
    instance: Option<String>,
    args: &ConnectArgs,
) -> CliResult<Connected> {
    let platform = provider.platform;
    let now = Utc::now();
    let expires_at = |t: &TokenResponse| {
        t.lifetime()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d)
    };
    let mut status = serde_json::json!({});
    let mut pages = Vec::new();
    let (handle, external_id, access, refresh, expires) = match platform {
        Platform::Facebook | Platform::Instagram => {
            let long = oauth::long_lived_token(
                client,
                provider,
                endpoints,
                credentials,
                &tokens.access_token,
            )
            .await
            .map_err(|e| publish_error("the long-lived token exchange", platform, e))?;
            let pages = oauth::meta_pages(client, endpoints, &long.access_token)
                .await
                .map_err(|e| publish_error("listing your Pages", platform, e))?;
            let candidates: Vec<_> = pages
                .iter()
                .filter(|p| platform == Platform::Facebook || p.instagram.is_some())
                .collect();
            let describe = |p: &oauth::MetaPage| match (&p.instagram, platform) {
                (Some(ig), Platform::Instagram) => {
                    format!("{} (@{}, Page {})", ig.id, ig.username, p.name)
                }
                _ => format!("{} ({})", p.id, p.name),
            };
            let chosen = match args.page.as_deref() {
                Some(wanted) => candidates
                    .iter()
                    .find(|p| {
                        p.id == wanted
                            || p.name == wanted
                            || p.instagram
                                .as_ref()
                                .is_some_and(|ig| ig.id == wanted || ig.username == wanted)
                    })
                    .copied()
                    .ok_or_else(|| {
                        invalid(format!(
                            "no {} '{wanted}' among: {}",
                            if platform == Platform::Instagram {
                                "Instagram business account"
                            } else {
                                "Page"
                            },
                            candidates
                                .iter()
                                .map(|p| describe(p))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?,
                None if candidates.len() == 1 => candidates[0],
                None if candidates.is_empty() => {
                    return Err(failed(if platform == Platform::Instagram {
                        "none of your Facebook Pages has an Instagram business or creator account linked: link one in the Instagram app (Settings > Account type), then run the command again"
                    } else {
                        "your Facebook login manages no Page: psn publishes to Pages, not personal profiles"
                    }));
                }
                None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    let choices: Vec<String> = candidates.iter().map(|p| describe(p)).collect();
                    let n = pick_on_terminal("Which one should psn connect?", &choices, None)
                        .await?
                        .expect("a choice is required");
                    candidates[n]
                }
                None => {
                    return Err(invalid(format!(
                        "you manage several; choose one with --page ID and run the command again: {}",
                        candidates
                            .iter()
                            .map(|p| describe(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            };
            // Page tokens obtained from a long-lived user token do not expire.
            let token = chosen.access_token.0.clone();
            match (&chosen.instagram, platform) {
                (Some(ig), Platform::Instagram) => {
                    (ig.username.clone(), ig.id.clone(), token, None, None)
                }
                _ => (chosen.name.clone(), chosen.id.clone(), token, None, None),
            }
        }
        Platform::Threads => {
            let long = oauth::long_lived_token(
                client,
                provider,
                endpoints,
                credentials,
                &tokens.access_token,
            )
            .await
            .map_err(|e| publish_error("the long-lived token exchange", platform, e))?;
            let who = oauth::identity(client, provider, endpoints, &long.access_token)
                .await
                .map_err(|e| publish_error("the identity call", platform, e))?;
            let expires = expires_at(&long);
            // Threads extends the long-lived token itself: it is its own refresh credential.
            let token = long.access_token;
            (who.handle, who.id, token.clone(), Some(token), expires)
        }
        _ => {
            let who = oauth::identity(client, provider, endpoints, &tokens.access_token)
                .await
                .map_err(|e| publish_error("the identity call", platform, e))?;
            let expires = expires_at(&tokens);
            (
                who.handle,
                who.id,
                tokens.access_token.clone(),
                tokens.refresh_token.clone(),
                expires,
            )
        }
    };
    match platform {
        Platform::Tiktok => {
            let audited = setting(ws, "TIKTOK_APP_AUDITED").is_some_and(|v| truthy(&v));
            status = if audited {
                serde_json::json!({"audit": "audited", "posting": "allowed"})
            } else {
                serde_json::json!({
                    "audit": "unaudited",
                    "posting": "private_only",
                    "explanation": "the TikTok app is unaudited: TikTok accepts only private (SELF_ONLY) posts from it, to at most 5 users a day. Submit the app for audit at https://developers.tiktok.com, then set TIKTOK_APP_AUDITED=true in config/keys.env and reconnect.",
                })
            };
        }
        Platform::Linkedin if wants_organization(args) => {
            let missing = oauth::linkedin_missing_organization_scopes(tokens.scope.as_deref());
            if !missing.is_empty() {
                if let Some(page) = &args.page {
                    return Err(invalid(format!(
                        "LinkedIn did not grant {} to psn, so it cannot connect the organization page '{page}': the app needs the Community Management API product approved (https://www.linkedin.com/developers/apps, Products tab); nothing was connected. Run the command without --page to connect your member profile meanwhile",
                        missing.join(" and ")
                    )));
                }
                status = serde_json::json!({
                    "organization_access": "pending",
                    "explanation": format!(
                        "LinkedIn did not grant organization page access ({}): the app needs the Community Management API product approved. Posting as your member profile works meanwhile; reconnect with --organization once it is approved.",
                        missing.join(", ")
                    ),
                });
            } else {
                status = serde_json::json!({"organization_access": "granted"});
                let organizations = oauth::linkedin_organizations(client, endpoints, &access)
                    .await
                    .map_err(|e| {
                        publish_error("listing the organizations you administer", platform, e)
                    })?;
                let describe = |o: &oauth::LinkedinOrganization| match &o.vanity_name {
                    Some(v) if !v.is_empty() && *v != o.name => {
                        format!("{} ({}, linkedin.com/company/{v})", o.id, o.name)
                    }
                    _ => format!("{} ({})", o.id, o.name),
                };
                let chosen = match args.page.as_deref() {
                    Some(wanted) => {
                        let wanted_id = wanted.trim().trim_start_matches("urn:li:organization:");
                        Some(
                            organizations
                                .iter()
                                .find(|o| {
                                    o.id == wanted_id
                                        || o.name.eq_ignore_ascii_case(wanted.trim())
                                        || o.vanity_name
                                            .as_deref()
                                            .is_some_and(|v| v.eq_ignore_ascii_case(wanted.trim()))
                                })
                                .ok_or_else(|| {
                                    invalid(if organizations.is_empty() {
                                        format!(
                                            "you administer no LinkedIn organization page, so psn cannot connect '{wanted}' (only approved ADMINISTRATOR roles count); nothing was connected"
                                        )
                                    } else {
                                        format!(
                                            "no organization page '{wanted}' among those you administer: {}; nothing was connected",
                                            organizations
                                                .iter()
                                                .map(describe)
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        )
                                    })
                                })?,
                        )
                    }
                    None if organizations.is_empty() => {
                        eprintln!(
                            "You administer no LinkedIn organization page; psn connects your member profile."
                        );
                        None
                    }
                    None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                        let choices: Vec<String> = organizations.iter().map(describe).collect();
                        pick_on_terminal(
                            "Which organization page should psn connect too?",
                            &choices,
                            Some("none (only your member profile)"),
                        )
                        .await?
                        .map(|i| &organizations[i])
                    }
                    None => {
                        eprintln!(
                            "You administer these LinkedIn organization pages: {}. Connect one with `psn accounts connect linkedin --page ID`.",
                            organizations
                                .iter()
                                .map(describe)
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        None
                    }
                };
                if let Some(org) = chosen {
                    pages.push((
                        NewAccount {
                            platform,
                            handle: org.handle(),
                            external_id: org.urn(),
                            service_url: String::new(),
                            tokens: TokenSet {
                                access_token: Secret::new(access.clone()),
                                refresh_token: refresh.clone().map(Secret::new),
                            },
                            expires_at: expires,
                            created_by: actor(global),
                        },
                        serde_json::json!({
                            "organization_access": "granted",
                            "account_kind": "organization",
                            "organization": org.name,
                            "member": external_id,
                        }),
                    ));
                }
            }
        }
        Platform::Linkedin => {
            status = serde_json::json!({"organization_access": "not_requested"});
        }
        Platform::X => {
            status = super::account_health::new_x_platform_status(ws)?;
        }
        _ => {}
    }
    Ok(Connected {
        account: NewAccount {
            platform,
            handle,
            external_id,
            service_url: instance.unwrap_or_default(),
            tokens: TokenSet {
                access_token: Secret::new(access),
                refresh_token: refresh.map(Secret::new),
            },
            expires_at: expires,
            created_by: actor(global),
        },
        platform_status: status,
        pages,
    })
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn callback_error(e: CallbackError) -> CliError {
    match e {
        CallbackError::Denied(_) => failed(format!("{e}; run the command again to retry")),
        _ => invalid(e.to_string()),
    }
}

/// Tries to open `url` in a browser: `$BROWSER`, else `xdg-open` when a display exists, else
/// `open` on macOS. Returns whether a browser was started.
fn open_browser(url: &str) -> bool {
    let program = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .or_else(|| {
            if cfg!(target_os = "macos") {
                Some("open".to_owned())
            } else if std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some()
            {
                Some("xdg-open".to_owned())
            } else {
                None
            }
        });
    let Some(program) = program else {
        return false;
    };
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Asks on the terminal which of `choices` to take (numbered from 1; `none` adds a "0" that
/// takes none of them). An answer that is not one of the numbers is refused (exit 2).
async fn pick_on_terminal(
    question: &str,
    choices: &[String],
    none: Option<&str>,
) -> CliResult<Option<usize>> {
    eprintln!("{question}");
    if let Some(label) = none {
        eprintln!("  0. {label}");
    }
    for (i, c) in choices.iter().enumerate() {
        eprintln!("  {}. {c}", i + 1);
    }
    eprint!("Number: ");
    let answer = match tokio::time::timeout(timeout(), next_stdin_line()).await {
        Err(_) => return Err(failed("no answer was typed in time; run the command again")),
        Ok(Some(Ok(line))) => line.trim().to_owned(),
        Ok(_) => String::new(),
    };
    match answer.parse::<usize>() {
        Ok(0) if none.is_some() => Ok(None),
        Ok(n) if (1..=choices.len()).contains(&n) => Ok(Some(n - 1)),
        _ => Err(invalid(format!(
            "'{answer}' is not one of the numbers {} to {}; nothing was connected",
            if none.is_some() { 0 } else { 1 },
            choices.len()
        ))),
    }
}

type Lines = tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<std::io::Result<String>>>;

/// Stdin's lines, read by one thread for the whole command (a pending read never holds up the
/// exit). One reader, so a line typed for a later question (the Page pick) is never taken by
/// an earlier wait that gave up (the paste fallback when the browser answered first).
fn stdin_lines() -> &'static Lines {
    static LINES: std::sync::OnceLock<Lines> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            loop {
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if tx.send(Ok(line)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        tokio::sync::Mutex::new(rx)
    })
}

/// The next line from stdin; `None` once stdin is closed. Cancel-safe: a wait that is dropped
/// takes no line.
async fn next_stdin_line() -> Option<std::io::Result<String>> {
    stdin_lines().lock().await.recv().await
}

async fn read_line(wait: Duration) -> CliResult<String> {
    match tokio::time::timeout(wait, next_stdin_line()).await {
        Err(_) => Err(failed(
            "no answer was typed or pasted in time; run the command again",
        )),
        Ok(Some(Ok(line))) if !line.trim().is_empty() => Ok(line.trim().to_owned()),
        Ok(_) => Err(invalid(
            "nothing was pasted: paste the whole address the browser was sent to (http://127.0.0.1:…/callback?code=…&state=…)",
        )),
    }
}

/// A pasted address, for as long as it takes; blank lines are skipped, and a closed stdin
/// never answers.
async fn pasted_forever() -> String {
    loop {
        match next_stdin_line().await {
            Some(Ok(line)) if !line.trim().is_empty() => return line.trim().to_owned(),
            Some(Ok(_)) => continue,
            _ => return std::future::pending().await,
        }
    }
}

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;line-height:1.5}";

fn page(status: u16, title: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>psn: {title}</title><style>{PAGE_STYLE}</style></head><body><h1>{title}</h1><p>{body}</p></body></html>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{html}",
        html.len()
    )
    .into_bytes()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Reads one request head (up to 16 KiB, 10 s) and returns its target (`/callback?…`).
async fn read_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 16 * 1024 {
                return Some(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET").then(|| target.to_owned())
}

/// Serves the callback until the first valid one (returns its code) or `wait` passes. A
/// callback with the wrong `state` is refused with a page saying so, and the listener keeps
/// waiting; a refusal by the user ends the wait. The port is free again when this returns.
pub async fn wait_for_callback(
    listener: TcpListener,
    state: &str,
    wait: Duration,
) -> CliResult<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (mut stream, _) = match tokio::time::timeout_at(deadline, listener.accept()).await {
            Err(_) => {
                return Err(failed(format!(
                    "no approval arrived within {} s; run the command again (or use --paste when the browser runs on another machine)",
                    wait.as_secs().max(1)
                )));
            }
            Ok(Err(_)) => continue,
            Ok(Ok(s)) => s,
        };
        let Some(target) = read_target(&mut stream).await else {
            continue;
        };
        let path = target.split('?').next().unwrap_or_default();
        if path != "/callback" {
            let _ = stream
                .write_all(&page(404, "Not here", "psn is waiting on /callback."))
                .await;
            continue;
        }
        match oauth::parse_callback(&target, state) {
            Ok(code) => {
                let _ = stream
                    .write_all(&page(
                        200,
                        "Approved",
                        "psn received the approval and is finishing the connection. You can close this tab and return to the terminal.",
                    ))
                    .await;
                let _ = stream.shutdown().await;
                return Ok(code);
            }
            Err(e @ CallbackError::Denied(_)) => {
                let _ = stream
                    .write_all(&page(400, "Not connected", &escape(&e.to_string())))
                    .await;
                let _ = stream.shutdown().await;
                return Err(callback_error(e));
            }
            Err(e) => {
                let _ = stream
                    .write_all(&page(
                        400,
                        "This link is not for this sign-in",
                        &format!(
                            "{}. Start again from the address psn printed in the terminal.",
                            escape(&e.to_string())
                        ),
                    ))
                    .await;
                let _ = stream.shutdown().await;
                tracing::warn!("refused a callback: {e}");
            }
        }
    }
}
