//! `psn doctor`.

use crate::support::{Run, TestWorkspace};

#[test]
fn a_healthy_workspace_passes() {
    let ws = TestWorkspace::new();
    let out = ws.psn(&["doctor", "--json"]);
    out.ok();
    let checks = out.json();
    let checks = checks.as_array().unwrap();
    for c in checks {
        assert!(c["check"].is_string() && c["detail"].is_string(), "{c}");
        assert!(
            ["ok", "warn"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
    let find = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    };
    assert_eq!(find("workspace")["status"], "ok");
    assert_eq!(find("encryption key")["status"], "ok");
    assert_eq!(find("hub personal")["status"], "ok");

    // With an account, the tokens are checked too.
    ws.connect_x("1001", "alice");
    let checks = ws.psn(&["doctor", "--json"]).json();
    let tokens = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "hub personal tokens")
        .expect("token check");
    assert_eq!(tokens["status"], "ok");
    assert!(
        tokens["detail"].as_str().unwrap().starts_with("1 "),
        "{tokens}"
    );

    ws.psn(&["doctor"]).ok().stdout_has("hub personal");
}

#[test]
fn doctor_fails_outside_a_workspace_and_with_a_readable_key() {
    let empty = tempfile::tempdir().unwrap();
    let out = Run::bare().args(["doctor"]).cwd(empty.path()).run();
    out.expect(1).stdout_has("psn init");

    let ws = TestWorkspace::new();
    ws.set_mode("config/keys.env", 0o640);
    let out = ws.psn(&["doctor"]);
    out.expect(1).stdout_has("chmod 600");
}
