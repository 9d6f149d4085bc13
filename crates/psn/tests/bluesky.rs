//! Bluesky end to end through the binary against the fake PDS: `accounts connect bluesky`
//! headless (app password on stdin), `psn post` text, an image and a four-part thread,
//! `psn worker --once` publishing them, `psn show` listing every platform id and URL, and a
//! worker SIGKILLed mid-thread resumed by the next without duplicates.

mod support;

use std::io::Cursor;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use psn_testkit::bluesky::{FakeBluesky, FakeRecord};
use serde_json::Value;
use support::TestWorkspace;

const DID: &str = "did:plc:alice000000000000000000";
const HANDLE: &str = "alice.bsky.social";
const PASSWORD: &str = "abcd-efgh-ijkl-mnop";
const PATIENCE: Duration = Duration::from_secs(180);

struct Setup {
    ws: TestWorkspace,
    fake: FakeBluesky,
    logs: PathBuf,
    spawned: usize,
}

impl Setup {
    fn new() -> Setup {
        let ws = TestWorkspace::new();
        let fake = FakeBluesky::start_in_thread();
        fake.add_account(DID, HANDLE, PASSWORD);
        fake.add_account(
            "did:plc:bob00000000000000000000",
            "bob.bsky.social",
            "bob-0000",
        );
        let out = ws
            .cmd([
                "accounts",
                "connect",
                "bluesky",
                "--handle",
                HANDLE,
                "--app-password-stdin",
                "--json",
            ])
            .env("PSN_API_BASE_BLUESKY", fake.base_url())
            .stdin(&format!("{PASSWORD}\n"))
            .run();
        out.ok();
        assert_eq!(out.json()["external_id"], DID);
        let logs = ws.path("test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        Setup {
            ws,
            fake,
            logs,
            spawned: 0,
        }
    }

    /// `psn post ARGS… --json`: the post's id and its delivery's segments.
    fn post(&self, args: &[&str]) -> (String, usize) {
        let post = self.ws.post(args);
        let id = post["id"].as_str().expect("post id").to_owned();
        let segments = post["deliveries"][0]["segments"]
            .as_array()
            .map(|s| s.len())
            .unwrap_or(0);
        (id, segments)
    }

    fn show(&self, id: &str) -> Value {
        let out = self.ws.psn(&["show", id, "--json"]);
        out.ok();
        out.json()
    }

    fn delivery_status(&self, id: &str) -> String {
        self.show(id)["deliveries"][0]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn spawn(&mut self, args: &[&str]) -> Worker {
        self.spawned += 1;
        let log = self.logs.join(format!("run-{}.log", self.spawned));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psn"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PSN_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("USER", "tester")
            .env("PSN_API_BASE_BLUESKY", self.fake.base_url())
            .env("PSN_WORKER_LEASE_MS", "1500")
            .env("PSN_WORKER_POLL_MS", "50")
            .env("PSN_WORKER_RETRY_BASE_MS", "50")
            .env("PSN_WORKER_RETRY_CAP_MS", "500")
            .env("PSN_WORKER_RECONCILE_DELAY_MS", "100")
            .env("PSN_WORKER_BREAKER_OPEN_MS", "300")
            .env("PSN_HTTP_TIMEOUT_MS", "10000")
            .env("PSN_WORKER_PUBLISH_BUDGET", "off")
            .env("PSN_WORKER_ID", format!("worker-{}", self.spawned))
            .arg("--workspace")
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
}

struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
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
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 77])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A text that `--thread` splits into four Bluesky posts.
fn four_part_text(tag: &str) -> String {
    (1..=20)
        .map(|i| format!("{tag} sentence {i:02} keeps the thread going for a while."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Records chained as one thread, in order: each replies to the previous, all to the first.
#[track_caller]
fn assert_chained(records: &[&FakeRecord]) {
    assert!(records[0].value.get("reply").is_none());
    for i in 1..records.len() {
        assert_eq!(records[i].parent_uri(), Some(records[i - 1].uri.as_str()));
        assert_eq!(records[i].root_uri(), Some(records[0].uri.as_str()));
    }
}

#[test]
fn worker_publishes_text_an_image_and_a_thread_to_bluesky() {
    let mut s = Setup::new();
    let photo = s.ws.path("photo.png");
    std::fs::write(&photo, png(64, 48)).unwrap();
    let photo_arg = photo.to_string_lossy().into_owned();

    let (text_id, _) = s.post(&[
        "Hello @bob.bsky.social from psn #launch",
        "--to",
        "bluesky",
        "--now",
        "--lang",
        "en",
    ]);
    let (photo_id, _) = s.post(&[
        "A photo",
        "--to",
        "bluesky",
        "--now",
        "--media",
        &photo_arg,
        "--alt",
        "A gradient",
    ]);
    let long = four_part_text("Launch");
    let (thread_id, segments) = s.post(&[&long, "--to", "bluesky", "--thread", "--now"]);
    assert_eq!(segments, 4, "the text splits into four posts");

    let (status, log) = s
        .spawn(&["worker", "--once"])
        .wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "psn worker --once failed: {status}\n{log}"
    );
    for id in [&text_id, &photo_id, &thread_id] {
        assert_eq!(s.delivery_status(id), "published", "{id}\n{log}");
    }

    let records = s.fake.records();
    assert_eq!(records.len(), 6, "{log}");
    let by_text = |t: &str| records.iter().find(|r| r.text() == t).expect(t);
    let hello = by_text("Hello @bob.bsky.social from psn #launch");
    assert_eq!(hello.value["langs"], serde_json::json!(["en"]));
    let features: Vec<&str> = hello.value["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["features"][0]["$type"].as_str().unwrap())
        .collect();
    assert_eq!(
        features,
        [
            "app.bsky.richtext.facet#mention",
            "app.bsky.richtext.facet#tag"
        ]
    );
    let photo_post = by_text("A photo");
    let image = &photo_post.value["embed"]["images"][0];
    assert_eq!(image["alt"], "A gradient");
    assert_eq!(
        image["aspectRatio"],
        serde_json::json!({"width": 64, "height": 48})
    );
    let blobs = s.fake.blobs();
    assert_eq!(blobs.len(), 1);
    assert_eq!(image["image"]["ref"]["$link"], blobs[0].cid);

    let thread: Vec<&FakeRecord> = records
        .iter()
        .filter(|r| r.text().starts_with("Launch") || r.text().contains("sentence"))
        .collect();
    assert_eq!(thread.len(), 4);
    assert_chained(&thread);

    // `psn show` names every platform id (at://…|cid) and the post's URL.
    let show = s.show(&thread_id);
    let d = &show["deliveries"][0];
    assert_eq!(
        d["url"].as_str().unwrap(),
        format!("https://bsky.app/profile/{HANDLE}/post/{}", thread[0].rkey)
    );
    assert_eq!(
        d["external_id"].as_str().unwrap(),
        format!("{}|{}", thread[0].uri, thread[0].cid)
    );
    let text = s.ws.psn(&["show", &thread_id]);
    text.ok();
    for r in &thread {
        text.stdout_has(&format!(
            "{}|{}  https://bsky.app/profile/{HANDLE}/post/{}",
            r.uri, r.cid, r.rkey
        ));
    }
    text.stdout_has(&format!("https://bsky.app/profile/{HANDLE}/post/"));
    assert!(!text.mentions(PASSWORD));
    assert!(!log.contains(PASSWORD), "the password is never logged");
}

/// The worker is SIGKILLed while the third post of a four-part thread is held by the PDS;
/// the held write lands after the kill, and the next worker reconciles it (listRecords)
/// instead of posting it again, then finishes the thread.
#[test]
fn a_worker_killed_mid_thread_is_resumed_without_duplicates() {
    let mut s = Setup::new();
    let long = four_part_text("Crash");
    let (id, segments) = s.post(&[&long, "--to", "bluesky", "--thread", "--now"]);
    assert_eq!(segments, 4);

    s.fake.hold_creates_from(2);
    let mut first = s.spawn(&["worker"]);
    wait_for("the third createRecord to be held", || {
        s.fake.held_creates() >= 1
    });
    assert!(first.running(), "the worker exited:\n{}", first.log_text());
    first.kill();
    s.fake.release_creates();
    wait_for("the held createRecord to land", || {
        s.fake.held_creates() == 0 && s.fake.records().len() == 3
    });

    let second = s.spawn(&["worker"]);
    wait_for("the thread to publish", || {
        matches!(
            s.delivery_status(&id).as_str(),
            "published" | "failed" | "needs_attention"
        )
    });
    second.terminate();
    let (status, log) = second.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "the second worker failed: {status}\n{log}"
    );
    assert_eq!(s.delivery_status(&id), "published", "{log}");

    let records = s.fake.records();
    assert_eq!(records.len(), 4, "every part once\n{log}");
    let refs: Vec<&FakeRecord> = records.iter().collect();
    assert_chained(&refs);
    let mut texts: Vec<&str> = records.iter().map(|r| r.text()).collect();
    texts.dedup();
    assert_eq!(texts.len(), 4);
    let show = s.show(&id);
    let attempts = show["deliveries"][0]["attempts"].as_array().unwrap();
    let reconciled = attempts
        .iter()
        .filter(|a| a["status"] == "reconciled")
        .count();
    assert_eq!(reconciled, 1, "{attempts:#?}");
    let ids: Vec<&str> = attempts
        .iter()
        .filter_map(|a| a["external_id"].as_str())
        .collect();
    for r in &records {
        assert!(
            ids.contains(&format!("{}|{}", r.uri, r.cid).as_str()),
            "{ids:?}"
        );
    }
}
