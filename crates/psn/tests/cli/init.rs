//! `psn init`: the seed layout, idempotence, `--json`.

use crate::support::{Run, TestWorkspace};

const CLAUDE_COMMANDS: &[&str] = &[
    "post", "plan", "review", "setup", "engage", "capture", "approve", "series", "config",
    "calendar",
];

fn key_line(ws: &TestWorkspace) -> String {
    ws.read("config/keys.env")
        .lines()
        .find(|l| l.starts_with("PSN_ENCRYPTION_KEY="))
        .expect("keys.env has PSN_ENCRYPTION_KEY")
        .to_string()
}

#[test]
fn init_creates_the_seed_layout() {
    let ws = TestWorkspace::new();
    assert!(ws.read("config/strategy.yaml").contains("timezone: UTC"));
    assert_eq!(
        ws.mode("config/keys.env"),
        0o600,
        "keys.env must be private"
    );
    let key = key_line(&ws);
    assert!(
        key.len() > "PSN_ENCRYPTION_KEY=".len() + 20,
        "a generated key: {key}"
    );
    let gitignore = ws.read(".gitignore");
    for entry in ["config/keys.env", ".psn/", "content/media/"] {
        assert!(
            gitignore.lines().any(|l| l.trim() == entry),
            ".gitignore lacks {entry}: {gitignore}"
        );
    }
    for name in CLAUDE_COMMANDS {
        let rel = format!(".claude/commands/psn/{name}.md");
        assert!(!ws.read(&rel).trim().is_empty(), "{rel} is empty");
    }
    for dir in [
        "content/drafts",
        "content/media",
        "config/connections",
        ".psn",
    ] {
        assert!(ws.path(dir).is_dir(), "{dir}/ missing");
    }
}

#[test]
fn init_again_overwrites_nothing() {
    let ws = TestWorkspace::new();
    let edited = "# mine\ntimezone: Europe/Berlin\npillars: []\n";
    ws.write("config/strategy.yaml", edited);
    let key = key_line(&ws);
    let gitignore = ws.read(".gitignore");

    let out = Run::bare()
        .args(["init".as_ref(), ws.root.as_os_str(), "--json".as_ref()])
        .run();
    out.ok();
    let summary = out.json();
    let kept: Vec<&str> = summary["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(kept.contains(&"config/strategy.yaml"), "{summary}");
    assert!(kept.contains(&"config/keys.env"), "{summary}");
    assert_eq!(summary["created"].as_array().unwrap().len(), 0, "{summary}");

    assert_eq!(ws.read("config/strategy.yaml"), edited);
    assert_eq!(key_line(&ws), key, "the key must never be regenerated");
    assert_eq!(ws.read(".gitignore"), gitignore);
    assert_eq!(ws.mode("config/keys.env"), 0o600);
}

#[test]
fn init_json_lists_what_was_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = Run::bare()
        .args(["init", "--timezone", "America/New_York", "--json"])
        .cwd(dir.path())
        .run();
    out.ok();
    let summary = out.json();
    assert_eq!(
        summary["workspace"].as_str().unwrap(),
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );
    let created: Vec<&str> = summary["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "config/strategy.yaml",
        "config/keys.env",
        ".gitignore",
        ".claude/commands/psn/post.md",
    ] {
        assert!(created.contains(&f), "{f} not in {created:?}");
    }
    assert!(summary["kept"].as_array().unwrap().is_empty());
    let strategy = std::fs::read_to_string(dir.path().join("config/strategy.yaml")).unwrap();
    assert!(strategy.contains("timezone: America/New_York"));
}

#[test]
fn init_refuses_an_unknown_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let out = Run::bare()
        .args([
            "init".as_ref(),
            root.as_os_str(),
            "--timezone".as_ref(),
            "Mars/Olympus".as_ref(),
        ])
        .run();
    out.invalid("Mars/Olympus");
    assert!(
        !root.join("config/strategy.yaml").exists(),
        "nothing written"
    );
}
