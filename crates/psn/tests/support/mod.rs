//! Shared helpers for the CLI integration tests: a throwaway workspace, a way to run the real
//! `psn` binary against it, JSON parsing and the hub's row counts (to prove that a refused
//! command wrote nothing).

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{Datelike, NaiveDate, Weekday};
use psn_store::Hub;
use psn_store::testing::ThrowawayDatabase;
use serde_json::Value;
use tempfile::TempDir;

/// The result of one `psn` run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code, showing everything the command said when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect(0)
    }

    /// Asserts exit 2 and that stderr names `needle`.
    #[track_caller]
    pub fn invalid(&self, needle: &str) -> &Self {
        self.expect(2);
        self.stderr_has(needle)
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Whether stdout or stderr mentions `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `psn` invocation being built.
#[derive(Debug)]
pub struct Run {
    cmd: Command,
    stdin: Option<String>,
}

impl Run {
    /// The binary with every `PSN_*` variable removed from its environment.
    pub fn bare() -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psn"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PSN_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("USER", "tester");
        Run { cmd, stdin: None }
    }

    pub fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(key, value);
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: &str) -> Run {
        self.stdin = Some(input.to_string());
        self
    }

    /// The command itself, for tests that drive the process (stdin, stderr) as it runs.
    pub fn into_command(self) -> Command {
        self.cmd
    }

    pub fn run(mut self) -> Out {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = self.cmd.spawn().expect("spawn psn");
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            // The command may exit before reading (e.g. a refused platform): ignore EPIPE.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for psn");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Row counts of every hub table.
pub type Counts = Vec<(&'static str, i64)>;

/// A workspace created with `psn init` in a temporary folder.
#[derive(Debug)]
pub struct TestWorkspace {
    _dir: TempDir,
    pub root: PathBuf,
}

impl TestWorkspace {
    /// A workspace in UTC.
    pub fn new() -> TestWorkspace {
        TestWorkspace::with_tz("UTC")
    }

    /// A workspace in the IANA time zone `tz`.
    pub fn with_tz(tz: &str) -> TestWorkspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ws");
        Run::bare()
            .args([
                "init".as_ref(),
                root.as_os_str(),
                "--timezone".as_ref(),
                tz.as_ref(),
            ])
            .run()
            .ok();
        let root = root.canonicalize().expect("workspace exists");
        TestWorkspace { _dir: dir, root }
    }

    /// `psn --workspace ROOT …`, ready for more options.
    pub fn cmd<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Run::bare()
            .args(["--workspace".as_ref(), self.root.as_os_str()])
            .args(args)
    }

    /// Runs `psn --workspace ROOT ARGS…`.
    pub fn psn(&self, args: &[&str]) -> Out {
        self.cmd(args).run()
    }

    /// Runs `psn --workspace ROOT ARGS…` with `input` on stdin.
    pub fn psn_stdin(&self, args: &[&str], input: &str) -> Out {
        self.cmd(args).stdin(input).run()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, body: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, body).unwrap();
    }

    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    pub fn set_mode(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The personal hub's URL, as psn computes it.
    pub fn personal_url(&self) -> String {
        let hub_env = self.path("config/hub.env");
        if hub_env.is_file() {
            for line in std::fs::read_to_string(hub_env).unwrap().lines() {
                if let Some(url) = line.trim().strip_prefix("DATABASE_URL=") {
                    return url.trim().to_string();
                }
            }
        }
        format!("sqlite://{}", self.root.join(".psn/personal.db").display())
    }

    /// Row counts of every table of the personal hub.
    pub fn counts(&self) -> Counts {
        counts_of(&self.personal_url())
    }

    /// Connects an X account headlessly; returns its id.
    pub fn connect_x(&self, account_id: &str, handle: &str) -> String {
        self.connect("x", account_id, handle, &[])
    }

    /// Connects an account of `platform` with `--token-stdin`; returns its id.
    pub fn connect(
        &self,
        platform: &str,
        account_id: &str,
        handle: &str,
        extra: &[&str],
    ) -> String {
        let token = token_json(account_id, handle);
        let mut args = vec!["accounts", "connect", platform, "--token-stdin", "--json"];
        args.extend_from_slice(extra);
        let out = self.psn_stdin(&args, &token);
        out.ok();
        out.json()["id"].as_str().expect("account id").to_string()
    }

    /// Connects one X and one Bluesky account.
    pub fn connect_x_and_bluesky(&self) -> (String, String) {
        let x = self.connect_x("1001", "alice");
        let bsky = self.connect("bluesky", "did:plc:alice", "alice.bsky.social", &[]);
        (x, bsky)
    }

    /// Creates a post with `psn post … --json` and returns its JSON.
    #[track_caller]
    pub fn post(&self, args: &[&str]) -> Value {
        let mut all = vec!["post"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.psn(&all);
        out.ok();
        out.json()
    }

    /// Asserts that running `args` is refused with exit 2 naming `needle`, and that nothing
    /// in the personal hub changed.
    #[track_caller]
    pub fn refused(&self, args: &[&str], needle: &str) -> Out {
        let before = self.counts();
        let out = self.psn(args);
        out.invalid(needle);
        assert_eq!(
            self.counts(),
            before,
            "a refused command changed the hub: {args:?}"
        );
        out
    }
}

/// The token JSON of the headless connect contract, with recognisable secrets.
pub fn token_json(account_id: &str, handle: &str) -> String {
    serde_json::json!({
        "access_token": access_token(handle),
        "refresh_token": refresh_token(handle),
        "expires_in": 7200,
        "account_id": account_id,
        "handle": handle,
    })
    .to_string()
}

pub fn access_token(handle: &str) -> String {
    format!("AT-secret-{handle}-0123456789")
}

pub fn refresh_token(handle: &str) -> String {
    format!("RT-secret-{handle}-9876543210")
}

/// Runs a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Row counts of every table of the hub at `url`.
pub fn counts_of(url: &str) -> Counts {
    block_on(async {
        let hub = Hub::open("test", url).await.expect("open hub");
        let counts = hub.table_counts().await.expect("table counts");
        hub.close().await;
        counts
    })
}

/// Runs one SQL statement against the hub at `url` (to put a post in a state the CLI cannot
/// reach without a worker).
pub fn execute_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    block_on(async {
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("connect sqlite");
            sqlx::query(sql).execute(&mut conn).await.expect("execute");
            conn.close().await.ok();
        } else {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("connect postgres");
            sqlx::query(sql).execute(&mut conn).await.expect("execute");
            conn.close().await.ok();
        }
    })
}

/// A throwaway PostgreSQL database (needs PSN_TEST_DATABASE_URL).
pub fn throwaway_db() -> ThrowawayDatabase {
    block_on(ThrowawayDatabase::create())
}

pub fn drop_db(db: ThrowawayDatabase) {
    block_on(db.drop_database())
}

/// Drops the database when the test ends, even when it panics.
#[derive(Debug)]
pub struct DbGuard(Option<ThrowawayDatabase>);

impl DbGuard {
    pub fn new() -> DbGuard {
        DbGuard(Some(throwaway_db()))
    }

    pub fn url(&self) -> &str {
        &self.0.as_ref().expect("db").url
    }

    pub fn name(&self) -> &str {
        &self.0.as_ref().expect("db").name
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            drop_db(db);
        }
    }
}

/// A date next year (always in the future and within psn's two-year horizon).
pub fn next_year() -> i32 {
    chrono::Utc::now().year() + 1
}

/// The second Sunday of March next year: the day US clocks jump from 02:00 to 03:00.
pub fn us_dst_start_next_year() -> NaiveDate {
    let year = next_year();
    let mut day = NaiveDate::from_ymd_opt(year, 3, 1).unwrap();
    let mut sundays = 0;
    loop {
        if day.weekday() == Weekday::Sun {
            sundays += 1;
            if sundays == 2 {
                return day;
            }
        }
        day = day.succ_opt().unwrap();
    }
}

/// The `pg_dump` binary: on PATH or in a PostgreSQL installation.
pub fn pg_dump() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("pg_dump");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pg_dump"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Statuses of an array of posts, by id.
pub fn ids(posts: &Value) -> Vec<String> {
    posts
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

/// A pseudo-terminal: (the side a test types on, the side a child reads as its terminal).
pub fn pty() -> (std::fs::File, std::fs::File) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("open a pseudo-terminal");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("a UTF-8 terminal path"))
        .expect("open the terminal");
    (std::fs::File::from(master), slave)
}
