//! Company hubs from the command line: `hub add --owner-url`, `team`, `approvals`, `approve`,
//! `reject`, the worker publishing an approved post to a fake X, and migration safety. Members
//! act through the runtime role psn configures (never the owner or a superuser); the test's
//! superuser only plays the database owner and breaks things on purpose.

use psn_store::{Hub, url_with_user};
use psn_testkit::FakeX;

use crate::support::{DbGuard, TestWorkspace, access_token, block_on, execute_sql, token_json};

/// A throwaway database with a runtime and a worker role of its own (roles are cluster-wide:
/// random names, dropped after the database, also when the test panics).
struct CompanyDb {
    db: Option<DbGuard>,
    roles: Vec<String>,
}

impl CompanyDb {
    fn new() -> CompanyDb {
        let suffix = psn_store::random_password()[..12].to_string();
        CompanyDb {
            db: Some(DbGuard::new()),
            roles: vec![
                format!("psn_cli_{suffix}_app"),
                format!("psn_cli_{suffix}_worker"),
            ],
        }
    }

    fn owner_url(&self) -> String {
        self.db.as_ref().expect("db").url().to_string()
    }

    fn runtime_url(&self) -> String {
        url_with_user(&self.owner_url(), &self.roles[0], "app-pw")
    }

    fn worker_url(&self) -> String {
        url_with_user(&self.owner_url(), &self.roles[1], "worker-pw")
    }
}

impl Drop for CompanyDb {
    fn drop(&mut self) {
        drop(self.db.take());
        let admin = psn_store::testing::admin_url();
        for role in &self.roles {
            execute_sql(&admin, &format!("DROP ROLE IF EXISTS \"{role}\""));
        }
    }
}

#[test]
fn company_hubs_refuse_sqlite() {
    let ws = TestWorkspace::new();
    ws.psn(&["hub", "add", "acme", "--owner-url", "sqlite://acme.db"])
        .invalid("company hubs are PostgreSQL only");
    ws.psn(&["hub", "add", "acme", "--database-url", "sqlite://acme.db"])
        .invalid("company hubs are PostgreSQL only");
    assert!(!ws.path("config/connections/acme.env").exists());
    // Team and approval commands explain where they belong.
    ws.psn(&["team", "list"]).invalid("company hubs");
    ws.psn(&["approvals"]).invalid("company hubs");
}

/// The whole flow: an admin adds the hub and the team, a contributor posts, the post waits,
/// an editor rejects one and approves another, the worker publishes the approved one to a
/// fake X, and the audit log has who did what.
#[test]
fn contributor_posts_editor_approves_worker_publishes() {
    let company = CompanyDb::new();
    let ws = TestWorkspace::new();
    let out = ws.psn(&[
        "--as",
        "alice",
        "hub",
        "add",
        "acme",
        "--owner-url",
        &company.owner_url(),
        "--database-url",
        &company.runtime_url(),
        "--worker-url",
        &company.worker_url(),
        "--json",
    ]);
    out.ok();
    let added = out.json();
    assert_eq!(added["company"], true);
    assert_eq!(added["role"], "admin", "the first user is the hub's admin");
    assert_eq!(added["runtime_role"], company.roles[0].as_str());
    assert!(!out.mentions("app-pw"), "no password in the output");
    assert_eq!(ws.mode("config/connections/acme.env"), 0o600);
    let env = ws.read("config/connections/acme.env");
    assert!(env.contains("WORKER_DATABASE_URL=") && env.contains("OWNER_DATABASE_URL="));
    assert!(ws.read("config/company/acme.yaml").contains("brand:"));

    // The team, managed by the admin only.
    let team = |user: &str, args: &[&str]| {
        let mut all = vec!["--hub", "acme", "--as", user, "team"];
        all.extend_from_slice(args);
        ws.psn(&all)
    };
    team("alice", &["add", "erin", "--role", "editor"]).ok();
    team("alice", &["add", "bob", "--role", "contributor"]).ok();
    team("bob", &["add", "bob", "--role", "admin"]).invalid("only admins");
    team("alice", &["add", "carol", "--role", "boss"]).invalid("not a team role");
    let out = team("bob", &["list", "--json"]);
    out.ok();
    let roles: Vec<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("alice".to_string(), "admin".to_string()),
            ("erin".to_string(), "editor".to_string()),
            ("bob".to_string(), "contributor".to_string())
        ]
    );

    // The company's X account: connected by the admin, on a fake X.
    let fake = FakeX::start_in_thread();
    fake.add_account("4242", "acme", &access_token("acme"));
    ws.cmd([
        "--hub",
        "acme",
        "--as",
        "bob",
        "accounts",
        "connect",
        "x",
        "--token-stdin",
    ])
    .stdin(&token_json("4242", "acme"))
    .run()
    .invalid("refused");
    ws.cmd([
        "--hub",
        "acme",
        "--as",
        "alice",
        "accounts",
        "connect",
        "x",
        "--token-stdin",
    ])
    .stdin(&token_json("4242", "acme"))
    .run()
    .ok();

    // A contributor posts: it waits for approval.
    let post = |text: &str| {
        let out = ws.psn(&[
            "--hub", "acme", "--as", "bob", "post", text, "--to", "x", "--now", "--json",
        ]);
        out.ok();
        out.json()
    };
    let first = post("Acme ships today");
    assert_eq!(first["status"], "pending_approval");
    assert_eq!(first["deliveries"][0]["status"], "held");
    let first_id = first["id"].as_str().unwrap().to_string();
    let second_id = post("Acme ships tomorow")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The worker publishes nothing that awaits approval.
    let worker = || {
        ws.cmd(["worker", "--once"])
            .env("PSN_API_BASE_X", fake.base_url())
            .env("PSN_WORKER_POLL_MS", "50")
            .run()
    };
    worker().ok();
    assert!(fake.posts().is_empty(), "published before approval");

    // Contributors see their own pending posts and approve nothing.
    let out = ws.psn(&["--hub", "acme", "--as", "bob", "approvals", "--json"]);
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 2);
    ws.psn(&["--hub", "acme", "--as", "bob", "approve", &first_id])
        .invalid("contributor");

    // The editor sees both, rejects one with a reason and approves the other.
    let out = ws.psn(&["--hub", "acme", "--as", "erin", "approvals"]);
    out.ok().stdout_has(&first_id).stdout_has(&second_id);
    ws.psn(&["--hub", "acme", "--as", "erin", "reject", &second_id])
        .expect(2);
    ws.psn(&[
        "--hub",
        "acme",
        "--as",
        "erin",
        "reject",
        &second_id,
        "--reason",
        "Typo: tomorrow",
    ])
    .ok();
    let out = ws.psn(&[
        "--hub", "acme", "--as", "erin", "approve", &first_id, "--json",
    ]);
    out.ok();
    assert_eq!(out.json()["status"], "scheduled");
    ws.psn(&["--hub", "acme", "--as", "erin", "approve", &first_id])
        .expect(2);

    // The author sees why the other was rejected.
    let out = ws.psn(&["--hub", "acme", "--as", "bob", "show", &second_id, "--json"]);
    out.ok();
    let shown = out.json();
    assert_eq!(shown["status"], "rejected");
    assert_eq!(shown["reviews"][0]["decided_by"], "erin");
    assert_eq!(shown["reviews"][0]["reason"], "Typo: tomorrow");
    ws.psn(&["--hub", "acme", "--as", "bob", "show", &second_id])
        .ok()
        .stdout_has("rejected by erin")
        .stdout_has("Typo: tomorrow");
    // The author revises it and submits it again; only the author may.
    ws.psn(&[
        "--hub",
        "acme",
        "--as",
        "bob",
        "edit",
        &second_id,
        "Acme ships tomorrow",
    ])
    .ok();
    ws.psn(&["--hub", "acme", "--as", "erin", "submit", &second_id])
        .invalid("only its author");
    let out = ws.psn(&[
        "--hub", "acme", "--as", "bob", "submit", &second_id, "--json",
    ]);
    out.ok();
    assert_eq!(out.json()["status"], "pending_approval");
    assert_eq!(out.json()["text"], "Acme ships tomorrow");

    // A member joins from another workspace with the runtime role's URL alone.
    let bobs = TestWorkspace::new();
    bobs.psn(&[
        "hub",
        "add",
        "acme",
        "--database-url",
        &company.runtime_url(),
    ])
    .ok();
    let out = bobs.psn(&["--hub", "acme", "--as", "bob", "approvals", "--json"]);
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 1);
    bobs.psn(&["--as", "bob", "hub", "migrate", "acme"])
        .ok()
        .stdout_has("up to date");

    // Identity: `PSN_USER` beats the workspace's `config/hub.env`, which beats `$USER`.
    ws.write("config/hub.env", "PSN_USER=erin\n");
    let out = ws.psn(&["--hub", "acme", "approvals", "--json"]);
    out.ok();
    assert_eq!(
        out.json().as_array().unwrap().len(),
        1,
        "erin sees the resubmitted post"
    );
    ws.cmd(["--hub", "acme", "approve", &second_id])
        .env("PSN_USER", "bob")
        .run()
        .invalid("contributor");
    std::fs::remove_file(ws.path("config/hub.env")).unwrap();
    ws.psn(&["--hub", "acme", "team", "add", "x", "--role", "editor"])
        .invalid("tester is not a member");

    // The worker (its own role) publishes the approved post, once.
    worker().ok();
    let published = fake.posts();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].text, "Acme ships today");
    let out = ws.psn(&["--hub", "acme", "--as", "bob", "show", &first_id, "--json"]);
    out.ok();
    let shown = out.json();
    assert_eq!(shown["status"], "published");
    assert_eq!(
        shown["deliveries"][0]["external_id"],
        published[0].id.as_str()
    );

    // The audit log, read by the admin through the runtime role: who wrote, approved,
    // rejected and published, and when.
    let runtime_url = company.runtime_url();
    let (first_trail, second_trail) = block_on(async {
        let hub = Hub::open("acme", &runtime_url)
            .await
            .unwrap()
            .as_user("alice");
        let a = hub.audit_trail(&first_id).await.unwrap();
        let b = hub.audit_trail(&second_id).await.unwrap();
        hub.close().await;
        (a, b)
    });
    let actions: Vec<(&str, &str)> = first_trail
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(actions[0], ("post.create", "bob"));
    assert_eq!(actions[1], ("post.approve", "erin"));
    assert_eq!(actions[2].0, "delivery.published");
    assert_eq!(actions.len(), 3, "{actions:?}");
    let reject = second_trail
        .iter()
        .find(|e| e.action == "post.reject")
        .expect("rejection audited");
    assert_eq!(reject.actor, "erin");
    assert_eq!(reject.detail["reason"], "Typo: tomorrow");

    // Migration safety: a hub whose isolation was broken refuses members until an admin's
    // `psn hub migrate` restores it; a member cannot migrate.
    execute_sql(
        &company.owner_url(),
        "ALTER TABLE posts NO FORCE ROW LEVEL SECURITY",
    );
    ws.psn(&["--hub", "acme", "--as", "bob", "queue"])
        .expect(1)
        .stderr_has("FORCE ROW LEVEL SECURITY");
    ws.psn(&["--as", "bob", "hub", "migrate", "acme"])
        .invalid("an admin restores it with `psn hub migrate acme`");
    ws.psn(&["--as", "alice", "hub", "migrate", "acme"])
        .ok()
        .stdout_has("up to date");
    ws.psn(&["--hub", "acme", "--as", "bob", "queue"]).ok();
    ws.psn(&["--as", "bob", "doctor"])
        .ok()
        .stdout_has("isolation");

    // A migration this psn would apply: members are told to ask an admin.
    execute_sql(
        &company.owner_url(),
        "UPDATE psn_migrations SET version = -version WHERE version = (SELECT MAX(version) FROM psn_migrations)",
    );
    ws.psn(&["--hub", "acme", "--as", "bob", "queue"])
        .expect(1)
        .stderr_has("pending migrations")
        .stderr_has("ask an admin to run `psn hub migrate acme`");
    ws.psn(&["--as", "bob", "hub", "migrate", "acme"])
        .invalid("ask an admin to run `psn hub migrate acme`");
    execute_sql(
        &company.owner_url(),
        "UPDATE psn_migrations SET version = -version WHERE version < 0",
    );
    ws.psn(&["--hub", "acme", "--as", "bob", "queue"]).ok();
}

/// Without role URLs, psn names the runtime and worker roles after the database, creates them
/// with random passwords (the owner here may create roles), and writes their URLs.
#[test]
fn hub_add_creates_the_roles_when_the_owner_may() {
    let mut company = CompanyDb::new();
    let db_name = company.db.as_ref().unwrap().name().to_string();
    company.roles = vec![
        format!("psn_{db_name}_app"),
        format!("psn_{db_name}_worker"),
    ];
    let ws = TestWorkspace::new();
    let out = ws.psn(&[
        "--as",
        "alice",
        "hub",
        "add",
        "acme",
        "--owner-url",
        &company.owner_url(),
        "--json",
    ]);
    out.ok();
    let added = out.json();
    assert_eq!(added["runtime_role"], company.roles[0].as_str());
    assert_eq!(added["worker_role"], company.roles[1].as_str());
    let env = ws.read("config/connections/acme.env");
    assert!(
        env.contains(&format!("DATABASE_URL=postgres://{}:", company.roles[0])),
        "{env}"
    );
    assert!(
        !out.mentions(
            env.lines()
                .find(|l| l.starts_with("DATABASE_URL="))
                .unwrap()
        )
    );
    ws.psn(&["--hub", "acme", "--as", "alice", "team", "list"])
        .ok()
        .stdout_has("admin");
    // A stranger sees no team and can do nothing.
    let out = ws.psn(&["--hub", "acme", "--as", "mallory", "team", "list", "--json"]);
    out.ok();
    assert_eq!(out.json(), serde_json::json!([]));
    ws.psn(&[
        "--hub", "acme", "--as", "mallory", "team", "add", "mallory", "--role", "admin",
    ])
    .invalid("only admins");
    // Adding the same database again elsewhere needs the existing roles' URLs.
    let other = TestWorkspace::new();
    other
        .psn(&["hub", "add", "acme", "--owner-url", &company.owner_url()])
        .invalid("already exists");
}

/// An owner without CREATEROLE gets the SQL to hand to a database administrator, and nothing
/// is written.
#[test]
fn hub_add_prints_the_role_sql_when_the_owner_cannot_create_roles() {
    let mut company = CompanyDb::new();
    let owner = format!("{}_owner", company.roles[0]);
    company.roles.push(owner.clone());
    let admin = psn_store::testing::admin_url();
    execute_sql(
        &admin,
        &format!("CREATE ROLE \"{owner}\" LOGIN NOCREATEROLE"),
    );
    execute_sql(
        &company.owner_url(),
        &format!("GRANT CREATE ON SCHEMA public TO \"{owner}\""),
    );
    let ws = TestWorkspace::new();
    let out = ws.psn(&[
        "hub",
        "add",
        "acme",
        "--owner-url",
        &url_with_user(&company.owner_url(), &owner, ""),
    ]);
    out.invalid("cannot create roles")
        .stderr_has("CREATE ROLE")
        .stderr_has("NOBYPASSRLS")
        .stderr_has("--database-url");
    assert!(!ws.path("config/connections/acme.env").exists());
}
