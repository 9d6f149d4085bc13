//! `psn hub list | add | status | migrate`, company hubs and a personal hub on PostgreSQL.
//! Needs PSN_TEST_DATABASE_URL (a PostgreSQL admin URL).

use std::process::Command;

use crate::support::{DbGuard, TestWorkspace, access_token, counts_of, pg_dump, refresh_token};

#[test]
fn hub_list_shows_the_personal_sqlite_hub() {
    let ws = TestWorkspace::new();
    let out = ws.psn(&["hub", "list", "--json"]);
    out.ok();
    let hubs = out.json();
    let hubs = hubs.as_array().unwrap();
    assert_eq!(hubs.len(), 1);
    assert_eq!(hubs[0]["name"], "personal");
    assert_eq!(hubs[0]["backend"], "sqlite");
    assert!(
        hubs[0]["url"]
            .as_str()
            .unwrap()
            .ends_with(".psn/personal.db")
    );
    ws.psn(&["hub", "list"])
        .ok()
        .stdout_has("personal")
        .stdout_has("sqlite");
}

#[test]
fn a_company_hub_on_postgres() {
    let db = DbGuard::new();
    let ws = TestWorkspace::new();
    let out = ws.psn(&["hub", "add", "acme", "--database-url", db.url(), "--json"]);
    out.ok();
    let added = out.json();
    assert_eq!(added["name"], "acme");
    assert_eq!(added["file"], "config/connections/acme.env");
    assert_eq!(ws.mode("config/connections/acme.env"), 0o600);
    assert!(
        ws.read("config/connections/acme.env")
            .contains(&format!("DATABASE_URL={}", db.url()))
    );

    let out = ws.psn(&["hub", "list", "--json"]);
    let names: Vec<String> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["personal", "acme"]);

    let out = ws.psn(&["hub", "status", "--json"]);
    out.ok();
    let states = out.json();
    let states = states.as_array().unwrap();
    assert_eq!(states.len(), 2);
    for s in states {
        assert_eq!(s["reachable"], true, "{s}");
        assert!(s.get("schema_version").is_some(), "{s}");
    }
    let acme = states.iter().find(|s| s["name"] == "acme").unwrap();
    assert_eq!(acme["backend"], "postgres");
    assert_eq!(acme["schema_version"], acme["psn_schema_version"]);
    assert!(acme["pending"].as_array().unwrap().is_empty());

    let out = ws.psn(&["hub", "migrate", "--json"]);
    out.ok();
    let migrated = out.json();
    assert_eq!(migrated.as_array().unwrap().len(), 2);
    ws.psn(&["hub", "migrate", "acme"])
        .ok()
        .stdout_has("up to date");

    // Work on the company hub.
    let account = ws
        .cmd([
            "--hub",
            "acme",
            "accounts",
            "connect",
            "x",
            "--token-stdin",
            "--json",
        ])
        .stdin(&crate::support::token_json("2001", "acme_corp"))
        .env("PSN_USER", "dana")
        .run();
    account.ok();
    let account_id = account.json()["id"].as_str().unwrap().to_string();
    let out = ws
        .cmd([
            "--hub",
            "acme",
            "post",
            "Company news",
            "--to",
            "x",
            "--at",
            "+4h",
            "--json",
        ])
        .env("PSN_USER", "dana")
        .run();
    out.ok();
    let post = out.json();
    assert_eq!(post["created_by"], "dana");
    assert_eq!(
        post["deliveries"][0]["account"].as_str().unwrap(),
        account_id
    );
    let queue = ws.psn(&["--hub", "acme", "queue", "--json"]).json();
    assert_eq!(queue[0]["id"], post["id"]);
    // The personal hub saw none of it.
    assert!(
        ws.psn(&["queue", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        ws.psn(&["accounts", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let counts = counts_of(db.url());
    assert!(
        counts.contains(&("posts", 1)) && counts.contains(&("accounts", 1)),
        "{counts:?}"
    );

    // Refusals on the company hub write nothing there.
    let before = counts_of(db.url());
    ws.psn(&["--hub", "acme", "post", "Hi", "--to", "linkedin", "--now"])
        .invalid("psn accounts connect linkedin");
    ws.psn(&["--hub", "acme", "cancel", "p_000000000000"])
        .invalid("no post");
    assert_eq!(counts_of(db.url()), before);

    // Unknown hub name.
    ws.psn(&["--hub", "nope", "queue"])
        .invalid("psn hub add nope");

    // A second hub with the same name is refused.
    ws.psn(&["hub", "add", "acme", "--database-url", db.url()])
        .invalid("already exists");
    ws.psn(&["doctor"]).ok().stdout_has("hub acme");
}

#[test]
fn hub_add_refuses_bad_input_and_writes_no_file() {
    let ws = TestWorkspace::new();
    let file = |name: &str| ws.path(&format!("config/connections/{name}.env"));
    ws.psn(&[
        "hub",
        "add",
        "Bad Name",
        "--database-url",
        "postgres://u@h/db",
    ])
    .invalid("not a hub name");
    ws.psn(&[
        "hub",
        "add",
        "personal",
        "--database-url",
        "postgres://u@h/db",
    ])
    .invalid("hub.env");
    let out = ws.psn(&[
        "hub",
        "add",
        "legacy",
        "--database-url",
        "mysql://u:pw@h/db",
    ]);
    out.invalid("unsupported database URL");
    assert!(
        !out.mentions(":pw@"),
        "the password is redacted: {}",
        out.stderr
    );
    assert!(!file("legacy").exists());
    // An unreachable server: not the user's typo of a name, so exit 1, and nothing written.
    let out = ws.psn(&[
        "hub",
        "add",
        "down",
        "--database-url",
        "postgres://postgres:hunter2@127.0.0.1:1/x",
    ]);
    out.expect(1).stderr_has("cannot reach hub");
    assert!(
        !out.mentions("hunter2"),
        "the password is redacted: {}",
        out.stderr
    );
    assert!(!file("down").exists());
    assert_eq!(
        std::fs::read_dir(ws.path("config/connections"))
            .unwrap()
            .count(),
        0,
        "no file written"
    );
}

#[test]
fn hub_status_reports_an_unreachable_hub() {
    let ws = TestWorkspace::new();
    ws.write(
        "config/connections/down.env",
        "DATABASE_URL=postgres://postgres@127.0.0.1:1/x\n",
    );
    let out = ws.psn(&["hub", "status", "--json"]);
    out.expect(1);
    let states = out.json();
    let down = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "down")
        .unwrap();
    assert_eq!(down["reachable"], false);
    assert!(down["error"].is_string());
    let out = ws.psn(&["doctor", "--json"]);
    out.expect(1);
    let checks = out.json();
    let check = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "hub down")
        .unwrap();
    assert_eq!(check["status"], "fail");
}

#[test]
fn a_personal_hub_on_postgres_keeps_tokens_encrypted() {
    let db = DbGuard::new();
    let ws = TestWorkspace::new();
    ws.write("config/hub.env", &format!("DATABASE_URL={}\n", db.url()));
    ws.set_mode("config/hub.env", 0o600);
    let hubs = ws.psn(&["hub", "list", "--json"]).json();
    assert_eq!(hubs[0]["backend"], "postgres");
    assert_eq!(hubs[0]["source"], "config/hub.env");

    ws.connect_x("1001", "alice");
    let post = ws.post(&["Stored in PostgreSQL", "--to", "x", "--at", "+2h"]);
    let id = post["id"].as_str().unwrap();
    let queue = ws.psn(&["queue", "--json"]).json();
    assert_eq!(queue[0]["id"], id);
    let shown = ws.psn(&["show", id, "--json"]).json();
    assert_eq!(shown["text"], "Stored in PostgreSQL");
    let counts = counts_of(db.url());
    assert!(counts.contains(&("posts", 1)), "{counts:?}");
    assert_eq!(ws.counts(), counts, "personal means PostgreSQL now");
    assert!(
        !ws.path(".psn/personal.db").exists(),
        "no SQLite hub was created"
    );
    ws.refused(&["post", "", "--to", "x", "--now"], "empty");

    let pg_dump = pg_dump().expect("pg_dump in PATH or /usr/lib/postgresql/*/bin");
    let dump = Command::new(pg_dump)
        .args(["--data-only", "--dbname", db.url()])
        .output()
        .expect("run pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("Stored in PostgreSQL"),
        "the dump has the data"
    );
    assert!(dump.contains("alice"));
    for secret in [access_token("alice"), refresh_token("alice")] {
        assert!(!dump.contains(&secret), "token plaintext in the database");
    }
}
