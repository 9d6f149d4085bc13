//! Company hubs: team members with roles, approvals, and the row-level security that isolates
//! members from each other inside the database (seed 001, patterns 3 and 6; seed 000,
//! pitfalls 2, 6, 10 and 16).
//!
//! A company hub is a PostgreSQL database with three roles:
//! - the **owner** owns the tables and runs migrations (admins only, `psn hub migrate NAME`);
//! - the **runtime** role runs every member's queries: it owns nothing, cannot bypass
//!   row-level security, and may read token columns not at all;
//! - the **worker** role publishes: it sees every row (its own policies) and reads tokens.
//!
//! The acting member is set per transaction (`set_config('app.user_id', …, true)`, see
//! [`crate::CompanyPool::begin`]): with nobody set, the runtime role sees nothing and cannot
//! write (fail closed). Every team-scoped table has `FORCE ROW LEVEL SECURITY`, so even its
//! owner is subject to the policies. [`company_security_sql`] is the whole policy set; it is
//! re-applied after every migration, so new tables and columns get their grants.

use chrono::{DateTime, Utc};
use psn_domain::{DeliveryEvent, DeliveryStatus, PostEvent, PostId, PostStatus};
use serde::Serialize;
use sqlx::{Executor as _, PgPool};

use crate::audit::audit;
use crate::posts::refresh_post_status;
use crate::time::{from_ms, now_ms};
use crate::{Backend, CompanyPool, Hub, Post, StoreError, on_db, write_tx};

/// The tables whose rows belong to members: row-level security with `FORCE` on each.
pub const ISOLATED_TABLES: &[&str] = &[
    "posts",
    "deliveries",
    "delivery_attempts",
    "accounts",
    "post_reviews",
    "audit_log",
    "alerts",
];

/// The token columns of `accounts`: only the worker role may read them.
const TOKEN_COLUMNS: &[&str] = &["access_token_enc", "refresh_token_enc"];

/// A member's role on a company hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    /// Manages members and accounts, approves, migrates.
    Admin,
    /// Approves and rejects other members' posts.
    Editor,
    /// Writes posts, which wait for an editor's or admin's approval.
    Contributor,
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::Editor => "editor",
            TeamRole::Contributor => "contributor",
        }
    }

    pub fn parse(s: &str) -> Result<TeamRole, StoreError> {
        match s {
            "admin" => Ok(TeamRole::Admin),
            "editor" => Ok(TeamRole::Editor),
            "contributor" => Ok(TeamRole::Contributor),
            other => Err(StoreError::Invalid(format!(
                "'{other}' is not a team role: use admin, editor or contributor"
            ))),
        }
    }

    /// Whether the role may approve and reject posts.
    pub fn approves(self) -> bool {
        matches!(self, TeamRole::Admin | TeamRole::Editor)
    }
}

impl std::fmt::Display for TeamRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a company hub.
#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    pub user: String,
    pub role: TeamRole,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// One approval decision on a post.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub decision: String,
    pub decided_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// The PostgreSQL roles of a company hub besides its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRoles {
    /// The members' role: owns nothing, no `BYPASSRLS`.
    pub runtime: String,
    /// The worker's role.
    pub worker: String,
}

/// `"name"`, with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether the database behind `pool` was set up as a company hub.
pub(crate) async fn is_company_database(pool: &PgPool) -> Result<bool, StoreError> {
    let has_meta: bool = sqlx::query_scalar("SELECT to_regclass('hub_meta') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !has_meta {
        return Ok(false);
    }
    let kind: Option<String> =
        sqlx::query_scalar("SELECT value FROM hub_meta WHERE key = 'hub_kind'")
            .fetch_optional(pool)
            .await?;
    Ok(kind.as_deref() == Some("company"))
}

/// The row-level security of a company hub: helper functions, `FORCE ROW LEVEL SECURITY` on
/// every table of [`ISOLATED_TABLES`], the policies of the runtime and worker roles, and their
/// grants. `schema` is where the hub's tables live; `account_columns` the columns of
/// `accounts` the runtime role may read (every column but the tokens). Idempotent once the
/// existing policies are dropped (see [`Hub::apply_company_security`]).
pub fn company_security_sql(
    schema: &str,
    roles: &CompanyRoles,
    account_columns: &[String],
) -> String {
    let app = quote_ident(&roles.runtime);
    let worker = quote_ident(&roles.worker);
    let schema_q = quote_ident(schema);
    let app_literal = format!("'{}'", roles.runtime.replace('\'', "''"));
    let mut sql = format!(
        r#"
CREATE OR REPLACE FUNCTION psn_user() RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '') $$;
-- Runs as the owner (team_members is not FORCEd, so the owner reads it without recursing into
-- its own policies); returns NULL when nobody or a non-member is acting.
CREATE OR REPLACE FUNCTION psn_team_role() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = {schema_q}
    AS $$ SELECT role FROM team_members WHERE user_id = NULLIF(current_setting('app.user_id', true), '') $$;
REVOKE ALL ON FUNCTION psn_team_role() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION psn_user(), psn_team_role() TO {app}, {worker};

ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY team_read ON team_members FOR SELECT TO {app} USING (psn_team_role() IS NOT NULL);
CREATE POLICY team_insert ON team_members FOR INSERT TO {app} WITH CHECK (psn_team_role() = 'admin');
CREATE POLICY team_update ON team_members FOR UPDATE TO {app}
    USING (psn_team_role() = 'admin') WITH CHECK (psn_team_role() = 'admin');
CREATE POLICY team_delete ON team_members FOR DELETE TO {app} USING (psn_team_role() = 'admin');
CREATE POLICY worker_read ON team_members FOR SELECT TO {worker} USING (true);

-- Posts: contributors see their own; editors and admins also see everything past draft.
CREATE POLICY posts_read ON posts FOR SELECT TO {app} USING (
    (created_by = psn_user() AND psn_team_role() IS NOT NULL)
    OR (psn_team_role() IN ('admin', 'editor') AND phase <> 'draft'));
-- New posts are written by their author and start as drafts or awaiting approval.
CREATE POLICY posts_insert ON posts FOR INSERT TO {app} WITH CHECK (
    created_by = psn_user() AND psn_team_role() IS NOT NULL
    AND phase IN ('draft', 'pending_approval'));
-- A post is scheduled only with an approval by an editor or admin who is not its author.
CREATE POLICY posts_update ON posts FOR UPDATE TO {app}
    USING ((created_by = psn_user() AND psn_team_role() IS NOT NULL)
        OR (psn_team_role() IN ('admin', 'editor') AND phase <> 'draft'))
    WITH CHECK (((created_by = psn_user() AND psn_team_role() IS NOT NULL)
            OR psn_team_role() IN ('admin', 'editor'))
        AND (phase <> 'scheduled' OR EXISTS (SELECT 1 FROM post_reviews r
            WHERE r.post_id = posts.id AND r.decision = 'approved'
            AND r.decided_by <> posts.created_by)));
CREATE POLICY posts_delete ON posts FOR DELETE TO {app} USING (psn_team_role() = 'admin');

-- Deliveries follow their post; a delivery leaves `held` only on an approved post.
CREATE POLICY deliveries_read ON deliveries FOR SELECT TO {app} USING (
    EXISTS (SELECT 1 FROM posts p WHERE p.id = deliveries.post_id));
CREATE POLICY deliveries_insert ON deliveries FOR INSERT TO {app} WITH CHECK (
    created_by = psn_user() AND status = 'held'
    AND EXISTS (SELECT 1 FROM posts p WHERE p.id = deliveries.post_id AND p.created_by = psn_user()));
CREATE POLICY deliveries_update ON deliveries FOR UPDATE TO {app}
    USING (EXISTS (SELECT 1 FROM posts p WHERE p.id = deliveries.post_id))
    WITH CHECK (EXISTS (SELECT 1 FROM posts p WHERE p.id = deliveries.post_id
        AND (p.phase = 'scheduled' OR deliveries.status IN ('held', 'cancelled'))));

CREATE POLICY attempts_read ON delivery_attempts FOR SELECT TO {app} USING (
    EXISTS (SELECT 1 FROM deliveries d WHERE d.id = delivery_attempts.delivery_id));

-- Accounts are the company's: every member sees them (never their tokens: column grants
-- below), only admins connect, reconnect and disconnect them.
CREATE POLICY accounts_read ON accounts FOR SELECT TO {app} USING (psn_team_role() IS NOT NULL);
CREATE POLICY accounts_insert ON accounts FOR INSERT TO {app} WITH CHECK (
    psn_team_role() = 'admin' AND created_by = psn_user());
CREATE POLICY accounts_update ON accounts FOR UPDATE TO {app}
    USING (psn_team_role() = 'admin') WITH CHECK (psn_team_role() = 'admin');

-- Decisions: the author sees those on their posts, editors and admins all; only an editor or
-- admin decides, never on their own post, and always in their own name.
CREATE POLICY reviews_read ON post_reviews FOR SELECT TO {app} USING (
    (created_by = psn_user() AND psn_team_role() IS NOT NULL)
    OR psn_team_role() IN ('admin', 'editor'));
CREATE POLICY reviews_insert ON post_reviews FOR INSERT TO {app} WITH CHECK (
    decided_by = psn_user() AND psn_team_role() IN ('admin', 'editor')
    AND decided_by <> created_by
    AND created_by = (SELECT p.created_by FROM posts p WHERE p.id = post_reviews.post_id));

-- The audit log: written in the actor's own name; members read their entries, admins all.
CREATE POLICY audit_read ON audit_log FOR SELECT TO {app} USING (
    (actor = psn_user() AND psn_team_role() IS NOT NULL) OR psn_team_role() = 'admin');
CREATE POLICY audit_insert ON audit_log FOR INSERT TO {app} WITH CHECK (
    actor = psn_user() AND psn_team_role() IS NOT NULL);

CREATE POLICY alerts_read ON alerts FOR SELECT TO {app} USING (
    (created_by = psn_user() AND psn_team_role() IS NOT NULL)
    OR psn_team_role() IN ('admin', 'editor'));
CREATE POLICY alerts_update ON alerts FOR UPDATE TO {app}
    USING (psn_team_role() = 'admin') WITH CHECK (psn_team_role() = 'admin');

-- An approved post's content is changed by editors and admins only: a contributor's edit
-- would otherwise publish text nobody approved. (The policies see only the new row; this
-- compares it with the old one.)
CREATE OR REPLACE FUNCTION psn_guard_approved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user = {app_literal}
       AND COALESCE(psn_team_role(), '') NOT IN ('admin', 'editor')
       AND EXISTS (SELECT 1 FROM posts p WHERE p.id = NEW.post_id AND p.phase = 'scheduled')
       AND NEW.segments IS DISTINCT FROM OLD.segments THEN
        RAISE EXCEPTION 'an approved post is changed by editors and admins only; cancel it and post it again for approval'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS psn_guard_approved ON deliveries;
CREATE TRIGGER psn_guard_approved BEFORE UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION psn_guard_approved();

GRANT USAGE ON SCHEMA {schema_q} TO {app}, {worker};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_q} TO {worker};
REVOKE INSERT, UPDATE, DELETE ON hub_meta, psn_migrations FROM {worker};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {app}, {worker};
REVOKE ALL ON ALL TABLES IN SCHEMA {schema_q} FROM {app};
GRANT SELECT ON hub_meta, psn_migrations, breakers, rate_budgets TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE ON posts, deliveries, team_members TO {app};
GRANT SELECT, INSERT ON post_reviews, audit_log TO {app};
GRANT SELECT ON delivery_attempts TO {app};
GRANT SELECT, UPDATE ON alerts TO {app};
GRANT INSERT, UPDATE ON accounts TO {app};
"#
    );
    if !account_columns.is_empty() {
        let cols: Vec<String> = account_columns.iter().map(|c| quote_ident(c)).collect();
        sql.push_str(&format!(
            "GRANT SELECT ({}) ON accounts TO {app};\n",
            cols.join(", ")
        ));
    }
    for table in ISOLATED_TABLES {
        sql.push_str(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n\
             CREATE POLICY worker_all ON {table} TO {worker} USING (true) WITH CHECK (true);\n"
        ));
    }
    sql
}

/// The SQL an administrator runs when the owner may not create roles (`CREATEROLE`), for the
/// README and for `psn hub add`'s refusal. Passwords are placeholders.
pub fn role_sql(database: &str, roles: &CompanyRoles) -> String {
    let mut out = String::new();
    for role in [&roles.runtime, &roles.worker] {
        out.push_str(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '…' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;\n",
            quote_ident(role)
        ));
    }
    out.push_str(&format!(
        "GRANT CONNECT ON DATABASE {} TO {}, {};\n",
        quote_ident(database),
        quote_ident(&roles.runtime),
        quote_ident(&roles.worker)
    ));
    out
}

/// What [`Hub::ensure_login_role`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleOutcome {
    Existed,
    Created,
}

/// Inside a transaction: refuses unless `actor` is an admin of the hub.
macro_rules! require_admin {
    ($tx:expr, $actor:expr, $what:expr) => {{
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM team_members WHERE user_id = $1")
                .bind($actor)
                .fetch_optional($tx)
                .await?;
        match role.as_deref() {
            Some("admin") => {}
            Some(other) => {
                return Err(StoreError::Forbidden(format!(
                    "only admins {}; {} is a {other}",
                    $what, $actor
                )));
            }
            None => {
                return Err(StoreError::Forbidden(format!(
                    "only admins {}; {} is not a member of this hub",
                    $what, $actor
                )));
            }
        }
    }};
}

/// Inside a transaction: refuses when `user` is the hub's only admin.
macro_rules! ensure_another_admin {
    ($tx:expr, $user:expr) => {{
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM team_members WHERE role = 'admin' AND user_id <> $1",
        )
        .bind($user)
        .fetch_one($tx)
        .await?;
        if others == 0 {
            return Err(StoreError::Conflict(format!(
                "{} is the hub's last admin; make another member admin first (`psn team add USER --role admin`)",
                $user
            )));
        }
    }};
}

impl Hub {
    fn owner_pool(&self) -> Result<&PgPool, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) | Backend::Company(CompanyPool { pool, .. }) => Ok(pool),
            Backend::Sqlite(_) => Err(StoreError::Invalid(
                "company hubs are PostgreSQL only: a SQLite hub lives on one machine; use a postgres:// URL"
                    .to_string(),
            )),
        }
    }

    fn company_only(&self, what: &str) -> Result<(), StoreError> {
        if self.is_company() {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!(
                "{what} belong to company hubs; hub '{}' is not one (add one with `psn hub add NAME --owner-url postgres://…`, then use --hub NAME)",
                self.name
            )))
        }
    }

    /// On a hub connected as its owner: whether that role may create roles.
    pub async fn can_create_roles(&self) -> Result<bool, StoreError> {
        let pool = self.owner_pool()?;
        Ok(sqlx::query_scalar(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(pool)
        .await?)
    }

    /// On a hub connected as its owner: whether a role exists.
    pub async fn role_exists(&self, role: &str) -> Result<bool, StoreError> {
        let pool = self.owner_pool()?;
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(pool)
                .await?,
        )
    }

    /// The current database's name.
    pub async fn database_name(&self) -> Result<String, StoreError> {
        let pool = self.owner_pool()?;
        Ok(sqlx::query_scalar("SELECT current_database()")
            .fetch_one(pool)
            .await?)
    }

    /// On a hub connected as its owner: creates `role` as a login role that cannot bypass
    /// row-level security, unless it exists.
    pub async fn ensure_login_role(
        &self,
        role: &str,
        password: &str,
    ) -> Result<RoleOutcome, StoreError> {
        if self.role_exists(role).await? {
            return Ok(RoleOutcome::Existed);
        }
        let pool = self.owner_pool()?;
        // CREATE ROLE takes no bind parameters. The name and password travel as parameters
        // into a transaction-local setting and are quoted by `format` on the server, so no
        // statement text (which debug logs show) ever contains the password.
        let mut tx = pool.begin().await?;
        sqlx::query(
            "SELECT set_config('psn.new_role', $1, true), set_config('psn.new_password', $2, true)",
        )
        .bind(role)
        .bind(password)
        .execute(&mut *tx)
        .await?;
        (&mut *tx)
            .execute(sqlx::raw_sql(
                "DO $$ BEGIN EXECUTE format(\
                 'CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', \
                 current_setting('psn.new_role'), current_setting('psn.new_password')); END $$",
            ))
            .await?;
        tx.commit().await?;
        Ok(RoleOutcome::Created)
    }

    /// On a hub connected as its owner, after [`Hub::migrate`]: makes the database a company
    /// hub — records the roles, applies [`company_security_sql`], and makes `first_admin` an
    /// admin when the team is empty. Safe to run again (it is how `psn hub migrate` restores
    /// the policies after new migrations).
    pub async fn setup_company(
        &self,
        roles: &CompanyRoles,
        first_admin: Option<&str>,
    ) -> Result<(), StoreError> {
        let pool = self.owner_pool()?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(COMPANY_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        for (key, value) in [
            ("hub_kind", "company"),
            ("runtime_role", roles.runtime.as_str()),
            ("worker_role", roles.worker.as_str()),
        ] {
            sqlx::query(
                "INSERT INTO hub_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut *tx)
            .await?;
        // Drop every existing policy of the hub's tables, then create the current set.
        let policies: Vec<(String, String)> = sqlx::query_as(
            "SELECT policyname::text, tablename::text FROM pg_policies WHERE schemaname = $1",
        )
        .bind(&schema)
        .fetch_all(&mut *tx)
        .await?;
        for (policy, table) in policies {
            (&mut *tx)
                .execute(sqlx::raw_sql(&format!(
                    "DROP POLICY {} ON {}",
                    quote_ident(&policy),
                    quote_ident(&table)
                )))
                .await?;
        }
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'accounts' ORDER BY ordinal_position",
        )
        .bind(&schema)
        .fetch_all(&mut *tx)
        .await?;
        let readable: Vec<String> = columns
            .into_iter()
            .filter(|c| !TOKEN_COLUMNS.contains(&c.as_str()))
            .collect();
        let sql = company_security_sql(&schema, roles, &readable);
        (&mut *tx).execute(sqlx::raw_sql(&sql)).await?;
        if let Some(admin) = first_admin {
            let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM team_members")
                .fetch_one(&mut *tx)
                .await?;
            if members == 0 {
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO team_members (user_id, role, added_by, added_at, updated_at) \
                     VALUES ($1, 'admin', $1, $2, $2)",
                )
                .bind(admin)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// On a hub connected as its owner: the roles recorded by [`Hub::setup_company`], if any.
    pub async fn company_roles(&self) -> Result<Option<CompanyRoles>, StoreError> {
        let pool = self.owner_pool()?;
        if !is_company_database(pool).await? {
            return Ok(None);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, value FROM hub_meta WHERE key IN ('runtime_role', 'worker_role')",
        )
        .fetch_all(pool)
        .await?;
        let get = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match (get("runtime_role"), get("worker_role")) {
            (Some(runtime), Some(worker)) => Ok(Some(CompanyRoles { runtime, worker })),
            _ => Err(StoreError::Corrupt(
                "the company hub has no runtime_role/worker_role in hub_meta".to_string(),
            )),
        }
    }

    /// Checks, as the connected role, that the database isolates members: the role is no
    /// superuser, has no `BYPASSRLS`, owns (or inherits ownership of) none of the team-scoped
    /// tables, and each of them has row-level security with `FORCE`. A company hub that fails
    /// is not opened.
    pub async fn check_isolation(&self) -> Result<(), StoreError> {
        let Backend::Company(company) = &self.backend else {
            return Ok(());
        };
        let pool = &company.pool;
        let not_isolated = |detail: String| StoreError::NotIsolated {
            hub: self.name.clone(),
            detail,
        };
        let (role, superuser, bypass): (String, bool, bool) = sqlx::query_as(
            "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(pool)
        .await?;
        if superuser || bypass {
            return Err(not_isolated(format!(
                "the role '{role}' bypasses row-level security (superuser or BYPASSRLS); connect as the hub's runtime role (README, Company hubs)"
            )));
        }
        let tables: Vec<String> = ISOLATED_TABLES.iter().map(|t| t.to_string()).collect();
        let rows: Vec<(String, bool, bool, bool)> = sqlx::query_as(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
             pg_has_role(current_user, c.relowner, 'USAGE') \
             FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace \
             AND c.relkind = 'r' AND c.relname = ANY($1)",
        )
        .bind(&tables)
        .fetch_all(pool)
        .await?;
        for table in ISOLATED_TABLES {
            let Some((_, rls, force, owns)) = rows.iter().find(|r| r.0 == *table) else {
                return Err(not_isolated(format!("table {table} is missing")));
            };
            if *owns {
                return Err(not_isolated(format!(
                    "the role '{role}' owns table {table} (owners can switch row-level security off); connect as the hub's runtime role"
                )));
            }
            if !rls || !force {
                return Err(not_isolated(format!(
                    "table {table} lacks FORCE ROW LEVEL SECURITY; an admin restores it with `psn hub migrate {}`",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// The members of the hub, admins first.
    pub async fn team_members(&self) -> Result<Vec<TeamMember>, StoreError> {
        self.company_only("team members")?;
        let rows: Vec<(String, String, String, i64)> = on_db!(&self.backend, db =>
            sqlx::query_as("SELECT user_id, role, added_by, added_at FROM team_members \
                            ORDER BY CASE role WHEN 'admin' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, user_id")
                .fetch_all(db).await?);
        rows.into_iter()
            .map(|(user, role, added_by, added_at)| {
                Ok(TeamMember {
                    user,
                    role: TeamRole::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    added_by,
                    added_at: from_ms(added_at),
                })
            })
            .collect()
    }

    /// The role of `user` on this hub (`None` for a non-member, or when the acting member may
    /// not see the team).
    pub async fn team_role(&self, user: &str) -> Result<Option<TeamRole>, StoreError> {
        self.company_only("team members")?;
        let role: Option<String> = on_db!(&self.backend, db =>
            sqlx::query_scalar("SELECT role FROM team_members WHERE user_id = $1")
                .bind(user).fetch_optional(db).await?);
        role.map(|r| TeamRole::parse(&r)).transpose()
    }

    /// Adds a member, or changes an existing member's role. Admins only; the last admin cannot
    /// be demoted. Returns the member and whether they were new.
    pub async fn add_team_member(
        &self,
        user: &str,
        role: TeamRole,
        actor: &str,
    ) -> Result<(TeamMember, bool), StoreError> {
        self.company_only("team members")?;
        self.ensure_writable()?;
        let user = user.trim();
        if user.is_empty() || user.len() > 200 || user.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a team member is a non-empty user name (at most 200 characters)".to_string(),
            ));
        }
        let now = now_ms();
        let created = write_tx!(&self.backend, tx => {
            require_admin!(&mut *tx, actor, "manage the team");
            let existing: Option<String> =
                sqlx::query_scalar("SELECT role FROM team_members WHERE user_id = $1")
                    .bind(user).fetch_optional(&mut *tx).await?;
            match existing.as_deref() {
                None => {
                    sqlx::query("INSERT INTO team_members (user_id, role, added_by, added_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $4)")
                        .bind(user).bind(role.as_str()).bind(actor).bind(now)
                        .execute(&mut *tx).await?;
                }
                Some(old) => {
                    if old == "admin" && role != TeamRole::Admin {
                        ensure_another_admin!(&mut *tx, user);
                    }
                    sqlx::query("UPDATE team_members SET role = $2, updated_at = $3 WHERE user_id = $1")
                        .bind(user).bind(role.as_str()).bind(now)
                        .execute(&mut *tx).await?;
                }
            }
            let action = if existing.is_none() { "team.add" } else { "team.role" };
            audit(&mut *tx, actor, action, "member", user,
                &serde_json::json!({"role": role, "previous": existing})).await?;
            tx.commit().await?;
            existing.is_none()
        });
        Ok((
            TeamMember {
                user: user.to_string(),
                role,
                added_by: actor.to_string(),
                added_at: from_ms(now),
            },
            created,
        ))
    }

    /// Removes a member. Admins only; the last admin cannot be removed.
    pub async fn remove_team_member(
        &self,
        user: &str,
        actor: &str,
    ) -> Result<TeamRole, StoreError> {
        self.company_only("team members")?;
        self.ensure_writable()?;
        let role = write_tx!(&self.backend, tx => {
            require_admin!(&mut *tx, actor, "manage the team");
            let role: Option<String> =
                sqlx::query_scalar("SELECT role FROM team_members WHERE user_id = $1")
                    .bind(user).fetch_optional(&mut *tx).await?;
            let Some(role) = role else {
                return Err(StoreError::NotFound { what: "team member", id: user.to_string() });
            };
            if role == "admin" {
                ensure_another_admin!(&mut *tx, user);
            }
            sqlx::query("DELETE FROM team_members WHERE user_id = $1")
                .bind(user).execute(&mut *tx).await?;
            audit(&mut *tx, actor, "team.remove", "member", user,
                &serde_json::json!({"role": role})).await?;
            tx.commit().await?;
            role
        });
        TeamRole::parse(&role)
    }

    /// Approves a post that awaits approval: its deliveries are scheduled. Only editors and
    /// admins approve, never their own post; the decision is recorded with who and when.
    pub async fn approve_post(&self, id: &PostId, actor: &str) -> Result<Post, StoreError> {
        self.decide(id, actor, None).await
    }

    /// Rejects a post that awaits approval, with a reason its author sees (`psn show`).
    pub async fn reject_post(
        &self,
        id: &PostId,
        actor: &str,
        reason: &str,
    ) -> Result<Post, StoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(StoreError::Invalid(
                "a rejection needs a reason the author can act on (--reason \"…\")".to_string(),
            ));
        }
        self.decide(id, actor, Some(reason)).await
    }

    async fn decide(
        &self,
        id: &PostId,
        actor: &str,
        rejection: Option<&str>,
    ) -> Result<Post, StoreError> {
        self.company_only("approvals")?;
        self.ensure_writable()?;
        let now = now_ms();
        let (event, decision) = match rejection {
            None => (PostEvent::Approve, "approved"),
            Some(_) => (PostEvent::Reject, "rejected"),
        };
        write_tx!(&self.backend, tx => {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT phase, created_by FROM posts WHERE id = $1")
                    .bind(id.as_str()).fetch_optional(&mut *tx).await?;
            let (phase, author) = row.ok_or_else(|| StoreError::NotFound { what: "post", id: id.to_string() })?;
            let role: Option<String> =
                sqlx::query_scalar("SELECT role FROM team_members WHERE user_id = $1")
                    .bind(actor).fetch_optional(&mut *tx).await?;
            let role = role.map(|r| TeamRole::parse(&r)).transpose()?;
            match role {
                Some(r) if r.approves() => {}
                Some(r) => return Err(StoreError::Forbidden(format!(
                    "only editors and admins approve or reject posts; {actor} is a {r}"))),
                None => return Err(StoreError::Forbidden(format!(
                    "{actor} is not a member of hub '{}'; an admin adds members with `psn team add`", self.name))),
            }
            if author == actor {
                return Err(StoreError::Forbidden(format!(
                    "{actor} wrote post {id}: another editor or admin must approve or reject it")));
            }
            let phase: PostStatus = phase.parse().map_err(StoreError::Corrupt)?;
            let next = phase.apply(event)?;
            sqlx::query("INSERT INTO post_reviews (post_id, created_by, decision, decided_by, reason, decided_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id.as_str()).bind(&author).bind(decision).bind(actor)
                .bind(rejection.map(str::to_string)).bind(now)
                .execute(&mut *tx).await?;
            sqlx::query("UPDATE posts SET phase = $2, updated_at = $3 WHERE id = $1")
                .bind(id.as_str()).bind(next.as_str()).bind(now)
                .execute(&mut *tx).await?;
            let mut released = 0u64;
            if event == PostEvent::Approve {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, status FROM deliveries WHERE post_id = $1 ORDER BY id")
                    .bind(id.as_str()).fetch_all(&mut *tx).await?;
                for (delivery_id, status) in rows {
                    let status: DeliveryStatus = status.parse().map_err(StoreError::Corrupt)?;
                    let Ok(next_delivery) = status.apply(DeliveryEvent::Release) else { continue };
                    released += sqlx::query(
                        "UPDATE deliveries SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4")
                        .bind(&delivery_id).bind(next_delivery.as_str()).bind(now).bind(status.as_str())
                        .execute(&mut *tx).await?.rows_affected();
                }
            }
            refresh_post_status!(&mut *tx, id.as_str(), now);
            crate::listen::notify_due!(self, &mut *tx);
            audit(&mut *tx, actor, &format!("post.{}", event.as_str()), "post", id.as_str(),
                &serde_json::json!({"author": author, "reason": rejection,
                                    "deliveries_scheduled": released})).await?;
            tx.commit().await?;
        });
        self.post(id).await
    }

    /// Submits a draft, or a rejected post after its author revised it (`psn edit`), for
    /// approval. Only its author submits it.
    pub async fn submit_post(&self, id: &PostId, actor: &str) -> Result<Post, StoreError> {
        self.company_only("approvals")?;
        self.ensure_writable()?;
        let now = now_ms();
        write_tx!(&self.backend, tx => {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT phase, created_by FROM posts WHERE id = $1")
                    .bind(id.as_str()).fetch_optional(&mut *tx).await?;
            let (phase, author) = row.ok_or_else(|| StoreError::NotFound { what: "post", id: id.to_string() })?;
            if author != actor {
                return Err(StoreError::Forbidden(format!(
                    "only its author ({author}) submits post {id} for approval")));
            }
            let phase: PostStatus = phase.parse().map_err(StoreError::Corrupt)?;
            let next = phase.apply(PostEvent::SubmitForApproval)?;
            sqlx::query("UPDATE posts SET phase = $2, updated_at = $3 WHERE id = $1")
                .bind(id.as_str()).bind(next.as_str()).bind(now)
                .execute(&mut *tx).await?;
            refresh_post_status!(&mut *tx, id.as_str(), now);
            audit(&mut *tx, actor, "post.submit_for_approval", "post", id.as_str(),
                &serde_json::json!({"from": phase})).await?;
            tx.commit().await?;
        });
        self.post(id).await
    }

    /// The approval decisions on a post, oldest first.
    pub async fn post_reviews(&self, id: &PostId) -> Result<Vec<Review>, StoreError> {
        let rows: Vec<(String, String, Option<String>, i64)> = on_db!(&self.backend, db =>
            sqlx::query_as("SELECT decision, decided_by, reason, decided_at FROM post_reviews \
                            WHERE post_id = $1 ORDER BY id")
                .bind(id.as_str()).fetch_all(db).await?);
        Ok(rows
            .into_iter()
            .map(|(decision, decided_by, reason, decided_at)| Review {
                decision,
                decided_by,
                reason,
                decided_at: from_ms(decided_at),
            })
            .collect())
    }
}

/// `pg_advisory_xact_lock` key for company setup ("psn-comp").
const COMPANY_LOCK_KEY: i64 = 0x7073_6e2d_636f_6d70;
