//! End to end per platform, from the CLI, against each platform's strict fake over HTTP:
//! connect headlessly, `psn post` a text, an image with alt text and a 4-segment thread,
//! `psn worker --once` publishes them, and `psn show --json` lists every segment's platform id
//! and URL. Then a worker SIGKILLed while segment 3 of a thread is in flight (the fake holds
//! the create call, then lets it land) is followed by one that reconciles it and finishes the
//! thread: every segment exists once, chained.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use psn_testkit::FakeX;
use psn_testkit::mastodon::FakeMastodon;
use serde_json::Value;
use support::{TestWorkspace, access_token, refresh_token};

const PATIENCE: Duration = Duration::from_secs(120);

/// A post as the fake holds it.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    text: String,
    reply_to: Option<String>,
    media: Vec<String>,
}

/// A media file as the fake holds it: id, alt text, size.
#[derive(Debug, Clone)]
struct HeldMedia {
    id: String,
    alt: Option<String>,
    bytes: u64,
}

enum Fake {
    X(FakeX),
    Mastodon(FakeMastodon),
}

/// One platform's fake and the account connected to it.
struct Platform {
    name: &'static str,
    fake: Fake,
}

impl Platform {
    fn x() -> Platform {
        let fake = FakeX::start_in_thread();
        fake.set_post_rate_limit(1_000_000);
        Platform {
            name: "x",
            fake: Fake::X(fake),
        }
    }

    fn mastodon() -> Platform {
        Platform {
            name: "mastodon",
            fake: Fake::Mastodon(FakeMastodon::start_in_thread()),
        }
    }

    /// Connects the account headlessly (`--token-stdin`).
    fn connect(&self, ws: &TestWorkspace) {
        match &self.fake {
            Fake::X(f) => {
                f.add_account("4001", "ada", &access_token("ada"));
                f.add_refresh_token("4001", &refresh_token("ada"));
                ws.connect_x("4001", "ada");
            }
            Fake::Mastodon(f) => {
                f.add_account("4002", "ada", &access_token("ada"));
                let instance = f.base_url();
                ws.connect("mastodon", "4002", "ada", &["--instance", &instance]);
            }
        }
    }

    /// `PSN_API_BASE_<PLATFORM>` for the worker (a Mastodon account names its instance).
    fn env(&self) -> Vec<(&'static str, String)> {
        match &self.fake {
            Fake::X(f) => vec![("PSN_API_BASE_X", f.base_url())],
            Fake::Mastodon(_) => Vec::new(),
        }
    }

    fn posts(&self) -> Vec<Held> {
        match &self.fake {
            Fake::X(f) => f
                .posts()
                .into_iter()
                .map(|p| Held {
                    id: p.id,
                    text: p.text,
                    reply_to: p.reply_to,
                    media: p.media_ids,
                })
                .collect(),
            Fake::Mastodon(f) => f
                .posts()
                .into_iter()
                .map(|s| Held {
                    id: s.id,
                    text: s.text,
                    reply_to: s.in_reply_to_id,
                    media: s.media_ids,
                })
                .collect(),
        }
    }

    fn media(&self) -> Vec<HeldMedia> {
        match &self.fake {
            Fake::X(f) => f
                .media()
                .into_iter()
                .map(|m| HeldMedia {
                    id: m.id,
                    alt: m.alt,
                    bytes: m.total_bytes,
                })
                .collect(),
            Fake::Mastodon(f) => f
                .media()
                .into_iter()
                .map(|m| HeldMedia {
                    id: m.id,
                    alt: m.description,
                    bytes: m.bytes as u64,
                })
                .collect(),
        }
    }

    fn hold_creates_from(&self, n: u64) {
        match &self.fake {
            Fake::X(f) => f.hold_creates_from(n),
            Fake::Mastodon(f) => f.hold_creates_from(n),
        }
    }

    fn release_creates(&self) {
        match &self.fake {
            Fake::X(f) => f.release_creates(),
            Fake::Mastodon(f) => f.release_creates(),
        }
    }

    fn held_creates(&self) -> usize {
        match &self.fake {
            Fake::X(f) => f.held_creates(),
            Fake::Mastodon(f) => f.held_creates(),
        }
    }
}

/// A `psn` child process with its stderr in a log file.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn spawn(ws: &TestWorkspace, platform: &Platform, args: &[&str], n: usize) -> Worker {
        let logs = ws.path("test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join(format!("run-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psn"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PSN_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("USER", "tester")
            .env("PSN_WORKER_LEASE_MS", "1500")
            .env("PSN_WORKER_POLL_MS", "50")
            .env("PSN_WORKER_RETRY_BASE_MS", "50")
            .env("PSN_WORKER_RETRY_CAP_MS", "500")
            .env("PSN_WORKER_RECONCILE_DELAY_MS", "100")
            .env("PSN_HTTP_TIMEOUT_MS", "10000")
            .env("PSN_WORKER_PUBLISH_BUDGET", "off")
            .env("PSN_WORKER_ID", format!("worker-{n}"));
        for (k, v) in platform.env() {
            cmd.env(k, v);
        }
        cmd.arg("--workspace")
            .arg(&ws.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        Worker {
            child: cmd.spawn().expect("spawn psn"),
            log,
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGKILL, and reap it.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

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
                panic!("psn did not exit within {within:?}\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

#[track_caller]
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small real PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const THREAD: [&str; 4] = [
    "A thread in four parts: one.",
    "Part two follows the first.",
    "Part three, nearly there.",
    "Part four ends the thread.",
];

fn thread_text() -> String {
    THREAD.join("\n---\n")
}

/// Segment `i` as published: psn numbers thread segments.
fn numbered(i: usize) -> String {
    format!("{} {}/{}", THREAD[i], i + 1, THREAD.len())
}

fn post_id(post: &Value) -> String {
    post["id"].as_str().expect("post id").to_string()
}

/// `psn show ID --json`: the post's one delivery.
fn delivery(ws: &TestWorkspace, id: &str) -> Value {
    let out = ws.psn(&["show", id, "--json"]);
    out.ok();
    let post = out.json();
    let deliveries = post["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{post}");
    deliveries[0].clone()
}

fn publishes_text_image_and_thread(platform: Platform) {
    let ws = TestWorkspace::new();
    platform.connect(&ws);
    let to = platform.name;
    let text = ws.post(&["A plain post from psn.", "--to", to, "--now"]);
    let photo = ws.path("photo.png");
    std::fs::write(&photo, png()).unwrap();
    let photo_arg = photo.to_string_lossy().into_owned();
    let image = ws.post(&[
        "A post with a picture.",
        "--to",
        to,
        "--now",
        "--media",
        &photo_arg,
        "--alt",
        "A gradient, red to green",
    ]);
    let thread = ws.post(&[&thread_text(), "--to", to, "--now"]);

    let (status, log) = Worker::spawn(&ws, &platform, &["worker", "--once"], 1).wait(PATIENCE);
    assert!(
        status.success(),
        "psn worker --once failed: {status}\n{log}"
    );

    let held = platform.posts();
    assert_eq!(held.len(), 6, "1 + 1 + 4 posts on {to}: {held:?}\n{log}");
    let by_text = |t: &str| -> Held {
        let found: Vec<&Held> = held.iter().filter(|h| h.text == t).collect();
        assert_eq!(found.len(), 1, "{t:?} once on {to}: {held:?}");
        found[0].clone()
    };

    // The text.
    let d = delivery(&ws, &post_id(&text));
    assert_eq!(d["status"], "published", "{d}");
    let plain = by_text("A plain post from psn.");
    assert_eq!(d["external_id"], plain.id.as_str());
    assert!(
        d["url"].as_str().is_some_and(|u| u.contains(&plain.id)),
        "{d}"
    );

    // The image, uploaded with its alt text and attached.
    let d = delivery(&ws, &post_id(&image));
    assert_eq!(d["status"], "published", "{d}");
    let pictured = by_text("A post with a picture.");
    let media = platform.media();
    assert_eq!(media.len(), 1, "{media:?}");
    assert_eq!(media[0].alt.as_deref(), Some("A gradient, red to green"));
    assert!(media[0].bytes > 0);
    assert_eq!(pictured.media, vec![media[0].id.clone()]);

    // The thread: four posts chained, and psn show lists each one's id and URL.
    let d = delivery(&ws, &post_id(&thread));
    assert_eq!(d["status"], "published", "{d}");
    let published = d["published"].as_array().expect("published segments");
    assert_eq!(published.len(), 4, "{d}");
    let mut previous: Option<String> = None;
    for (i, listed) in published.iter().enumerate() {
        let segment = by_text(&numbered(i));
        assert_eq!(segment.reply_to, previous, "segment {i} replies to {i}-1");
        assert_eq!(listed["index"], i);
        assert_eq!(listed["external_id"], segment.id.as_str());
        let url = listed["url"].as_str().expect("a URL per segment");
        assert!(url.contains(&segment.id), "{url}");
        previous = Some(segment.id);
    }
    let human = ws.psn(&["show", &post_id(&thread)]);
    human.ok();
    for seg in published {
        human.stdout_has(seg["url"].as_str().unwrap());
    }
}

fn a_worker_killed_mid_thread_is_resumed_without_duplicates(platform: Platform) {
    let ws = TestWorkspace::new();
    platform.connect(&ws);
    let thread = ws.post(&[&thread_text(), "--to", platform.name, "--now"]);

    // Segment 3 (index 2) is held in flight; the worker is killed while it waits.
    platform.hold_creates_from(2);
    let mut first = Worker::spawn(&ws, &platform, &["worker"], 1);
    wait_for("segment 3 to be in flight", || platform.held_creates() == 1);
    assert!(first.running(), "the worker exited:\n{}", first.log_text());
    first.kill();
    platform.release_creates();
    wait_for("the held create to land", || {
        platform.held_creates() == 0 && platform.posts().len() == 3
    });

    // The dead worker's lease runs out, then the next worker reconciles segment 3.
    let second = Worker::spawn(&ws, &platform, &["worker"], 2);
    let id = post_id(&thread);
    wait_for("the thread to settle", || {
        let status = delivery(&ws, &id)["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        ["published", "failed", "needs_attention"].contains(&status.as_str())
    });
    let log = second.log_text();
    second.kill();

    let held = platform.posts();
    assert_eq!(held.len(), 4, "every segment once: {held:?}\n{log}");
    let mut previous: Option<String> = None;
    for i in 0..THREAD.len() {
        let text = numbered(i);
        let found: Vec<&Held> = held.iter().filter(|h| h.text == text).collect();
        assert_eq!(found.len(), 1, "segment {i} once: {held:?}");
        assert_eq!(found[0].reply_to, previous, "segment {i} chained");
        previous = Some(found[0].id.clone());
    }
    let d = delivery(&ws, &post_id(&thread));
    assert_eq!(d["status"], "published", "{d}");
    let steps: Vec<(String, String)> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["step"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        steps.contains(&("segment:2".to_string(), "reconciled".to_string())),
        "the in-flight segment was found, not sent again: {steps:?}"
    );
    assert_eq!(d["published"].as_array().unwrap().len(), 4, "{d}");
}

#[test]
fn x_publishes_text_image_and_thread() {
    publishes_text_image_and_thread(Platform::x());
}

#[test]
fn mastodon_publishes_text_image_and_thread() {
    publishes_text_image_and_thread(Platform::mastodon());
}

#[test]
fn x_worker_killed_mid_thread_is_resumed_without_duplicates() {
    a_worker_killed_mid_thread_is_resumed_without_duplicates(Platform::x());
}

#[test]
fn mastodon_worker_killed_mid_thread_is_resumed_without_duplicates() {
    a_worker_killed_mid_thread_is_resumed_without_duplicates(Platform::mastodon());
}
