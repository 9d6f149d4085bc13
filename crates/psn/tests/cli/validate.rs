//! `psn validate`: the pre-flight checks alone.

use crate::support::{Run, TestWorkspace};

#[test]
fn valid_text_exits_zero() {
    let ws = TestWorkspace::new();
    let out = ws.psn(&["validate", "Hello, world", "--to", "x,bluesky,mastodon"]);
    out.ok()
        .stdout_has("ok")
        .stdout_has("x")
        .stdout_has("bluesky");
    let out = ws.psn(&["validate", "Hello, world", "--to", "x,bluesky", "--json"]);
    out.ok();
    let reports = out.json();
    for r in reports.as_array().unwrap() {
        assert_eq!(r["valid"], true, "{r}");
        assert!(r["issues"].as_array().unwrap().is_empty(), "{r}");
    }
}

#[test]
fn broken_rules_exit_two_with_the_report() {
    let ws = TestWorkspace::new();
    let text = "a".repeat(300);
    let out = ws.psn(&["validate", &text, "--to", "x,linkedin", "--json"]);
    out.expect(2);
    let reports = out.json();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for r in reports {
        for field in [
            "platform", "valid", "length", "limit", "unit", "segments", "issues",
        ] {
            assert!(r.get(field).is_some(), "no {field} in {r}");
        }
    }
    let x = reports.iter().find(|r| r["platform"] == "x").unwrap();
    assert_eq!(x["valid"], false);
    assert_eq!(x["length"], 300);
    assert_eq!(x["limit"], 280);
    assert!(x["unit"].is_string());
    let issue = &x["issues"][0];
    assert!(issue["rule"].as_str().unwrap().starts_with("x."), "{issue}");
    assert!(
        issue["message"].as_str().unwrap().contains("280"),
        "{issue}"
    );
    let linkedin = reports
        .iter()
        .find(|r| r["platform"] == "linkedin")
        .unwrap();
    assert_eq!(linkedin["valid"], true);
    // Human output exits 2 too and names the rule.
    let out = ws.psn(&["validate", &text, "--to", "x"]);
    out.expect(2).stdout_has("FAIL").stdout_has("280");
}

#[test]
fn thread_splitting_makes_long_text_valid_on_x() {
    let ws = TestWorkspace::new();
    let text = "This sentence is part of a long post. ".repeat(30);
    let out = ws.psn(&["validate", &text, "--to", "x", "--thread", "--json"]);
    out.ok();
    let r = &out.json()[0];
    assert_eq!(r["valid"], true, "{r}");
    let segments = r["segments"].as_array().unwrap();
    assert!(segments.len() > 1, "{r}");
    let out = ws.psn(&["validate", &text, "--to", "x"]);
    out.expect(2);
    assert!(out.mentions("--thread"));
}

#[test]
fn validate_works_outside_a_workspace() {
    let empty = tempfile::tempdir().unwrap();
    Run::bare()
        .args(["validate", "Hello", "--to", "x", "--json"])
        .cwd(empty.path())
        .run()
        .ok();
    Run::bare()
        .args(["validate", &"b".repeat(400), "--to", "bluesky"])
        .cwd(empty.path())
        .run()
        .expect(2);
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn validate_refuses_bad_usage() {
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Run::bare().args(args).cwd(empty.path()).run();
    run(&["validate", "Hello"]).invalid("--to");
    run(&["validate", "Hello", "--to", "friendster"]).invalid("friendster");
    run(&["validate", "", "--to", "x"]).invalid("empty");
    run(&["validate", "Hello", "--to", "x", "--lang", "??"]).invalid("??");
}
