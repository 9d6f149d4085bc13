//! Token keepers in the worker: refresh and weekly identity checks for the platforms whose
//! connector does not keep its own tokens (LinkedIn, TikTok, Threads, …), against the fake authorization server
//! (which rotates refresh tokens and refuses a spent one with `invalid_grant`) and a real hub
//! (SQLite and PostgreSQL): per-platform rules (Threads only once a day old), rotation, an
//! empty refresh answer keeps the stored refresh token, a dead token needs re-authorization
//! with a P0 alert, an outage only postpones, two workers refresh once, a revoked token is
//! found by the weekly check, and a LinkedIn 401 while publishing is refreshed by the keeper.
//!
//! PostgreSQL tests need `PSN_TEST_DATABASE_URL` (an admin URL).

#[path = "engine/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use psn_domain::{DeliveryStatus, Platform, PostStatus};
use psn_engine::{Engine, EngineConfig, Metrics, Registry};
use psn_platforms::oauth::{ClientCredentials, Endpoints, TokenKeeper, provider};
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::linkedin::LinkedInPublisher;
use psn_store::{
    Account, AccountStatus, NewAccount, NewDelivery, NewPost, PostFilter, Secret, TokenSet,
};
use psn_testkit::linkedin::FakeLinkedIn;
use psn_testkit::oauth::{CLIENT_ID, CLIENT_SECRET, FakeOAuth, RefreshBehavior};
use support::{Db, PATIENCE, World, fast_config};

const DAY: i64 = 24 * 3600;

fn keeper(platform: Platform, fake: &FakeOAuth) -> TokenKeeper {
    TokenKeeper::new(platform)
        .with_credentials(Some(ClientCredentials {
            id: CLIENT_ID.into(),
            secret: Some(CLIENT_SECRET.into()),
        }))
        .with_endpoints(Endpoints::at(provider(platform).unwrap(), &fake.base_url()))
}

async fn run_once(w: &World, keepers: Vec<TokenKeeper>, config: EngineConfig) -> Arc<Metrics> {
    let mut registry = Registry::new();
    for k in keepers {
        registry.register_keeper(Arc::new(k));
    }
    let engine = Engine::new(
        vec![w.hub.clone()],
        w.cipher.clone(),
        registry,
        EngineConfig {
            once: true,
            ..config
        },
    );
    let metrics = engine.metrics();
    let (_handle, rx) = Engine::shutdown_channel();
    tokio::time::timeout(PATIENCE, engine.run(rx))
        .await
        .expect("a once run finishes")
        .expect("the engine ran");
    metrics
}

/// Connects an account whose tokens were obtained `age_secs` ago and last `lifetime_secs`.
async fn connect(
    w: &World,
    platform: Platform,
    handle: &str,
    access: &str,
    refresh: Option<&str>,
    age_secs: i64,
    lifetime_secs: i64,
) -> Account {
    let (account, _) = w
        .hub
        .upsert_account(
            &NewAccount {
                platform,
                handle: handle.into(),
                external_id: format!("id-{handle}"),
                service_url: String::new(),
                tokens: TokenSet {
                    access_token: Secret::new(access),
                    refresh_token: refresh.map(Secret::new),
                },
                expires_at: Some(Utc::now()),
                created_by: "tester".into(),
            },
            &w.cipher,
        )
        .await
        .unwrap();
    let now = Utc::now().timestamp_millis();
    let created = now - age_secs * 1000;
    w.sql(&format!(
        "UPDATE accounts SET created_at = {created}, expires_at = {}, last_check_at = {now} \
         WHERE id = '{}'",
        created + lifetime_secs * 1000,
        account.id
    ))
    .await;
    account
}

async fn tokens(w: &World, a: &Account) -> (String, Option<String>) {
    let t = w.hub.account_tokens(&a.id, &w.cipher).await.unwrap();
    (
        t.access_token.expose().to_string(),
        t.refresh_token.map(|r| r.expose().to_string()),
    )
}

async fn linkedin_rotation(db: Db) {
    let w = World::new(db).await;
    let fake = FakeOAuth::start(Platform::Linkedin, "li", "member").await;
    fake.add_access_token("li-access-0");
    fake.add_refresh_token("li-refresh-0");
    // A 60-day token 31 days old is past half its lifetime.
    let a = connect(
        &w,
        Platform::Linkedin,
        "member",
        "li-access-0",
        Some("li-refresh-0"),
        31 * DAY,
        60 * DAY,
    )
    .await;
    let metrics = run_once(
        &w,
        vec![keeper(Platform::Linkedin, &fake)],
        fast_config("keeper"),
    )
    .await;
    assert_eq!(
        metrics
            .token_refreshes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(fake.refresh_grants(), 1);
    let (access, refresh) = tokens(&w, &a).await;
    assert_ne!(access, "li-access-0");
    let refresh = refresh.expect("a refresh token");
    assert_ne!(
        refresh, "li-refresh-0",
        "the rotated refresh token is stored"
    );
    assert!(fake.issued_tokens().contains(&refresh));
    let after = w.hub.account(&a.id).await.unwrap();
    assert_eq!(after.status, AccountStatus::Active);
    assert!(after.expires_at.unwrap() > Utc::now() + chrono::Duration::days(59));
    // Fresh now: the next round spends nothing.
    run_once(
        &w,
        vec![keeper(Platform::Linkedin, &fake)],
        fast_config("keeper-2"),
    )
    .await;
    assert_eq!(fake.refresh_grants(), 1);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linkedin_token_is_refreshed_at_half_its_60_days_and_rotated_sqlite() {
    linkedin_rotation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linkedin_token_is_refreshed_at_half_its_60_days_and_rotated_postgres() {
    linkedin_rotation(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiktok_refresh_without_a_new_refresh_token_keeps_the_stored_one() {
    let w = World::new(Db::Sqlite).await;
    let fake = FakeOAuth::start(Platform::Tiktok, "tt", "dancer").await;
    fake.add_access_token("tt-access-0");
    fake.add_refresh_token("tt-refresh-0");
    fake.set_refresh_behavior(RefreshBehavior::KeepRefreshToken);
    // TikTok's 24-hour token, 13 hours old.
    let a = connect(
        &w,
        Platform::Tiktok,
        "dancer",
        "tt-access-0",
        Some("tt-refresh-0"),
        13 * 3600,
        DAY,
    )
    .await;
    run_once(
        &w,
        vec![keeper(Platform::Tiktok, &fake)],
        fast_config("tiktok"),
    )
    .await;
    assert_eq!(fake.refresh_grants(), 1);
    let (access, refresh) = tokens(&w, &a).await;
    assert_ne!(access, "tt-access-0");
    assert_eq!(
        refresh.as_deref(),
        Some("tt-refresh-0"),
        "never overwritten by an empty one"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threads_token_is_refreshed_only_once_it_is_a_day_old() {
    let w = World::new(Db::Sqlite).await;
    let fake = FakeOAuth::start(Platform::Threads, "th", "threader").await;
    fake.add_access_token("th-long-0");
    // Past half of a (short) lifetime, but only 12 hours old: Threads would refuse.
    let a = connect(
        &w,
        Platform::Threads,
        "threader",
        "th-long-0",
        Some("th-long-0"),
        12 * 3600,
        20 * 3600,
    )
    .await;
    run_once(
        &w,
        vec![keeper(Platform::Threads, &fake)],
        fast_config("threads"),
    )
    .await;
    assert_eq!(fake.refresh_grants(), 0, "not before 24 hours");
    assert_eq!(tokens(&w, &a).await.0, "th-long-0");
    // 25 hours old (of 60 days would not be due; make it due at half of 40 hours).
    let now = Utc::now().timestamp_millis();
    w.sql(&format!(
        "UPDATE accounts SET created_at = {}, expires_at = {} WHERE id = '{}'",
        now - 25 * 3600 * 1000,
        now + 15 * 3600 * 1000,
        a.id
    ))
    .await;
    run_once(
        &w,
        vec![keeper(Platform::Threads, &fake)],
        fast_config("threads-2"),
    )
    .await;
    assert_eq!(fake.refresh_grants(), 1);
    let (access, refresh) = tokens(&w, &a).await;
    assert_ne!(access, "th-long-0");
    assert_eq!(
        refresh.as_deref(),
        Some(access.as_str()),
        "the long-lived token is its own refresh credential"
    );
    assert!(
        w.hub.account(&a.id).await.unwrap().expires_at.unwrap()
            > Utc::now() + chrono::Duration::days(59)
    );
    w.finish().await;
}

async fn dead_and_transient(db: Db) {
    let w = World::new(db).await;
    let fake = FakeOAuth::start(Platform::Pinterest, "pn", "pinner").await;
    fake.add_access_token("pn-access");
    fake.add_refresh_token("pn-refresh");
    let live = connect(
        &w,
        Platform::Pinterest,
        "pinner",
        "pn-access",
        Some("pn-refresh"),
        20 * DAY,
        30 * DAY,
    )
    .await;
    // A refresh token the platform no longer knows (revoked).
    let dead = connect(
        &w,
        Platform::Pinterest,
        "gone",
        "pn-gone",
        Some("pn-revoked-secret"),
        20 * DAY,
        30 * DAY,
    )
    .await;
    fake.set_refresh_behavior(RefreshBehavior::Unavailable);
    run_once(
        &w,
        vec![keeper(Platform::Pinterest, &fake)],
        fast_config("outage"),
    )
    .await;
    assert_eq!(
        w.hub.account(&live.id).await.unwrap().status,
        AccountStatus::Active
    );
    assert_eq!(
        w.hub.account(&dead.id).await.unwrap().status,
        AccountStatus::NeedsReauth
    );
    let errors = w.hub.refresh_errors().await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].account, live.id);
    let alerts = w.hub.open_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].priority, "P0");
    assert_eq!(alerts[0].subject_id, dead.id.to_string());
    assert!(
        alerts[0].message.contains("psn accounts connect pinterest"),
        "{}",
        alerts[0].message
    );
    for e in &errors {
        assert!(!e.message.contains("pn-refresh") && !e.message.contains("pn-access"));
    }
    assert!(!alerts[0].message.contains("pn-revoked-secret"));
    // The platform is back: the live account is refreshed and its error forgotten.
    fake.set_refresh_behavior(RefreshBehavior::Rotate);
    run_once(
        &w,
        vec![keeper(Platform::Pinterest, &fake)],
        fast_config("outage-2"),
    )
    .await;
    assert!(w.hub.refresh_errors().await.unwrap().is_empty());
    assert_ne!(tokens(&w, &live).await.0, "pn-access");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_refresh_tokens_need_reauth_and_outages_only_postpone_sqlite() {
    dead_and_transient(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_refresh_tokens_need_reauth_and_outages_only_postpone_postgres() {
    dead_and_transient(Db::Postgres).await;
}

async fn two_keepers(db: Db) {
    let w = World::new(db).await;
    let fake = FakeOAuth::start(Platform::Youtube, "yt", "tuber").await;
    fake.add_access_token("yt-access");
    fake.add_refresh_token("yt-refresh");
    let a = connect(
        &w,
        Platform::Youtube,
        "tuber",
        "yt-access",
        Some("yt-refresh"),
        2000,
        3599,
    )
    .await;
    let (x, y) = tokio::join!(
        run_once(
            &w,
            vec![keeper(Platform::Youtube, &fake)],
            fast_config("worker-a")
        ),
        run_once(
            &w,
            vec![keeper(Platform::Youtube, &fake)],
            fast_config("worker-b")
        )
    );
    let refreshes = x.token_refreshes.load(std::sync::atomic::Ordering::Relaxed)
        + y.token_refreshes.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refreshes, 1);
    assert_eq!(fake.refresh_grants(), 1, "the refresh token was spent once");
    assert_eq!(
        w.hub.account(&a.id).await.unwrap().status,
        AccountStatus::Active
    );
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_refresh_a_youtube_account_once_sqlite() {
    two_keepers(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_refresh_a_youtube_account_once_postgres() {
    two_keepers(Db::Postgres).await;
}

async fn weekly_check(db: Db) {
    let w = World::new(db).await;
    let fake = FakeOAuth::start(Platform::Linkedin, "li", "member").await;
    fake.add_access_token("li-good");
    fake.add_access_token("li-revoked");
    let good = connect(
        &w,
        Platform::Linkedin,
        "good",
        "li-good",
        None,
        DAY,
        60 * DAY,
    )
    .await;
    let revoked = connect(
        &w,
        Platform::Linkedin,
        "revoked",
        "li-revoked",
        None,
        DAY,
        60 * DAY,
    )
    .await;
    let recent = connect(
        &w,
        Platform::Linkedin,
        "recent",
        "li-good",
        None,
        DAY,
        60 * DAY,
    )
    .await;
    fake.revoke("li-revoked");
    let now = Utc::now().timestamp_millis();
    // Last checked eight days ago (recent: yesterday).
    w.sql(&format!(
        "UPDATE accounts SET last_check_at = {} WHERE id IN ('{}', '{}')",
        now - 8 * DAY * 1000,
        good.id,
        revoked.id
    ))
    .await;
    w.sql(&format!(
        "UPDATE accounts SET last_check_at = {} WHERE id = '{}'",
        now - DAY * 1000,
        recent.id
    ))
    .await;
    let started = Utc::now();
    run_once(
        &w,
        vec![keeper(Platform::Linkedin, &fake)],
        fast_config("health"),
    )
    .await;
    let good = w.hub.account(&good.id).await.unwrap();
    assert_eq!(good.status, AccountStatus::Active);
    assert!(good.last_check_at.unwrap() >= started - chrono::Duration::seconds(1));
    assert!(good.last_check_error.is_none());
    let revoked = w.hub.account(&revoked.id).await.unwrap();
    assert_eq!(revoked.status, AccountStatus::NeedsReauth);
    assert!(revoked.last_check_error.is_some());
    let recent = w.hub.account(&recent.id).await.unwrap();
    assert!(
        recent.last_check_at.unwrap() < started,
        "checked weekly, not every round"
    );
    let alerts = w.hub.open_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].priority, "P0");
    assert!(alerts[0].message.contains("psn accounts connect linkedin"));
    assert!(!alerts[0].message.contains("li-revoked"));
    let identity_calls = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/userinfo")
        .count();
    assert_eq!(identity_calls, 2);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_check_finds_a_revoked_token_sqlite() {
    weekly_check(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_check_finds_a_revoked_token_postgres() {
    weekly_check(Db::Postgres).await;
}

#[test]
fn accounts_are_checked_weekly_by_default() {
    assert_eq!(
        EngineConfig::default().check_every,
        Duration::from_secs(7 * 24 * 3600)
    );
}

/// LinkedIn's publisher does not refresh: a 401 while publishing is refreshed by the token
/// keeper (the registry prefers it), and the post goes out with the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linkedin_401_while_publishing_is_refreshed_by_the_token_keeper() {
    let w = World::new(Db::Sqlite).await;
    let oauth = FakeOAuth::start(Platform::Linkedin, "li", "member").await;
    oauth.add_refresh_token("li-refresh-0");
    let linkedin = FakeLinkedIn::start().await;
    linkedin.add_member("id-member", "Member", "li-access-0");
    linkedin.expire_token("li-access-0");
    linkedin.trust_tokens_with_prefix("linkedin-access-", "id-member");
    let a = connect(
        &w,
        Platform::Linkedin,
        "member",
        "li-access-0",
        Some("li-refresh-0"),
        0,
        60 * DAY,
    )
    .await;
    w.hub
        .create_post(&NewPost {
            created_by: "tester".into(),
            idempotency_key: None,
            phase: PostStatus::Scheduled,
            body: "Refreshed, then published".into(),
            language: None,
            media: serde_json::json!([]),
            options: serde_json::json!({}),
            run_at: Some(Utc::now()),
            deliveries: vec![NewDelivery {
                account_id: a.id.clone(),
                platform: Platform::Linkedin,
                segments: vec!["Refreshed, then published".into()],
            }],
        })
        .await
        .unwrap();
    let mut registry = Registry::new();
    registry.register(Arc::new(LinkedInPublisher::with_client(
        linkedin.base_url(),
        client_with_timeout(Duration::from_secs(10)),
    )));
    registry.register_keeper(Arc::new(keeper(Platform::Linkedin, &oauth)));
    let engine = Engine::new(
        vec![w.hub.clone()],
        w.cipher.clone(),
        registry,
        EngineConfig {
            once: true,
            ..fast_config("linkedin-401")
        },
    );
    let (_handle, rx) = Engine::shutdown_channel();
    tokio::time::timeout(PATIENCE, engine.run(rx))
        .await
        .expect("a once run finishes")
        .expect("the engine ran");

    assert_eq!(oauth.refresh_grants(), 1, "the keeper refreshed once");
    let posts = linkedin.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, "Refreshed, then published");
    let (access, _) = tokens(&w, &a).await;
    assert!(
        access.starts_with("linkedin-access-"),
        "the new token is stored"
    );
    let stored = w.hub.posts(&PostFilter::default()).await.unwrap();
    assert_eq!(stored[0].deliveries[0].status, DeliveryStatus::Published);
    assert_eq!(
        stored[0].deliveries[0].external_id.as_deref(),
        Some(posts[0].urn.as_str())
    );
    w.finish().await;
}
