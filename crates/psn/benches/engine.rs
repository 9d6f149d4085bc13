//! Benchmarks of the publishing engine: `psn worker` processes against a fake X API.
//!
//! Run: `cargo bench -p psn --bench engine [-- b1 b2 b3 b4]` (release profile; all four when
//! none is named). Results are Markdown on stdout; progress goes to stderr.
//!
//! - **b1 throughput**: 10,000 deliveries due now, published by `psn worker` processes against
//!   [`FakeX`] (zero latency), beside the raw commit rate of the same kind of database.
//! - **b2 on time**: 1,000 posts due over 60 s (one every 60 ms), one worker; the dispatch delay
//!   is the time the bench first sees the post in the fake (polling every 10 ms) minus its
//!   `run_at`.
//! - **b3 scale**: 1,000,000 future posts in a SQLite hub: `Hub::claim_next` with nothing due
//!   and with one due, and `psn queue --days 7` as a whole process.
//! - **b4 footprint**: an idle `psn worker` over a hub with 100,000 future posts, for 60 s:
//!   RSS and CPU from `/proc`.
//!
//! PostgreSQL runs need `PSN_TEST_DATABASE_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`); each run uses a throwaway database, dropped
//! at the end. Without it, the PostgreSQL rows are skipped.
//!
//! Environment:
//! - `PSN_BENCH_B1` — B1 configurations, `backend:workers:concurrency` separated by commas
//!   (default `sqlite:1:8,sqlite:1:32,postgres:1:8,postgres:1:32,postgres:4:8,postgres:4:32`)
//! - `PSN_BENCH_B1_POSTS` (default 10000), `PSN_BENCH_B1_ACCOUNTS` (default 100)
//! - `PSN_BENCH_B2_BACKENDS` — `sqlite`, `postgres` or both (default `sqlite,postgres`)
//! - `PSN_BENCH_B3_POSTS` (default 1000000), `PSN_BENCH_B4_POSTS` (default 100000),
//!   `PSN_BENCH_B4_SECS` (default 60)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use psn_domain::{AccountId, DeliveryId, Platform, PostId, PostStatus};
use psn_store::testing::ThrowawayDatabase;
use psn_store::{Hub, NewDelivery, NewPost};
use psn_testkit::FakeX;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

const PSN: &str = env!("CARGO_BIN_EXE_psn");
const ACTOR: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn pg_admin() -> Option<String> {
    std::env::var("PSN_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn id_bytes(&mut self) -> [u8; 8] {
        self.next().to_be_bytes()
    }
}

// ---------------------------------------------------------------------------------------------
// Workspace, accounts, seeding
// ---------------------------------------------------------------------------------------------

/// A temporary workspace whose personal hub is SQLite or a throwaway PostgreSQL database.
struct Ws {
    _dir: tempfile::TempDir,
    root: PathBuf,
    url: String,
    db: Option<ThrowawayDatabase>,
}

impl Ws {
    fn new(rt: &tokio::runtime::Runtime, postgres: bool) -> Ws {
        let dir = tempfile::Builder::new()
            .prefix("psn-engine-bench-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).expect("workspace dir");
        run_ok(psn(&root).args(["init", "--timezone", "UTC"]), "psn init");
        let db = postgres.then(|| rt.block_on(ThrowawayDatabase::create()));
        let url = match &db {
            Some(db) => {
                std::fs::write(
                    root.join("config/hub.env"),
                    format!("DATABASE_URL={}\n", db.url),
                )
                .expect("write config/hub.env");
                db.url.clone()
            }
            None => format!("sqlite://{}", root.join(".psn/personal.db").display()),
        };
        Ws {
            _dir: dir,
            root,
            url,
            db,
        }
    }

    fn backend(&self) -> &'static str {
        if self.db.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    fn drop_db(self, rt: &tokio::runtime::Runtime) {
        if let Some(db) = self.db {
            rt.block_on(db.drop_database());
        }
    }

    /// Connects `n` X accounts with `psn accounts connect x --token-stdin`, each known to `fake`
    /// (when there is one) with its own user and token. Returns the account ids.
    fn connect_accounts(&self, n: usize, fake: Option<&FakeX>) -> Vec<AccountId> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let user_id = format!("{}", 5000 + i);
            let handle = format!("bench{i}");
            let token = format!("AT-bench-{i}-0123456789");
            if let Some(fake) = fake {
                fake.add_account(&user_id, &handle, &token);
            }
            let json = serde_json::json!({
                "access_token": token,
                "refresh_token": format!("RT-bench-{i}-9876543210"),
                "expires_in": 7200,
                "account_id": user_id,
                "handle": handle,
            })
            .to_string();
            let mut cmd = psn(&self.root);
            cmd.args(["accounts", "connect", "x", "--token-stdin", "--json"]);
            let out = run_with_stdin(cmd, &json, "psn accounts connect x");
            let v: serde_json::Value =
                serde_json::from_slice(&out).expect("accounts connect --json output");
            ids.push(
                v["id"]
                    .as_str()
                    .expect("account id")
                    .parse()
                    .expect("account id"),
            );
        }
        ids
    }
}

/// A `psn` command in the workspace, with every `PSN_*` variable of this process removed.
fn psn(root: &Path) -> Command {
    let mut cmd = Command::new(PSN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PSN_") {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(root)
        .env("USER", ACTOR)
        .stdin(Stdio::null());
    cmd
}

fn run_ok(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

fn run_with_stdin(mut cmd: Command, input: &str, what: &str) -> Vec<u8> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

fn new_post(text: String, account: &AccountId, run_at: DateTime<Utc>) -> NewPost {
    NewPost {
        created_by: ACTOR.to_string(),
        idempotency_key: None,
        phase: PostStatus::Scheduled,
        body: text.clone(),
        language: None,
        media: serde_json::json!([]),
        options: serde_json::json!({}),
        run_at: Some(run_at),
        deliveries: vec![NewDelivery {
            account_id: account.clone(),
            platform: Platform::X,
            segments: vec![text],
        }],
    }
}

/// Creates the posts with `Hub::create_post` from 4 concurrent tasks. Returns the seconds taken.
fn create_posts(rt: &tokio::runtime::Runtime, hub: &Hub, posts: Vec<NewPost>) -> f64 {
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let per = posts.len().div_ceil(4).max(1);
        for chunk in posts.chunks(per) {
            let hub = hub.clone();
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                for post in &chunk {
                    hub.create_post(post).await.expect("create_post");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("seeding task");
        }
    });
    started.elapsed().as_secs_f64()
}

/// Inserts `n` future scheduled posts (one X delivery each, accounts in turn) with raw SQL in
/// transactions of 20,000 posts, matching `migrations/sqlite/*.sql` and what `create_post`
/// writes. Posts are spread uniformly from now + 1 h over 365 days.
fn raw_seed_sqlite(rt: &tokio::runtime::Runtime, db_path: &Path, accounts: &[AccountId], n: usize) {
    let started = Instant::now();
    rt.block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(db_path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open the SQLite hub");
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let now = Utc::now().timestamp_millis();
        let first = now + 3_600_000;
        let span: i64 = 365 * 24 * 3_600_000;
        const ROWS: usize = 200;
        const TX: usize = 20_000;
        let mut i = 0;
        while i < n {
            let mut tx = pool.begin().await.expect("begin");
            let tx_end = (i + TX).min(n);
            while i < tx_end {
                let end = (i + ROWS).min(tx_end);
                let mut posts = String::from(
                    "INSERT INTO posts (id, created_by, idempotency_key, phase, status, body, language, \
                     media, options, run_at, created_at, updated_at) VALUES ",
                );
                let mut deliveries = String::from(
                    "INSERT INTO deliveries (id, post_id, account_id, created_by, platform, status, \
                     run_at, segments, created_at, updated_at) VALUES ",
                );
                let mut rows = Vec::new();
                for k in i..end {
                    if k > i {
                        posts.push(',');
                        deliveries.push(',');
                    }
                    posts.push_str("(?, ?, NULL, 'scheduled', 'scheduled', ?, NULL, '[]', '{}', ?, ?, ?)");
                    deliveries.push_str("(?, ?, ?, ?, 'x', 'scheduled', ?, ?, ?, ?)");
                    let run_at = first + (k as i64 * span) / n as i64;
                    let body = format!(
                        "Bench post {k}: shipping the weekly update, with notes and a small demo."
                    );
                    let segments = serde_json::to_string(&vec![body.clone()]).unwrap();
                    rows.push((
                        PostId::from_random(rng.id_bytes()).to_string(),
                        DeliveryId::from_random(rng.id_bytes()).to_string(),
                        accounts[k % accounts.len()].to_string(),
                        body,
                        segments,
                        run_at,
                    ));
                }
                let mut q = sqlx::query(&posts);
                for (pid, _, _, body, _, run_at) in &rows {
                    q = q
                        .bind(pid)
                        .bind(ACTOR)
                        .bind(body)
                        .bind(run_at)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut *tx).await.expect("insert posts");
                let mut q = sqlx::query(&deliveries);
                for (pid, did, account, _, segments, run_at) in &rows {
                    q = q
                        .bind(did)
                        .bind(pid)
                        .bind(account)
                        .bind(ACTOR)
                        .bind(run_at)
                        .bind(segments)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut *tx).await.expect("insert deliveries");
                i = end;
            }
            tx.commit().await.expect("commit");
            if i % 200_000 == 0 {
                eprintln!("  seeded {i}/{n} posts");
            }
        }
        pool.close().await;
    });
    eprintln!(
        "seeded {n} future posts with raw SQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Processes and /proc
// ---------------------------------------------------------------------------------------------

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of stat(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in KiB.
fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn spawn_worker(ws: &Ws, env: &[(&str, String)], log: &Path) -> Child {
    let mut cmd = psn(&ws.root);
    cmd.arg("worker");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = std::fs::File::create(log).expect("worker log");
    cmd.stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn psn worker")
}

/// SIGTERM, then SIGKILL after 15 s.
fn stop(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    for child in children.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn log_counts(logs: &[PathBuf]) -> (usize, usize) {
    let mut warn = 0;
    let mut error = 0;
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        warn += text.lines().filter(|l| l.contains("WARN")).count();
        error += text.lines().filter(|l| l.contains("ERROR")).count();
    }
    (warn, error)
}

/// Deliveries by status, straight from the hub's database.
fn delivery_statuses(rt: &tokio::runtime::Runtime, url: &str) -> Vec<(String, i64)> {
    let sql = "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status";
    rt.block_on(async {
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await.expect("count")
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await.expect("count")
        }
    })
}

/// Committed transactions of the current database (pg_stat_database.xact_commit).
fn pg_xact_commit(rt: &tokio::runtime::Runtime, url: &str) -> i64 {
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut c)
            .await;
        let n: i64 = sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut c)
        .await
        .expect("xact_commit");
        c.close().await.ok();
        n
    })
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

struct Stats {
    min: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

/// Nearest-rank percentiles of `samples` (any unit).
fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = samples.len();
    let rank = |p: usize| samples[((n * p).div_ceil(100)).max(1) - 1];
    Stats {
        min: samples[0],
        p50: rank(50),
        p95: rank(95),
        p99: rank(99),
        max: samples[n - 1],
    }
}

// ---------------------------------------------------------------------------------------------
// B1: throughput
// ---------------------------------------------------------------------------------------------

/// Raw commit rate: `n` single-row INSERT transactions through sqlx, serially on one
/// connection, and from `conns` connections at once. Returns commits/s for both.
fn raw_commit_rate(
    rt: &tokio::runtime::Runtime,
    postgres: bool,
    n: usize,
    conns: usize,
) -> (f64, f64) {
    rt.block_on(async {
        if postgres {
            let db = ThrowawayDatabase::create().await;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(conns as u32)
                .connect(&db.url)
                .await
                .expect("connect");
            sqlx::query(
                "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL, at BIGINT NOT NULL)",
            )
            .execute(&pool)
            .await
            .expect("create table");
            let serial = {
                let started = Instant::now();
                for i in 0..n {
                    let mut tx = pool.begin().await.expect("begin");
                    sqlx::query("INSERT INTO t (v, at) VALUES ($1, $2)")
                        .bind(format!("row {i}"))
                        .bind(i as i64)
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
                n as f64 / started.elapsed().as_secs_f64()
            };
            let parallel = {
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for c in 0..conns {
                    let pool = pool.clone();
                    tasks.spawn(async move {
                        for i in 0..n / conns {
                            let mut tx = pool.begin().await.expect("begin");
                            sqlx::query("INSERT INTO t (v, at) VALUES ($1, $2)")
                                .bind(format!("row {c}/{i}"))
                                .bind(i as i64)
                                .execute(&mut *tx)
                                .await
                                .expect("insert");
                            tx.commit().await.expect("commit");
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                (n / conns * conns) as f64 / started.elapsed().as_secs_f64()
            };
            pool.close().await;
            db.drop_database().await;
            (serial, parallel)
        } else {
            let dir = tempfile::tempdir().expect("temp dir");
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("commit.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(conns as u32)
                .connect_with(options)
                .await
                .expect("open");
            sqlx::query(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, at BIGINT NOT NULL)",
            )
            .execute(&pool)
            .await
            .expect("create table");
            let serial = {
                let started = Instant::now();
                for i in 0..n {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                    sqlx::query("INSERT INTO t (v, at) VALUES ($1, $2)")
                        .bind(format!("row {i}"))
                        .bind(i as i64)
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
                n as f64 / started.elapsed().as_secs_f64()
            };
            let parallel = {
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for c in 0..conns {
                    let pool = pool.clone();
                    tasks.spawn(async move {
                        for i in 0..n / conns {
                            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                            sqlx::query("INSERT INTO t (v, at) VALUES ($1, $2)")
                                .bind(format!("row {c}/{i}"))
                                .bind(i as i64)
                                .execute(&mut *tx)
                                .await
                                .expect("insert");
                            tx.commit().await.expect("commit");
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                (n / conns * conns) as f64 / started.elapsed().as_secs_f64()
            };
            pool.close().await;
            (serial, parallel)
        }
    })
}

struct B1Row {
    backend: &'static str,
    workers: usize,
    concurrency: usize,
    published: usize,
    seconds: f64,
    first_post: f64,
    worker_cpu: f64,
    bench_cpu: f64,
    statuses: String,
    commits_per_delivery: Option<f64>,
    warn: usize,
    error: usize,
}

fn b1_run(
    rt: &tokio::runtime::Runtime,
    postgres: bool,
    workers: usize,
    concurrency: usize,
    n_posts: usize,
    n_accounts: usize,
) -> B1Row {
    let ws = Ws::new(rt, postgres);
    let fake = FakeX::start_in_thread();
    fake.set_post_rate_limit(100_000_000);
    let accounts = ws.connect_accounts(n_accounts, Some(&fake));
    let hub = rt
        .block_on(Hub::open("personal", &ws.url))
        .expect("open the hub");
    let now = Utc::now() - ChronoDuration::seconds(1);
    let posts: Vec<NewPost> = (0..n_posts)
        .map(|i| {
            new_post(
                format!("Throughput post {i}: shipping the weekly update today."),
                &accounts[i % accounts.len()],
                now,
            )
        })
        .collect();
    let seed_secs = create_posts(rt, &hub, posts);
    rt.block_on(hub.close());
    eprintln!(
        "  {}: seeded {n_posts} posts over {n_accounts} accounts in {seed_secs:.1} s",
        ws.backend()
    );
    let xact_before = postgres.then(|| pg_xact_commit(rt, &ws.url));

    let tck = clk_tck();
    let self_before = cpu_ticks("self").unwrap_or(0);
    let logs: Vec<PathBuf> = (0..workers)
        .map(|k| ws.root.join(format!("worker-{k}.log")))
        .collect();
    let started = Instant::now();
    let mut children: Vec<Child> = (0..workers)
        .map(|k| {
            spawn_worker(
                &ws,
                &[
                    ("PSN_API_BASE_X", fake.base_url()),
                    ("PSN_WORKER_PUBLISH_BUDGET", "off".to_string()),
                    ("PSN_WORKER_CONCURRENCY", concurrency.to_string()),
                    ("PSN_WORKER_ID", format!("bench-{k}")),
                ],
                &logs[k],
            )
        })
        .collect();
    let mut first_post = None;
    let deadline = started + Duration::from_secs(600);
    let mut published;
    loop {
        published = fake.posts().len();
        if published > 0 && first_post.is_none() {
            first_post = Some(started.elapsed().as_secs_f64());
        }
        if published >= n_posts || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    let worker_ticks: u64 = children
        .iter()
        .filter_map(|c| cpu_ticks(&c.id().to_string()))
        .sum();
    let self_ticks = cpu_ticks("self").unwrap_or(0) - self_before;
    stop(&mut children);
    let statuses = delivery_statuses(rt, &ws.url)
        .into_iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let commits_per_delivery = xact_before.map(|before| {
        // Statistics are flushed by exiting backends; give them a moment.
        std::thread::sleep(Duration::from_secs(2));
        (pg_xact_commit(rt, &ws.url) - before) as f64 / published.max(1) as f64
    });
    let (warn, error) = log_counts(&logs);
    let backend = ws.backend();
    ws.drop_db(rt);
    B1Row {
        backend,
        workers,
        concurrency,
        published,
        seconds,
        first_post: first_post.unwrap_or(f64::NAN),
        worker_cpu: worker_ticks as f64 / tck,
        bench_cpu: self_ticks as f64 / tck,
        statuses,
        commits_per_delivery,
        warn,
        error,
    }
}

fn b1(rt: &tokio::runtime::Runtime) {
    let n_posts = env_usize("PSN_BENCH_B1_POSTS", 10_000);
    let n_accounts = env_usize("PSN_BENCH_B1_ACCOUNTS", 100);
    let configs = std::env::var("PSN_BENCH_B1").unwrap_or_else(|_| {
        "sqlite:1:8,sqlite:1:32,postgres:1:8,postgres:1:32,postgres:4:8,postgres:4:32".to_string()
    });
    let mut rows = Vec::new();
    let mut commit_rates = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let configs: Vec<(usize, usize)> = configs
            .split(',')
            .filter_map(|c| {
                let parts: Vec<&str> = c.trim().split(':').collect();
                (parts.len() == 3 && parts[0] == backend)
                    .then(|| (parts[1].parse().unwrap(), parts[2].parse().unwrap()))
            })
            .collect();
        if configs.is_empty() {
            continue;
        }
        let postgres = backend == "postgres";
        if postgres && pg_admin().is_none() {
            eprintln!("B1: PSN_TEST_DATABASE_URL is not set; PostgreSQL not measured");
            continue;
        }
        eprintln!("B1 {backend}: raw commit rate");
        let (serial, parallel) = raw_commit_rate(rt, postgres, 5_000, 4);
        commit_rates.push((backend, serial, parallel));
        for (workers, concurrency) in configs {
            eprintln!("B1 {backend}: {workers} worker(s), concurrency {concurrency}");
            let row = b1_run(rt, postgres, workers, concurrency, n_posts, n_accounts);
            eprintln!(
                "  published {} in {:.2} s: {:.0}/s",
                row.published,
                row.seconds,
                row.published as f64 / row.seconds
            );
            rows.push(row);
        }
    }
    println!("## B1 throughput");
    println!();
    println!(
        "{n_posts} posts (one X delivery each) due now, over {n_accounts} accounts, FakeX with no latency."
    );
    println!();
    println!("Raw commit rate (single-row INSERT transactions through sqlx, 5,000 of them):");
    println!();
    println!("| Database | 1 connection, serial (commits/s) | 4 connections at once (commits/s) |");
    println!("|---|---:|---:|");
    for (backend, serial, parallel) in &commit_rates {
        println!("| {backend} | {serial:.0} | {parallel:.0} |");
    }
    println!();
    println!(
        "| Database | workers | concurrency | published | wall (s) | deliveries/s | first post after (s) | worker CPU (s) | bench+fake CPU (s) | commits/delivery | deliveries at the end | WARN/ERROR log lines |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | **{:.0}** | {:.2} | {:.1} | {:.1} | {} | {} | {}/{} |",
            r.backend,
            r.workers,
            r.concurrency,
            r.published,
            r.seconds,
            r.published as f64 / r.seconds,
            r.first_post,
            r.worker_cpu,
            r.bench_cpu,
            r.commits_per_delivery
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "—".to_string()),
            r.statuses,
            r.warn,
            r.error
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// B2: on time
// ---------------------------------------------------------------------------------------------

fn b2_run(rt: &tokio::runtime::Runtime, postgres: bool) {
    let n = 1_000;
    let spacing_ms = 60;
    let ws = Ws::new(rt, postgres);
    let fake = FakeX::start_in_thread();
    fake.set_post_rate_limit(100_000_000);
    let accounts = ws.connect_accounts(10, Some(&fake));
    let hub = rt
        .block_on(Hub::open("personal", &ws.url))
        .expect("open the hub");
    let start = Utc::now() + ChronoDuration::seconds(10);
    let run_ats: Vec<DateTime<Utc>> = (0..n)
        .map(|i| start + ChronoDuration::milliseconds(i as i64 * spacing_ms))
        .collect();
    let posts: Vec<NewPost> = (0..n)
        .map(|i| {
            new_post(
                format!("On-time post {i}: shipping the weekly update today."),
                &accounts[i % accounts.len()],
                run_ats[i],
            )
        })
        .collect();
    let seed_secs = create_posts(rt, &hub, posts);
    rt.block_on(hub.close());
    let lead = (start - Utc::now()).num_milliseconds();
    eprintln!(
        "B2 {}: seeded {n} posts in {seed_secs:.1} s; first due in {lead} ms",
        ws.backend()
    );
    assert!(lead > 1000, "seeding took too long for the schedule");
    let log = ws.root.join("worker.log");
    let mut children = vec![spawn_worker(
        &ws,
        &[
            ("PSN_API_BASE_X", fake.base_url()),
            ("PSN_WORKER_PUBLISH_BUDGET", "off".to_string()),
        ],
        &log,
    )];
    let mut delays: Vec<f64> = Vec::with_capacity(n);
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10 + 60 + 60);
    while seen < n && Instant::now() < deadline {
        let posts = fake.posts();
        let observed = Utc::now();
        for p in &posts[seen..] {
            let i: usize = p
                .text
                .strip_prefix("On-time post ")
                .and_then(|t| t.split(':').next())
                .and_then(|t| t.parse().ok())
                .expect("post index");
            delays.push((observed - run_ats[i]).num_microseconds().unwrap() as f64 / 1000.0);
        }
        seen = posts.len();
        std::thread::sleep(Duration::from_millis(10));
    }
    stop(&mut children);
    let (warn, error) = log_counts(&[log]);
    let backend = ws.backend();
    ws.drop_db(rt);
    println!("### B2 on time — {backend}");
    println!();
    if delays.is_empty() {
        println!("No post was published: not measured.");
        println!();
        return;
    }
    let early = delays.iter().filter(|d| **d < 0.0).count();
    let s = stats(delays);
    println!(
        "{seen}/{n} posts seen; one every {spacing_ms} ms; dispatch delay = time the bench saw the post in FakeX (polling every 10 ms) − run_at. Worker log: {warn} WARN, {error} ERROR lines. Posts seen before their run_at: {early}."
    );
    println!();
    println!("| min (ms) | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | aim p99 | met |");
    println!("|---:|---:|---:|---:|---:|---:|:---:|");
    println!(
        "| {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | < 1000 ms | {} |",
        s.min,
        s.p50,
        s.p95,
        s.p99,
        s.max,
        if seen == n && s.p99 < 1000.0 {
            "yes"
        } else {
            "**no**"
        }
    );
    println!();
}

fn b2(rt: &tokio::runtime::Runtime) {
    let backends =
        std::env::var("PSN_BENCH_B2_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_string());
    println!("## B2 on time");
    println!();
    for b in backends.split(',').map(str::trim) {
        match b {
            "sqlite" => b2_run(rt, false),
            "postgres" if pg_admin().is_some() => b2_run(rt, true),
            "postgres" => {
                println!("PostgreSQL: PSN_TEST_DATABASE_URL not set; not measured.");
                println!();
            }
            other => panic!("unknown backend {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// B3: scale
// ---------------------------------------------------------------------------------------------

fn time_ms<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> (f64, F::Output) {
    let started = Instant::now();
    let out = rt.block_on(f);
    (started.elapsed().as_secs_f64() * 1000.0, out)
}

fn row(label: &str, samples: Vec<f64>, aim: Option<f64>) {
    let s = stats(samples);
    let (aim, met) = match aim {
        Some(a) => (
            format!("< {a:.0} ms"),
            if s.p95 < a { "yes" } else { "**no**" },
        ),
        None => ("—".to_string(), "—"),
    };
    println!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {aim} | {met} |",
        s.min, s.p50, s.p95, s.max
    );
}

fn b3(rt: &tokio::runtime::Runtime) {
    let n = env_usize("PSN_BENCH_B3_POSTS", 1_000_000);
    let runs = 100;
    let ws = Ws::new(rt, false);
    let accounts = ws.connect_accounts(10, None);
    eprintln!("B3: seeding {n} posts");
    raw_seed_sqlite(rt, &ws.root.join(".psn/personal.db"), &accounts, n);
    let db_size = std::fs::metadata(ws.root.join(".psn/personal.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let hub = rt
        .block_on(Hub::open("personal", &ws.url))
        .expect("open the hub");
    let platforms = [Platform::X];
    let lease = Duration::from_secs(30);

    let mut none_due = Vec::new();
    let mut next_due = Vec::new();
    let mut recover = Vec::new();
    for i in 0..runs + 5 {
        let (t, r) = time_ms(rt, hub.claim_next("bench", &platforms, Utc::now(), lease));
        assert!(r.expect("claim_next").is_none(), "nothing should be due");
        let (t2, r2) = time_ms(rt, hub.next_due_at(&platforms));
        r2.expect("next_due_at");
        let (t3, r3) = time_ms(rt, hub.recover_expired_leases(Utc::now()));
        r3.expect("recover_expired_leases");
        if i >= 5 {
            none_due.push(t);
            next_due.push(t2);
            recover.push(t3);
        }
    }

    // One due delivery: claimed, then put back (untimed) before the next run.
    let post = new_post(
        "Due now: the one post to claim.".to_string(),
        &accounts[0],
        Utc::now() - ChronoDuration::seconds(1),
    );
    let created = rt.block_on(hub.create_post(&post)).expect("create_post");
    let delivery_id = created.post().deliveries[0].id.to_string();
    let mut one_due = Vec::new();
    let mut reset = rt
        .block_on(sqlx::SqliteConnection::connect(&ws.url))
        .expect("connect");
    for i in 0..runs + 5 {
        let (t, r) = time_ms(rt, hub.claim_next("bench", &platforms, Utc::now(), lease));
        assert!(r.expect("claim_next").is_some(), "the due delivery");
        rt.block_on(
            sqlx::query(
                "UPDATE deliveries SET status = 'scheduled', lease_owner = NULL, \
                 lease_expires_at = NULL WHERE id = $1",
            )
            .bind(&delivery_id)
            .execute(&mut reset),
        )
        .expect("put back");
        if i >= 5 {
            one_due.push(t);
        }
    }
    rt.block_on(hub.close());

    // `psn queue --days 7`, whole process.
    let mut queue = Vec::new();
    let mut queue_bytes = 0;
    let mut queue_default = Vec::new();
    for i in 0..23 {
        for (args, samples) in [
            (&["queue", "--days", "7"][..], &mut queue),
            (&["queue"][..], &mut queue_default),
        ] {
            let mut cmd = psn(&ws.root);
            cmd.args(args);
            let started = Instant::now();
            let out = run_ok(&mut cmd, "psn queue");
            let t = started.elapsed().as_secs_f64() * 1000.0;
            if args.len() == 3 {
                queue_bytes = out.len();
            }
            if i >= 3 {
                samples.push(t);
            }
        }
    }

    println!("## B3 scale");
    println!();
    println!(
        "SQLite hub with {n} future scheduled posts (one X delivery each, 10 accounts, spread over 365 days from now + 1 h); database file {} MiB. `Hub` calls are timed in-process ({runs} runs after 5 warm-up runs); `psn queue` as a whole process (20 runs after 3 warm-up runs; `--days 7` prints {} KiB).",
        db_size / (1024 * 1024),
        queue_bytes / 1024
    );
    println!();
    println!("| Operation | min (ms) | median (ms) | p95 (ms) | max (ms) | aim | met (p95) |");
    println!("|---|---:|---:|---:|---:|---:|:---:|");
    row("`Hub::claim_next`, nothing due", none_due, Some(5.0));
    row("`Hub::claim_next`, one due (claimed)", one_due, Some(5.0));
    row("`Hub::next_due_at`", next_due, None);
    row("`Hub::recover_expired_leases`", recover, None);
    row("`psn queue --days 7` (process)", queue, Some(50.0));
    row("`psn queue` (process)", queue_default, None);
    println!();
}

// ---------------------------------------------------------------------------------------------
// B4: footprint
// ---------------------------------------------------------------------------------------------

fn b4(rt: &tokio::runtime::Runtime) {
    let n = env_usize("PSN_BENCH_B4_POSTS", 100_000);
    let secs = env_usize("PSN_BENCH_B4_SECS", 60) as u64;
    let ws = Ws::new(rt, false);
    let fake = FakeX::start_in_thread();
    let accounts = ws.connect_accounts(10, Some(&fake));
    eprintln!("B4: seeding {n} posts");
    raw_seed_sqlite(rt, &ws.root.join(".psn/personal.db"), &accounts, n);
    let log = ws.root.join("worker.log");
    let mut children = vec![spawn_worker(
        &ws,
        &[("PSN_API_BASE_X", fake.base_url())],
        &log,
    )];
    let pid = children[0].id().to_string();
    std::thread::sleep(Duration::from_secs(5));
    let tck = clk_tck();
    let before = cpu_ticks(&pid).expect("worker running");
    let started = Instant::now();
    let mut rss_max = 0;
    let mut rss_samples = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(rss) = status_kib(&pid, "VmRSS:") {
            rss_max = rss_max.max(rss);
            rss_samples.push(rss);
        }
    }
    let after = cpu_ticks(&pid).expect("worker running");
    let interval = started.elapsed().as_secs_f64();
    let rss_end = status_kib(&pid, "VmRSS:").unwrap_or(0);
    let hwm = status_kib(&pid, "VmHWM:").unwrap_or(0);
    let threads = status_kib(&pid, "Threads:").unwrap_or(0);
    stop(&mut children);
    let cpu_s = (after - before) as f64 / tck;
    let cpu_pct = cpu_s / interval * 100.0;
    println!("## B4 footprint");
    println!();
    println!(
        "One idle `psn worker` (default settings: poll 500 ms) over a SQLite hub with {n} future posts (nothing due), measured for {interval:.0} s after 5 s of start-up. CPU = utime+stime from /proc/PID/stat over the interval; RSS from /proc/PID/status, sampled every second."
    );
    println!();
    println!("| Metric | Value | Aim | Met |");
    println!("|---|---:|---:|:---:|");
    println!(
        "| VmRSS at the end | {:.1} MiB | < 30 MB | {} |",
        rss_end as f64 / 1024.0,
        if (rss_max as f64) * 1024.0 < 30e6 {
            "yes"
        } else {
            "**no**"
        }
    );
    println!(
        "| VmRSS max over the interval | {:.1} MiB | — | — |",
        rss_max as f64 / 1024.0
    );
    println!(
        "| VmHWM (peak since start) | {:.1} MiB | — | — |",
        hwm as f64 / 1024.0
    );
    println!(
        "| CPU over the interval | {cpu_pct:.2} % ({cpu_s:.2} s in {interval:.0} s) | < 1 % | {} |",
        if cpu_pct < 1.0 { "yes" } else { "**no**" }
    );
    println!("| Threads | {threads} | — | — |");
    println!();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if which.is_empty() {
        which = ["b1", "b2", "b3", "b4"].map(String::from).to_vec();
    }
    for w in &which {
        let started = Instant::now();
        match w.as_str() {
            "b1" => b1(&rt),
            "b2" => b2(&rt),
            "b3" => b3(&rt),
            "b4" => b4(&rt),
            other => panic!("unknown benchmark {other} (b1, b2, b3, b4)"),
        }
        eprintln!("{w} took {:.0} s", started.elapsed().as_secs_f64());
        let _ = std::io::stdout().flush();
    }
}
