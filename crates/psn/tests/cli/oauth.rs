//! `psn accounts connect PLATFORM` with OAuth, end to end: the real binary, its real callback
//! listener, a fake authorization server and token endpoint on real HTTP (which checks the
//! client credentials, the redirect URI and the PKCE verifier), and a scripted "browser" (an
//! HTTP client following the fake's redirect to the listener). Also `accounts check`,
//! `accounts rotate-key`, platform status at `psn post`, and what `psn doctor` says.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use psn_domain::Platform;
use psn_testkit::oauth::{CLIENT_ID, CLIENT_SECRET, FakeOAuth};

use crate::support::{Out, TestWorkspace, execute_sql};

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn credential_env(platform: Platform) -> Option<(&'static str, &'static str)> {
    let p = psn_platforms::oauth::provider(platform)?;
    (!p.client_id_env.is_empty()).then_some((p.client_id_env, p.client_secret_env))
}

/// A running `psn accounts connect` whose stderr is read line by line.
pub(crate) struct Connecting {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// The terminal psn reads from (see [`Connecting::on_terminal`]), if any.
    terminal: Option<std::fs::File>,
}

impl Connecting {
    pub(crate) fn start(
        ws: &TestWorkspace,
        fake: &FakeOAuth,
        platform: Platform,
        port: u16,
        extra: &[&str],
    ) -> Connecting {
        Connecting::start_with(ws, fake, platform, port, extra, &[])
    }

    pub(crate) fn start_with(
        ws: &TestWorkspace,
        fake: &FakeOAuth,
        platform: Platform,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Connecting {
        Connecting::spawn(ws, fake, platform, port, extra, env, false)
    }

    /// [`Connecting::start`] with a terminal (a pseudo-terminal) as psn's stdin, so psn asks
    /// its questions there; [`Connecting::paste`] types on it.
    pub(crate) fn on_terminal(
        ws: &TestWorkspace,
        fake: &FakeOAuth,
        platform: Platform,
        port: u16,
        extra: &[&str],
    ) -> Connecting {
        Connecting::spawn(ws, fake, platform, port, extra, &[], true)
    }

    fn spawn(
        ws: &TestWorkspace,
        fake: &FakeOAuth,
        platform: Platform,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
        on_terminal: bool,
    ) -> Connecting {
        let port = port.to_string();
        let mut args = vec![
            "accounts",
            "connect",
            platform.as_str(),
            "--json",
            "--no-browser",
            "--callback-port",
            port.as_str(),
        ];
        if platform == Platform::Mastodon {
            args.push("--instance");
        }
        let base = fake.base_url();
        if platform == Platform::Mastodon {
            args.push(base.as_str());
        }
        args.extend_from_slice(extra);
        let upper = platform.as_str().to_ascii_uppercase();
        let mut run = ws
            .cmd(&args)
            .env(&format!("PSN_AUTH_BASE_{upper}"), &base)
            .env(&format!("PSN_API_BASE_{upper}"), &base);
        if let Some((id, secret)) = credential_env(platform) {
            run = run.env(id, CLIENT_ID).env(secret, CLIENT_SECRET);
        }
        for (k, v) in env {
            run = run.env(k, v);
        }
        let mut cmd = run.into_command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let terminal = if on_terminal {
            let (master, slave) = crate::support::pty();
            cmd.stdin(Stdio::from(slave));
            Some(master)
        } else {
            cmd.stdin(Stdio::piped());
            None
        };
        let mut child = cmd.spawn().expect("spawn psn");
        // The child holds the terminal's other end now.
        drop(cmd);
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Connecting {
            child,
            lines,
            seen: Vec::new(),
            terminal,
        }
    }

    /// Waits for a stderr line containing `needle` (psn prints it before it waits).
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "psn never printed {needle:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The stderr lines read so far.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }

    /// The authorization URL psn printed.
    pub(crate) fn authorization_url(&mut self) -> String {
        self.wait_for("  http").trim().to_string()
    }

    pub(crate) fn paste(&mut self, text: &str) {
        let stdin: &mut dyn Write = match self.terminal.as_mut() {
            Some(t) => t,
            None => self.child.stdin.as_mut().unwrap(),
        };
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn finish(mut self) -> Out {
        drop(self.child.stdin.take());
        drop(self.terminal.take());
        let out = self.child.wait_with_output().expect("wait for psn");
        let mut stderr = self.seen.join("\n");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            stderr.push('\n');
            stderr.push_str(&line);
        }
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The scripted browser: follows the authorization server's redirect to psn's listener and
/// returns the final status and page.
pub(crate) fn browse(url: &str) -> (u16, String) {
    runtime().block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("browser request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    })
}

/// The browser stops at the authorization server's redirect: returns where it points.
fn redirect_target(url: &str) -> String {
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client.get(url).send().await.expect("authorization request");
        assert_eq!(r.status().as_u16(), 302, "the fake redirects");
        r.headers()["location"].to_str().unwrap().to_string()
    })
}

pub(crate) fn assert_no_token(fake: &FakeOAuth, what: &str, text: &str) {
    for token in fake.issued_tokens() {
        assert!(!text.contains(&token), "a token leaked into {what}");
    }
}

fn assert_no_token_in_file(fake: &FakeOAuth, path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    for ext in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        bytes.extend(std::fs::read(std::path::PathBuf::from(p)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert_no_token(fake, &path.display().to_string(), &text);
}

/// Runs one whole browser connection and returns psn's output.
pub(crate) fn connect(
    ws: &TestWorkspace,
    fake: &FakeOAuth,
    platform: Platform,
    extra: &[&str],
) -> Out {
    let port = free_port();
    let mut run = Connecting::start(ws, fake, platform, port, extra);
    let url = run.authorization_url();
    let (status, page) = browse(&url);
    assert_eq!(status, 200, "the listener answers the browser: {page}");
    assert!(page.contains("Approved"), "{page}");
    run.finish()
}

#[test]
fn x_connects_through_the_browser_with_pkce_and_no_token_is_shown_or_stored_in_clear() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::X, "4242", "alice");
    let out = connect(&ws, &fake, Platform::X, &[]);
    out.ok();
    let account = out.json();
    assert_eq!(account["platform"], "x");
    assert_eq!(account["handle"], "alice");
    assert_eq!(account["external_id"], "4242");
    assert_eq!(account["status"], "active");
    assert!(account["expires_at"].is_string(), "{account}");
    assert_eq!(account["platform_status"]["api_tier"], "free");
    // The token endpoint got the code and the PKCE verifier exactly once.
    let grants: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("authorization_code"))
        .collect();
    assert_eq!(grants.len(), 1);
    assert!(fake.issued_tokens().len() >= 2, "access and refresh tokens");
    assert_no_token(&fake, "stdout", &out.stdout);
    assert_no_token(&fake, "stderr", &out.stderr);
    let list = ws.psn(&["accounts", "list", "--json"]);
    list.ok();
    assert_no_token(&fake, "accounts list --json", &list.stdout);
    let text = ws.psn(&["accounts", "list"]);
    text.ok().stdout_has("alice").stdout_has("api_tier: free");
    assert_no_token(&fake, "accounts list", &text.stdout);
    assert_no_token_in_file(&fake, &ws.path(".psn/personal.db"));
}

#[test]
fn every_oauth_platform_connects_end_to_end() {
    let cases: &[(Platform, &[&str], &str, &str)] = &[
        (Platform::Linkedin, &[], "li-1", "Lin Member"),
        (Platform::Tiktok, &[], "tt-open-1", "tiktoker"),
        (Platform::Youtube, &[], "UC123", "@tuber"),
        (Platform::Pinterest, &[], "pin-1", "pinner"),
        (Platform::Threads, &[], "th-1", "threader"),
        (
            Platform::Facebook,
            &["--page", "page-2"],
            "page-2",
            "Second Page",
        ),
        (Platform::Instagram, &[], "ig-1", "insta"),
        (Platform::Mastodon, &[], "109", "toot"),
    ];
    let ws = TestWorkspace::new();
    for (platform, extra, external_id, handle) in cases {
        let fake =
            FakeOAuth::start_in_thread(*platform, external_id, handle.trim_start_matches('@'));
        if matches!(platform, Platform::Facebook | Platform::Instagram) {
            fake.add_page("page-1", "First Page", None);
            fake.add_page("page-2", "Second Page", Some(("ig-1", "insta")));
        }
        let out = connect(&ws, &fake, *platform, extra);
        out.ok();
        let a = out.json();
        assert_eq!(a["platform"], platform.as_str(), "{a}");
        assert_eq!(a["external_id"], *external_id, "{platform}: {a}");
        assert_eq!(
            a["handle"].as_str().unwrap(),
            handle.trim_start_matches('@'),
            "{platform}: {a}"
        );
        assert_no_token(&fake, "stdout", &out.stdout);
        assert_no_token(&fake, "stderr", &out.stderr);
        match platform {
            Platform::Mastodon => {
                assert_eq!(a["service_url"], fake.base_url());
                let redirects = fake.registered_redirects();
                assert_eq!(redirects.len(), 1, "psn registered its app on the instance");
                assert!(redirects[0].starts_with("http://127.0.0.1:"));
            }
            Platform::Tiktok => {
                assert_eq!(a["platform_status"]["audit"], "unaudited", "{a}");
                assert_eq!(a["platform_status"]["posting"], "private_only");
            }
            Platform::Linkedin => {
                assert_eq!(a["platform_status"]["organization_access"], "not_requested")
            }
            Platform::Facebook | Platform::Instagram => {
                assert!(a["expires_at"].is_null(), "Page tokens do not expire: {a}");
                let exchanges = fake
                    .requests()
                    .iter()
                    .filter(|r| r.grant_type.as_deref() == Some("fb_exchange_token"))
                    .count();
                assert_eq!(exchanges, 1, "the user token was made long-lived");
            }
            Platform::Threads => {
                assert!(a["expires_at"].is_string(), "{a}");
            }
            _ => {}
        }
        assert_no_token_in_file(&fake, &ws.path(".psn/personal.db"));
    }
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), cases.len());
}

#[test]
fn several_pages_without_page_is_refused_with_the_choices() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Facebook, "u1", "someone");
    fake.add_page("page-1", "First Page", None);
    fake.add_page("page-2", "Second Page", None);
    let out = connect(&ws, &fake, Platform::Facebook, &[]);
    out.invalid("--page")
        .stderr_has("page-1 (First Page)")
        .stderr_has("page-2 (Second Page)");
    assert!(
        ws.psn(&["accounts", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_callback_with_another_state_is_refused_and_the_real_one_still_accepted() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::X, "1", "bob");
    let port = free_port();
    let mut run = Connecting::start(&ws, &fake, Platform::X, port, &[]);
    let url = run.authorization_url();
    let forged = format!("http://127.0.0.1:{port}/callback?code=stolen&state=not-the-state");
    let (status, page) = browse(&forged);
    assert_eq!(status, 400);
    assert!(page.contains("does not match"), "{page}");
    let (status, page) = browse(&url);
    assert_eq!(status, 200, "{page}");
    let out = run.finish();
    out.ok();
    assert_eq!(out.json()["handle"], "bob");
}

#[test]
fn the_listener_gives_up_after_its_timeout_and_frees_the_port() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::X, "1", "bob");
    let port = free_port();
    let mut run = Connecting::start_with(
        &ws,
        &fake,
        Platform::X,
        port,
        &[],
        &[("PSN_OAUTH_TIMEOUT_MS", "300")],
    );
    run.authorization_url();
    let out = run.finish();
    out.expect(1).stderr_has("no approval arrived");
    TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    assert!(
        ws.psn(&["accounts", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_taken_port_falls_back_to_pasting_the_redirect_address() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Tiktok, "open-9", "pasted");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut run = Connecting::start(&ws, &fake, Platform::Tiktok, port, &[]);
    run.wait_for("is not available");
    let url = run.authorization_url();
    // The browser lands on the (unreachable) redirect address; the user copies it.
    let landed = redirect_target(&url);
    assert!(landed.starts_with(&format!("http://127.0.0.1:{port}/callback?code=")));
    run.wait_for("Paste the address");
    run.paste(&landed);
    let out = run.finish();
    out.ok();
    assert_eq!(out.json()["handle"], "pasted");
    drop(taken);
}

#[test]
fn a_pasted_address_with_another_state_is_refused() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::X, "1", "bob");
    let mut run = Connecting::start(&ws, &fake, Platform::X, free_port(), &["--paste"]);
    run.authorization_url();
    run.wait_for("Paste the address");
    run.paste("http://127.0.0.1:1/callback?code=abc&state=forged");
    run.finish().invalid("state does not match");
    assert!(
        ws.psn(&["accounts", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn missing_app_credentials_are_named_with_where_to_get_them() {
    let ws = TestWorkspace::new();
    let out = ws.psn(&["accounts", "connect", "linkedin", "--no-browser"]);
    out.invalid("LINKEDIN_CLIENT_ID")
        .stderr_has("https://www.linkedin.com/developers/apps")
        .stderr_has("--token-stdin");
    let doctor = ws.psn(&["doctor", "--json"]).json();
    let checks = doctor.as_array().unwrap();
    let linkedin = checks
        .iter()
        .find(|c| c["check"] == "app linkedin")
        .expect("doctor checks the LinkedIn app credentials");
    assert_eq!(linkedin["status"], "warn");
    assert!(
        linkedin["detail"]
            .as_str()
            .unwrap()
            .contains("LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET")
    );
    // Credentials in config/keys.env are found.
    let keys = ws.read("config/keys.env");
    ws.write(
        "config/keys.env",
        &format!("{keys}\nLINKEDIN_CLIENT_ID=abc\nLINKEDIN_CLIENT_SECRET=def\n"),
    );
    ws.set_mode("config/keys.env", 0o600);
    let doctor = ws.psn(&["doctor", "--json"]).json();
    let linkedin = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "app linkedin")
        .cloned()
        .unwrap();
    assert_eq!(linkedin["status"], "ok", "{linkedin}");
}

#[test]
fn accounts_check_records_health_and_a_refused_token_needs_reauth_with_a_p0_alert() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Linkedin, "li-7", "Checked");
    connect(&ws, &fake, Platform::Linkedin, &[]).ok();
    let base = fake.base_url();
    let check = |args: &[&str]| {
        let mut full = vec!["accounts", "check"];
        full.extend_from_slice(args);
        ws.cmd(&full)
            .env("PSN_AUTH_BASE_LINKEDIN", &base)
            .env("PSN_API_BASE_LINKEDIN", &base)
            .run()
    };
    let out = check(&["--json"]);
    out.ok();
    let results = out.json();
    assert_eq!(results[0]["result"], "ok", "{results}");
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert!(list[0]["last_check_at"].is_string(), "{list}");
    let id = list[0]["id"].as_str().unwrap().to_string();

    for token in fake.issued_tokens() {
        fake.revoke(&token);
    }
    let out = check(&[id.as_str(), "--json"]);
    out.expect(1);
    let results = out.json();
    assert_eq!(results[0]["result"], "refused", "{results}");
    assert_eq!(results[0]["status"], "needs_reauth");
    assert!(
        results[0]["message"]
            .as_str()
            .unwrap()
            .contains("psn accounts connect linkedin")
    );
    assert_no_token(&fake, "accounts check", &out.stdout);
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list[0]["status"], "needs_reauth");
    assert!(list[0]["last_check_error"].is_string(), "{list}");
    let doctor = ws.psn(&["doctor"]);
    assert!(
        doctor.stdout.contains("P0") && doctor.stdout.contains("psn accounts connect linkedin"),
        "{}",
        doctor.stdout
    );
}

#[test]
fn an_unaudited_tiktok_app_is_explained_at_post_time() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Tiktok, "tt", "dancer");
    connect(&ws, &fake, Platform::Tiktok, &[]).ok();
    std::fs::write(
        ws.path("clip.mp4"),
        psn_media::testing::mp4(&psn_media::testing::Mp4Spec {
            width: 720,
            height: 1280,
            ..Default::default()
        }),
    )
    .unwrap();
    let before = ws.counts();
    let out = ws.psn(&[
        "post",
        "A clip",
        "--to",
        "tiktok",
        "--media",
        ws.path("clip.mp4").to_str().unwrap(),
        "--at",
        "+1d",
    ]);
    out.invalid("unaudited")
        .stderr_has("SELF_ONLY")
        .stderr_has("TIKTOK_APP_AUDITED");
    assert_eq!(ws.counts(), before, "nothing was written");
    let list = ws.psn(&["accounts", "list"]);
    list.ok().stdout_has("posting: private_only");
}

#[test]
fn rotate_key_reencrypts_every_token_and_refuses_a_readable_key_file() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    ws.connect_x("1002", "bob");
    let old_keys = ws.read("config/keys.env");
    ws.set_mode("config/keys.env", 0o640);
    ws.psn(&["accounts", "rotate-key"]).invalid("chmod 600");
    assert_eq!(ws.read("config/keys.env"), old_keys);
    ws.set_mode("config/keys.env", 0o600);

    let out = ws.psn(&["accounts", "rotate-key", "--json"]);
    out.ok();
    assert_eq!(out.json()["rotated"][0]["accounts"], 2);
    let new_keys = ws.read("config/keys.env");
    assert_ne!(new_keys, old_keys);
    assert_eq!(ws.mode("config/keys.env"), 0o600);
    assert!(
        new_keys.contains("# X_CLIENT_ID="),
        "the rest of the file is kept"
    );
    assert!(!ws.path("config/keys.env.next").exists());
    let key_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("PSN_ENCRYPTION_KEY="))
            .unwrap()
            .to_string()
    };
    assert!(!out.mentions(&key_line(&new_keys)["PSN_ENCRYPTION_KEY=".len()..]));
    // The new key opens every token; the old one opens none.
    let doctor = ws.psn(&["doctor", "--json"]).json();
    let tokens = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "hub personal tokens")
        .cloned()
        .unwrap();
    assert_eq!(tokens["status"], "ok", "{tokens}");
    let old_key = key_line(&old_keys)["PSN_ENCRYPTION_KEY=".len()..].to_string();
    let stale = ws
        .cmd(["doctor", "--json"])
        .env("PSN_ENCRYPTION_KEY", &old_key)
        .run();
    stale.expect(1);
}

#[test]
fn doctor_flags_an_account_whose_refresh_has_not_succeeded_for_seven_days() {
    let ws = TestWorkspace::new();
    let id = ws.connect_x("1001", "alice");
    ws.psn(&["doctor"]).ok();
    let day = 24 * 3600 * 1000i64;
    let now = chrono::Utc::now().timestamp_millis();
    // Connected 9 days ago with a 2-hour token, never refreshed since.
    execute_sql(
        &ws.personal_url(),
        &format!(
            "UPDATE accounts SET created_at = {}, expires_at = {} WHERE id = '{id}'",
            now - 9 * day,
            now - 9 * day + 7_200_000
        ),
    );
    let out = ws.psn(&["doctor"]);
    out.expect(1)
        .stdout_has("no successful token refresh since")
        .stdout_has("psn accounts connect x");
}

#[test]
fn no_token_in_a_postgresql_dump_or_debug_logs() {
    let ws = TestWorkspace::new();
    let db = crate::support::DbGuard::new();
    ws.write("config/hub.env", &format!("DATABASE_URL={}\n", db.url()));
    ws.set_mode("config/hub.env", 0o600);
    let fake = FakeOAuth::start_in_thread(Platform::Youtube, "UC9", "tuber");
    let port = free_port();
    let mut run = Connecting::start_with(
        &ws,
        &fake,
        Platform::Youtube,
        port,
        &[],
        &[("PSN_LOG", "trace")],
    );
    let url = run.authorization_url();
    assert_eq!(browse(&url).0, 200);
    let out = run.finish();
    out.ok();
    assert_no_token(&fake, "stdout", &out.stdout);
    assert_no_token(&fake, "trace logs", &out.stderr);
    assert!(fake.issued_tokens().len() >= 2);
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", "--dbname", db.url()])
        .output()
        .expect("pg_dump (PostgreSQL client tools) is installed");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("tuber"), "the dump has the account");
    assert_no_token(&fake, "the PostgreSQL dump", &dump);
}

#[test]
fn the_worker_refreshes_a_linkedin_token_with_the_app_credentials_from_keys_env() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Linkedin, "li-3", "Worker Member");
    connect(&ws, &fake, Platform::Linkedin, &[]).ok();
    let id = ws.psn(&["accounts", "list", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // 31 days into a 60-day token.
    let day = 24 * 3600 * 1000i64;
    let now = chrono::Utc::now().timestamp_millis();
    execute_sql(
        &ws.personal_url(),
        &format!(
            "UPDATE accounts SET created_at = {}, expires_at = {} WHERE id = '{id}'",
            now - 31 * day,
            now + 29 * day
        ),
    );
    let keys = ws.read("config/keys.env");
    ws.write(
        "config/keys.env",
        &format!(
            "{keys}\nLINKEDIN_CLIENT_ID={CLIENT_ID}\nLINKEDIN_CLIENT_SECRET={CLIENT_SECRET}\n"
        ),
    );
    ws.set_mode("config/keys.env", 0o600);
    let base = fake.base_url();
    let out = ws
        .cmd(["worker", "--once"])
        .env("PSN_AUTH_BASE_LINKEDIN", &base)
        .env("PSN_API_BASE_LINKEDIN", &base)
        .env("PSN_LOG", "debug")
        .run();
    out.ok();
    assert_eq!(fake.refresh_grants(), 1, "{}", out.stderr);
    assert_no_token(&fake, "worker logs", &out.stderr);
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert!(list[0]["last_refresh_at"].is_string(), "{list}");
    assert_eq!(list[0]["status"], "active");
}

#[test]
fn linkedin_organization_access_is_pending_until_the_scope_is_granted() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Linkedin, "li-org", "Org Admin");
    fake.withhold_scope("w_organization_social");
    let out = connect(&ws, &fake, Platform::Linkedin, &["--organization"]);
    out.ok();
    let a = out.json();
    assert_eq!(
        a["platform_status"]["organization_access"], "pending",
        "{a}"
    );
    assert!(
        a["platform_status"]["explanation"]
            .as_str()
            .unwrap()
            .contains("Community Management API")
    );
    let list = ws.psn(&["accounts", "list"]);
    list.ok()
        .stdout_has("organization_access: pending")
        .stdout_has("Community Management API");
    // Approved: reconnecting records the access (same account).
    let granted = FakeOAuth::start_in_thread(Platform::Linkedin, "li-org", "Org Admin");
    let again = connect(&ws, &granted, Platform::Linkedin, &["--organization"]);
    again.ok();
    assert_eq!(again.json()["id"], a["id"]);
    assert_eq!(
        again.json()["platform_status"]["organization_access"],
        "granted"
    );
}

#[test]
fn without_a_browser_the_listener_also_takes_a_pasted_address() {
    let ws = TestWorkspace::new();
    let fake = FakeOAuth::start_in_thread(Platform::Pinterest, "pin-5", "remote");
    let mut run = Connecting::start(&ws, &fake, Platform::Pinterest, free_port(), &[]);
    let url = run.authorization_url();
    run.wait_for("another machine");
    // Approved on another machine: its browser lands on an address this machine never sees.
    let landed = redirect_target(&url);
    run.paste(&landed);
    let out = run.finish();
    out.ok();
    assert_eq!(out.json()["handle"], "remote");
}
