//! Finding the workspace, reading its configuration and its key.

use crate::support::{Run, TestWorkspace, access_token};

#[test]
fn commands_outside_a_workspace_say_how_to_create_one() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        vec!["queue"],
        vec!["accounts", "list"],
        vec!["post", "hi", "--to", "x", "--now"],
        vec!["hub", "list"],
        vec!["show", "p_000000000000"],
    ] {
        let out = Run::bare().args(&args).cwd(empty.path()).run();
        out.invalid("psn init");
    }
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_nonexistent_workspace_flag_is_refused() {
    let out = Run::bare()
        .args(["--workspace", "/nonexistent/psn-ws", "queue"])
        .run();
    out.invalid("not a psn workspace");
    out.stderr_has("psn init");
}

#[test]
fn the_workspace_is_found_from_psn_workspace_and_from_subfolders() {
    let ws = TestWorkspace::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Run::bare()
        .args(["hub", "list", "--json"])
        .env("PSN_WORKSPACE", &ws.root)
        .cwd(elsewhere.path())
        .run();
    out.ok();
    assert_eq!(out.json()[0]["name"], "personal");

    let out = Run::bare()
        .args(["hub", "list", "--json"])
        .cwd(&ws.path("content/drafts"))
        .run();
    out.ok();
    assert_eq!(out.json()[0]["name"], "personal");
}

#[test]
fn malformed_strategy_yaml_is_named() {
    let ws = TestWorkspace::new();
    ws.write("config/strategy.yaml", "timezone: [UTC\npillars: {\n");
    let out = ws.psn(&["queue"]);
    out.invalid("strategy.yaml");
    out.stderr_has("not valid YAML");
}

#[test]
fn an_unknown_time_zone_in_strategy_is_refused() {
    let ws = TestWorkspace::new();
    ws.write("config/strategy.yaml", "timezone: Europe/Atlantis\n");
    let out = ws.psn(&["post", "Hello", "--to", "x", "--at", "+1h"]);
    out.invalid("Europe/Atlantis");
    out.stderr_has("strategy.yaml");
}

fn replace_key(ws: &TestWorkspace) {
    // A valid key of another workspace.
    let other = TestWorkspace::new();
    let new_key = other
        .read("config/keys.env")
        .lines()
        .find(|l| l.starts_with("PSN_ENCRYPTION_KEY="))
        .unwrap()
        .to_string();
    let body: String = ws
        .read("config/keys.env")
        .lines()
        .map(|l| {
            if l.starts_with("PSN_ENCRYPTION_KEY=") {
                new_key.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(body, ws.read("config/keys.env"));
    ws.write("config/keys.env", &body);
    ws.set_mode("config/keys.env", 0o600);
}

#[test]
fn doctor_detects_the_wrong_key() {
    let ws = TestWorkspace::new();
    ws.connect_x("1001", "alice");
    ws.psn(&["doctor"]).ok();
    replace_key(&ws);
    let out = ws.psn(&["doctor", "--json"]);
    out.expect(1);
    let checks = out.json();
    let tokens = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "hub personal tokens")
        .unwrap_or_else(|| panic!("no token check: {checks}"));
    assert_eq!(tokens["status"], "fail");
    assert!(
        tokens["detail"]
            .as_str()
            .unwrap()
            .contains("wrong encryption key"),
        "{tokens}"
    );
    assert!(!out.mentions(&access_token("alice")));
}

#[test]
fn a_readable_keys_file_is_refused() {
    let ws = TestWorkspace::new();
    ws.set_mode("config/keys.env", 0o644);
    let before = ws.counts();
    let out = ws.psn_stdin(
        &["accounts", "connect", "x", "--token-stdin"],
        &crate::support::token_json("1001", "alice"),
    );
    out.invalid("chmod 600");
    assert_eq!(ws.counts(), before);
}

#[test]
fn a_garbage_key_in_the_environment_is_refused() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    let out = ws
        .cmd(["accounts", "connect", "x", "--token-stdin"])
        .env("PSN_ENCRYPTION_KEY", "not-a-key!!")
        .stdin(&crate::support::token_json("1001", "alice"))
        .run();
    out.invalid("PSN_ENCRYPTION_KEY");
    assert_eq!(ws.counts(), before);
}

#[test]
fn a_key_in_the_environment_is_used() {
    let ws = TestWorkspace::new();
    let key = ws
        .read("config/keys.env")
        .lines()
        .find_map(|l| l.strip_prefix("PSN_ENCRYPTION_KEY=").map(str::to_string))
        .unwrap();
    // With the key in the environment, keys.env is not needed at all.
    std::fs::remove_file(ws.path("config/keys.env")).unwrap();
    ws.cmd(["accounts", "connect", "x", "--token-stdin"])
        .env("PSN_ENCRYPTION_KEY", &key)
        .stdin(&crate::support::token_json("1001", "alice"))
        .run()
        .ok();
    ws.cmd(["doctor"])
        .env("PSN_ENCRYPTION_KEY", &key)
        .run()
        .ok();
}
