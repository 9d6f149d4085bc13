//! `psn post`: scheduling, drafts, time zones, idempotency, threads, files, and refusals.

use chrono::{DateTime, Duration, Utc};
use psn_domain::Platform;
use serde_json::Value;

use crate::support::{TestWorkspace, next_year, us_dst_start_next_year};

fn run_at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn post_to_two_platforms_at_a_relative_time() {
    let ws = TestWorkspace::new();
    let (x, bsky) = ws.connect_x_and_bluesky();
    let before = Utc::now();
    let post = ws.post(&["Shipping today!", "--to", "x,bluesky", "--at", "+2h"]);
    let after = Utc::now();
    assert!(post["id"].as_str().unwrap().starts_with("p_"), "{post}");
    assert_eq!(post["status"], "scheduled");
    let deliveries = post["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    let mut platforms: Vec<&str> = Vec::new();
    for d in deliveries {
        assert!(d["id"].as_str().unwrap().starts_with("d_"), "{d}");
        assert_eq!(d["status"], "scheduled");
        let at = run_at(&d["run_at"]);
        assert!(
            at >= before + Duration::hours(2) - Duration::seconds(1),
            "{at}"
        );
        assert!(
            at <= after + Duration::hours(2) + Duration::seconds(1),
            "{at}"
        );
        let account = d["account"].as_str().unwrap();
        match d["platform"].as_str().unwrap() {
            "x" => assert_eq!(account, x),
            "bluesky" => assert_eq!(account, bsky),
            other => panic!("unexpected platform {other}"),
        }
        platforms.push(d["platform"].as_str().unwrap());
    }
    platforms.sort();
    assert_eq!(platforms, ["bluesky", "x"]);
    let counts = ws.counts();
    assert!(counts.contains(&("posts", 1)), "{counts:?}");
    assert!(counts.contains(&("deliveries", 2)), "{counts:?}");
}

#[test]
fn post_now_is_due_immediately() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let before = Utc::now();
    let post = ws.post(&["Right now", "--to", "x", "--now"]);
    assert_eq!(post["status"], "scheduled");
    let at = run_at(&post["deliveries"][0]["run_at"]);
    assert!(
        at >= before - Duration::seconds(1) && at <= Utc::now(),
        "{at}"
    );
    // The human output names the post too.
    let out = ws.psn(&["post", "Right now again", "--to", "x", "--now"]);
    out.ok().stdout_has("Post p_").stdout_has("alice");
}

#[test]
fn drafts_hold_their_deliveries() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let post = ws.post(&["Someday", "--to", "x", "--draft"]);
    assert_eq!(post["status"], "draft");
    assert!(post["run_at"].is_null(), "{post}");
    assert_eq!(post["deliveries"][0]["status"], "held");
    // A draft is not in the default queue.
    let queue = ws.psn(&["queue", "--json"]).json();
    assert!(queue.as_array().unwrap().is_empty(), "{queue}");
}

#[test]
fn local_times_use_the_workspace_time_zone() {
    let ws = TestWorkspace::with_tz("Europe/Berlin");
    ws.connect_x("1001", "alice");
    let year = next_year();
    // Summer: CEST is UTC+2.
    let post = ws.post(&[
        "Summer",
        "--to",
        "x",
        "--at",
        &format!("{year}-07-15 10:00"),
    ]);
    let expected: DateTime<Utc> = format!("{year}-07-15T08:00:00Z").parse().unwrap();
    assert_eq!(run_at(&post["run_at"]), expected);
    assert_eq!(run_at(&post["deliveries"][0]["run_at"]), expected);
    // Winter: CET is UTC+1.
    let post = ws.post(&[
        "Winter",
        "--to",
        "x",
        "--at",
        &format!("{year}-01-20 10:00"),
    ]);
    let expected: DateTime<Utc> = format!("{year}-01-20T09:00:00Z").parse().unwrap();
    assert_eq!(run_at(&post["deliveries"][0]["run_at"]), expected);
    // The human view shows the local time back.
    let id = post["id"].as_str().unwrap();
    ws.psn(&["show", id])
        .ok()
        .stdout_has(&format!("{year}-01-20 10:00"));
}

#[test]
fn rfc3339_times_are_taken_as_written() {
    let ws = TestWorkspace::with_tz("America/New_York");
    ws.connect_x("1001", "alice");
    let year = next_year();
    let post = ws.post(&[
        "Exact",
        "--to",
        "x",
        "--at",
        &format!("{year}-06-01T12:00:00+02:00"),
    ]);
    let expected: DateTime<Utc> = format!("{year}-06-01T10:00:00Z").parse().unwrap();
    assert_eq!(run_at(&post["deliveries"][0]["run_at"]), expected);
}

#[test]
fn dry_run_writes_nothing() {
    let ws = TestWorkspace::new();
    let (x, _) = ws.connect_x_and_bluesky();
    let before = ws.counts();
    let out = ws.psn(&[
        "post",
        "Just checking",
        "--to",
        "x,bluesky",
        "--at",
        "+1d",
        "--dry-run",
        "--json",
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["status"], "scheduled");
    let deliveries = v["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().any(|d| d["account"] == x.as_str()));
    assert_eq!(ws.counts(), before);
    let out = ws.psn(&["post", "Just checking", "--to", "x", "--now", "--dry-run"]);
    out.ok().stdout_has("nothing was written");
    assert_eq!(ws.counts(), before);
}

#[test]
fn the_same_idempotency_key_returns_the_first_post() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let args = [
        "Once only",
        "--to",
        "x",
        "--at",
        "+3h",
        "--idempotency-key",
        "launch-42",
    ];
    let first = ws.post(&args);
    let counts = ws.counts();
    let second = ws.post(&args);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["deliveries"][0]["id"], second["deliveries"][0]["id"]);
    assert_eq!(ws.counts(), counts, "a repeated key must write nothing");
    // Human output says so.
    let out = ws.psn(&[
        "post",
        "Once only",
        "--to",
        "x",
        "--at",
        "+3h",
        "--idempotency-key",
        "launch-42",
    ]);
    out.ok().stdout_has("already exists");
    assert_eq!(ws.counts(), counts);
}

fn long_text() -> String {
    (1..=40)
        .map(|i| format!("Sentence number {i} says something worth reading about psn."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn long_text_becomes_a_thread_on_x_with_thread() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let text = long_text();
    assert!(text.len() > 1000);
    let post = ws.post(&[&text, "--to", "x", "--thread", "--at", "+1h"]);
    let deliveries = post["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "a thread is one delivery");
    let segments = deliveries[0]["segments"].as_array().unwrap();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    for s in segments {
        let s = s.as_str().unwrap();
        let len = psn_platforms::measure(Platform::X, s).value;
        assert!(len <= 280, "segment of weighted length {len}: {s}");
    }
    let counts = ws.counts();
    assert!(counts.contains(&("deliveries", 1)), "{counts:?}");
}

#[test]
fn long_text_without_thread_is_refused_with_a_hint() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let text = long_text();
    let out = ws.refused(&["post", &text, "--to", "x", "--at", "+1h"], "would refuse");
    assert!(out.mentions("--thread"), "{}{}", out.stdout, out.stderr);
    assert!(out.mentions("280"), "{}", out.stdout);
}

#[test]
fn a_markdown_file_with_front_matter() {
    let ws = TestWorkspace::with_tz("Europe/Berlin");
    ws.connect_x("1001", "alice");
    ws.connect("bluesky", "did:plc:a", "alice.bsky.social", &[]);
    let year = next_year();
    ws.write(
        "content/drafts/launch.md",
        &format!(
            "---\nto: [x, bluesky]\nat: \"{year}-07-15 10:00\"\nlang: de\n---\n\nWir starten heute!\n"
        ),
    );
    let path = ws.path("content/drafts/launch.md");
    let post = ws.post(&["--file", path.to_str().unwrap()]);
    assert_eq!(post["text"], "Wir starten heute!");
    assert_eq!(post["language"], "de");
    assert_eq!(post["status"], "scheduled");
    assert_eq!(post["deliveries"].as_array().unwrap().len(), 2);
    let expected: DateTime<Utc> = format!("{year}-07-15T08:00:00Z").parse().unwrap();
    assert_eq!(run_at(&post["run_at"]), expected);
    // Flags win over front matter.
    let post = ws.post(&[
        "--file",
        path.to_str().unwrap(),
        "--to",
        "x",
        "--lang",
        "en",
    ]);
    assert_eq!(post["language"], "en");
    assert_eq!(post["deliveries"].as_array().unwrap().len(), 1);

    ws.write(
        "content/drafts/bad.md",
        "---\nto: x\nwhen: tomorrow\n---\nHi\n",
    );
    let bad = ws.path("content/drafts/bad.md");
    ws.refused(
        &["post", "--file", bad.to_str().unwrap(), "--now"],
        "front matter",
    );
    ws.refused(
        &[
            "post",
            "--file",
            "/nonexistent/draft.md",
            "--to",
            "x",
            "--now",
        ],
        "cannot read",
    );
}

#[test]
fn a_bad_language_is_refused() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    ws.refused(
        &[
            "post",
            "Hi",
            "--to",
            "x",
            "--now",
            "--lang",
            "not a language!",
        ],
        "not a language!",
    );
}

#[test]
fn bad_inputs_are_refused_and_write_nothing() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let long_bsky = "word ".repeat(100);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["post", "", "--to", "x", "--now"], "empty"),
        (vec!["post", "   ", "--to", "x", "--now"], "empty"),
        (
            vec!["post", &long_bsky, "--to", "bluesky", "--now"],
            "would refuse",
        ),
        (vec!["post", "Hi", "--to", "myspace", "--now"], "myspace"),
        (vec!["post", "Hi", "--now"], "--to"),
        (
            vec!["post", "Hi", "--to", "x", "--at", "2020-01-01 10:00"],
            "in the past",
        ),
        (
            vec!["post", "Hi", "--to", "x", "--at", "tomorrowish"],
            "tomorrowish",
        ),
        (
            vec!["post", "Hi", "--to", "x", "--at", "+5 parsecs"],
            "relative time",
        ),
        (vec!["post", "Hi", "--to", "x"], "say when"),
        (
            vec!["post", "Hi", "--to", "x", "--now", "--draft"],
            "contradict",
        ),
        (
            vec!["post", "Hi", "--to", "x", "--at", "+1h", "--now"],
            "cannot be used with",
        ),
        (
            vec!["post", "Hi", "--to", "linkedin", "--now"],
            "psn accounts connect linkedin",
        ),
        (
            vec!["post", "Hi", "--to", "x:bob", "--now"],
            "no X account 'bob'",
        ),
        (
            vec![
                "post",
                "Hi",
                "--to",
                "x",
                "--now",
                "--media",
                "/nonexistent.png",
            ],
            "media file",
        ),
    ];
    for (args, needle) in &cases {
        ws.refused(args, needle);
    }
}

#[test]
fn a_time_skipped_by_dst_is_refused() {
    let ws = TestWorkspace::with_tz("America/New_York");
    ws.connect_x("1001", "alice");
    let day = us_dst_start_next_year();
    let at = format!("{} 02:30", day.format("%Y-%m-%d"));
    let out = ws.refused(&["post", "Hi", "--to", "x", "--at", &at], "does not exist");
    out.stderr_has("America/New_York");
    // 03:30 the same day exists (EDT, UTC-4).
    let at = format!("{} 03:30", day.format("%Y-%m-%d"));
    let post = ws.post(&["Hi", "--to", "x", "--at", &at]);
    let expected: DateTime<Utc> = format!("{}T07:30:00Z", day.format("%Y-%m-%d"))
        .parse()
        .unwrap();
    assert_eq!(run_at(&post["run_at"]), expected);
}

#[test]
fn two_accounts_on_one_platform_need_a_choice() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let bob = ws.connect_x("1002", "bob");
    let out = ws.refused(&["post", "Hi", "--to", "x", "--now"], "say which");
    out.stderr_has("x:HANDLE")
        .stderr_has("alice")
        .stderr_has("bob");
    let post = ws.post(&["Hi", "--to", "x:@bob", "--now"]);
    assert_eq!(post["deliveries"][0]["account"].as_str().unwrap(), bob);
    let post = ws.post(&["Hi", "--to", &format!("x:{bob}"), "--now"]);
    assert_eq!(post["deliveries"][0]["account"].as_str().unwrap(), bob);
}

#[test]
fn instagram_without_media_reports_the_rule() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    let out = ws.psn(&[
        "post",
        "Pretty picture",
        "--to",
        "instagram",
        "--at",
        "+1h",
        "--json",
    ]);
    out.expect(2);
    let reports = out.json();
    let ig = &reports.as_array().unwrap()[0];
    assert_eq!(ig["platform"], "instagram");
    assert_eq!(ig["valid"], false);
    let rules: Vec<&str> = ig["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"instagram.media_required"), "{rules:?}");
    assert_eq!(ws.counts(), before);
}
