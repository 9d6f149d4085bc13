//! `psn hub list | add | status | migrate`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use psn_store::{
    BackendKind, CompanyRoles, Hub, MigrationState, TeamRole, random_password, redact_url,
    role_sql, url_password, url_user, url_with_user,
};
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
    /// A company hub: team roles, approvals, row-level security.
    company: bool,
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
        HubCommand::Add {
            name,
            database_url,
            owner_url,
            worker_url,
        } => match owner_url {
            Some(owner_url) => {
                add_company(
                    global,
                    &ws,
                    &name,
                    &owner_url,
                    database_url.as_deref(),
                    worker_url.as_deref(),
                )
                .await
            }
            None => {
                let url = database_url.ok_or_else(|| {
                    invalid("give --database-url URL (and --owner-url URL for a company hub)")
                })?;
                add(global, &ws, &name, &url).await
            }
        },
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
                let (applied, state) = if hub.is_company() {
                    let result = migrate_company(&ws, entry, &hub).await;
                    hub.close().await;
                    result?
                } else {
                    let applied = hub.migrate().await?;
                    let state = hub.migration_state().await?;
                    hub.close().await;
                    (applied, state)
                };
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
        company: false,
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
                    } else if !m.pending.is_empty() && hub.is_company() {
                        s.error = Some(format!(
                            "pending migrations — ask an admin to run `psn hub migrate {}`",
                            entry.name
                        ));
                    } else if !m.pending.is_empty() {
                        s.error = Some(format!(
                            "pending migrations: run `psn hub migrate {}`",
                            entry.name
                        ));
                    }
                    s.company = hub.is_company();
                }
                Err(e) => s.error = Some(e.to_string()),
            }
            hub.close().await;
        }
        Err(e) => s.error = Some(e.to_string()),
    }
    s
}

fn check_name(name: &str) -> CliResult {
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
    Ok(())
}

/// `config/connections/NAME.env`, refused when it exists.
fn new_connection_file(ws: &Workspace, name: &str) -> CliResult<std::path::PathBuf> {
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
    Ok(path)
}

/// Refuses anything but PostgreSQL for a hub other than the personal one.
fn require_postgres(url: &str, flag: &str) -> CliResult {
    if BackendKind::of_url(url)? != BackendKind::Postgres {
        return Err(invalid(format!(
            "company hubs are PostgreSQL only: {flag} is {}, but a SQLite hub lives on one machine and cannot be shared by a team; use postgres://USER@HOST/DB",
            redact_url(url)
        )));
    }
    Ok(())
}

async fn add(global: &Global, ws: &Workspace, name: &str, url: &str) -> CliResult {
    check_name(name)?;
    require_postgres(url, "--database-url")?;
    let path = new_connection_file(ws, name)?;
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

/// A role of a company hub: given by its URL, or named and given a password by psn.
struct PlannedRole {
    name: String,
    password: String,
    url: String,
    /// The URL came from the command line (the role may exist; its password is the URL's).
    given: bool,
}

fn plan_role(
    given: Option<&str>,
    flag: &str,
    owner_url: &str,
    default_name: String,
) -> CliResult<PlannedRole> {
    match given {
        Some(url) => {
            require_postgres(url, flag)?;
            let name = url_user(url).ok_or_else(|| {
                invalid(format!(
                    "{flag} must name its role: postgres://ROLE:PASSWORD@HOST/DB"
                ))
            })?;
            Ok(PlannedRole {
                name,
                password: url_password(url).unwrap_or_default(),
                url: url.to_string(),
                given: true,
            })
        }
        None => {
            let password = random_password();
            Ok(PlannedRole {
                url: url_with_user(owner_url, &default_name, &password),
                name: default_name,
                password,
                given: false,
            })
        }
    }
}

/// A role name psn derives from the database name: `psn_<db>_<suffix>`, lowercase letters,
/// digits and underscores, at most 63 bytes.
fn default_role(database: &str, suffix: &str) -> String {
    let base: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("psn_{base}");
    name.truncate(63 - suffix.len() - 1);
    format!("{name}_{suffix}")
}

/// `psn hub add NAME --owner-url URL [--database-url URL] [--worker-url URL]`: a company hub.
/// Migrates as the owner, creates the runtime and worker roles when missing (and the owner
/// may), applies the row-level security, makes the acting user the first admin, checks the
/// runtime role is isolated, and only then writes `config/connections/NAME.env`.
async fn add_company(
    global: &Global,
    ws: &Workspace,
    name: &str,
    owner_url: &str,
    database_url: Option<&str>,
    worker_url: Option<&str>,
) -> CliResult {
    check_name(name)?;
    require_postgres(owner_url, "--owner-url")?;
    let path = new_connection_file(ws, name)?;
    let owner = Hub::connect(name, owner_url).await?;
    let result = prepare_company(ws, name, &owner, owner_url, database_url, worker_url).await;
    owner.close().await;
    let (runtime, worker, schema_version) = result?;

    // The runtime role's view: isolated (checked when a company hub opens), and the actor's role.
    let hub = Hub::open(name, &runtime.url).await?;
    let role = hub.as_user(&ws.actor).team_role(&ws.actor).await?;
    hub.close().await;

    std::fs::create_dir_all(path.parent().unwrap_or(&ws.root))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(
        f,
        "# psn company hub '{name}' (secret: gitignored, mode 0600)"
    )?;
    writeln!(
        f,
        "# Members' queries: the runtime role (no table ownership, no BYPASSRLS)."
    )?;
    writeln!(f, "DATABASE_URL={}", runtime.url)?;
    writeln!(
        f,
        "# The worker (psn worker / psn up): sees every member's posts, reads tokens."
    )?;
    writeln!(f, "WORKER_DATABASE_URL={}", worker.url)?;
    writeln!(
        f,
        "# The table owner, for `psn hub migrate {name}`: admins only. Remove this line"
    )?;
    writeln!(
        f,
        "# before sharing this file with members who are not admins."
    )?;
    writeln!(f, "OWNER_DATABASE_URL={owner_url}")?;
    let company_file = write_company_template(ws, name)?;

    if global.json {
        print_json(&serde_json::json!({
            "name": name, "company": true, "url": redact_url(&runtime.url),
            "worker_url": redact_url(&worker.url), "owner_url": redact_url(owner_url),
            "runtime_role": runtime.name, "worker_role": worker.name,
            "schema_version": schema_version, "user": ws.actor, "role": role,
            "file": format!("config/connections/{name}.env"),
            "company_file": company_file,
        }));
    } else {
        println!(
            "Added company hub '{name}' ({}), schema {schema_version}; saved in config/connections/{name}.env",
            redact_url(&runtime.url)
        );
        println!(
            "  roles: {} (members' queries), {} (worker); {} is {}",
            runtime.name,
            worker.name,
            ws.actor,
            role.map(|r| r.to_string())
                .unwrap_or_else(|| "not a member yet".into())
        );
        println!("  next: psn --hub {name} team add USER --role editor|contributor");
    }
    Ok(())
}

async fn prepare_company(
    ws: &Workspace,
    name: &str,
    owner: &Hub,
    owner_url: &str,
    database_url: Option<&str>,
    worker_url: Option<&str>,
) -> CliResult<(PlannedRole, PlannedRole, i64)> {
    let database = owner.database_name().await?;
    let existing = owner.company_roles().await?;
    let (runtime_default, worker_default) = match &existing {
        Some(roles) => (roles.runtime.clone(), roles.worker.clone()),
        None => (
            default_role(&database, "app"),
            default_role(&database, "worker"),
        ),
    };
    let runtime = plan_role(database_url, "--database-url", owner_url, runtime_default)?;
    let worker = plan_role(worker_url, "--worker-url", owner_url, worker_default)?;
    if let Some(roles) = &existing
        && (roles.runtime != runtime.name || roles.worker != worker.name)
    {
        return Err(invalid(format!(
            "this database is already a company hub with the roles {} and {}; pass their URLs (--database-url, --worker-url)",
            roles.runtime, roles.worker
        )));
    }
    let owner_role = url_user(owner_url).unwrap_or_default();
    if runtime.name == worker.name || runtime.name == owner_role || worker.name == owner_role {
        return Err(invalid(
            "the owner, runtime and worker roles must be three different roles: the runtime role must own nothing",
        ));
    }
    let roles = CompanyRoles {
        runtime: runtime.name.clone(),
        worker: worker.name.clone(),
    };
    let mut missing = Vec::new();
    for role in [&runtime, &worker] {
        if owner.role_exists(&role.name).await? {
            if !role.given {
                return Err(invalid(format!(
                    "the role {} already exists; pass its URL (with its password) as {}",
                    role.name,
                    if role.name == runtime.name {
                        "--database-url"
                    } else {
                        "--worker-url"
                    }
                )));
            }
        } else {
            missing.push(role);
        }
    }
    if !missing.is_empty() && !owner.can_create_roles().await? {
        return Err(invalid(format!(
            "the owner role cannot create roles (no CREATEROLE). Ask your database administrator to run:\n\n{}\n\
             then run `psn hub add {name} --owner-url … --database-url postgres://{}:…@HOST/{database} --worker-url postgres://{}:…@HOST/{database}`",
            role_sql(&database, &roles),
            roles.runtime,
            roles.worker
        )));
    }
    // Everything that can be refused was checked: now migrate as the owner and set up.
    owner.migrate().await?;
    for role in missing {
        owner.ensure_login_role(&role.name, &role.password).await?;
    }
    owner.setup_company(&roles, Some(&ws.actor)).await?;
    let state = owner.migration_state().await?;
    Ok((runtime, worker, state.hub_version))
}

/// `config/company/NAME.yaml`: brand preferences and the voice of the company's posts, for
/// people and for the slash commands (never overwritten).
fn write_company_template(ws: &Workspace, name: &str) -> CliResult<Option<String>> {
    let dir = ws.config_dir().join("company");
    let path = dir.join(format!("{name}.yaml"));
    if path.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        &path,
        format!(
            "# Company hub '{name}': brand preferences and voice (read by /psn:post and reviewers).\n\
             name: {name}\n\
             brand:\n  \
               tone: []            # e.g. [clear, warm, no hype]\n  \
               words_to_avoid: []\n  \
               hashtags: []\n  \
               emoji: sparingly\n\
             voice_profiles:\n  \
               operator: config/voice-profiles/brand-operator-{name}.yaml\n  \
               ambassador: config/voice-profiles/brand-ambassador-{name}.yaml\n\
             approval:\n  \
               required: true      # company posts wait for an editor or admin (psn approvals)\n"
        ),
    )?;
    Ok(Some(format!("config/company/{name}.yaml")))
}

/// `psn hub migrate NAME` on a company hub: admins only, as the owner, then the row-level
/// security is applied again (grants for new tables and columns).
async fn migrate_company(
    ws: &Workspace,
    entry: &HubEntry,
    hub: &Hub,
) -> CliResult<(Vec<i64>, MigrationState)> {
    let role = hub.as_user(&ws.actor).team_role(&ws.actor).await?;
    if role != Some(TeamRole::Admin) {
        let state = hub.migration_state().await?;
        if state.pending.is_empty() {
            // Nothing to apply; but a hub that lost its isolation needs an admin too.
            hub.check_isolation()
                .await
                .map_err(|e| invalid(e.to_string()))?;
            return Ok((Vec::new(), state));
        }
        return Err(invalid(format!(
            "pending migrations — ask an admin to run `psn hub migrate {}` (only admins migrate company hubs; {} is {})",
            entry.name,
            ws.actor,
            role.map(|r| format!("a {r}"))
                .unwrap_or_else(|| "not a member".into())
        )));
    }
    let owner_url = entry.owner_url.as_deref().ok_or_else(|| {
        invalid(format!(
            "migrating company hub '{}' needs the owner's URL: add OWNER_DATABASE_URL=postgres://OWNER@HOST/DB to {}",
            entry.name, entry.source
        ))
    })?;
    let owner = Hub::connect(&entry.name, owner_url).await?;
    let result = async {
        let applied = owner.migrate().await?;
        let roles = owner.company_roles().await?.ok_or_else(|| {
            invalid("OWNER_DATABASE_URL points at a database that is not this company hub")
        })?;
        owner.setup_company(&roles, None).await?;
        let state = owner.migration_state().await?;
        CliResult::Ok((applied, state))
    }
    .await;
    owner.close().await;
    result
}
