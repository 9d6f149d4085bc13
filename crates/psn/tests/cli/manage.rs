//! `psn reschedule | cancel | edit | retry`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::{TestWorkspace, execute_sql, next_year};

fn scheduled(ws: &TestWorkspace) -> String {
    ws.connect_x("1001", "alice");
    let post = ws.post(&["Original text", "--to", "x", "--at", "+2h"]);
    post["id"].as_str().unwrap().to_string()
}

fn show(ws: &TestWorkspace, id: &str) -> Value {
    let out = ws.psn(&["show", id, "--json"]);
    out.ok();
    out.json()
}

fn audit_rows(ws: &TestWorkspace) -> i64 {
    ws.counts()
        .iter()
        .find(|(t, _)| *t == "audit_log")
        .unwrap()
        .1
}

#[test]
fn reschedule_moves_the_post_and_its_deliveries() {
    let ws = TestWorkspace::with_tz("Europe/Berlin");
    let id = scheduled(&ws);
    let audits = audit_rows(&ws);
    let year = next_year();
    let out = ws.psn(&["reschedule", &id, &format!("{year}-07-01 09:00"), "--json"]);
    out.ok();
    let post = out.json();
    let expected: DateTime<Utc> = format!("{year}-07-01T07:00:00Z").parse().unwrap();
    let got: DateTime<Utc> = post["run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(got, expected);
    let d: DateTime<Utc> = post["deliveries"][0]["run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(d, expected);
    assert_eq!(post["status"], "scheduled");
    assert_eq!(audit_rows(&ws), audits + 1, "the change is audited");
    ws.psn(&["reschedule", &id, "+1d"])
        .ok()
        .stdout_has("Rescheduled");
}

#[test]
fn reschedule_refuses_the_past_and_bad_times() {
    let ws = TestWorkspace::new();
    let id = scheduled(&ws);
    let before = show(&ws, &id);
    ws.refused(&["reschedule", &id, "2020-01-01 10:00"], "in the past");
    ws.refused(&["reschedule", &id, "whenever"], "whenever");
    ws.refused(&["reschedule", "p_000000000000", "+1h"], "no post");
    ws.refused(&["reschedule", "garbage", "+1h"], "garbage");
    assert_eq!(show(&ws, &id)["run_at"], before["run_at"]);
}

#[test]
fn cancel_once_then_refuse() {
    let ws = TestWorkspace::new();
    let id = scheduled(&ws);
    let out = ws.psn(&["cancel", &id, "--json"]);
    out.ok();
    let post = out.json();
    assert_eq!(post["status"], "cancelled");
    assert_eq!(post["deliveries"][0]["status"], "cancelled");

    ws.refused(&["cancel", &id], "cancelled");
    ws.refused(&["edit", &id, "New words"], "cancelled");
    ws.refused(&["reschedule", &id, "+3h"], "cancelled");
    ws.refused(&["retry", &id], "cancelled");
    ws.refused(&["cancel", "p_000000000000"], "no post");
}

#[test]
fn cancel_a_draft() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let post = ws.post(&["Draft", "--to", "x", "--draft"]);
    let id = post["id"].as_str().unwrap();
    ws.psn(&["cancel", id]).ok().stdout_has("Cancelled");
    assert_eq!(show(&ws, id)["status"], "cancelled");
}

#[test]
fn edit_replaces_the_text() {
    let ws = TestWorkspace::new();
    let id = scheduled(&ws);
    let out = ws.psn(&["edit", &id, "Better wording", "--lang", "en", "--json"]);
    out.ok();
    let post = out.json();
    assert_eq!(post["text"], "Better wording");
    assert_eq!(post["language"], "en");
    assert_eq!(
        post["deliveries"][0]["segments"],
        serde_json::json!(["Better wording"])
    );
    assert_eq!(post["status"], "scheduled");

    ws.write("content/drafts/edit.md", "---\nto: x\n---\nFrom a file\n");
    let path = ws.path("content/drafts/edit.md");
    ws.psn(&["edit", &id, "--file", path.to_str().unwrap()])
        .ok();
    let shown = show(&ws, &id);
    assert_eq!(shown["text"], "From a file");
    assert_eq!(shown["language"], "en", "the language is kept");
}

#[test]
fn edit_refuses_text_that_breaks_a_rule() {
    let ws = TestWorkspace::new();
    let id = scheduled(&ws);
    let long = "z".repeat(400);
    let out = ws.refused(&["edit", &id, &long], "nothing was changed");
    assert!(out.mentions("280"), "{}", out.stdout);
    assert_eq!(show(&ws, &id)["text"], "Original text");
    ws.refused(&["edit", &id], "give the new text");
    ws.refused(&["edit", &id, "x", "--lang", "!!"], "!!");
    ws.refused(&["edit", "p_000000000000", "x"], "no post");
    assert_eq!(show(&ws, &id)["text"], "Original text");
}

#[test]
fn edit_keeps_the_thread_option() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    let post = ws.post(&["Short for now", "--to", "x", "--thread", "--at", "+2h"]);
    let id = post["id"].as_str().unwrap();
    let long = "Every word here counts toward the limit. ".repeat(20);
    let out = ws.psn(&["edit", id, &long, "--json"]);
    out.ok();
    let segments = out.json()["deliveries"][0]["segments"]
        .as_array()
        .unwrap()
        .len();
    assert!(segments > 1, "the edit is split like the original");
}

#[test]
fn retry_only_failed_posts() {
    let ws = TestWorkspace::new();
    let id = scheduled(&ws);
    let out = ws.refused(&["retry", &id], "only failed");
    out.stderr_has("cannot retry");

    // Make the post fail as a worker would.
    let url = ws.personal_url();
    execute_sql(
        &url,
        &format!(
            "UPDATE deliveries SET status = 'failed', last_error = 'boom' WHERE post_id = '{id}'"
        ),
    );
    execute_sql(
        &url,
        &format!("UPDATE posts SET status = 'failed' WHERE id = '{id}'"),
    );
    assert_eq!(show(&ws, &id)["status"], "failed");

    let before = Utc::now();
    let out = ws.psn(&["retry", &id, "--json"]);
    out.ok();
    let post = out.json();
    assert_eq!(post["status"], "scheduled");
    let d = &post["deliveries"][0];
    assert_eq!(d["status"], "scheduled");
    assert!(d["last_error"].is_null(), "{d}");
    let due: DateTime<Utc> = d["run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        due >= before - chrono::Duration::seconds(1) && due <= Utc::now(),
        "due now"
    );
    ws.refused(&["retry", &id], "only failed");
}
