//! `psn doctor`: checks the workspace, the key, each hub (reachable, migrated, schema version,
//! tokens readable with the key) and optional tools. Exit 1 when any check fails.

use psn_store::{Hub, redact_url};
use serde::Serialize;

use crate::cli::Global;
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::workspace::Workspace;

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: &'static str,
    detail: String,
}

fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: "ok",
        detail: detail.into(),
    }
}
fn warn(check: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: "warn",
        detail: detail.into(),
    }
}
fn fail(check: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        check: check.into(),
        status: "fail",
        detail: detail.into(),
    }
}

pub async fn run(global: &Global) -> CliResult {
    let mut checks = Vec::new();
    match Workspace::locate(global) {
        Ok(ws) => {
            checks.push(ok(
                "workspace",
                format!("{} (time zone {})", ws.root.display(), ws.tz.name()),
            ));
            let cipher = match ws.cipher() {
                Ok(c) => {
                    checks.push(ok("encryption key", "present, private, 32 bytes"));
                    Some(c)
                }
                Err(e) => {
                    checks.push(fail("encryption key", e.to_string()));
                    None
                }
            };
            checks.extend(app_credentials(&ws));
            match super::media::public_media(&ws) {
                Ok(None) => checks.push(warn(
                    "public media URLs",
                    "not configured (Instagram, Threads, Pinterest and TikTok pull media from a public URL): set PSN_MEDIA_S3_* for a bucket or PSN_MEDIA_PUBLIC_BASE_URL",
                )),
                Ok(Some(public)) => match public.check().await {
                    Ok(detail) => checks.push(ok("public media URLs", detail)),
                    Err(e) => checks.push(fail("public media URLs", e.to_string())),
                },
                Err(e) => checks.push(fail("public media URLs", e.to_string())),
            }
            match ws.hubs() {
                Ok(hubs) => {
                    for entry in hubs {
                        checks.extend(check_hub(&entry.name, &entry.url, cipher.as_ref()).await);
                        // Company hubs: the worker role too (it reads tokens and every alert).
                        if let Some(worker_url) = &entry.worker_url {
                            let name = format!("{} (worker role)", entry.name);
                            checks.extend(check_hub(&name, worker_url, cipher.as_ref()).await);
                        }
                    }
                }
                Err(e) => checks.push(fail("hubs", e.to_string())),
            }
        }
        Err(e) => checks.push(fail("workspace", e.to_string())),
    }
    for (tool, why) in [
        ("ffmpeg", "transcoding video"),
        ("ffprobe", "probing media other than MP4/MOV"),
    ] {
        match which(tool) {
            Some(path) => checks.push(ok(format!("tool {tool}"), path)),
            None => checks.push(warn(
                format!("tool {tool}"),
                format!("not installed (optional, for {why}): apt-get install ffmpeg"),
            )),
        }
    }
    if global.json {
        print_json(&checks);
    } else {
        for c in &checks {
            let mark = match c.status {
                "ok" => "ok  ",
                "warn" => "warn",
                _ => "FAIL",
            };
            println!("{mark}  {:<28} {}", c.check, c.detail);
        }
    }
    let failed = checks.iter().filter(|c| c.status == "fail").count();
    if failed > 0 {
        return Err(CliError::ReportedFailure(format!(
            "{failed} check(s) failed"
        )));
    }
    Ok(())
}

async fn check_hub(name: &str, url: &str, cipher: Option<&psn_store::TokenCipher>) -> Vec<Check> {
    let label = format!("hub {name}");
    let mut out = Vec::new();
    let hub = match Hub::connect(name, url).await {
        Ok(h) => h,
        Err(e) => return vec![fail(label, e.to_string())],
    };
    match hub.migration_state().await {
        Ok(m) if m.hub_is_newer() => out.push(fail(
            label.clone(),
            format!(
                "schema {} is newer than this psn ({}): upgrade psn",
                m.hub_version, m.psn_version
            ),
        )),
        Ok(m) if m.hub_version == 0 => out.push(ok(
            label.clone(),
            format!(
                "{} reachable, empty (migrated on first use)",
                redact_url(url)
            ),
        )),
        Ok(m) if !m.pending.is_empty() && hub.is_company() => out.push(warn(
            label.clone(),
            format!(
                "schema {} of {}: pending migrations — ask an admin to run `psn hub migrate {name}`",
                m.hub_version, m.psn_version
            ),
        )),
        Ok(m) if !m.pending.is_empty() => out.push(warn(
            label.clone(),
            format!(
                "schema {} of {}: run `psn hub migrate {name}`",
                m.hub_version, m.psn_version
            ),
        )),
        Ok(m) => {
            out.push(ok(
                label.clone(),
                format!("{} reachable, schema {}", redact_url(url), m.hub_version),
            ));
            match hub.refresh_errors().await {
                Ok(errors) => {
                    for e in errors {
                        out.push(warn(
                            format!("{label} token {} {}", e.platform, e.handle),
                            format!(
                                "the last refresh failed ({}); psn will try again: {}",
                                e.at.format("%Y-%m-%d %H:%M UTC"),
                                e.message
                            ),
                        ));
                    }
                }
                Err(e) => out.push(fail(format!("{label} token refresh"), e.to_string())),
            }
            match hub.stale_refreshes(chrono::Utc::now(), STALE_REFRESH).await {
                Ok(stale) => {
                    for s in stale {
                        out.push(fail(
                            format!("{label} token {} {}", s.platform, s.handle),
                            format!(
                                "no successful token refresh since {} (due since {}){}: check that a worker runs, or reconnect with `psn accounts connect {}`",
                                s.since.format("%Y-%m-%d %H:%M UTC"),
                                s.due_since.format("%Y-%m-%d %H:%M UTC"),
                                s.last_error.map(|e| format!("; last error: {e}")).unwrap_or_default(),
                                s.platform
                            ),
                        ));
                    }
                }
                // Members of a company hub connect as the runtime role, which cannot read
                // tokens: the worker role watches refreshes there.
                Err(psn_store::StoreError::Forbidden(_)) if hub.is_company() => {}
                Err(e) => out.push(fail(format!("{label} token refresh"), e.to_string())),
            }
            match hub.open_alerts().await {
                Ok(alerts) => {
                    for a in alerts.iter().take(20) {
                        out.push(warn(
                            format!("{label} alert {}", a.priority),
                            a.message.clone(),
                        ));
                    }
                    if alerts.len() > 20 {
                        out.push(warn(
                            format!("{label} alerts"),
                            format!("{} more open alerts", alerts.len() - 20),
                        ));
                    }
                }
                Err(e) => out.push(fail(format!("{label} alerts"), e.to_string())),
            }
            if hub.is_company() {
                match hub.check_isolation().await {
                    Ok(()) => out.push(ok(
                        format!("{label} isolation"),
                        "row-level security forced on every team-scoped table; this role cannot bypass it",
                    )),
                    Err(e) => out.push(fail(format!("{label} isolation"), e.to_string())),
                }
            }
            // The runtime role of a company hub never reads tokens: its worker-role check does.
            if let Some(cipher) = cipher.filter(|_| !hub.is_company() || name.ends_with("(worker role)")) {
                match hub.verify_cipher(cipher).await {
                    Ok(n) => out.push(ok(
                        format!("{label} tokens"),
                        format!("{n} account token(s) readable with the key"),
                    )),
                    Err(e) => out.push(fail(format!("{label} tokens"), e.to_string())),
                }
            }
        }
        Err(e) => out.push(fail(label.clone(), e.to_string())),
    }
    hub.close().await;
    out
}

/// A refresh due this long without succeeding fails `psn doctor`.
const STALE_REFRESH: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Which OAuth app credentials are set (environment or config/keys.env), and where to get the
/// missing ones.
fn app_credentials(ws: &Workspace) -> Vec<Check> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for platform in psn_domain::Platform::ALL {
        let Some(provider) = psn_platforms::oauth::provider(platform) else {
            continue;
        };
        if provider.client_id_env.is_empty() || !seen.insert(provider.client_id_env) {
            continue;
        }
        let label = format!(
            "app {}",
            provider
                .client_id_env
                .trim_end_matches("_CLIENT_ID")
                .trim_end_matches("_CLIENT_KEY")
                .trim_end_matches("_APP_ID")
                .to_ascii_lowercase()
        );
        match super::oauth_connect::client_credentials(Some(&ws.config_dir()), provider) {
            Some(c) if !provider.secret_required || c.secret.is_some() => {
                out.push(ok(label, format!("{} set", provider.client_id_env)))
            }
            Some(_) => out.push(warn(
                label,
                format!(
                    "{} is missing (needed by `psn accounts connect`): get it at {}",
                    provider.client_secret_env, provider.console
                ),
            )),
            None => out.push(warn(
                label,
                format!(
                    "{}{} not set (needed by `psn accounts connect {}`): get them at {}",
                    provider.client_id_env,
                    if provider.secret_required {
                        format!(" and {}", provider.client_secret_env)
                    } else {
                        String::new()
                    },
                    platform,
                    provider.console
                ),
            )),
        }
    }
    out
}

fn which(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
