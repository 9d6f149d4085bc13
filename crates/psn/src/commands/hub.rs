//! `psn hub list | add | status | migrate`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use psn_store::{BackendKind, Hub, redact_url};
use serde::Serialize;

use crate::cli::{Global, HubCommand};
use crate::error::{CliError, CliResult, invalid};
use crate::output::{print_json, table};
use crate::workspace::{HubEntry, Workspace};

#[derive(Debug, Serialize)]
struct HubView {
    name: String,
    backend: &'static str,
    url: String,
    source: String,
}

#[derive(Debug, Serialize)]
struct HubState {
    name: String,
    backend: &'static str,
    url: String,
    reachable: bool,
    schema_version: Option<i64>,
    psn_schema_version: i64,
    pending: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn view(h: &HubEntry) -> HubView {
    HubView {
        name: h.name.clone(),
        backend: BackendKind::of_url(&h.url)
            .map(|k| k.as_str())
            .unwrap_or("unknown"),
        url: redact_url(&h.url),
        source: h.source.clone(),
    }
}

pub async fn run(global: &Global, cmd: HubCommand) -> CliResult {
    let ws = Workspace::locate(global)?;
    match cmd {
        HubCommand::List => {
            let hubs: Vec<HubView> = ws.hubs()?.iter().map(view).collect();
            if global.json {
                print_json(&hubs);
            } else {
                let mut t = table(&["HUB", "BACKEND", "URL", "DEFINED IN"]);
                for h in &hubs {
                    t.add_row(vec![&h.name, h.backend, &h.url, &h.source]);
                }
                println!("{t}");
            }
            Ok(())
        }
        HubCommand::Add { name, database_url } => add(global, &ws, &name, &database_url).await,
        HubCommand::Status { name } => {
            let entries = select(&ws, name.as_deref())?;
            let mut states = Vec::new();
            for entry in &entries {
                states.push(state(entry).await);
            }
            if global.json {
                print_json(&states);
            } else {
                let mut t = table(&["HUB", "BACKEND", "REACHABLE", "SCHEMA", "PENDING", "NOTE"]);
                for s in &states {
                    t.add_row(vec![
                        s.name.clone(),
                        s.backend.to_string(),
                        if s.reachable {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        s.schema_version
                            .map(|v| format!("{v} (psn {})", s.psn_schema_version))
                            .unwrap_or_default(),
                        s.pending
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        s.error.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
            if states.iter().any(|s| !s.reachable) {
                return Err(CliError::ReportedFailure("a hub is unreachable".into()));
            }
            Ok(())
        }
        HubCommand::Migrate { name } => {
            let entries = select(&ws, name.as_deref())?;
            let mut results = Vec::new();
            for entry in &entries {
                let hub = Hub::connect(&entry.name, &entry.url).await?;
                let applied = hub.migrate().await?;
                let state = hub.migration_state().await?;
                hub.close().await;
                if !global.json {
                    if applied.is_empty() {
                        println!("{}: up to date (schema {})", entry.name, state.hub_version);
                    } else {
                        println!(
                            "{}: applied {:?}, now at schema {}",
                            entry.name, applied, state.hub_version
                        );
                    }
                }
                results.push(serde_json::json!({"name": entry.name, "applied": applied, "schema_version": state.hub_version}));
            }
            if global.json {
                print_json(&results);
            }
            Ok(())
        }
    }
}

fn select(ws: &Workspace, name: Option<&str>) -> CliResult<Vec<HubEntry>> {
    match name {
        Some(n) => Ok(vec![ws.hub_entry(n)?]),
        None => ws.hubs(),
    }
}

async fn state(entry: &HubEntry) -> HubState {
    let backend = BackendKind::of_url(&entry.url)
        .map(|k| k.as_str())
        .unwrap_or("unknown");
    let mut s = HubState {
        name: entry.name.clone(),
        backend,
        url: redact_url(&entry.url),
        reachable: false,
        schema_version: None,
        psn_schema_version: psn_store::SCHEMA_VERSION,
        pending: Vec::new(),
        error: None,
    };
    match Hub::connect(&entry.name, &entry.url).await {
        Ok(hub) => {
            s.reachable = true;
            match hub.migration_state().await {
                Ok(m) => {
                    s.schema_version = Some(m.hub_version);
                    s.pending = m.pending.clone();
                    if m.hub_is_newer() {
                        s.error = Some(format!(
                            "hub schema {} is newer than this psn ({}): upgrade psn",
                            m.hub_version, m.psn_version
                        ));
                    } else if !m.pending.is_empty() {
                        s.error = Some(format!(
                            "pending migrations: run `psn hub migrate {}`",
                            entry.name
                        ));
                    }
                }
                Err(e) => s.error = Some(e.to_string()),
            }
            hub.close().await;
        }
        Err(e) => s.error = Some(e.to_string()),
    }
    s
}

async fn add(global: &Global, ws: &Workspace, name: &str, url: &str) -> CliResult {
    if name == "personal" {
        return Err(invalid(
            "'personal' is the workspace's own hub; point it elsewhere with DATABASE_URL in config/hub.env",
        ));
    }
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "'{name}' is not a hub name: use lowercase letters, digits, '-' and '_' (at most 40)"
        )));
    }
    BackendKind::of_url(url)?;
    let path = ws
        .config_dir()
        .join("connections")
        .join(format!("{name}.env"));
    if path.exists() {
        return Err(invalid(format!(
            "hub '{name}' already exists ({}); edit or remove that file to change it",
            path.display()
        )));
    }
    // Check the database before writing anything: reachable, and migrated.
    let hub = Hub::open(name, url).await?;
    let state = hub.migration_state().await?;
    hub.close().await;
    std::fs::create_dir_all(path.parent().unwrap_or(&ws.root))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(f, "# psn hub '{name}' (secret: gitignored, mode 0600)")?;
    writeln!(f, "DATABASE_URL={url}")?;
    if global.json {
        print_json(&serde_json::json!({
            "name": name, "url": redact_url(url), "schema_version": state.hub_version,
            "file": format!("config/connections/{name}.env"),
        }));
    } else {
        println!(
            "Added hub '{name}' ({}), schema {}; saved in config/connections/{name}.env",
            redact_url(url),
            state.hub_version
        );
    }
    Ok(())
}
