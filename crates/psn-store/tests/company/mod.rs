//! Company hubs on PostgreSQL: members isolated by row-level security, approvals, migration
//! safety. Every check of what a member can do runs as the hub's runtime role (never as the
//! owner or a superuser, which bypass row-level security); the superuser only sets the hub up
//! and, in the proof tests, breaks it on purpose.
//!
//! The roles are cluster-wide, so each test creates its own with a random suffix and drops
//! them at the end (also when the test panics).

use psn_domain::{DeliveryStatus, Platform, PostId, PostStatus};
use psn_store::testing::{ThrowawayDatabase, admin_url};
use psn_store::{
    Account, CompanyRoles, Hub, ISOLATED_TABLES, PostFilter, StoreError, TeamRole, TokenCipher,
    url_with_user,
};
use sqlx::{Connection, PgConnection};

use crate::conformance::{at, cipher, new_account, new_post};

/// A company hub: a throwaway database set up by the superuser (the owner here), with a
/// runtime and a worker role of its own, and the members alice (admin, the first member),
/// erin (editor), bob and carol (contributors).
struct Company {
    db: Option<ThrowawayDatabase>,
    roles: CompanyRoles,
    runtime_url: String,
    worker_url: String,
    /// The runtime role's hub, acting as nobody.
    hub: Hub,
    cipher: TokenCipher,
}

const PASSWORD: &str = "runtime-pw";

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::getrandom(&mut bytes).expect("random");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Company {
    async fn new() -> Company {
        let db = ThrowawayDatabase::create().await;
        let suffix = random_suffix();
        let roles = CompanyRoles {
            runtime: format!("psn_test_{suffix}_app"),
            worker: format!("psn_test_{suffix}_worker"),
        };
        let runtime_url = url_with_user(&db.url, &roles.runtime, PASSWORD);
        let worker_url = url_with_user(&db.url, &roles.worker, PASSWORD);
        // Set up as the owner (the superuser of the test server).
        let owner = Hub::connect("acme", &db.url).await.expect("owner connects");
        owner.migrate().await.expect("migrate as owner");
        for role in [&roles.runtime, &roles.worker] {
            owner
                .ensure_login_role(role, PASSWORD)
                .await
                .expect("create role");
        }
        owner
            .setup_company(&roles, Some("alice"))
            .await
            .expect("company setup");
        owner.close().await;
        let hub = Hub::open("acme", &runtime_url)
            .await
            .expect("open as runtime role");
        let company = Company {
            db: Some(db),
            roles,
            runtime_url,
            worker_url,
            hub,
            cipher: cipher(),
        };
        assert!(company.hub.is_company());
        let alice = company.hub.as_user("alice");
        alice
            .add_team_member("erin", TeamRole::Editor, "alice")
            .await
            .expect("add erin");
        alice
            .add_team_member("bob", TeamRole::Contributor, "alice")
            .await
            .expect("add bob");
        alice
            .add_team_member("carol", TeamRole::Contributor, "alice")
            .await
            .expect("add carol");
        company
    }

    fn owner_url(&self) -> String {
        self.db.as_ref().expect("db").url.clone()
    }

    fn member(&self, user: &str) -> Hub {
        self.hub.as_user(user)
    }

    /// A raw connection as the runtime role.
    async fn runtime_conn(&self) -> PgConnection {
        PgConnection::connect(&self.runtime_url)
            .await
            .expect("runtime role connects")
    }

    /// Runs `sql` as the superuser on the hub's database (set-up and sabotage only).
    async fn as_superuser(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.owner_url())
            .await
            .expect("superuser connects");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
        conn.close().await.ok();
    }

    async fn finish(mut self) {
        self.hub.close().await;
        cleanup(self.db.take(), self.roles.clone());
    }
}

impl Drop for Company {
    fn drop(&mut self) {
        if self.db.is_some() {
            cleanup(self.db.take(), self.roles.clone());
        }
    }
}

/// Drops the database, then the roles (a role with privileges in a live database cannot be
/// dropped), on a thread with its own runtime so it also works from `Drop`.
fn cleanup(db: Option<ThrowawayDatabase>, roles: CompanyRoles) {
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime");
        rt.block_on(async {
            if let Some(db) = db {
                db.drop_database().await;
            }
            if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                for role in [&roles.runtime, &roles.worker] {
                    let _ = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS \"{role}\""))
                        .execute(&mut conn)
                        .await;
                }
                conn.close().await.ok();
            }
        });
    })
    .join();
    if joined.is_err() {
        eprintln!("warning: cleaning up a company test hub failed");
    }
}

/// Runs `sql` as the runtime role in one transaction acting as `user` (nobody when `None`),
/// returning the rows affected or the database's refusal.
async fn raw_as(company: &Company, user: Option<&str>, sql: &str) -> Result<u64, String> {
    let mut conn = company.runtime_conn().await;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    if let Some(user) = user {
        sqlx::query("SELECT set_config('app.user_id', $1, true)")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    let result = sqlx::query(sql).execute(&mut *tx).await;
    let out = match result {
        Ok(r) => Ok(r.rows_affected()),
        Err(e) => Err(e.to_string()),
    };
    tx.rollback().await.ok();
    conn.close().await.ok();
    out
}

/// Counts what `sql` (a `SELECT COUNT(*) …`) sees as the runtime role acting as `user`.
async fn count_as(company: &Company, user: Option<&str>, sql: &str) -> Result<i64, String> {
    let mut conn = company.runtime_conn().await;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    if let Some(user) = user {
        sqlx::query("SELECT set_config('app.user_id', $1, true)")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    let n = sqlx::query_scalar(sql)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| e.to_string());
    tx.rollback().await.ok();
    conn.close().await.ok();
    n
}

async fn company_account(company: &Company) -> Account {
    let mut new = new_account(Platform::X, "acme", "access-acme", Some("refresh-acme"));
    new.created_by = "alice".to_string();
    company
        .member("alice")
        .upsert_account(&new, &company.cipher)
        .await
        .expect("admin connects the company account")
        .0
}

async fn post_as(
    hub: &Hub,
    user: &str,
    phase: PostStatus,
    body: &str,
    account: &Account,
) -> PostId {
    hub.as_user(user)
        .create_post(&new_post(user, phase, Some(at(1)), body, &[account]))
        .await
        .unwrap_or_else(|e| panic!("{user} creates a post: {e}"))
        .into_post()
        .id
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Everything one member must not be able to do to another's rows, checked as the runtime
/// role. Returns the first violation instead of panicking, so the proof tests can show that
/// it fails when the database stops isolating. `check_posture` includes the hub's own
/// posture check ([`Hub::check_isolation`], run when a company hub is opened).
async fn isolation_violations(company: &Company, check_posture: bool) -> Result<(), String> {
    if check_posture {
        Hub::open("acme", &company.runtime_url)
            .await
            .map_err(|e| format!("the runtime role's hub does not open: {e}"))?
            .close()
            .await;
    }
    let account = company_account(company).await;
    let hub = &company.hub;
    let bob_post = post_as(hub, "bob", PostStatus::Scheduled, "bob pending", &account).await;
    let bob_draft = post_as(hub, "bob", PostStatus::Draft, "bob draft", &account).await;
    let carol_post = post_as(
        hub,
        "carol",
        PostStatus::Scheduled,
        "carol pending",
        &account,
    )
    .await;

    // Company posts wait for approval.
    let bob = company.member("bob");
    let post = bob.post(&bob_post).await.map_err(|e| e.to_string())?;
    ensure!(
        post.status == PostStatus::PendingApproval,
        "a company post starts as {}",
        post.status
    );
    ensure!(
        post.deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Held),
        "deliveries wait"
    );

    // Cross-member reads: carol sees her post only.
    let carol = company.member("carol");
    let seen: Vec<PostId> = carol
        .posts(&PostFilter::default())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.id)
        .collect();
    ensure!(
        seen == vec![carol_post.clone()],
        "carol sees {seen:?}, not only her post"
    );
    ensure!(
        matches!(
            carol.post(&bob_post).await,
            Err(StoreError::NotFound { .. })
        ),
        "carol reads bob's post"
    );
    let n = count_as(company, Some("carol"), "SELECT COUNT(*) FROM deliveries").await?;
    ensure!(n == 1, "carol sees {n} deliveries, not only her own");
    let n = count_as(company, Some("carol"), "SELECT COUNT(*) FROM audit_log").await?;
    let own = count_as(
        company,
        Some("carol"),
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'carol'",
    )
    .await?;
    ensure!(n == own, "carol reads other members' audit entries");

    // Cross-member updates and deletes touch nothing.
    let update = format!("UPDATE posts SET body = 'hijacked' WHERE id = '{bob_post}'");
    let n = raw_as(company, Some("carol"), &update).await?;
    ensure!(n == 0, "carol updated bob's post ({n} rows)");
    let n = raw_as(
        company,
        Some("carol"),
        &format!("UPDATE deliveries SET run_at = 0 WHERE post_id = '{bob_post}'"),
    )
    .await?;
    ensure!(n == 0, "carol updated bob's deliveries ({n} rows)");
    let n = raw_as(
        company,
        Some("carol"),
        &format!("DELETE FROM posts WHERE id = '{bob_post}'"),
    )
    .await?;
    ensure!(n == 0, "carol deleted bob's post ({n} rows)");
    let n = raw_as(
        company,
        Some("carol"),
        &format!("DELETE FROM deliveries WHERE post_id = '{bob_post}'"),
    )
    .await?;
    ensure!(n == 0, "carol deleted bob's deliveries ({n} rows)");
    let deleted = raw_as(company, Some("carol"), "DELETE FROM audit_log").await;
    ensure!(
        deleted.is_err() || deleted == Ok(0),
        "carol deleted audit entries ({deleted:?})"
    );

    // WITH CHECK: nobody writes rows in another member's name, or schedules without approval.
    let forged = "INSERT INTO posts (id, created_by, phase, status, body, created_at, updated_at) \
                  VALUES ('p_forged000000', 'bob', 'pending_approval', 'pending_approval', 'x', 0, 0)";
    ensure!(
        raw_as(company, Some("carol"), forged).await.is_err(),
        "carol inserted a post as bob"
    );
    let moved = format!("UPDATE posts SET created_by = 'bob' WHERE id = '{carol_post}'");
    ensure!(
        raw_as(company, Some("carol"), &moved).await.is_err(),
        "carol gave her post to bob"
    );
    let scheduled = "INSERT INTO posts (id, created_by, phase, status, body, created_at, updated_at) \
                     VALUES ('p_sneaky000000', 'carol', 'scheduled', 'scheduled', 'x', 0, 0)";
    ensure!(
        raw_as(company, Some("carol"), scheduled).await.is_err(),
        "carol inserted a scheduled post"
    );
    let self_approve = format!("UPDATE posts SET phase = 'scheduled' WHERE id = '{carol_post}'");
    ensure!(
        raw_as(company, Some("carol"), &self_approve).await.is_err(),
        "carol scheduled her own post"
    );
    let release =
        format!("UPDATE deliveries SET status = 'scheduled' WHERE post_id = '{carol_post}'");
    ensure!(
        raw_as(company, Some("carol"), &release).await.is_err(),
        "carol released her deliveries"
    );
    let review = format!(
        "INSERT INTO post_reviews (post_id, created_by, decision, decided_by, decided_at) \
         VALUES ('{carol_post}', 'carol', 'approved', 'erin', 0)"
    );
    ensure!(
        raw_as(company, Some("carol"), &review).await.is_err(),
        "carol forged erin's approval"
    );
    let audit = "INSERT INTO audit_log (at, actor, action, subject_type, subject_id) VALUES (0, 'erin', 'x', 'x', 'x')";
    ensure!(
        raw_as(company, Some("carol"), audit).await.is_err(),
        "carol wrote an audit entry as erin"
    );
    let promote = "UPDATE team_members SET role = 'admin' WHERE user_id = 'carol'";
    ensure!(
        raw_as(company, Some("carol"), promote)
            .await
            .map_or(true, |n| n == 0),
        "carol made herself admin"
    );

    // Editors see what awaits approval, never others' drafts.
    let erin = company.member("erin");
    let mut seen: Vec<PostId> = erin
        .posts(&PostFilter::default())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.id)
        .collect();
    seen.sort();
    let mut expected = vec![bob_post.clone(), carol_post.clone()];
    expected.sort();
    ensure!(
        seen == expected,
        "erin sees {seen:?}, expected the two pending posts"
    );
    ensure!(
        matches!(
            erin.post(&bob_draft).await,
            Err(StoreError::NotFound { .. })
        ),
        "erin reads bob's draft"
    );

    // Tokens: no member reads them back through the runtime role, admins included; the worker
    // role does.
    for user in ["bob", "erin", "alice"] {
        let read = count_as(
            company,
            Some(user),
            "SELECT COUNT(access_token_enc) FROM accounts",
        )
        .await;
        ensure!(read.is_err(), "{user} read token ciphertext: {read:?}");
        let read = count_as(
            company,
            Some(user),
            "SELECT COUNT(refresh_token_enc) FROM accounts",
        )
        .await;
        ensure!(
            read.is_err(),
            "{user} read refresh token ciphertext: {read:?}"
        );
    }
    ensure!(
        company
            .member("bob")
            .account_tokens(&account.id, &company.cipher)
            .await
            .is_err(),
        "bob's hub returned tokens"
    );
    let worker = Hub::open("acme", &company.worker_url)
        .await
        .map_err(|e| e.to_string())?;
    let tokens = worker.account_tokens(&account.id, &company.cipher).await;
    worker.close().await;
    ensure!(
        tokens.is_ok_and(|t| t.access_token.expose() == "access-acme"),
        "the worker role cannot read tokens"
    );
    let accounts = company
        .member("bob")
        .accounts()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(accounts.len() == 1, "members see the company's accounts");

    // Nobody set: nothing visible, nothing writable (fail closed).
    for table in ISOLATED_TABLES.iter().chain(["team_members"].iter()) {
        let n = count_as(company, None, &format!("SELECT COUNT(*) FROM {table}")).await?;
        ensure!(n == 0, "with no member set, {table} shows {n} rows");
    }
    let anonymous = "INSERT INTO posts (id, created_by, phase, status, body, created_at, updated_at) \
                     VALUES ('p_anonymous000', '', 'draft', 'draft', 'x', 0, 0)";
    ensure!(
        raw_as(company, None, anonymous).await.is_err(),
        "an insert with no member set succeeded"
    );
    ensure!(
        company
            .hub
            .posts(&PostFilter::default())
            .await
            .map_err(|e| e.to_string())?
            .is_empty(),
        "the hub acting as nobody lists posts"
    );
    // A stranger (not a member) sees nothing either.
    let n = count_as(company, Some("mallory"), "SELECT COUNT(*) FROM posts").await?;
    ensure!(n == 0, "a non-member sees {n} posts");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_isolated_by_the_database() {
    let company = Company::new().await;
    if let Err(violation) = isolation_violations(&company, true).await {
        panic!("isolation violated: {violation}");
    }
    company.finish().await;
}

/// Proof that the isolation test can fail: without `FORCE ROW LEVEL SECURITY` the hub refuses
/// to open (the posture check), and it opens again once `psn hub migrate` (setup) restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_test_fails_without_force_row_level_security() {
    let company = Company::new().await;
    company
        .as_superuser("ALTER TABLE posts NO FORCE ROW LEVEL SECURITY")
        .await;
    let result = isolation_violations(&company, true).await;
    let err = result.expect_err("the isolation test passed without FORCE ROW LEVEL SECURITY");
    assert!(
        err.contains("FORCE ROW LEVEL SECURITY") && err.contains("posts"),
        "{err}"
    );
    // What an admin's `psn hub migrate` does restores it.
    let owner = Hub::connect("acme", &company.owner_url()).await.unwrap();
    let roles = owner.company_roles().await.unwrap().expect("company roles");
    assert_eq!(roles, company.roles);
    owner.setup_company(&roles, None).await.unwrap();
    owner.close().await;
    Hub::open("acme", &company.runtime_url)
        .await
        .expect("opens again")
        .close()
        .await;
    company.finish().await;
}

/// Proof that the isolation test can fail: a runtime role with BYPASSRLS is refused when the
/// hub opens, and — the posture check left out — the member checks see the leak themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_test_fails_when_the_runtime_role_bypasses_rls() {
    let company = Company::new().await;
    company
        .as_superuser(&format!(
            "ALTER ROLE \"{}\" BYPASSRLS",
            company.roles.runtime
        ))
        .await;
    let err = Hub::open("acme", &company.runtime_url)
        .await
        .expect_err("a BYPASSRLS runtime role is refused");
    assert!(matches!(err, StoreError::NotIsolated { .. }), "{err}");
    let err = isolation_violations(&company, false)
        .await
        .expect_err("the member checks passed with BYPASSRLS");
    assert!(err.contains("carol"), "{err}");
    company.finish().await;
}

/// The acting member is set per transaction: many interleaved transactions of two members
/// and of nobody over one shared pool each see exactly their own rows (seed 000, pitfall 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_values_do_not_leak_between_members_on_a_shared_pool() {
    let company = Company::new().await;
    let account = company_account(&company).await;
    let bob_post = post_as(&company.hub, "bob", PostStatus::Scheduled, "bob", &account).await;
    let carol_post = post_as(
        &company.hub,
        "carol",
        PostStatus::Scheduled,
        "carol",
        &account,
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (user, expected) = match i % 3 {
            0 => (Some("bob"), vec![bob_post.clone()]),
            1 => (Some("carol"), vec![carol_post.clone()]),
            _ => (None, Vec::new()),
        };
        let hub = match user {
            Some(u) => company.member(u),
            None => company.hub.clone(),
        };
        tasks.spawn(async move {
            // A write transaction (`write_tx!`) and reads (`on_db!`), interleaved with the
            // other tasks' on the same pool.
            if let Some(u) = user {
                hub.reschedule_post(&expected[0], at(2 + (i % 5) as i64), u)
                    .await
                    .expect("reschedule own post");
            }
            let seen: Vec<PostId> = hub
                .posts(&PostFilter::default())
                .await
                .expect("list")
                .into_iter()
                .map(|p| p.id)
                .collect();
            assert_eq!(seen, expected, "{user:?} saw another member's rows");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    // Two transactions held open at once on one pool, interleaved statement by statement.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&company.runtime_url)
        .await
        .unwrap();
    let mut first = pool.begin().await.unwrap();
    let mut second = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.user_id', 'bob', true)")
        .execute(&mut *first)
        .await
        .unwrap();
    sqlx::query("SELECT set_config('app.user_id', 'carol', true)")
        .execute(&mut *second)
        .await
        .unwrap();
    let a: String = sqlx::query_scalar("SELECT body FROM posts")
        .fetch_one(&mut *first)
        .await
        .unwrap();
    let b: String = sqlx::query_scalar("SELECT body FROM posts")
        .fetch_one(&mut *second)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("bob", "carol"));
    first.commit().await.unwrap();
    second.commit().await.unwrap();
    // The connections are back in the pool: a transaction that sets nobody sees nothing.
    for _ in 0..4 {
        let mut tx = pool.begin().await.unwrap();
        let user: Option<String> =
            sqlx::query_scalar("SELECT NULLIF(current_setting('app.user_id', true), '')")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(user, None, "a member's identity outlived its transaction");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM posts")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0);
        tx.commit().await.unwrap();
    }
    pool.close().await;
    company.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_schedule_posts_and_record_who_decided() {
    let company = Company::new().await;
    let account = company_account(&company).await;
    let bob_post = post_as(&company.hub, "bob", PostStatus::Scheduled, "bob", &account).await;
    let erin_post = post_as(
        &company.hub,
        "erin",
        PostStatus::Scheduled,
        "erin",
        &account,
    )
    .await;
    let bob = company.member("bob");
    let erin = company.member("erin");
    let alice = company.member("alice");

    // A contributor approves nothing, not even their own post.
    let err = bob.approve_post(&bob_post, "bob").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Forbidden(_)) && err.to_string().contains("contributor"),
        "{err}"
    );
    // Nobody approves their own post.
    let err = erin.approve_post(&erin_post, "erin").await.unwrap_err();
    assert!(err.to_string().contains("another editor or admin"), "{err}");
    // A contributor cannot see, so cannot approve, another's post.
    let carol = company.member("carol");
    assert!(matches!(
        carol.approve_post(&erin_post, "carol").await,
        Err(StoreError::NotFound { .. })
    ));

    let approved = erin
        .approve_post(&bob_post, "erin")
        .await
        .expect("erin approves");
    assert_eq!(approved.status, PostStatus::Scheduled);
    // The author cannot change the approved text; an editor can.
    let edit = |body: &str| psn_store::PostEdit {
        body: body.to_string(),
        language: None,
        segments: vec![(Platform::X, vec![body.to_string()])],
    };
    let err = bob
        .edit_post(&bob_post, &edit("unapproved words"), "bob")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Forbidden(_)) && err.to_string().contains("approved post"),
        "{err}"
    );
    assert_eq!(
        bob.post(&bob_post).await.unwrap().deliveries[0].segments,
        approved.deliveries[0].segments
    );
    erin.edit_post(&bob_post, &edit("bob, copy-edited"), "erin")
        .await
        .expect("an editor edits");
    assert!(
        approved
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Scheduled)
    );
    // Twice is a refused transition, not a second approval.
    assert!(
        erin.approve_post(&bob_post, "erin")
            .await
            .unwrap_err()
            .is_user_error()
    );

    let rejected = alice
        .reject_post(&erin_post, "alice", "Use the product's full name")
        .await
        .expect("alice rejects");
    assert_eq!(rejected.status, PostStatus::Rejected);
    assert!(
        rejected
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Held)
    );
    let reviews = erin.post_reviews(&erin_post).await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].decision, "rejected");
    assert_eq!(reviews[0].decided_by, "alice");
    assert_eq!(
        reviews[0].reason.as_deref(),
        Some("Use the product's full name")
    );
    assert!(
        alice
            .reject_post(&bob_post, "alice", " ")
            .await
            .unwrap_err()
            .is_user_error()
    );

    // The audit log has every decision with who and when (read by an admin).
    let trail = alice.audit_trail(bob_post.as_str()).await.unwrap();
    let approve = trail
        .iter()
        .find(|e| e.action == "post.approve")
        .expect("approval audited");
    assert_eq!(approve.actor, "erin");
    assert_eq!(approve.detail["author"], "bob");
    let trail = alice.audit_trail(erin_post.as_str()).await.unwrap();
    let reject = trail
        .iter()
        .find(|e| e.action == "post.reject")
        .expect("rejection audited");
    assert_eq!(reject.actor, "alice");
    assert_eq!(reject.detail["reason"], "Use the product's full name");
    company.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_roles_are_managed_by_admins_only() {
    let company = Company::new().await;
    let bob = company.member("bob");
    let err = bob
        .add_team_member("bob", TeamRole::Admin, "bob")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    let err = bob.remove_team_member("carol", "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    let alice = company.member("alice");
    let err = alice
        .remove_team_member("alice", "alice")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("last admin"), "{err}");
    let err = alice
        .add_team_member("alice", TeamRole::Editor, "alice")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("last admin"), "{err}");
    let (_, created) = alice
        .add_team_member("carol", TeamRole::Editor, "alice")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        alice.team_role("carol").await.unwrap(),
        Some(TeamRole::Editor)
    );
    assert_eq!(
        alice.remove_team_member("carol", "alice").await.unwrap(),
        TeamRole::Editor
    );
    let members: Vec<(String, TeamRole)> = bob
        .team_members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(
        members,
        [
            ("alice".to_string(), TeamRole::Admin),
            ("erin".to_string(), TeamRole::Editor),
            ("bob".to_string(), TeamRole::Contributor)
        ]
    );
    // A removed member sees nothing any more.
    assert!(
        company
            .member("carol")
            .team_members()
            .await
            .unwrap()
            .is_empty()
    );
    company.finish().await;
}

/// Every unique constraint of a team-scoped table includes the tenant column, so a unique
/// violation never reveals another member's row (seed 000, pitfall 16). Exempt: primary keys
/// on ids psn generates at random, and the one-claimed-delivery-per-account index, which only
/// the worker's claims (never a member) can violate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_constraints_include_the_tenant_column() {
    let company = Company::new().await;
    let mut conn = PgConnection::connect(&company.owner_url()).await.unwrap();
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisprimary, \
         ARRAY(SELECT a.attname::text FROM unnest(x.indkey) k JOIN pg_attribute a \
               ON a.attrelid = t.oid AND a.attnum = k) \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         WHERE x.indisunique AND t.relname = ANY($1)",
    )
    .bind(ISOLATED_TABLES.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for (table, index, primary, columns) in rows {
        if primary && columns == ["id"] || index == "deliveries_one_in_flight" {
            continue;
        }
        assert!(
            columns.iter().any(|c| c == "created_by"),
            "unique index {index} on {table} ({columns:?}) lacks the tenant column"
        );
    }
    conn.close().await.ok();
    company.finish().await;
}

/// Migration safety: members never migrate a company hub. With a migration pending, the
/// runtime role's hub refuses to open and says who can fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_migrations_ask_for_an_admin() {
    let company = Company::new().await;
    company
        .as_superuser(
            "DELETE FROM psn_migrations WHERE version = (SELECT MAX(version) FROM psn_migrations)",
        )
        .await;
    let err = Hub::open("acme", &company.runtime_url).await.unwrap_err();
    assert!(matches!(err, StoreError::PendingMigrations { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ask an admin to run `psn hub migrate acme`"),
        "{err}"
    );
    // The runtime role cannot migrate even if it tried: it owns nothing and creates nothing.
    let hub = Hub::connect("acme", &company.runtime_url).await.unwrap();
    assert!(hub.migrate().await.is_err());
    hub.close().await;
    company.finish().await;
}
