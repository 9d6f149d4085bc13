//! Proactive token refresh in the worker, against the fake X (which rotates refresh tokens and
//! refuses a spent one with `invalid_grant`) and a real hub (SQLite and PostgreSQL): tokens
//! are refreshed at half their lifetime, by exactly one worker, dead tokens need
//! re-authorization, and a platform outage only postpones the refresh.
//!
//! PostgreSQL tests need `PSN_TEST_DATABASE_URL` (an admin URL).

#[path = "engine/support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use psn_domain::AccountId;
use psn_engine::EngineConfig;
use psn_store::{Account, AccountStatus};
use psn_testkit::{Fault, FaultKind};
use support::{Db, PATIENCE, World, fast_config, wait_for};

const TOKEN_PATH: &str = "/2/oauth2/token";

/// Makes the account's token `lifetime_secs` long, obtained `age_secs` ago (at connection).
async fn age(w: &World, account: &AccountId, age_secs: i64, lifetime_secs: i64) {
    let now = Utc::now().timestamp_millis();
    let created = now - age_secs * 1000;
    let expires = created + lifetime_secs * 1000;
    w.sql(&format!(
        "UPDATE accounts SET created_at = {created}, expires_at = {expires}, \
         last_refresh_at = NULL WHERE id = '{account}'"
    ))
    .await;
}

/// Refresh calls X received.
fn refresh_calls(w: &World) -> usize {
    w.fake
        .requests()
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .count()
}

async fn account(w: &World, a: &Account) -> Account {
    w.hub.account(&a.id).await.expect("account")
}

/// Asserts that the account holds tokens X issued on a refresh: a valid access token that is
/// not the original one, and a rotated refresh token.
async fn assert_rotated(w: &World, a: &Account) -> (String, String) {
    let tokens = w.hub.account_tokens(&a.id, &w.cipher).await.unwrap();
    let access = tokens.access_token.expose().to_string();
    let refresh = tokens.refresh_token.expect("a refresh token");
    assert_ne!(access, format!("tok-{}", a.handle));
    assert!(
        w.fake.token_valid(&access),
        "the new access token works on X"
    );
    assert_ne!(refresh.expose(), format!("ref-{}", a.handle));
    assert!(refresh.expose().starts_with("fake-x-refresh-"));
    (access, refresh.expose().to_string())
}

// ---------------------------------------------------------------------------------------------
// Due at half the lifetime

async fn refreshes_at_half_lifetime(db: Db) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    // Alice's two-hour token is past half its lifetime; Bob's is at 10 % of it.
    age(&w, &alice.id, 3700, 7200).await;
    age(&w, &bob.id, 720, 7200).await;
    let before = account(&w, &alice).await;
    let bob_before = account(&w, &bob).await;
    let due = w
        .hub
        .accounts_due_for_refresh(&[psn_domain::Platform::X], Utc::now())
        .await
        .unwrap();
    assert_eq!(due, vec![alice.id.clone()]);

    let started = Utc::now();
    let metrics = w.run_once(fast_config("refresher")).await;

    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 1);
    assert_eq!(refresh_calls(&w), 1, "{:?}", w.fake.requests());
    assert_rotated(&w, &alice).await;
    let after = account(&w, &alice).await;
    assert_eq!(after.status, AccountStatus::Active);
    let expires = after.expires_at.expect("an expiry");
    assert!(expires > before.expires_at.unwrap());
    assert!(expires >= started + chrono::Duration::seconds(7200));
    assert!(after.last_refresh_at.is_some_and(|t| t >= started));

    // Bob's token is untouched.
    let bob_tokens = w.hub.account_tokens(&bob.id, &w.cipher).await.unwrap();
    assert_eq!(bob_tokens.access_token.expose(), "tok-bob");
    assert_eq!(bob_tokens.refresh_token.unwrap().expose(), "ref-bob");
    let bob_after = account(&w, &bob).await;
    assert_eq!(bob_after.expires_at, bob_before.expires_at);
    assert!(bob_after.last_refresh_at.is_none());

    // Alice's fresh token is no longer due: another run refreshes nothing. Her old access
    // token is now refused, and the post goes out with the refreshed one, without a 401.
    w.fake.expire_token("tok-alice");
    w.schedule(&w.texts(1), &[&alice]).await;
    let again = w.run_once(fast_config("refresher-2")).await;
    assert_eq!(again.token_refreshes.load(Ordering::Relaxed), 0);
    assert_eq!(refresh_calls(&w), 1);
    w.assert_published_exactly_once().await;
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    assert!(w.hub.refresh_errors().await.unwrap().is_empty());
    w.finish().await;
}

#[test]
fn tokens_are_checked_every_minute_by_default() {
    assert_eq!(
        EngineConfig::default().refresh_every,
        Duration::from_secs(60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_half_its_lifetime_is_refreshed_and_rotated_sqlite() {
    refreshes_at_half_lifetime(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_half_its_lifetime_is_refreshed_and_rotated_postgres() {
    refreshes_at_half_lifetime(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_due_and_tokens_without_expiry_or_refresh_token_are_not() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    w.fake.add_account("2003", "carol", "tok-carol");
    let carol = w.connect_x_with("2003", "carol", "tok-carol", None).await;
    // Alice's token expired an hour ago; Bob's has no expiry; Carol has no refresh token.
    age(&w, &alice.id, 3 * 3600, 7200).await;
    age(&w, &carol.id, 3 * 3600, 7200).await;
    w.sql(&format!(
        "UPDATE accounts SET expires_at = NULL, created_at = 0 WHERE id = '{}'",
        bob.id
    ))
    .await;
    let due = w
        .hub
        .accounts_due_for_refresh(&[psn_domain::Platform::X], Utc::now())
        .await
        .unwrap();
    assert_eq!(due, vec![alice.id.clone()]);
    w.run_once(fast_config("expired")).await;
    assert_eq!(refresh_calls(&w), 1);
    assert_rotated(&w, &alice).await;
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// One refresher

async fn concurrent_refreshers(db: Db) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    age(&w, &alice.id, 3700, 7200).await;
    // The refresh takes a while, so both workers are in their round at the same time.
    w.fake
        .inject(Fault::new(FaultKind::Slow { ms: 300 }).path(TOKEN_PATH));
    let (a, b) = tokio::join!(
        w.run_once(fast_config("worker-a")),
        w.run_once(fast_config("worker-b"))
    );
    let refreshes =
        a.token_refreshes.load(Ordering::Relaxed) + b.token_refreshes.load(Ordering::Relaxed);
    assert_eq!(refreshes, 1);
    assert_eq!(refresh_calls(&w), 1, "{:?}", w.fake.requests());
    let account = account(&w, &alice).await;
    assert_eq!(account.status, AccountStatus::Active);
    let (access, _) = assert_rotated(&w, &alice).await;

    // Both workers publish with the new token: the old one is refused from now on.
    w.fake.expire_token("tok-alice");
    w.schedule(&w.texts(1), &[&alice]).await;
    w.schedule(&w.texts(1), &[&alice]).await;
    let (a, b) = tokio::join!(
        w.run_once(fast_config("worker-a")),
        w.run_once(fast_config("worker-b"))
    );
    assert_eq!(
        a.token_refreshes.load(Ordering::Relaxed) + b.token_refreshes.load(Ordering::Relaxed),
        0
    );
    assert_eq!(refresh_calls(&w), 1);
    w.assert_published_exactly_once().await;
    let tokens = w.hub.account_tokens(&alice.id, &w.cipher).await.unwrap();
    assert_eq!(tokens.access_token.expose(), access);
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_refresh_an_account_once_sqlite() {
    concurrent_refreshers(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_refresh_an_account_once_postgres() {
    concurrent_refreshers(Db::Postgres).await;
}

async fn claim_is_exclusive(db: Db) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    age(&w, &alice.id, 3700, 7200).await;
    let now = Utc::now();
    let lease = Duration::from_secs(60);
    // Many claims at once: exactly one wins.
    let claims = futures_join_all(
        (0..8)
            .map(|i| {
                let hub = w.hub.clone();
                let id = alice.id.clone();
                tokio::spawn(
                    async move { hub.claim_refresh(&id, &format!("w{i}"), now, lease).await },
                )
            })
            .collect(),
    )
    .await;
    assert_eq!(claims.iter().filter(|won| **won).count(), 1, "{claims:?}");
    // A leased account is not offered to the others.
    let due = w
        .hub
        .accounts_due_for_refresh(&[psn_domain::Platform::X], now)
        .await
        .unwrap();
    assert!(due.is_empty());
    // Releasing as a non-owner does nothing; the owner's release frees it.
    let winner = format!("w{}", claims.iter().position(|won| *won).unwrap());
    w.hub
        .release_refresh(&alice.id, "someone-else")
        .await
        .unwrap();
    assert!(
        !w.hub
            .claim_refresh(&alice.id, "late", now, lease)
            .await
            .unwrap()
    );
    w.hub.release_refresh(&alice.id, &winner).await.unwrap();
    assert!(
        w.hub
            .claim_refresh(&alice.id, "late", now, lease)
            .await
            .unwrap()
    );
    // A lease whose holder died expires and can be taken over.
    let later = now + chrono::Duration::seconds(61);
    assert!(
        w.hub
            .claim_refresh(&alice.id, "heir", later, lease)
            .await
            .unwrap()
    );
    w.finish().await;
}

async fn futures_join_all(
    handles: Vec<tokio::task::JoinHandle<Result<bool, psn_store::StoreError>>>,
) -> Vec<bool> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("no panic").expect("claim"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_concurrent_claim_refresh_wins_sqlite() {
    claim_is_exclusive(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_concurrent_claim_refresh_wins_postgres() {
    claim_is_exclusive(Db::Postgres).await;
}

/// A worker that loses the claim does not call X, even when the account is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_loses_the_claim_does_not_call_the_platform() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    age(&w, &alice.id, 3700, 7200).await;
    // Another process holds the refresh (and is slow about it).
    assert!(
        w.hub
            .claim_refresh(
                &alice.id,
                "other-process",
                Utc::now(),
                Duration::from_secs(300)
            )
            .await
            .unwrap()
    );
    let metrics = w.run_once(fast_config("loser")).await;
    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 0);
    assert_eq!(refresh_calls(&w), 0);
    let tokens = w.hub.account_tokens(&alice.id, &w.cipher).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "tok-alice");
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Failures

async fn dead_refresh_token(db: Db) {
    let w = World::new(db).await;
    // X knows the access token but not this refresh token (revoked).
    w.fake.add_account("2001", "alice", "tok-alice");
    let alice = w
        .connect_x_with("2001", "alice", "tok-alice", Some("ref-revoked-secret"))
        .await;
    age(&w, &alice.id, 3700, 7200).await;
    let metrics = w.run_once(fast_config("dead")).await;

    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 0);
    assert_eq!(refresh_calls(&w), 1);
    assert_eq!(account(&w, &alice).await.status, AccountStatus::NeedsReauth);
    let alerts = w.hub.open_alerts().await.unwrap();
    let alert = alerts
        .iter()
        .find(|a| a.kind == "needs_reauth")
        .expect("a needs_reauth alert");
    assert_eq!(alert.priority, "P0");
    assert_eq!(alert.subject_id, alice.id.to_string());
    assert!(
        alert.message.contains("psn accounts connect x"),
        "{}",
        alert.message
    );
    for a in &alerts {
        assert!(!a.message.contains("tok-alice") && !a.message.contains("ref-revoked-secret"));
    }
    // Not a transient failure: nothing for doctor to retry, the alert says what to do.
    assert!(w.hub.refresh_errors().await.unwrap().is_empty());
    // The worker leaves the account alone until it is reconnected.
    w.run_once(fast_config("dead-2")).await;
    assert_eq!(refresh_calls(&w), 1);
    assert_eq!(w.hub.open_alerts().await.unwrap().len(), alerts.len());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_needs_reauthorization_with_a_p0_alert_sqlite() {
    dead_refresh_token(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_needs_reauthorization_with_a_p0_alert_postgres() {
    dead_refresh_token(Db::Postgres).await;
}

async fn transient_failure(db: Db) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    age(&w, &alice.id, 3700, 7200).await;
    w.fake
        .inject(Fault::new(FaultKind::ServerError).path(TOKEN_PATH));
    let metrics = w.run_once(fast_config("outage")).await;

    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 0);
    assert_eq!(refresh_calls(&w), 1);
    assert_eq!(account(&w, &alice).await.status, AccountStatus::Active);
    let tokens = w.hub.account_tokens(&alice.id, &w.cipher).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "tok-alice");
    assert_eq!(tokens.refresh_token.unwrap().expose(), "ref-alice");
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    let errors = w.hub.refresh_errors().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].account, alice.id);
    assert!(!errors[0].message.contains("ref-alice") && !errors[0].message.contains("tok-alice"));

    // X is back: the next round refreshes it and forgets the error.
    let metrics = w.run_once(fast_config("outage-2")).await;
    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 1);
    assert_eq!(refresh_calls(&w), 2);
    assert_rotated(&w, &alice).await;
    assert!(w.hub.refresh_errors().await.unwrap().is_empty());
    assert_eq!(account(&w, &alice).await.status, AccountStatus::Active);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_refresh_failure_keeps_the_account_and_a_later_round_refreshes_sqlite() {
    transient_failure(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_refresh_failure_keeps_the_account_and_a_later_round_refreshes_postgres() {
    transient_failure(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Periodic rounds

/// A running worker checks again every `refresh_every`: a token that becomes due while it runs
/// is refreshed without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_refreshes_a_token_that_becomes_due() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    // Bob is due from the start: once he is refreshed, the first round has listed what was
    // due, before Alice's token was.
    age(&w, &bob.id, 3700, 7200).await;
    let running = w.spawn(EngineConfig {
        refresh_every: Duration::from_millis(100),
        ..fast_config("periodic")
    });
    wait_for("the first round to refresh Bob", PATIENCE, || async {
        account(&w, &bob).await.last_refresh_at.is_some()
    })
    .await;
    assert!(account(&w, &alice).await.last_refresh_at.is_none());
    age(&w, &alice.id, 3700, 7200).await;
    wait_for("a later round to refresh Alice", PATIENCE, || async {
        account(&w, &alice).await.last_refresh_at.is_some()
    })
    .await;
    let metrics = running.stop().await;
    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 2);
    assert_eq!(refresh_calls(&w), 2);
    assert_rotated(&w, &alice).await;
    assert_rotated(&w, &bob).await;
    w.finish().await;
}
