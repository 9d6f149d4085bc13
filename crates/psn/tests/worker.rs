//! `psn worker` and `psn up` as real child processes against a stateful fake X over HTTP:
//! killed with SIGKILL at random moments and restarted, four at once on one PostgreSQL hub,
//! `--once`, SIGTERM, and the HTTP endpoints of `psn up`.
//!
//! PostgreSQL tests need `PSN_TEST_DATABASE_URL` (an admin URL). The heavy tests take a lock so
//! that they do not compete with each other for the CPU.

#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use psn_domain::{AccountId, DeliveryStatus, Platform, PostStatus};
use psn_store::{Hub, NewDelivery, NewPost, Post, PostFilter};
use psn_testkit::{FakePost, FakeX, Fault, FaultKind};
use support::{DbGuard, TestWorkspace, access_token, refresh_token};

/// One heavy test at a time: they measure nothing, but share two cores.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bound for waits that only fails when something is really stuck.
const PATIENCE: Duration = Duration::from_secs(180);

/// A tiny seeded generator (xorshift64*), so the kill schedule is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// An X account connected with `psn accounts connect x --token-stdin` and known to the fake.
#[derive(Debug, Clone)]
struct XAccount {
    id: AccountId,
    user_id: String,
}

/// A workspace whose personal hub is SQLite or a throwaway PostgreSQL database, a fake X,
/// and a runtime with the hub open (to create posts fast and to read statuses).
struct Setup {
    ws: TestWorkspace,
    fake: FakeX,
    rt: tokio::runtime::Runtime,
    hub: Hub,
    accounts: Vec<XAccount>,
    logs: PathBuf,
    spawned: usize,
    // Dropped last: the database outlives the hub's connections.
    _db: Option<DbGuard>,
}

impl Setup {
    fn new(postgres: bool, accounts: usize) -> Setup {
        let ws = TestWorkspace::new();
        let db = postgres.then(DbGuard::new);
        if let Some(db) = &db {
            ws.write("config/hub.env", &format!("DATABASE_URL={}\n", db.url()));
        }
        let fake = FakeX::start_in_thread();
        fake.set_post_rate_limit(1_000_000);
        let mut connected = Vec::new();
        for i in 0..accounts {
            let user_id = format!("{}", 3000 + i);
            let handle = format!("acct{i}");
            fake.add_account(&user_id, &handle, &access_token(&handle));
            fake.add_refresh_token(&user_id, &refresh_token(&handle));
            let id = ws.connect_x(&user_id, &handle);
            connected.push(XAccount {
                id: id.parse().expect("account id"),
                user_id,
            });
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let url = ws.personal_url();
        let hub = rt
            .block_on(Hub::open("personal", &url))
            .expect("open the hub");
        let logs = ws.path("test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        Setup {
            ws,
            fake,
            rt,
            hub,
            accounts: connected,
            logs,
            spawned: 0,
            _db: db,
        }
    }

    /// Creates posts due now: `(segments, account index)` each. Returns how many segments.
    fn create_posts(&self, posts: Vec<(Vec<String>, usize)>) -> usize {
        let segments = posts.iter().map(|(s, _)| s.len()).sum();
        let news: Vec<NewPost> = posts
            .into_iter()
            .map(|(segments, account)| new_post(segments, &self.accounts[account].id, Utc::now()))
            .collect();
        self.rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in news.chunks(news.len().div_ceil(4).max(1)) {
                let hub = self.hub.clone();
                let chunk = chunk.to_vec();
                tasks.spawn(async move {
                    for post in &chunk {
                        hub.create_post(post).await.expect("create post");
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("creating posts");
            }
        });
        segments
    }

    fn posts(&self) -> Vec<Post> {
        self.rt
            .block_on(self.hub.posts(&PostFilter::default()))
            .expect("list posts")
    }

    fn deliveries_in(&self, status: DeliveryStatus) -> usize {
        self.posts()
            .iter()
            .flat_map(|p| &p.deliveries)
            .filter(|d| d.status == status)
            .count()
    }

    fn all_published(&self) -> bool {
        self.posts()
            .iter()
            .flat_map(|p| &p.deliveries)
            .all(|d| d.status == DeliveryStatus::Published)
    }

    /// Whether every delivery reached an end: published, or failed / needs attention (which
    /// the exactly-once check then reports) — so that a broken run fails fast, not by timeout.
    fn settled(&self) -> bool {
        self.posts().iter().flat_map(|p| &p.deliveries).all(|d| {
            matches!(
                d.status,
                DeliveryStatus::Published
                    | DeliveryStatus::Failed
                    | DeliveryStatus::NeedsAttention
                    | DeliveryStatus::Cancelled
            )
        })
    }

    /// `psn --workspace ROOT ARGS…` as a child with fast worker timings, stderr to a log file.
    fn spawn(&mut self, args: &[&str], env: &[(&str, String)]) -> Worker {
        self.spawned += 1;
        let log = self.logs.join(format!("run-{}.log", self.spawned));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psn"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PSN_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("USER", "tester")
            .env("PSN_API_BASE_X", self.fake.base_url())
            .env("PSN_WORKER_LEASE_MS", "1500")
            .env("PSN_WORKER_POLL_MS", "50")
            .env("PSN_WORKER_RETRY_BASE_MS", "50")
            .env("PSN_WORKER_RETRY_CAP_MS", "500")
            .env("PSN_WORKER_RECONCILE_DELAY_MS", "100")
            .env("PSN_WORKER_BREAKER_OPEN_MS", "300")
            .env("PSN_HTTP_TIMEOUT_MS", "10000")
            .env("PSN_WORKER_PUBLISH_BUDGET", "off")
            .env("PSN_WORKER_ID", format!("worker-{}", self.spawned));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("--workspace")
            .arg(&self.ws.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        Worker {
            child: cmd.spawn().expect("spawn psn"),
            log,
        }
    }

    fn worker(&mut self) -> Worker {
        self.spawn(&["worker"], &[])
    }

    /// Every delivery published and X holding each segment once, threads chained.
    #[track_caller]
    fn assert_published_exactly_once(&self) {
        let accounts: HashMap<AccountId, String> = self
            .accounts
            .iter()
            .map(|a| (a.id.clone(), a.user_id.clone()))
            .collect();
        assert_exactly_once(&self.posts(), &accounts, &self.fake.posts());
    }

    /// Attempt statuses (`succeeded`, `reconciled`, `not_found`, …) and how often, and how
    /// many distinct workers made attempts.
    fn attempt_stats(&self) -> (HashMap<String, usize>, usize) {
        let mut statuses = HashMap::new();
        let mut workers = HashSet::new();
        self.rt.block_on(async {
            for post in self.hub.posts(&PostFilter::default()).await.unwrap() {
                let post = self.hub.post_with_attempts(&post.id).await.unwrap();
                for d in post.deliveries {
                    for a in d.attempts {
                        *statuses.entry(a.status).or_insert(0) += 1;
                        workers.extend(a.worker);
                    }
                }
            }
        });
        (statuses, workers.len())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.rt.block_on(self.hub.close());
    }
}

fn new_post(segments: Vec<String>, account: &AccountId, run_at: chrono::DateTime<Utc>) -> NewPost {
    NewPost {
        created_by: "tester".to_string(),
        idempotency_key: None,
        phase: PostStatus::Scheduled,
        body: segments.join("\n\n"),
        language: Some("en".parse().expect("language")),
        media: serde_json::json!([]),
        options: serde_json::json!({"thread": segments.len() > 1}),
        run_at: Some(run_at),
        deliveries: vec![NewDelivery {
            account_id: account.clone(),
            platform: Platform::X,
            segments,
        }],
    }
}

/// Unique texts for post `n`: one segment, or a thread of `count`.
fn texts(n: usize, count: usize) -> Vec<String> {
    if count == 1 {
        vec![format!("Single post {n}: published exactly once.")]
    } else {
        (1..=count)
            .map(|i| format!("Thread {n}, part {i}/{count}: still in order."))
            .collect()
    }
}

/// A running `psn` child.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGKILL, and reap it.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful stop).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for it to exit.
    #[track_caller]
    fn wait(mut self, within: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, self.log_text());
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "psn did not exit within {within:?}\n--- log\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after `timeout`.
#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every delivery and post published; X holds each segment exactly once (by author and
/// text), segment i+1 replying to segment i, the delivery's external id that of segment 0;
/// and X holds nothing else.
#[track_caller]
fn assert_exactly_once(posts: &[Post], users: &HashMap<AccountId, String>, fake: &[FakePost]) {
    let mut by_text: HashMap<(&str, &str), Vec<&FakePost>> = HashMap::new();
    for p in fake {
        by_text
            .entry((p.author_id.as_str(), p.text.as_str()))
            .or_default()
            .push(p);
    }
    let mut expected = 0;
    let mut problems = Vec::new();
    for post in posts {
        if post.status != PostStatus::Published {
            problems.push(format!("post {} is {}", post.id, post.status));
        }
        for d in &post.deliveries {
            if d.status != DeliveryStatus::Published {
                problems.push(format!(
                    "delivery {} is {}: {:?}",
                    d.id, d.status, d.last_error
                ));
            }
            let user = users[&d.account].as_str();
            let mut previous: Option<&FakePost> = None;
            for (i, text) in d.segments.iter().enumerate() {
                expected += 1;
                let found = by_text
                    .get(&(user, text.as_str()))
                    .cloned()
                    .unwrap_or_default();
                if found.len() != 1 {
                    problems.push(format!("{text:?} is on X {} times", found.len()));
                    previous = found.first().copied();
                    continue;
                }
                let on_x = found[0];
                if on_x.reply_to.as_deref() != previous.map(|p| p.id.as_str()) {
                    problems.push(format!(
                        "{text:?} replies to {:?}, not to segment {i} before it",
                        on_x.reply_to
                    ));
                }
                if i == 0 && d.external_id.as_deref() != Some(on_x.id.as_str()) {
                    problems.push(format!(
                        "delivery {} has external id {:?}, X has {}",
                        d.id, d.external_id, on_x.id
                    ));
                }
                previous = Some(on_x);
            }
        }
    }
    if fake.len() != expected {
        problems.push(format!(
            "X has {} posts, psn asked for {expected}",
            fake.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Crash test

/// 200 posts (40 five-segment threads, 160 singles) on two accounts; `psn worker` is killed
/// with SIGKILL ten times at seeded moments — 50–400 ms after it starts, or after a few more
/// posts appear on X — and restarted; a final run publishes the rest. Every segment is on X
/// exactly once, threads chained. Half of the creates meet a fault: slow (so that kills land
/// while a request is in flight; the fake completes a write whose client died), 503, a
/// connection closed before the write, or one closed after it.
fn crash_test(postgres: bool, seed: u64) {
    let _heavy = heavy();
    let started = Instant::now();
    let mut s = Setup::new(postgres, 2);
    let posts: Vec<(Vec<String>, usize)> = (0..200)
        .map(|n| (texts(n, if n % 5 == 0 { 5 } else { 1 }), n % 2))
        .collect();
    let total = s.create_posts(posts);
    assert_eq!(total, 40 * 5 + 160);
    s.fake.set_random_faults_on(
        Some("/2/tweets"),
        0.5,
        vec![
            FaultKind::Slow { ms: 40 },
            FaultKind::Slow { ms: 120 },
            FaultKind::Slow { ms: 40 },
            FaultKind::ServerError,
            FaultKind::TimeoutBeforeWrite { ms: 80 },
            FaultKind::DropAfterWrite,
        ],
        seed,
    );
    let mut rng = Rng(seed | 1);
    let mut kills = Vec::new();
    for _round in 0..10 {
        let before = s.fake.posts().len();
        let mut worker = s.worker();
        if rng.next().is_multiple_of(2) {
            let ms = rng.between(50, 400);
            std::thread::sleep(Duration::from_millis(ms));
            kills.push(format!("{ms}ms"));
        } else {
            let more = rng.between(1, 30) as usize;
            let start = Instant::now();
            while s.fake.posts().len() < (before + more).min(total)
                && s.fake.posts().len() < total
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            kills.push(format!("+{more}"));
        }
        assert!(
            worker.running(),
            "the worker exited on its own:\n{}",
            worker.log_text()
        );
        worker.kill();
    }
    let after_kills = s.fake.posts().len();
    let worker = s.worker();
    wait_for(
        "every delivery to publish after the crashes",
        PATIENCE,
        || s.settled(),
    );
    worker.terminate();
    let (status, log) = worker.wait(Duration::from_secs(30));
    assert!(status.success(), "the final worker failed: {status}\n{log}");

    s.assert_published_exactly_once();
    assert_eq!(s.deliveries_in(DeliveryStatus::Published), 200);
    let (stats, workers) = s.attempt_stats();
    eprintln!(
        "crash test ({}): kills at {kills:?}; {after_kills}/{total} segments on X before the final run; attempts {stats:?} by {workers} workers; {:?}",
        if postgres { "postgres" } else { "sqlite" },
        started.elapsed()
    );
    // Every open attempt was settled: nothing is left `sending` or `unknown`.
    assert!(
        !stats.contains_key("sending") && !stats.contains_key("unknown"),
        "{stats:?}"
    );
}

#[test]
fn sigkilled_workers_publish_every_segment_exactly_once_sqlite() {
    crash_test(false, 0x00C0_FFEE);
}

#[test]
fn sigkilled_workers_publish_every_segment_exactly_once_postgres() {
    crash_test(true, 0x0BAD_5EED);
}

// ---------------------------------------------------------------------------------------------
// Many workers

/// Four `psn worker` processes on one PostgreSQL hub, 2,000 single posts on 20 accounts:
/// each published exactly once.
#[test]
fn four_workers_on_one_postgres_hub_publish_two_thousand_posts_once() {
    let _heavy = heavy();
    let started = Instant::now();
    let mut s = Setup::new(true, 20);
    let total = s.create_posts((0..2000).map(|n| (texts(n, 1), n % 20)).collect());
    assert_eq!(total, 2000);
    let created = started.elapsed();
    let workers: Vec<Worker> = (0..4).map(|_| s.worker()).collect();
    wait_for("2,000 posts to publish", Duration::from_secs(600), || {
        s.settled()
    });
    for w in &workers {
        w.terminate();
    }
    for w in workers {
        let (status, log) = w.wait(Duration::from_secs(60));
        assert!(status.success(), "a worker failed: {status}\n{log}");
    }
    let fake = s.fake.posts();
    assert_eq!(fake.len(), 2000);
    let unique: HashSet<&str> = fake.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(unique.len(), 2000, "a text was posted twice");
    s.assert_published_exactly_once();
    let (stats, workers) = s.attempt_stats();
    eprintln!(
        "four workers: posts created in {created:?}, all published after {:?}; attempts {stats:?} by {workers} workers",
        started.elapsed()
    );
    assert_eq!(stats.get("succeeded"), Some(&2000), "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// --once and SIGTERM

#[test]
fn worker_once_publishes_what_is_due_and_exits_zero() {
    let mut s = Setup::new(false, 1);
    s.create_posts(vec![(texts(1, 1), 0), (texts(2, 3), 0), (texts(3, 1), 0)]);
    let later = new_post(
        texts(4, 1),
        &s.accounts[0].id,
        Utc::now() + chrono::Duration::hours(1),
    );
    let later =
        s.rt.block_on(s.hub.create_post(&later))
            .unwrap()
            .into_post();
    let (status, log) = s
        .spawn(&["worker", "--once"], &[])
        .wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "psn worker --once failed: {status}\n{log}"
    );

    let posts = s.posts();
    let (due, not_due): (Vec<Post>, Vec<Post>) = posts.into_iter().partition(|p| p.id != later.id);
    assert_eq!(due.len(), 3);
    let users = HashMap::from([(s.accounts[0].id.clone(), s.accounts[0].user_id.clone())]);
    assert_exactly_once(&due, &users, &s.fake.posts());
    assert_eq!(not_due[0].status, PostStatus::Scheduled);
    assert_eq!(s.fake.posts().len(), 5);
}

#[test]
fn sigterm_stops_the_worker_cleanly_and_leaves_nothing_claimed() {
    let _heavy = heavy();
    let mut s = Setup::new(false, 3);
    let total = s.create_posts(
        (0..30)
            .map(|n| (texts(n, if n % 3 == 0 { 3 } else { 1 }), n % 3))
            .collect(),
    );
    // Every create takes 300 ms: at any moment up to three are in flight.
    s.fake
        .inject(Fault::on_create(FaultKind::Slow { ms: 300 }).times(1_000_000));
    let worker = s.worker();
    wait_for("a few posts to appear on X", PATIENCE, || {
        s.fake.posts().len() >= 3
    });
    let stop = Instant::now();
    worker.terminate();
    let (status, log) = worker.wait(Duration::from_secs(30));
    let took = stop.elapsed();
    assert!(status.success(), "SIGTERM: {status}\n{log}");
    assert!(log.contains("stopping"), "{log}");
    assert_eq!(s.deliveries_in(DeliveryStatus::Claimed), 0, "{log}");
    // The steps in flight finished and were recorded: nothing is left open.
    let (stats, _) = s.attempt_stats();
    assert!(
        !stats.contains_key("sending") && !stats.contains_key("unknown"),
        "{stats:?}"
    );
    assert_eq!(
        stats.get("succeeded").copied().unwrap_or(0),
        s.fake.posts().len(),
        "every segment on X is recorded"
    );
    assert!(s.fake.posts().len() < total, "stopped before the end");
    eprintln!(
        "SIGTERM: exited in {took:?} with {} of {total} segments on X",
        s.fake.posts().len()
    );

    // The rest publishes on the next run, nothing twice.
    s.fake.clear_faults();
    let (status, log) = s
        .spawn(&["worker", "--once"], &[])
        .wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    s.assert_published_exactly_once();
}

// ---------------------------------------------------------------------------------------------
// psn up

/// A GET over plain HTTP/1.1: (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_string()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn psn_up_serves_health_and_metrics_on_loopback() {
    let mut s = Setup::new(false, 1);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let up = s.spawn(&["up", "--listen", &listen], &[]);
    let mut health = None;
    wait_for("/healthz to answer", Duration::from_secs(60), || {
        health = http_get(port, "/healthz").ok();
        health.is_some()
    });
    let (status, body) = health.unwrap();
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    assert_eq!(json["status"], "ok");
    assert!(json["version"].is_string());

    // It runs the worker too: a post due now is published and counted.
    s.create_posts(vec![(texts(1, 1), 0)]);
    wait_for("the post to publish", PATIENCE, || s.all_published());
    let mut metrics = String::new();
    wait_for("the metric to count it", Duration::from_secs(30), || {
        let (code, body) = http_get(port, "/metrics").expect("GET /metrics");
        assert_eq!(code, 200);
        metrics = body;
        metrics.contains("\npsn_deliveries_published_total 1\n")
    });
    assert!(metrics.contains("# TYPE psn_deliveries_published_total counter"));
    assert!(metrics.contains("psn_deliveries_in_flight{hub=\"personal\"}"));

    up.terminate();
    let (status, log) = up.wait(Duration::from_secs(30));
    assert!(status.success(), "psn up after SIGTERM: {status}\n{log}");
    assert!(
        http_get(port, "/healthz").is_err(),
        "still serving after exit"
    );
}

#[test]
fn psn_up_refuses_a_public_address_without_allow_remote() {
    let ws = TestWorkspace::new();
    let out = ws.psn(&["up", "--listen", "0.0.0.0:7878"]);
    out.invalid("--allow-remote");
    let out = ws.psn(&["up", "--listen", "not-an-address"]);
    out.expect(2);
}

#[test]
fn psn_up_serves_library_files_and_nothing_else() {
    let mut s = Setup::new(false, 1);
    let name = format!("{}.gif", "ab".repeat(32));
    let gif = "GIF89a psn library file ;";
    s.ws.write(&format!("content/media/{name}"), gif);
    s.ws.write("content/media/notes.gif", "not a library name");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let up = s.spawn(&["up", "--listen", &listen], &[]);
    wait_for("/healthz to answer", Duration::from_secs(60), || {
        http_get(port, "/healthz").is_ok()
    });
    let (status, body) = http_get(port, &format!("/media/{name}")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, gif);
    for path in [
        "/media/notes.gif",
        "/media/..%2Fconfig%2Fkeys.env",
        "/media/../config/keys.env",
        &format!("/media/{}.gif", "cd".repeat(32)),
    ] {
        let (status, body) = http_get(port, path).unwrap();
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("PSN_ENCRYPTION_KEY"));
    }
    up.terminate();
    let (status, log) = up.wait(Duration::from_secs(30));
    assert!(status.success(), "psn up after SIGTERM: {status}\n{log}");
}

// ---------------------------------------------------------------------------------------------
// Media uploads

/// A two-segment thread with a 20 KiB video, uploaded in 2 KiB APPENDs: the worker is
/// SIGKILLed while APPEND 4 is in flight (the fake holds it: by then the worker has saved the
/// upload's state through segment 3), the held APPEND then lands anyway, and the next worker
/// resumes the same upload — one INITIALIZE, segments 0–3 sent once, 4 sent again under the
/// same index, then 5–9 — and publishes the thread once with the video on its first post.
fn killed_mid_upload(postgres: bool) {
    let _heavy = heavy();
    let mut s = Setup::new(postgres, 1);
    s.fake.set_media_processing(1, 0);
    let video: Vec<u8> = (0..20 * 1024).map(|i| (i % 251) as u8).collect();
    let path = s.ws.path("clip.mp4");
    std::fs::write(&path, &video).unwrap();
    let segments = vec![
        "A thread with a video, 1/2.".to_string(),
        "And its second part, 2/2.".to_string(),
    ];
    let mut post = new_post(segments, &s.accounts[0].id, Utc::now());
    post.media = serde_json::json!([{
        "path": path,
        "summary": { "kind": "video", "bytes": video.len(), "duration_secs": 3.0, "alt": "A short clip" },
    }]);
    s.rt.block_on(s.hub.create_post(&post))
        .expect("create post");

    s.fake.hold_media_appends_from(4);
    let chunk = [("PSN_UPLOAD_CHUNK_BYTES", "2048".to_string())];
    let mut first = s.spawn(&["worker"], &chunk);
    wait_for("APPEND 4 to arrive", PATIENCE, || {
        s.fake.held_media_appends() >= 1
    });
    assert!(first.running(), "the worker exited:\n{}", first.log_text());
    first.kill();
    s.fake.release_media_appends();
    wait_for("the held APPEND to land", PATIENCE, || {
        s.fake.held_media_appends() == 0
    });
    assert!(
        s.fake.posts().is_empty(),
        "nothing is posted before the upload ends"
    );

    let second = s.spawn(&["worker"], &chunk);
    wait_for("the post to publish", PATIENCE, || s.settled());
    second.terminate();
    let (status, log) = second.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "the second worker failed: {status}\n{log}"
    );

    let inits = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/2/media/upload/initialize")
        .count();
    assert_eq!(inits, 1, "one upload session\n{log}");
    let media = s.fake.media();
    assert_eq!(media.len(), 1);
    let indices: Vec<u32> = media[0].appends.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]);
    assert_eq!(media[0].content(), video);
    assert_eq!(media[0].alt.as_deref(), Some("A short clip"));
    let posts = s.fake.posts();
    assert_eq!(posts.len(), 2, "one thread, published once");
    assert_eq!(posts[0].media_ids, vec![media[0].id.clone()]);
    assert!(
        posts[1].media_ids.is_empty(),
        "media goes on the first post only"
    );
    assert_eq!(posts[1].reply_to.as_deref(), Some(posts[0].id.as_str()));
    assert_eq!(s.deliveries_in(DeliveryStatus::Published), 1);
    let (stats, _) = s.attempt_stats();
    // media:0 (not_found: resumed, then succeeded) and two segments.
    assert_eq!(stats.get("succeeded"), Some(&3), "{stats:?}");
    assert_eq!(stats.get("not_found"), Some(&1), "{stats:?}");
}

#[test]
fn a_worker_killed_mid_upload_is_resumed_by_the_next_sqlite() {
    killed_mid_upload(false);
}

#[test]
fn a_worker_killed_mid_upload_is_resumed_by_the_next_postgres() {
    killed_mid_upload(true);
}

/// A small real PNG (`psn post --media` reads what it attaches).
fn png(side: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| image::Rgb([shade, x as u8, y as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `psn post --media … --alt …` then `psn worker --once`: the image is uploaded with its alt
/// text and attached to the post; a post whose file disappeared before publishing fails with
/// the file named, and nothing of it reaches X.
#[test]
fn worker_once_publishes_an_image_posted_with_psn_post() {
    let mut s = Setup::new(false, 1);
    let photo = s.ws.path("photo.png");
    std::fs::write(&photo, png(64, 7)).unwrap();
    let gone = s.ws.path("gone.png");
    std::fs::write(&gone, png(32, 9)).unwrap();
    let photo_arg = photo.to_string_lossy().into_owned();
    let gone_arg = gone.to_string_lossy().into_owned();
    s.ws.post(&[
        "A photo",
        "--to",
        "x",
        "--now",
        "--media",
        &photo_arg,
        "--alt",
        "Seven sevens",
    ]);
    let library = |ws: &TestWorkspace| -> HashSet<PathBuf> {
        std::fs::read_dir(ws.path("content/media"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let before = library(&s.ws);
    s.ws.post(&["Another photo", "--to", "x", "--now", "--media", &gone_arg]);
    // The library copy is what the worker sends: it disappears.
    for added in library(&s.ws).difference(&before) {
        std::fs::remove_file(added).unwrap();
    }

    let (status, log) = s
        .spawn(&["worker", "--once"], &[])
        .wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "psn worker --once failed: {status}\n{log}"
    );
    let media = s.fake.media();
    assert_eq!(media.len(), 1, "{log}");
    assert_eq!(
        media[0].content(),
        png(64, 7),
        "a PNG without metadata goes as it is"
    );
    assert_eq!(media[0].alt.as_deref(), Some("Seven sevens"));
    let posts = s.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, "A photo");
    assert_eq!(posts[0].media_ids, vec![media[0].id.clone()]);
    let failed: Vec<String> = s
        .posts()
        .iter()
        .flat_map(|p| &p.deliveries)
        .filter(|d| d.status == DeliveryStatus::Failed)
        .filter_map(|d| d.last_error.clone())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("content/media/"),
        "the file is named: {failed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// LinkedIn

#[path = "linkedin/e2e.rs"]
mod linkedin;
