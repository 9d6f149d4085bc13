//! LinkedIn end to end: an account connected headlessly, posts written with `psn post` (text
//! and an image with alt text), published by `psn worker` against the fake LinkedIn
//! (`PSN_API_BASE_LINKEDIN`), shown by `psn show`; and a worker SIGKILLed while LinkedIn holds
//! the create call, resumed by the next worker without a second post.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use psn_testkit::linkedin::FakeLinkedIn;
use serde_json::Value;

use super::support::{TestWorkspace, access_token};
use super::{PATIENCE, Worker, heavy, wait_for};

const MEMBER: &str = "mAlIcE42";

struct LinkedInSetup {
    ws: TestWorkspace,
    fake: FakeLinkedIn,
    logs: PathBuf,
    spawned: usize,
}

impl LinkedInSetup {
    fn new() -> LinkedInSetup {
        let ws = TestWorkspace::new();
        let fake = FakeLinkedIn::start_in_thread();
        fake.add_member(MEMBER, "Alice Example", &access_token("alice"));
        ws.connect("linkedin", MEMBER, "alice", &[]);
        let logs = ws.path("test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        LinkedInSetup {
            ws,
            fake,
            logs,
            spawned: 0,
        }
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
            .env("PSN_API_BASE_LINKEDIN", self.fake.base_url())
            .env("PSN_WORKER_LEASE_MS", "1500")
            .env("PSN_WORKER_POLL_MS", "50")
            .env("PSN_WORKER_RETRY_BASE_MS", "50")
            .env("PSN_WORKER_RETRY_CAP_MS", "500")
            .env("PSN_WORKER_RECONCILE_DELAY_MS", "100")
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

    fn show(&self, id: &str) -> Value {
        let out = self.ws.psn(&["show", id, "--json"]);
        out.ok();
        out.json()
    }

    /// Waits (polling `psn show`) until the post's delivery has settled.
    fn wait_settled(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let shown = self.show(id);
            let status = shown["deliveries"][0]["status"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if matches!(status.as_str(), "published" | "failed" | "needs_attention") {
                return shown;
            }
            assert!(start.elapsed() < PATIENCE, "still {status}: {shown}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 9 % 256) as u8, (y * 5 % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

#[test]
fn linkedin_posts_from_psn_post_are_published_by_the_worker_and_shown() {
    let _heavy = heavy();
    let mut s = LinkedInSetup::new();
    let photo = s.ws.path("photo.jpg");
    std::fs::write(&photo, jpeg(64, 48)).unwrap();
    let photo_arg = photo.to_string_lossy().into_owned();
    let text = s.ws.post(&[
        "Shipping psn (beta) today! #launch",
        "--to",
        "linkedin",
        "--now",
    ]);
    let image = s.ws.post(&[
        "A photo",
        "--to",
        "linkedin",
        "--now",
        "--media",
        &photo_arg,
        "--alt",
        "A blue gradient",
    ]);
    // LinkedIn has no threads: '---' segments are refused before anything is written.
    s.ws.refused(
        &["post", "One\n---\nTwo", "--to", "linkedin", "--now"],
        "nothing was queued",
    )
    .stdout_has("linkedin.thread_unsupported");

    let (status, log) = s.spawn(&["worker", "--once"]).wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "psn worker --once failed: {status}\n{log}"
    );

    let posts = s.fake.posts();
    assert_eq!(posts.len(), 2, "{log}");
    let by_text = |t: &str| posts.iter().find(|p| p.text == t).expect(t).clone();
    let first = by_text("Shipping psn (beta) today! #launch");
    assert!(first.media.is_empty());
    let second = by_text("A photo");
    let images = s.fake.images();
    assert_eq!(images.len(), 1);
    assert_eq!(second.media, vec![images[0].urn.clone()]);
    assert_eq!(second.alt_texts, vec![Some("A blue gradient".to_owned())]);
    assert_eq!(images[0].owner, format!("urn:li:person:{MEMBER}"));

    for (post, fake_post) in [(&text, &first), (&image, &second)] {
        let id = post["id"].as_str().unwrap();
        let shown = s.show(id);
        let d = &shown["deliveries"][0];
        assert_eq!(d["status"], "published", "{shown}");
        assert_eq!(d["external_id"], fake_post.urn.as_str());
        let url = format!("https://www.linkedin.com/feed/update/{}/", fake_post.urn);
        assert_eq!(d["url"], url.as_str());
        let human = s.ws.psn(&["show", id]);
        human.ok().stdout_has(&url).stdout_has(&fake_post.urn);
    }
}

#[test]
fn a_worker_killed_while_linkedin_holds_the_create_is_resumed_without_a_duplicate() {
    let _heavy = heavy();
    let mut s = LinkedInSetup::new();
    let post =
        s.ws.post(&["Exactly once on LinkedIn", "--to", "linkedin", "--now"]);
    let id = post["id"].as_str().unwrap().to_owned();

    s.fake.hold_creates_from(0);
    let mut first = s.spawn(&["worker"]);
    wait_for("the create call to arrive", PATIENCE, || {
        s.fake.held_creates() >= 1
    });
    assert!(first.running(), "the worker exited:\n{}", first.log_text());
    first.kill();
    s.fake.release_creates();
    wait_for("the held create to land", PATIENCE, || {
        s.fake.held_creates() == 0 && s.fake.posts().len() == 1
    });

    let second = s.spawn(&["worker"]);
    let shown = s.wait_settled(&id);
    second.terminate();
    let (status, log) = second.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "the second worker failed: {status}\n{log}"
    );

    let posts = s.fake.posts();
    assert_eq!(posts.len(), 1, "published once\n{log}");
    let d = &shown["deliveries"][0];
    assert_eq!(d["status"], "published", "{shown}\n{log}");
    assert_eq!(d["external_id"], posts[0].urn.as_str());
    let creates = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/rest/posts")
        .count();
    assert_eq!(creates, 1, "reconciled, not sent again\n{log}");
    let statuses: Vec<&str> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert!(statuses.contains(&"reconciled"), "{statuses:?}");
}
