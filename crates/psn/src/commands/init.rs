//! `psn init [PATH]`: lays out the workspace of seed 001. Idempotent: a file that exists is
//! never overwritten, and the summary says what was created and what was kept.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use psn_store::TokenCipher;
use serde::Serialize;

use crate::cli::{Global, InitArgs};
use crate::error::{CliResult, invalid};
use crate::output::print_json;

const DIRS: &[&str] = &[
    "config/voice-profiles",
    "config/series",
    "config/company",
    "config/connections",
    "content/drafts",
    "content/media",
    "content/intelligence",
    "analytics/reports",
    ".claude/commands/psn",
    ".psn",
];

const CLAUDE_COMMANDS: &[(&str, &str)] = &[
    ("post", include_str!("../templates/claude/post.md")),
    ("plan", include_str!("../templates/claude/plan.md")),
    ("review", include_str!("../templates/claude/review.md")),
    ("setup", include_str!("../templates/claude/setup.md")),
    ("engage", include_str!("../templates/claude/engage.md")),
    ("capture", include_str!("../templates/claude/capture.md")),
    ("approve", include_str!("../templates/claude/approve.md")),
    ("series", include_str!("../templates/claude/series.md")),
    ("config", include_str!("../templates/claude/config.md")),
    ("calendar", include_str!("../templates/claude/calendar.md")),
];

#[derive(Debug, Serialize)]
pub struct Summary {
    workspace: PathBuf,
    created: Vec<String>,
    kept: Vec<String>,
}

pub fn run(global: &Global, args: InitArgs) -> CliResult {
    let root = match args.path.or_else(|| global.workspace.clone()) {
        Some(p) => p,
        None => std::env::current_dir()?,
    };
    let timezone = match args.timezone.or_else(|| std::env::var("TZ").ok()) {
        Some(tz) if !tz.trim().is_empty() => {
            let tz = tz.trim().trim_start_matches(':').to_string();
            psn_domain::schedule::parse_time_zone(&tz).map_err(|e| invalid(e.to_string()))?;
            tz
        }
        _ => "UTC".to_string(),
    };
    let summary = create(&root, &timezone)?;
    if global.json {
        print_json(&summary);
    } else {
        println!("psn workspace at {}", summary.workspace.display());
        for f in &summary.created {
            println!("  created  {f}");
        }
        for f in &summary.kept {
            println!("  kept     {f} (already there)");
        }
        println!();
        println!("Next:");
        println!("  1. Edit config/strategy.yaml (time zone, pillars, cadence).");
        println!("  2. Back up config/keys.env: it holds the key that encrypts your tokens.");
        println!(
            "  3. Connect an account: psn accounts connect <platform> (see psn accounts connect --help)."
        );
        println!("  4. Check everything: psn doctor");
    }
    Ok(())
}

pub fn create(root: &Path, timezone: &str) -> CliResult<Summary> {
    std::fs::create_dir_all(root)
        .map_err(|e| invalid(format!("cannot create {}: {e}", root.display())))?;
    let root = root.canonicalize()?;
    let mut summary = Summary {
        workspace: root.clone(),
        created: Vec::new(),
        kept: Vec::new(),
    };
    for dir in DIRS {
        let path = root.join(dir);
        if path.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&path)?;
        summary.created.push(format!("{dir}/"));
    }
    let strategy = include_str!("../templates/strategy.yaml").replace("{{TIMEZONE}}", timezone);
    write_new(
        &root,
        "config/strategy.yaml",
        &strategy,
        0o644,
        &mut summary,
    )?;
    let keys = include_str!("../templates/keys.env")
        .replace("{{KEY}}", &TokenCipher::generate_key_base64());
    write_new(&root, "config/keys.env", &keys, 0o600, &mut summary)?;
    write_new(
        &root,
        ".gitignore",
        include_str!("../templates/gitignore"),
        0o644,
        &mut summary,
    )?;
    for (name, body) in CLAUDE_COMMANDS {
        write_new(
            &root,
            &format!(".claude/commands/psn/{name}.md"),
            body,
            0o644,
            &mut summary,
        )?;
    }
    for dir in [
        "config/voice-profiles",
        "config/series",
        "config/company",
        "content/drafts",
        "content/intelligence",
        "analytics/reports",
    ] {
        write_new(&root, &format!("{dir}/.gitkeep"), "", 0o644, &mut summary)?;
    }
    Ok(summary)
}

/// Writes `rel` under `root` only if it does not exist (atomically: `create_new`).
fn write_new(root: &Path, rel: &str, body: &str, mode: u32, summary: &mut Summary) -> CliResult {
    let path = root.join(rel);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(body.as_bytes())?;
            if !rel.ends_with(".gitkeep") {
                summary.created.push(rel.to_string());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if !rel.ends_with(".gitkeep") {
                summary.kept.push(rel.to_string());
            }
            Ok(())
        }
        Err(e) => Err(invalid(format!("cannot write {}: {e}", path.display()))),
    }
}
