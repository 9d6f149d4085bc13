//! Whole-process benchmarks of the `psn` binary against a seeded SQLite hub.
//!
//! Run: `cargo bench -p psn --bench cli` (release profile). Each command is run as a fresh
//! process, as a user would run it; the time is wall-clock around `Command::output()`, so it
//! includes process start, opening (and checking the schema of) the hub, the query, formatting
//! and writing stdout into a pipe.
//!
//! Environment:
//! - `PSN_BENCH_POSTS` — posts to seed (default 100000)
//! - `PSN_BENCH_RUNS` — measured runs per command (default 30; 3 warm-up runs come first)
//! - `PSN_BENCH_WORKSPACE` — reuse an already seeded workspace instead of creating one
//! - `PSN_BENCH_KEEP=1` — keep the temporary workspace and print its path
//!
//! The results are a Markdown table on stdout; progress goes to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use psn_domain::PostStatus;
use psn_store::{Hub, NewDelivery, NewPost};

const PSN: &str = env!("CARGO_BIN_EXE_psn");
const WARMUP: usize = 3;
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

/// A `psn` command run in the workspace with a clean environment.
fn psn(ws: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(PSN);
    cmd.args(args)
        .current_dir(ws)
        .env_remove("PSN_WORKSPACE")
        .env_remove("PSN_LOG")
        .env_remove("PSN_ENCRYPTION_KEY")
        .env_remove("PSN_USER")
        .env("USER", ACTOR)
        .stdin(Stdio::null());
    cmd
}

fn run_ok(mut cmd: Command, what: &str) -> Output {
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
    out
}

fn run_with_stdin(mut cmd: Command, input: &str, what: &str) {
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
}

/// A small deterministic generator (xorshift64*), so every run seeds the same shape of data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "shipping",
    "today",
    "release",
    "notes",
    "launch",
    "thread",
    "team",
    "weekly",
    "update",
    "community",
    "roadmap",
    "feedback",
    "demo",
    "writing",
    "open",
    "source",
    "small",
    "tools",
    "scheduler",
    "calendar",
    "queue",
    "faster",
    "better",
    "coffee",
    "morning",
    "question",
];

/// A post body of about `len` ASCII characters.
fn body(rng: &mut Rng, i: usize, len: usize) -> String {
    let mut s = format!("Post {i}:");
    while s.len() < len {
        s.push(' ');
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.truncate(len);
    s
}

/// Exactly 280 ASCII characters: the longest post X accepts.
fn text_280() -> String {
    let mut rng = Rng(0x5eed);
    let mut s = String::new();
    while s.len() < 280 {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.truncate(279);
    s.push('.');
    assert_eq!(s.chars().count(), 280);
    s
}

/// Creates a workspace with two accounts and `n` posts over the next 365 days.
fn seed(ws: &Path, n: usize) {
    run_ok(psn(ws, &["init", "--timezone", "UTC"]), "psn init");
    let x_token = r#"{"access_token":"bench-access","refresh_token":"bench-refresh","expires_in":7200,"account_id":"1001","handle":"bench_x"}"#;
    run_with_stdin(
        psn(ws, &["accounts", "connect", "x", "--token-stdin"]),
        x_token,
        "psn accounts connect x",
    );
    run_with_stdin(
        psn(
            ws,
            &[
                "accounts",
                "connect",
                "bluesky",
                "--handle",
                "b.bsky.social",
                "--app-password-stdin",
            ],
        ),
        "abcd-efgh-ijkl-mnop\n",
        "psn accounts connect bluesky",
    );

    let url = format!("sqlite://{}", ws.join(".psn").join("personal.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let hub = Hub::open("personal", &url).await.expect("open the hub");
        let accounts = hub.accounts().await.expect("accounts");
        assert_eq!(accounts.len(), 2, "expected the two connected accounts");
        let targets: Vec<NewDelivery> = accounts
            .iter()
            .map(|a| NewDelivery {
                account_id: a.id.clone(),
                platform: a.platform,
                segments: Vec::new(),
            })
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let now = Utc::now();
        let year_ms = 365 * 24 * 3600 * 1000_u64;
        let started = Instant::now();
        let mut last_report = Instant::now();
        for i in 0..n {
            // Uniform over the next 365 days (so ~1/52 of the posts fall in the next 7 days).
            let offset_ms = 60_000 + rng.below(year_ms - 60_000);
            let run_at = now + ChronoDuration::milliseconds(offset_ms as i64);
            // 90 % scheduled; 10 % drafts, half of them with a time.
            let (phase, run_at) = match i % 20 {
                0 => (PostStatus::Draft, None),
                10 => (PostStatus::Draft, Some(run_at)),
                _ => (PostStatus::Scheduled, Some(run_at)),
            };
            let len = 60 + rng.below(221) as usize;
            let text = body(&mut rng, i, len);
            // A third to X, a third to Bluesky, a third to both.
            let chosen: Vec<&NewDelivery> = match i % 3 {
                0 => targets.iter().collect(),
                k => vec![&targets[k - 1]],
            };
            let deliveries = chosen
                .into_iter()
                .map(|d| NewDelivery {
                    segments: vec![text.clone()],
                    ..d.clone()
                })
                .collect();
            let new = NewPost {
                created_by: ACTOR.to_string(),
                idempotency_key: None,
                phase,
                body: text,
                language: None,
                media: serde_json::json!([]),
                options: serde_json::json!({}),
                run_at,
                deliveries,
            };
            hub.create_post(&new).await.expect("create_post");
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let rate = (i + 1) as f64 / started.elapsed().as_secs_f64();
                eprintln!("  seeded {}/{n} posts ({rate:.0}/s)", i + 1);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "seeded {n} posts in {secs:.1} s ({:.0} posts/s) with Hub::create_post, one transaction each",
            n as f64 / secs
        );
        hub.close().await;
    });
}

struct Stats {
    min: Duration,
    median: Duration,
    p95: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    // Nearest rank.
    let p95 = samples[((n * 95).div_ceil(100)).max(1) - 1];
    Stats {
        min: samples[0],
        median,
        p95,
        max: samples[n - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct Case {
    label: String,
    args: Vec<String>,
    target_ms: Option<f64>,
}

fn case(label: &str, args: &[&str], target_ms: Option<f64>) -> Case {
    Case {
        label: label.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        target_ms,
    }
}

fn main() {
    let posts = env_usize("PSN_BENCH_POSTS", 100_000);
    let runs = env_usize("PSN_BENCH_RUNS", 30).max(1);
    let keep = std::env::var("PSN_BENCH_KEEP").is_ok_and(|v| v == "1");

    let mut _tempdir = None;
    let ws: PathBuf = match std::env::var("PSN_BENCH_WORKSPACE") {
        Ok(path) if !path.trim().is_empty() => {
            eprintln!("reusing the workspace {path} (not seeding)");
            PathBuf::from(path)
        }
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("psn-bench-")
                .tempdir()
                .expect("temp dir");
            let ws = dir.path().join("ws");
            std::fs::create_dir_all(&ws).expect("workspace dir");
            eprintln!("seeding {posts} posts into {}", ws.display());
            seed(&ws, posts);
            if keep {
                let path = dir.keep();
                eprintln!("keeping the workspace at {}", path.join("ws").display());
            } else {
                _tempdir = Some(dir);
            }
            ws
        }
    };

    let text = text_280();
    let cases = vec![
        case("psn --version (process start only)", &["--version"], None),
        case("psn queue --json", &["queue", "--json"], Some(50.0)),
        case(
            "psn queue --json --limit 1000",
            &["queue", "--json", "--limit", "1000"],
            Some(50.0),
        ),
        case("psn calendar", &["calendar"], Some(50.0)),
        case("psn calendar --json", &["calendar", "--json"], Some(50.0)),
        case(
            "psn validate \"<280 chars>\" --to x",
            &["validate", &text, "--to", "x"],
            Some(10.0),
        ),
        case(
            "psn validate \"<280 chars>\" --to x,bluesky,mastodon,linkedin --json",
            &[
                "validate",
                &text,
                "--to",
                "x,bluesky,mastodon,linkedin",
                "--json",
            ],
            Some(10.0),
        ),
    ];

    let mut rows = Vec::new();
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let mut samples = Vec::with_capacity(runs);
        let mut bytes = 0;
        for i in 0..WARMUP + runs {
            let mut cmd = psn(&ws, &args);
            let started = Instant::now();
            let out = cmd.output().expect("run psn");
            let elapsed = started.elapsed();
            if !out.status.success() {
                panic!(
                    "{} failed ({}): {}",
                    c.label,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            bytes = out.stdout.len();
            if i >= WARMUP {
                samples.push(elapsed);
            }
        }
        let s = stats(samples);
        eprintln!("  {:<70} median {} ms", c.label, ms(s.median));
        rows.push((c, s, bytes));
    }

    println!("Posts in the hub: {posts}. Runs per command: {runs} (after {WARMUP} warm-up runs).");
    println!();
    println!(
        "| Command | min (ms) | median (ms) | p95 (ms) | max (ms) | stdout | target | met (p95) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|:---:|");
    for (c, s, bytes) in &rows {
        let (target, met) = match c.target_ms {
            Some(t) => {
                let met = s.p95.as_secs_f64() * 1000.0 < t;
                (format!("< {t:.0} ms"), if met { "yes" } else { "**no**" })
            }
            None => ("—".to_string(), "—"),
        };
        let size = if *bytes >= 10_240 {
            format!("{} KiB", bytes / 1024)
        } else {
            format!("{bytes} B")
        };
        println!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            c.label,
            ms(s.min),
            ms(s.median),
            ms(s.p95),
            ms(s.max),
            size,
            target,
            met
        );
    }
}
