//! The workspace: finding it, reading its configuration, its key and its hubs.
//!
//! A workspace is a folder with `config/strategy.yaml` (seed 001). psn finds it from
//! `--workspace`, `PSN_WORKSPACE`, or by walking up from the current directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use psn_store::{Hub, TokenCipher};
use serde::Deserialize;

use crate::cli::Global;
use crate::error::{CliError, CliResult, invalid};

/// The file whose presence marks a workspace.
pub const MARKER: &str = "config/strategy.yaml";
/// The environment variable (and `config/keys.env` entry) holding the token encryption key.
pub const KEY_VAR: &str = "PSN_ENCRYPTION_KEY";

/// A workspace found on disk, with its strategy read.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub tz: Tz,
    /// Who is acting on company hubs: `--as` / `PSN_USER`, else `PSN_USER` in
    /// `config/hub.env`, else `$USER` (see [`actor`]).
    pub actor: String,
}

/// The parts of `config/strategy.yaml` psn itself reads; the rest is for people and assistants.
#[derive(Debug, Default, Deserialize)]
struct Strategy {
    timezone: Option<String>,
}

/// One hub of the workspace.
#[derive(Debug, Clone)]
pub struct HubEntry {
    pub name: String,
    pub url: String,
    /// The file that defines it (or where the default comes from).
    pub source: String,
    /// Company hubs: the worker role's URL (`WORKER_DATABASE_URL`).
    pub worker_url: Option<String>,
    /// Company hubs, admins only: the owner's URL for migrations (`OWNER_DATABASE_URL`).
    pub owner_url: Option<String>,
}

impl Workspace {
    /// Finds the workspace or explains how to create one.
    pub fn locate(global: &Global) -> CliResult<Workspace> {
        match &global.workspace {
            Some(path) => {
                if path.join(MARKER).is_file() {
                    Workspace::load(path).map(|ws| ws.acting_as(global))
                } else {
                    Err(invalid(format!(
                        "{} is not a psn workspace (no {MARKER}); create one with `psn init {}`",
                        path.display(),
                        path.display()
                    )))
                }
            }
            None => {
                let cwd = std::env::current_dir()?;
                let found = cwd.ancestors().find(|dir| dir.join(MARKER).is_file());
                match found {
                    Some(root) => Workspace::load(root).map(|ws| ws.acting_as(global)),
                    None => Err(invalid(format!(
                        "no psn workspace in {} or any parent folder; create one with `psn init` (or pass --workspace PATH / set PSN_WORKSPACE)",
                        cwd.display()
                    ))),
                }
            }
        }
    }

    /// Reads the workspace at `root`.
    pub fn load(root: &Path) -> CliResult<Workspace> {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let path = root.join(MARKER);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let strategy: Strategy = if text.trim().is_empty() {
            Strategy::default()
        } else {
            serde_saphyr::from_str(&text)
                .map_err(|e| invalid(format!("{} is not valid YAML: {e}", path.display())))?
        };
        let tz = match strategy.timezone.as_deref().map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => psn_domain::schedule::parse_time_zone(name)
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?,
        };
        let configured = configured_user(&root);
        Ok(Workspace {
            root,
            tz,
            actor: fallback_actor(configured),
        })
    }

    /// The workspace with `--as` / `PSN_USER` (when given) as the acting member.
    fn acting_as(mut self, global: &Global) -> Workspace {
        if let Some(user) = global.as_user.clone().filter(|s| !s.trim().is_empty()) {
            self.actor = user;
        }
        self
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// The token cipher: the key comes from `PSN_ENCRYPTION_KEY`, else `config/keys.env`,
    /// which must not be readable by group or others.
    pub fn cipher(&self) -> CliResult<TokenCipher> {
        if let Ok(key) = std::env::var(KEY_VAR) {
            return TokenCipher::from_base64(&key)
                .map_err(|e| invalid(format!("{KEY_VAR} from the environment: {e}")));
        }
        let path = self.config_dir().join("keys.env");
        check_private(&path)?;
        let vars = read_env_file(&path)?;
        let key = vars.get(KEY_VAR).ok_or_else(|| {
            invalid(format!(
                "{} has no {KEY_VAR}; restore it from your backup (tokens encrypted with a lost key cannot be read), or set {KEY_VAR}",
                path.display()
            ))
        })?;
        TokenCipher::from_base64(key).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    /// Every hub: `personal` first, then `config/connections/*.env` by name.
    pub fn hubs(&self) -> CliResult<Vec<HubEntry>> {
        let mut hubs = vec![self.personal_hub()?];
        let dir = self.config_dir().join("connections");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "env"))
                .collect();
            files.sort();
            for path in files {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let vars = read_env_file(&path)?;
                let url = vars
                    .get("DATABASE_URL")
                    .cloned()
                    .ok_or_else(|| invalid(format!("{} has no DATABASE_URL", path.display())))?;
                hubs.push(HubEntry {
                    name,
                    url,
                    source: relative(&self.root, &path),
                    worker_url: vars.get("WORKER_DATABASE_URL").cloned(),
                    owner_url: vars.get("OWNER_DATABASE_URL").cloned(),
                });
            }
        }
        Ok(hubs)
    }

    fn personal_hub(&self) -> CliResult<HubEntry> {
        let hub_env = self.config_dir().join("hub.env");
        if hub_env.is_file()
            && let Some(url) = read_env_file(&hub_env)?.get("DATABASE_URL")
        {
            return Ok(HubEntry {
                name: "personal".into(),
                url: url.clone(),
                source: relative(&self.root, &hub_env),
                worker_url: None,
                owner_url: None,
            });
        }
        let db = self.root.join(".psn").join("personal.db");
        Ok(HubEntry {
            name: "personal".into(),
            url: format!("sqlite://{}", db.display()),
            source: "default (.psn/personal.db)".into(),
            worker_url: None,
            owner_url: None,
        })
    }

    /// The hub named `name`, or an error listing the known ones.
    pub fn hub_entry(&self, name: &str) -> CliResult<HubEntry> {
        let hubs = self.hubs()?;
        let known: Vec<String> = hubs.iter().map(|h| h.name.clone()).collect();
        hubs.into_iter().find(|h| h.name == name).ok_or_else(|| {
            invalid(format!(
                "no hub named '{name}' (known: {}); add one with `psn hub add {name} --database-url URL`",
                known.join(", ")
            ))
        })
    }

    /// Opens (and on first use migrates) the hub named `name`. A company hub acts as the
    /// workspace's acting member ([`Workspace::actor`]) in every transaction.
    pub async fn open_hub(&self, name: &str) -> CliResult<Hub> {
        let entry = self.hub_entry(name)?;
        let hub = Hub::open(&entry.name, &entry.url)
            .await
            .map_err(CliError::from)?;
        Ok(if hub.is_company() {
            hub.as_user(&self.actor)
        } else {
            hub
        })
    }
}

/// `PSN_USER` from `config/hub.env`: who you are on company hubs, per machine.
fn configured_user(root: &Path) -> Option<String> {
    let hub_env = root.join("config").join("hub.env");
    if !hub_env.is_file() {
        return None;
    }
    read_env_file(&hub_env)
        .ok()?
        .get("PSN_USER")
        .cloned()
        .filter(|s| !s.trim().is_empty())
}

fn fallback_actor(configured: Option<String>) -> String {
    configured
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "me".to_string())
}

/// Who is acting: `--as` / `PSN_USER` (both in `global`), `PSN_USER` in the workspace's
/// `config/hub.env`, `USER`, or `me`.
pub fn actor(global: &Global) -> String {
    if let Some(user) = global.as_user.clone().filter(|s| !s.trim().is_empty()) {
        return user;
    }
    match Workspace::locate(global) {
        Ok(ws) => ws.actor,
        Err(_) => fallback_actor(None),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Refuses a secrets file that group or others can read.
pub fn check_private(path: &Path) -> CliResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        invalid(format!(
            "cannot read {}: {e}; create the workspace with `psn init` or set {KEY_VAR}",
            path.display()
        ))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "{} is readable by other users (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Reads `KEY=VALUE` lines (`#` comments, optional `export`, optional quotes).
pub fn read_env_file(path: &Path) -> CliResult<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    parse_env(&text).map_err(|(line, msg)| invalid(format!("{}:{line}: {msg}", path.display())))
}

fn parse_env(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| (i + 1, "expected KEY=VALUE".to_string()))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((i + 1, format!("'{key}' is not a variable name")));
        }
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(l)) if q == l && value.len() >= 2 => {
                value[1..value.len() - 1].to_string()
            }
            _ => value.split(" #").next().unwrap_or("").trim().to_string(),
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_allow_comments_exports_and_quotes() {
        let vars =
            parse_env("# keys\nexport A=1\nB = \"two words\"\nC='x=y'\nD=v # note\n\n").unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x=y");
        assert_eq!(vars["D"], "v");
    }

    #[test]
    fn env_file_errors_name_the_line() {
        assert_eq!(parse_env("A=1\nnonsense\n").unwrap_err().0, 2);
    }
}
