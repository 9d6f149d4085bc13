//! What connecting gives access to, end to end through the real binary and the fakes: Meta's
//! Page / Instagram account pick (on a terminal and with `--page`), LinkedIn organization
//! pages (listed through `organizationAcls`, connected as their own accounts), the X API plan
//! (`X_API_TIER`) recorded, shown and enforced at `psn post`, and the worker refreshing X
//! tokens with the app credentials from `config/keys.env`.

use psn_domain::Platform;
use psn_testkit::oauth::{CLIENT_ID, CLIENT_SECRET, FakeOAuth};

use crate::oauth::{Connecting, assert_no_token, connect, free_port};
use crate::support::{TestWorkspace, execute_sql};

fn accounts(ws: &TestWorkspace) -> Vec<serde_json::Value> {
    ws.psn(&["accounts", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// A browser approval with psn reading a terminal: returns the running command, its
/// question printed.
fn approve_on_terminal(
    ws: &TestWorkspace,
    fake: &FakeOAuth,
    platform: Platform,
    extra: &[&str],
    question_ends_with: &str,
) -> Connecting {
    let mut run = Connecting::on_terminal(ws, fake, platform, free_port(), extra);
    let url = run.authorization_url();
    let (status, page) = crate::oauth::browse(&url);
    assert_eq!(status, 200, "{page}");
    run.wait_for(question_ends_with);
    run
}

fn meta_fake(platform: Platform) -> FakeOAuth {
    let fake = FakeOAuth::start_in_thread(platform, "u-1", "someone");
    fake.add_page("page-1", "First Page", Some(("ig-1", "first.insta")));
    fake.add_page("page-2", "Second Page", Some(("ig-2", "second.insta")));
    fake
}

#[test]
fn the_meta_page_pick_on_a_terminal_connects_the_chosen_page_or_business_account() {
    let ws = TestWorkspace::new();
    let fake = meta_fake(Platform::Facebook);
    let mut run = approve_on_terminal(&ws, &fake, Platform::Facebook, &[], "2. page-2");
    assert!(
        run.seen()
            .iter()
            .any(|l| l.contains("Which one should psn connect?")),
        "the question was asked"
    );
    run.paste("2");
    let out = run.finish();
    out.ok();
    let a = out.json();
    assert_eq!(a["external_id"], "page-2", "{a}");
    assert_eq!(a["handle"], "Second Page");
    assert_no_token(&fake, "stdout", &out.stdout);
    assert_no_token(&fake, "stderr", &out.stderr);

    let fake = meta_fake(Platform::Instagram);
    let mut run = approve_on_terminal(&ws, &fake, Platform::Instagram, &[], "2. ig-2");
    run.paste("1");
    let out = run.finish();
    out.ok();
    let a = out.json();
    assert_eq!(a["platform"], "instagram");
    assert_eq!(a["external_id"], "ig-1", "{a}");
    assert_eq!(a["handle"], "first.insta");
    assert_eq!(accounts(&ws).len(), 2);
}

#[test]
fn a_meta_choice_that_does_not_exist_is_refused_and_nothing_is_written() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    // A number that is not offered, on the terminal.
    let fake = meta_fake(Platform::Facebook);
    let mut run = approve_on_terminal(&ws, &fake, Platform::Facebook, &[], "2. page-2");
    run.paste("7");
    let out = run.finish();
    out.invalid("'7' is not one of the numbers 1 to 2")
        .stderr_has("nothing was connected");
    assert_no_token(&fake, "stderr", &out.stderr);
    // Something that is not a number.
    let fake = meta_fake(Platform::Instagram);
    let mut run = approve_on_terminal(&ws, &fake, Platform::Instagram, &[], "2. ig-2");
    run.paste("second");
    run.finish().invalid("'second' is not one of the numbers");
    // A --page that is not among them (headless).
    let fake = meta_fake(Platform::Facebook);
    connect(&ws, &fake, Platform::Facebook, &["--page", "Third Page"])
        .invalid("no Page 'Third Page' among")
        .stderr_has("page-1 (First Page)")
        .stderr_has("page-2 (Second Page)");
    let fake = meta_fake(Platform::Instagram);
    connect(&ws, &fake, Platform::Instagram, &["--page", "page-9"])
        .invalid("no Instagram business account 'page-9' among")
        .stderr_has("ig-1 (@first.insta, Page First Page)");
    assert_eq!(ws.counts(), before, "nothing was written");
    // --page by Instagram username picks headlessly.
    let fake = meta_fake(Platform::Instagram);
    let out = connect(&ws, &fake, Platform::Instagram, &["--page", "second.insta"]);
    out.ok();
    assert_eq!(out.json()["external_id"], "ig-2");
}

fn linkedin_fake() -> FakeOAuth {
    let fake = FakeOAuth::start_in_thread(Platform::Linkedin, "li-member", "Lin Admin");
    fake.add_organization("2414183", "Acme Corp", "acme");
    fake.add_organization("5550001", "Beta Labs", "beta-labs");
    // Not offered: another role, and an administrator role not yet approved.
    fake.add_organization_role("777", "Analysed Inc", "analysed", "ANALYST", "APPROVED");
    fake.add_organization_role(
        "888",
        "Pending Co",
        "pending-co",
        "ADMINISTRATOR",
        "REQUESTED",
    );
    fake
}

#[test]
fn a_linkedin_organization_page_connects_as_its_own_account() {
    let ws = TestWorkspace::new();
    let fake = linkedin_fake();
    let out = connect(&ws, &fake, Platform::Linkedin, &["--page", "acme"]);
    out.ok();
    let connected = out.json();
    let connected = connected
        .as_array()
        .expect("--json lists every account connected");
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert_eq!(connected[0]["external_id"], "li-member");
    assert_eq!(
        connected[0]["platform_status"]["organization_access"],
        "granted"
    );
    let org = &connected[1];
    assert_eq!(org["platform"], "linkedin");
    assert_eq!(org["external_id"], "urn:li:organization:2414183", "{org}");
    assert_eq!(org["handle"], "acme");
    assert_eq!(org["platform_status"]["account_kind"], "organization");
    assert_eq!(org["platform_status"]["organization"], "Acme Corp");
    assert_eq!(org["status"], "active");
    assert_no_token(&fake, "stdout", &out.stdout);
    assert_no_token(&fake, "stderr", &out.stderr);
    let list = ws.psn(&["accounts", "list"]);
    list.ok()
        .stdout_has("acme")
        .stdout_has("Lin Admin")
        .stdout_has("account_kind: organization");
    // The page's tokens are the member's: the identity check passes with them.
    let base = fake.base_url();
    let check = ws
        .cmd(["accounts", "check", org["id"].as_str().unwrap(), "--json"])
        .env("PSN_AUTH_BASE_LINKEDIN", &base)
        .env("PSN_API_BASE_LINKEDIN", &base)
        .run();
    check.ok();
    assert_eq!(check.json()[0]["result"], "ok");
    // By numeric id, the URN or the name as well; reconnecting keeps the same account.
    for wanted in ["2414183", "urn:li:organization:2414183", "Acme Corp"] {
        let again = connect(&ws, &fake, Platform::Linkedin, &["--page", wanted]);
        again.ok();
        assert_eq!(again.json()[1]["id"], org["id"], "{wanted}");
    }
    assert_eq!(accounts(&ws).len(), 2);
}

#[test]
fn linkedin_pages_are_offered_on_a_terminal_and_listed_otherwise() {
    let ws = TestWorkspace::new();
    let fake = linkedin_fake();
    let mut run = approve_on_terminal(
        &ws,
        &fake,
        Platform::Linkedin,
        &["--organization"],
        "2. 5550001",
    );
    assert!(
        run.seen()
            .iter()
            .any(|l| l.contains("0. none (only your member profile)")),
        "the member profile alone is a choice"
    );
    run.paste("2");
    let out = run.finish();
    out.ok();
    assert!(
        !out.stderr.contains("777") && !out.stderr.contains("888"),
        "only approved administrator roles are offered:\n{}",
        out.stderr
    );
    let connected = out.json();
    assert_eq!(connected[1]["external_id"], "urn:li:organization:5550001");
    assert_eq!(connected[1]["handle"], "beta-labs");
    // "0": the member profile only.
    let ws = TestWorkspace::new();
    let mut run = approve_on_terminal(
        &ws,
        &fake,
        Platform::Linkedin,
        &["--organization"],
        "2. 5550001",
    );
    run.paste("0");
    let out = run.finish();
    out.ok();
    assert_eq!(out.json()["external_id"], "li-member");
    assert_eq!(accounts(&ws).len(), 1);
    // Without a terminal: the member is connected and the pages are named with the command.
    let ws = TestWorkspace::new();
    let out = connect(&ws, &fake, Platform::Linkedin, &["--organization"]);
    out.ok()
        .stderr_has("2414183 (Acme Corp, linkedin.com/company/acme)")
        .stderr_has("--page ID");
    assert_eq!(out.json()["external_id"], "li-member");
    assert_eq!(accounts(&ws).len(), 1);
}

#[test]
fn a_linkedin_page_that_is_not_administered_or_not_granted_is_refused_and_nothing_is_written() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    let fake = linkedin_fake();
    connect(&ws, &fake, Platform::Linkedin, &["--page", "777"])
        .invalid("no organization page '777' among those you administer")
        .stderr_has("2414183 (Acme Corp")
        .stderr_has("nothing was connected");
    connect(&ws, &fake, Platform::Linkedin, &["--page", "pending-co"])
        .invalid("no organization page 'pending-co'");
    // The app lacks the Community Management API: the missing scope is named.
    let withheld = linkedin_fake();
    withheld.withhold_scope("r_organization_admin");
    connect(&ws, &withheld, Platform::Linkedin, &["--page", "acme"])
        .invalid("r_organization_admin")
        .stderr_has("Community Management API")
        .stderr_has("nothing was connected");
    assert_eq!(ws.counts(), before, "nothing was written");
    // --organization without the permission: the member connects, access pending.
    let out = connect(&ws, &withheld, Platform::Linkedin, &["--organization"]);
    out.ok();
    let a = out.json();
    assert_eq!(a["platform_status"]["organization_access"], "pending");
    assert!(
        a["platform_status"]["explanation"]
            .as_str()
            .unwrap()
            .contains("r_organization_admin"),
        "{a}"
    );
    ws.psn(&["accounts", "list"])
        .ok()
        .stdout_has("organization_access: pending");
}

/// Connects an X account headlessly and returns its id.
fn x_account(ws: &TestWorkspace, id: &str, handle: &str) -> String {
    ws.connect_x(id, handle)
}

/// A draft file with `segments` thread segments, for `psn post --file`.
fn thread_file(ws: &TestWorkspace, name: &str, to: &str, at: &str, segments: usize) -> String {
    let body: Vec<String> = (1..=segments)
        .map(|i| format!("{name} part {i} of {segments}"))
        .collect();
    let text = format!(
        "---\nto: [{to}]\nat: \"{at}\"\nthread: true\n---\n{}\n",
        body.join("\n---\n")
    );
    let path = format!("content/drafts/{name}.md");
    ws.write(&path, &text);
    ws.path(&path).to_str().unwrap().to_string()
}

fn set_key(ws: &TestWorkspace, line: &str) {
    let keys = ws.read("config/keys.env");
    let kept: Vec<&str> = keys
        .lines()
        .filter(|l| !l.starts_with(line.split('=').next().unwrap()))
        .collect();
    ws.write("config/keys.env", &format!("{}\n{line}\n", kept.join("\n")));
    ws.set_mode("config/keys.env", 0o600);
}

#[test]
fn rescheduling_into_a_full_x_window_is_refused_and_changes_nothing() {
    let ws = TestWorkspace::new();
    x_account(&ws, "1001", "alice");
    // 17 posts (a thread) three days out fill that window on the free plan.
    let file = thread_file(&ws, "full", "x", "+3d", 17);
    ws.post(&["--file", &file]);
    let early = ws.post(&["Early", "--to", "x", "--at", "+1d"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let run_at = |ws: &TestWorkspace| ws.psn(&["show", &early, "--json"]).json()["run_at"].clone();
    let before = run_at(&ws);
    ws.psn(&["reschedule", &early, "+3d1h"])
        .invalid("X API free plan allows 17 posts per 24 hours for @alice")
        .stderr_has("X_API_TIER=basic");
    assert_eq!(run_at(&ws), before, "the post did not move");
    // Another day has room.
    ws.psn(&["reschedule", &early, "+5d"]).ok();
    assert_ne!(run_at(&ws), before);
    // A post moved within a full window does not count twice.
    let file = thread_file(&ws, "almost", "x", "+7d", 16);
    ws.post(&["--file", &file]);
    let last = ws.post(&["The 17th", "--to", "x", "--at", "+7d1h"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    ws.psn(&["reschedule", &last, "+7d2h"]).ok();
}

#[test]
fn the_x_free_tier_caps_posts_per_24_hours_and_the_tier_is_shown() {
    let ws = TestWorkspace::new();
    let alice = x_account(&ws, "1001", "alice");
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list[0]["platform_status"]["api_tier"], "free", "{list}");
    ws.psn(&["accounts", "list"])
        .ok()
        .stdout_has("api_tier: free")
        .stdout_has("X_API_TIER");
    // 16 posts in one thread, then one more: 17, the free tier's daily cap per user.
    let file = thread_file(&ws, "long", "x", "+1h", 16);
    ws.post(&["--file", &file]);
    let seventeenth = ws.post(&["Seventeenth", "--to", "x", "--at", "+2h"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = ws.counts();
    let out = ws.psn(&["post", "One too many", "--to", "x", "--at", "+3h"]);
    out.invalid("X API free plan allows 17 posts per 24 hours for @alice")
        .stderr_has("17 are already queued")
        .stderr_has("X_API_TIER=basic");
    assert_eq!(ws.counts(), before, "nothing was written");
    // The dry run is refused the same way; a draft waits and is not counted.
    ws.psn(&["post", "Dry", "--to", "x", "--at", "+3h", "--dry-run"])
        .invalid("X_API_TIER");
    ws.post(&["Later maybe", "--to", "x", "--draft"]);
    // A day after the first posts is another window.
    ws.post(&["Tomorrow", "--to", "x", "--at", "+1d2h"]);
    // A cancelled post frees its share.
    ws.psn(&["cancel", &seventeenth]).ok();
    ws.post(&["Replaces the cancelled one", "--to", "x", "--at", "+3h"]);
    // The app's cap counts every X account of the hub.
    x_account(&ws, "1002", "bob");
    ws.psn(&["post", "Bob too", "--to", "x:bob", "--at", "+4h"])
        .invalid("for the X app");
    // A paid plan lifts the cap; the listing follows the setting.
    set_key(&ws, "X_API_TIER=basic");
    ws.post(&["Bob on basic", "--to", "x:bob", "--at", "+4h"]);
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|a| a["platform_status"]["api_tier"] == "basic"),
        "{list}"
    );
    let _ = alice;
    // A plan psn does not know is refused, naming the ones it does.
    set_key(&ws, "X_API_TIER=gold");
    ws.psn(&["post", "Gold", "--to", "x:bob", "--at", "+5h"])
        .invalid("free, basic, pro or enterprise");
    ws.psn_stdin(
        &["accounts", "connect", "x", "--token-stdin"],
        &crate::support::token_json("1003", "carol"),
    )
    .invalid("X_API_TIER=gold");
}

#[test]
fn the_worker_refreshes_x_tokens_with_the_client_id_from_keys_env() {
    for confidential in [false, true] {
        let ws = TestWorkspace::new();
        let fake = FakeOAuth::start_in_thread(Platform::X, "4242", "refreshing");
        let client_id = if confidential {
            CLIENT_ID.to_string()
        } else {
            fake.allow_public_client("psn-public-client");
            "psn-public-client".to_string()
        };
        fake.add_refresh_token("x-refresh-token-one");
        fake.add_access_token("x-access-token-one");
        let token = serde_json::json!({
            "access_token": "x-access-token-one",
            "refresh_token": "x-refresh-token-one",
            "expires_in": 7200,
            "account_id": "4242",
            "handle": "refreshing",
        });
        ws.psn_stdin(
            &["accounts", "connect", "x", "--token-stdin"],
            &token.to_string(),
        )
        .ok();
        let id = accounts(&ws)[0]["id"].as_str().unwrap().to_string();
        // Ninety minutes into a two-hour token: due.
        let now = chrono::Utc::now().timestamp_millis();
        execute_sql(
            &ws.personal_url(),
            &format!(
                "UPDATE accounts SET created_at = {}, expires_at = {} WHERE id = '{id}'",
                now - 90 * 60_000,
                now + 30 * 60_000
            ),
        );
        // The app credentials only in config/keys.env, never in the environment.
        set_key(&ws, &format!("X_CLIENT_ID={client_id}"));
        if confidential {
            set_key(&ws, &format!("X_CLIENT_SECRET={CLIENT_SECRET}"));
        }
        let out = ws
            .cmd(["worker", "--once"])
            .env("PSN_API_BASE_X", fake.base_url())
            .env("PSN_LOG", "debug")
            .run();
        out.ok();
        assert_eq!(
            fake.refresh_grants(),
            1,
            "confidential={confidential}: {}",
            out.stderr
        );
        assert_no_token(&fake, "worker logs", &out.stderr);
        assert!(!out.stderr.contains(CLIENT_SECRET), "the secret leaked");
        let a = &accounts(&ws)[0];
        assert_eq!(a["status"], "active", "confidential={confidential}: {a}");
        assert!(a["last_refresh_at"].is_string(), "{a}");
        assert!(a["last_refresh_error"].is_null(), "{a}");
    }
}
