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
            if let Some(cipher) = cipher {
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

fn which(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
