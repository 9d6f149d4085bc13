//! `psn queue`, `psn calendar` and `psn show`.

use chrono::{Duration, Utc};

use crate::support::{TestWorkspace, ids};

#[test]
fn queue_lists_scheduled_posts_and_filters_by_status() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let later = ws.post(&["Later", "--to", "x", "--at", "+5h"]);
    let sooner = ws.post(&["Sooner", "--to", "x", "--at", "+1h"]);
    let gone = ws.post(&["Gone", "--to", "x", "--at", "+2h"]);
    let draft = ws.post(&["Draft", "--to", "x", "--draft"]);
    let id = |p: &serde_json::Value| p["id"].as_str().unwrap().to_string();
    ws.psn(&["cancel", &id(&gone)]).ok();

    let out = ws.psn(&["queue", "--json"]);
    out.ok();
    let queue = out.json();
    assert_eq!(
        ids(&queue),
        [id(&sooner), id(&later)],
        "soonest first, no cancelled"
    );
    for p in queue.as_array().unwrap() {
        assert_eq!(p["status"], "scheduled");
        assert!(!p["deliveries"].as_array().unwrap().is_empty());
    }

    let cancelled = ws.psn(&["queue", "--status", "cancelled", "--json"]).json();
    assert_eq!(ids(&cancelled), [id(&gone)]);
    let drafts = ws
        .psn(&["queue", "--status", "draft,cancelled", "--json"])
        .json();
    let mut got = ids(&drafts);
    got.sort();
    let mut want = vec![id(&gone), id(&draft)];
    want.sort();
    assert_eq!(got, want);

    let all = ws.psn(&["queue", "--all", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 4);
    assert_eq!(
        ids(&all).last().unwrap(),
        &id(&draft),
        "drafts without a time last"
    );

    let soon = ws
        .psn(&["queue", "--days", "1", "--limit", "1", "--json"])
        .json();
    assert_eq!(ids(&soon), [id(&sooner)]);

    let text = ws.psn(&["queue"]);
    text.ok().stdout_has(&id(&sooner)).stdout_has("Sooner");
    assert!(!text.stdout.contains(&id(&gone)));
}

#[test]
fn an_empty_queue_says_how_to_post() {
    let ws = TestWorkspace::new();
    ws.psn(&["queue"]).ok().stdout_has("psn post");
    assert_eq!(ws.psn(&["queue", "--json"]).json(), serde_json::json!([]));
}

#[test]
fn queue_and_calendar_refuse_bad_options() {
    let ws = TestWorkspace::new();
    ws.refused(&["queue", "--status", "bogus"], "unknown status 'bogus'");
    ws.refused(&["queue", "--limit", "0"], "--limit");
    ws.refused(&["calendar", "--days", "0"], "--days");
    ws.refused(&["calendar", "--days", "367"], "--days");
    ws.refused(&["calendar", "--from", "next tuesday"], "--from");
}

#[test]
fn calendar_groups_posts_by_local_day() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let day = (Utc::now() + Duration::days(2)).date_naive();
    let date = day.format("%Y-%m-%d").to_string();
    let post = ws.post(&[
        "Calendar entry",
        "--to",
        "x",
        "--at",
        &format!("{date} 10:15"),
    ]);
    let post_id = post["id"].as_str().unwrap();

    let out = ws.psn(&["calendar", "--days", "5", "--json"]);
    out.ok();
    let days = out.json();
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 5);
    for d in days {
        let posts = d["posts"].as_array().unwrap();
        if d["date"] == date.as_str() {
            assert_eq!(ids(&d["posts"]), [post_id]);
        } else {
            assert!(posts.is_empty(), "{d}");
        }
    }

    let out = ws.psn(&["calendar", "--days", "5"]);
    out.ok();
    let heading = day.format("%a %Y-%m-%d").to_string();
    let start = out
        .stdout
        .find(&heading)
        .unwrap_or_else(|| panic!("{}", out.stdout));
    let rest = &out.stdout[start + heading.len()..];
    let section = &rest[..rest.find("\n\n").unwrap_or(rest.len())];
    assert!(
        section.contains(post_id),
        "post not under {heading}:\n{}",
        out.stdout
    );
    assert!(section.contains("10:15"), "{section}");
    assert_eq!(out.stdout.matches(post_id).count(), 1);

    // Starting after the post's day, it is not shown.
    let from = (day + Duration::days(1)).format("%Y-%m-%d").to_string();
    let days = ws
        .psn(&["calendar", "--from", &from, "--days", "3", "--json"])
        .json();
    assert!(
        days.as_array()
            .unwrap()
            .iter()
            .all(|d| d["posts"].as_array().unwrap().is_empty())
    );
}

#[test]
fn calendar_days_follow_the_workspace_time_zone() {
    // 23:30 in Los Angeles is the next day in UTC; the calendar shows the local day.
    let ws = TestWorkspace::with_tz("America/Los_Angeles");
    ws.connect_x("1001", "alice");
    let day = (Utc::now() + Duration::days(3)).date_naive();
    let date = day.format("%Y-%m-%d").to_string();
    let post = ws.post(&["Late night", "--to", "x", "--at", &format!("{date} 23:30")]);
    let days = ws
        .psn(&["calendar", "--from", &date, "--days", "2", "--json"])
        .json();
    assert_eq!(days[0]["date"], date.as_str());
    assert_eq!(ids(&days[0]["posts"]), [post["id"].as_str().unwrap()]);
    assert!(days[1]["posts"].as_array().unwrap().is_empty());
}

#[test]
fn show_prints_one_post_with_its_deliveries() {
    let ws = TestWorkspace::new();
    ws.connect_x_and_bluesky();
    let post = ws.post(&[
        "Look at me",
        "--to",
        "x,bluesky",
        "--at",
        "+1h",
        "--lang",
        "en",
    ]);
    let id = post["id"].as_str().unwrap();
    let out = ws.psn(&["show", id, "--json"]);
    out.ok();
    let shown = out.json();
    assert_eq!(shown["id"], id);
    assert_eq!(shown["text"], "Look at me");
    assert_eq!(shown["language"], "en");
    let deliveries = shown["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    for d in deliveries {
        for field in [
            "id", "platform", "account", "handle", "status", "run_at", "segments",
        ] {
            assert!(!d[field].is_null(), "no {field} in {d}");
        }
        // No attempt yet: the history is empty (and left out).
        assert!(
            d.get("attempts")
                .is_none_or(|a| a.as_array().unwrap().is_empty()),
            "{d}"
        );
    }
    ws.psn(&["show", id])
        .ok()
        .stdout_has("Look at me")
        .stdout_has("alice.bsky.social");
}

#[test]
fn show_refuses_unknown_and_malformed_ids() {
    let ws = TestWorkspace::new();
    ws.refused(&["show", "p_000000000000"], "no post");
    ws.refused(&["show", "not-an-id"], "not-an-id");
    ws.refused(&["show", "d_000000000000"], "d_000000000000");
}
