//! The publishing engine in process, against a stateful fake X over real HTTP and a real hub
//! (SQLite, and PostgreSQL where it is cheap): every delivery is published exactly once, on
//! time, through faults, outages, token expiry, ambiguous calls and dead workers.
//!
//! PostgreSQL tests need `PSN_TEST_DATABASE_URL` (an admin URL).

#[path = "engine/support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use psn_domain::{DeliveryStatus, Platform, PostStatus};
use psn_engine::EngineConfig;
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::x::XPublisher;
use psn_platforms::publish::{AccessToken, AccountContext, Publisher, SegmentRequest};
use psn_store::AccountStatus;
use psn_testkit::{Fault, FaultKind};
use support::{Db, PATIENCE, World, fast_config, wait_for};

// ---------------------------------------------------------------------------------------------
// Happy path

async fn happy_path(db: Db) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    let carol = w.connect_x("2003", "carol").await;
    // 20 posts: every fourth a 3-segment thread, every fifth to two accounts.
    for i in 0..20 {
        let texts = w.texts(if i % 4 == 0 { 3 } else { 1 });
        let accounts = match i % 5 {
            0 => vec![&alice, &bob],
            1 | 3 => vec![&bob],
            2 => vec![&carol],
            _ => vec![&alice],
        };
        w.schedule(&texts, &accounts).await;
    }
    let metrics = w.run_once(fast_config("happy")).await;

    w.assert_published_exactly_once().await;
    // 5 threads of 3 and 15 singles; posts 0 (a thread), 5, 10 and 15 go to two accounts.
    let deliveries: usize = w.posts().await.iter().map(|p| p.deliveries.len()).sum();
    assert_eq!(deliveries, 24);
    assert_eq!(metrics.published.load(Ordering::Relaxed), 24);
    assert_eq!(
        metrics.segments_published.load(Ordering::Relaxed) as usize,
        w.fake.posts().len()
    );
    // What `psn show` prints: each segment's attempt succeeded once, on the first claim.
    for post in w.posts().await {
        let post = w.hub.post_with_attempts(&post.id).await.unwrap();
        for d in &post.deliveries {
            assert_eq!(d.attempt_count, 1, "claimed once");
            assert_eq!(d.attempts.len(), d.segments.len());
            for (i, a) in d.attempts.iter().enumerate() {
                assert_eq!(a.step, format!("segment:{i}"));
                assert_eq!(a.status, "succeeded");
                assert_eq!(a.worker.as_deref(), Some("happy"));
                assert!(a.external_id.is_some() && a.finished_at.is_some());
            }
            assert!(d.last_error.is_none());
        }
    }
    // Nothing left claimable: a second run publishes nothing.
    let again = w.run_once(fast_config("happy-2")).await;
    assert_eq!(again.claimed.load(Ordering::Relaxed), 0);
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_publishes_every_segment_once_sqlite() {
    happy_path(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_publishes_every_segment_once_postgres() {
    happy_path(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// On time

/// The engine is already running (nothing due) when a post due in 2 s is added: it is
/// published at its time, not minutes later, and not early. On PostgreSQL the poll is an
/// hour, so only the NOTIFY wake-up can make this pass.
async fn due_soon(db: Db, poll: Duration) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    let running = w.spawn(EngineConfig {
        poll,
        ..fast_config("on-time")
    });
    // Let the engine reach its sleep with nothing to do.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let due = Utc::now() + chrono::Duration::seconds(2);
    let post = w.schedule_at(&w.texts(1), &[&alice], due).await;
    wait_for(
        "the post due in 2 s to publish",
        Duration::from_secs(30),
        || async { w.hub.post(&post.id).await.unwrap().status == PostStatus::Published },
    )
    .await;
    let d = &w.hub.post(&post.id).await.unwrap().deliveries[0];
    let published_at = d.published_at.expect("published_at");
    assert!(
        published_at >= due,
        "published at {published_at}, before its time {due}"
    );
    running.stop().await;
    w.assert_published_exactly_once().await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_due_in_two_seconds_is_published_on_time_sqlite() {
    // SQLite cannot notify: the default poll (500 ms) is what wakes the worker.
    due_soon(Db::Sqlite, EngineConfig::default().poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_due_in_two_seconds_is_published_on_time_postgres() {
    due_soon(Db::Postgres, Duration::from_secs(3600)).await;
}

// ---------------------------------------------------------------------------------------------
// Transient faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_transient_faults_still_publish_everything_once() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    for i in 0..20 {
        let texts = w.texts(if i % 5 == 0 { 3 } else { 1 });
        let to = if i % 2 == 0 { &alice } else { &bob };
        w.schedule(&texts, &[to]).await;
    }
    // Seeded: the i-th create request gets the i-th draw, so the faults are the same each run.
    w.fake.set_random_faults_on(
        Some("/2/tweets"),
        0.2,
        vec![
            FaultKind::ServerError,
            FaultKind::RateLimit {
                retry_after_secs: 1,
            },
        ],
        20_260_101,
    );
    let running = w.spawn(fast_config("faulty"));
    wait_for("every post to publish through the faults", PATIENCE, || {
        w.all_published()
    })
    .await;
    let metrics = running.stop().await;
    w.assert_published_exactly_once().await;
    let creates = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .count();
    let refused = creates - w.fake.posts().len();
    assert!(
        refused > 0,
        "the seed injected no fault: the test proves nothing"
    );
    // Each refusal is an attempt row classified as such, and put the delivery back to wait.
    let mut classes = Vec::new();
    for post in w.posts().await {
        for d in w.hub.post_with_attempts(&post.id).await.unwrap().deliveries {
            classes.extend(d.attempts.into_iter().filter_map(|a| a.error_class));
        }
    }
    assert_eq!(classes.len(), refused);
    let limited = classes.iter().filter(|c| *c == "rate_limited").count();
    assert_eq!(
        classes.iter().filter(|c| *c == "transient").count() + limited,
        refused,
        "{classes:?}"
    );
    assert_eq!(metrics.retried.load(Ordering::Relaxed) as usize, refused);
    assert_eq!(
        metrics.rate_limited.load(Ordering::Relaxed) as usize,
        limited
    );
    assert_eq!(metrics.failed.load(Ordering::Relaxed), 0);
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_outage_opens_the_breaker_and_attempts_stop_until_it_closes() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    for _ in 0..6 {
        w.schedule(&w.texts(1), &[&alice]).await;
    }
    // X is down: every create answers 503.
    w.fake
        .inject(Fault::on_create(FaultKind::ServerError).times(1_000_000));
    let open_for = Duration::from_secs(6);
    let running = w.spawn(EngineConfig {
        breaker_threshold: 3,
        breaker_open: open_for,
        ..fast_config("outage")
    });
    wait_for("the breaker to open", PATIENCE, || async {
        !w.hub.open_breakers(Utc::now()).await.unwrap().is_empty()
    })
    .await;
    let breakers = w.hub.open_breakers(Utc::now()).await.unwrap();
    let scopes: Vec<&str> = breakers.iter().map(|(s, _)| s.as_str()).collect();
    assert!(scopes.contains(&"platform:x"), "{scopes:?}");
    assert!(scopes.contains(&format!("account:{}", alice.id).as_str()));
    let open_until = breakers.iter().map(|(_, t)| *t).min().unwrap();
    // The delivery in flight when it opened settles; then nothing is attempted.
    wait_for("nothing to be claimed", PATIENCE, || async {
        w.posts()
            .await
            .iter()
            .flat_map(|p| &p.deliveries)
            .all(|d| d.status != DeliveryStatus::Claimed)
    })
    .await;
    let before = w.attempt_count().await;
    let creates_before = w.fake.request_count();
    assert_eq!(before, 3, "three failures opened it");
    // Well within the open time (6 s), the worker polls every 50 ms and retries are due.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = w.attempt_count().await;
    let checked_at = Utc::now();
    assert!(
        checked_at < open_until,
        "the machine stalled for seconds: the breaker closed before the check"
    );
    assert_eq!(
        after, before,
        "attempts were made while the breaker was open"
    );
    assert_eq!(w.fake.request_count(), creates_before);
    assert!(!w.all_published().await);
    for post in w.posts().await {
        assert!(matches!(
            post.deliveries[0].status,
            DeliveryStatus::Scheduled | DeliveryStatus::RetryWait
        ));
    }

    // X is back: once the open time has passed, everything publishes and the breaker closes.
    w.fake.clear_faults();
    wait_for("every post to publish after the outage", PATIENCE, || {
        w.all_published()
    })
    .await;
    let published_at = w
        .posts()
        .await
        .iter()
        .filter_map(|p| p.deliveries[0].published_at)
        .min()
        .unwrap();
    assert!(
        published_at >= open_until,
        "published at {published_at} while the breaker was open until {open_until}"
    );
    running.stop().await;
    assert!(w.hub.open_breakers(Utc::now()).await.unwrap().is_empty());
    w.assert_published_exactly_once().await;
    // No delivery failed for the outage: 6 posts, 3 failed attempts before it opened.
    assert_eq!(w.attempt_count().await, 3 + 6);
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Authorization

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_then_the_post_publishes() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    w.fake.expire_token("tok-alice");
    w.schedule(&w.texts(1), &[&alice]).await;
    let metrics = w.run_once(fast_config("auth")).await;

    w.assert_published_exactly_once().await;
    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 1);
    let refreshes = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/2/oauth2/token")
        .count();
    assert_eq!(refreshes, 1);
    // The rotated tokens are stored (encrypted) and valid on X; the spent ones are gone.
    let tokens = w.hub.account_tokens(&alice.id, &w.cipher).await.unwrap();
    assert_ne!(tokens.access_token.expose(), "tok-alice");
    assert!(w.fake.token_valid(tokens.access_token.expose()));
    let rotated = tokens.refresh_token.expect("a refresh token");
    assert_ne!(rotated.expose(), "ref-alice");
    let account = w.hub.account(&alice.id).await.unwrap();
    assert_eq!(account.status, AccountStatus::Active);
    assert!(account.last_refresh_at.is_some());

    // The next post uses the stored token: no second refresh.
    w.schedule(&w.texts(1), &[&alice]).await;
    let metrics = w.run_once(fast_config("auth-2")).await;
    assert_eq!(metrics.token_refreshes.load(Ordering::Relaxed), 0);
    w.assert_published_exactly_once().await;
    assert!(w.hub.open_alerts().await.unwrap().is_empty());
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_makes_the_account_need_reauthorization() {
    let w = World::new(Db::Sqlite).await;
    // X knows the access token (soon expired) but not this refresh token.
    w.fake.add_account("2001", "alice", "tok-alice");
    let alice = w
        .connect_x_with("2001", "alice", "tok-alice", Some("ref-revoked-secret"))
        .await;
    w.fake.expire_token("tok-alice");
    let post = w.schedule(&w.texts(1), &[&alice]).await;
    w.run_once(fast_config("reauth")).await;

    let account = w.hub.account(&alice.id).await.unwrap();
    assert_eq!(account.status, AccountStatus::NeedsReauth);
    let alerts = w.hub.open_alerts().await.unwrap();
    let alert = alerts
        .iter()
        .find(|a| a.kind == "needs_reauth")
        .expect("a needs_reauth alert");
    assert_eq!(alert.priority, "P0");
    assert_eq!(alert.subject_id, alice.id.to_string());
    assert!(alert.message.contains("psn accounts connect x"));
    let post = w.hub.post_with_attempts(&post.id).await.unwrap();
    let d = &post.deliveries[0];
    assert!(
        !matches!(d.status, DeliveryStatus::Failed | DeliveryStatus::Published),
        "the delivery must wait for the account, not fail: {}",
        d.status
    );
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("re-authorization")
    );
    // One create (401), one refresh (400 invalid_grant), nothing else.
    let requests = w.fake.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(w.fake.posts().is_empty());
    // No secret leaks into what a person reads.
    for text in alerts
        .iter()
        .map(|a| a.message.clone())
        .chain(d.last_error.clone())
        .chain(d.attempts.iter().filter_map(|a| a.error.clone()))
    {
        assert!(!text.contains("tok-alice") && !text.contains("ref-revoked-secret"));
    }
    // The worker leaves it alone while the account is not reconnected.
    let again = w.run_once(fast_config("reauth-2")).await;
    assert_eq!(again.claimed.load(Ordering::Relaxed), 0);
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Permanent refusal

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_fails_the_delivery_once_with_the_reason() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let post = w.schedule(&w.texts(1), &[&alice]).await;
    w.fake.inject(Fault::on_create(FaultKind::BadRequest));
    w.run_once(fast_config("permanent")).await;

    let post = w.hub.post_with_attempts(&post.id).await.unwrap();
    assert_eq!(post.status, PostStatus::Failed);
    let d = &post.deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    let reason = d.last_error.as_deref().expect("the reason");
    assert!(
        reason.contains("One or more parameters to your request was invalid"),
        "{reason}"
    );
    assert!(!reason.contains('<') && !reason.contains("tok-alice"));
    assert!(reason.len() <= 2000);
    assert_eq!(d.attempts.len(), 1, "a permanent refusal is not retried");
    assert_eq!(d.attempts[0].error_class.as_deref(), Some("permanent"));
    let alerts = w.hub.open_alerts().await.unwrap();
    assert!(
        alerts.iter().any(|a| a.priority == "P0"
            && a.kind == "delivery_failed"
            && a.subject_id == post.id.to_string()),
        "{alerts:?}"
    );
    // Not retried later either.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = w.run_once(fast_config("permanent-2")).await;
    assert_eq!(again.claimed.load(Ordering::Relaxed), 0);
    assert_eq!(w.fake.request_count(), 1);
    assert!(w.fake.posts().is_empty());
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Ambiguous outcomes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_response_is_reconciled_as_found_and_not_sent_again() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    // A thread whose second segment's response is lost after X created it.
    let post = w.schedule(&w.texts(3), &[&alice]).await;
    // Queued faults are consumed in order: the first create passes (a 0 ms delay), the
    // second (segment 1, a reply) is written by X and its response never arrives.
    w.fake.inject(Fault::on_create(FaultKind::Slow { ms: 0 }));
    w.fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let running = w.spawn(fast_config("ambiguous"));
    wait_for("the thread to publish", PATIENCE, || w.all_published()).await;
    let metrics = running.stop().await;

    w.assert_published_exactly_once().await;
    assert_eq!(metrics.unconfirmed.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.reconciled_found.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.reconciled_not_found.load(Ordering::Relaxed), 0);
    let creates = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .count();
    assert_eq!(creates, 3, "the dropped create was not sent again");
    let d = &w.hub.post_with_attempts(&post.id).await.unwrap().deliveries[0];
    let statuses: Vec<(&str, &str)> = d
        .attempts
        .iter()
        .map(|a| (a.step.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("segment:0", "succeeded"),
            ("segment:1", "reconciled"),
            ("segment:2", "succeeded")
        ]
    );
    assert_eq!(d.attempt_count, 2, "claimed, unconfirmed, claimed again");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_before_the_write_is_reconciled_as_not_found_and_sent_once() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let post = w.schedule(&w.texts(1), &[&alice]).await;
    // The client gives up after 1 s; X would have answered nothing after 3 s.
    w.fake
        .inject(Fault::on_create(FaultKind::TimeoutBeforeWrite { ms: 3000 }));
    let running = w.spawn_with(fast_config("timeout"), Duration::from_secs(1));
    wait_for("the post to publish", PATIENCE, || w.all_published()).await;
    let metrics = running.stop().await;

    w.assert_published_exactly_once().await;
    assert_eq!(metrics.unconfirmed.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.reconciled_not_found.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.reconciled_found.load(Ordering::Relaxed), 0);
    let d = &w.hub.post_with_attempts(&post.id).await.unwrap().deliveries[0];
    let statuses: Vec<&str> = d.attempts.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(statuses, ["not_found", "succeeded"]);
    // The reconciliation looked at the timeline before sending again.
    let requests = w.fake.requests();
    let order: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        order,
        [
            "POST /2/tweets",
            "GET /2/users/2001/tweets",
            "POST /2/tweets"
        ]
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Dead workers

/// A worker claims a thread, records the write-ahead attempt for its first segment, maybe
/// sends it, and dies. After the lease expires, recovery makes the delivery unconfirmed and a
/// fresh engine reconciles and publishes the thread exactly once.
async fn dead_worker(db: Db, sent_before_dying: bool) {
    let w = World::new(db).await;
    let alice = w.connect_x("2001", "alice").await;
    let post = w.schedule(&w.texts(3), &[&alice]).await;
    let lease = Duration::from_millis(400);
    let claimed = w
        .hub
        .claim_next("doomed-worker", &[Platform::X], Utc::now(), lease)
        .await
        .unwrap()
        .expect("a due delivery");
    assert_eq!(claimed.post_id, post.id);
    let key = format!("psn:{}:{}:segment:0", claimed.post_id, claimed.account_id);
    w.hub
        .begin_attempt(&claimed.id, "doomed-worker", "segment:0", &key, Utc::now())
        .await
        .unwrap();
    if sent_before_dying {
        // The request reached X; the worker died before recording the answer.
        let x = XPublisher::with_client(w.fake.base_url(), client_with_timeout(PATIENCE));
        let account = AccountContext {
            external_id: alice.external_id.clone(),
            handle: alice.handle.clone(),
            service_url: String::new(),
            access_token: AccessToken("tok-alice".into()),
        };
        x.publish_segment(
            &account,
            &SegmentRequest {
                text: &claimed.segments[0],
                index: 0,
                count: 3,
                reply_to: None,
                thread_root: None,
                idempotency_key: &key,
                language: Some("en"),
                media_ids: &[],
            },
        )
        .await
        .unwrap();
    }
    // While the lease holds, nobody recovers it and nobody else can claim that account.
    assert_eq!(w.hub.recover_expired_leases(Utc::now()).await.unwrap(), 0);
    assert!(
        w.hub
            .claim_next("other", &[Platform::X], Utc::now(), lease)
            .await
            .unwrap()
            .is_none()
    );
    wait_for("the lease to expire", PATIENCE, || async {
        Utc::now() > claimed.lease_expires_at + chrono::Duration::milliseconds(5)
    })
    .await;
    assert_eq!(w.hub.recover_expired_leases(Utc::now()).await.unwrap(), 1);
    let d = &w.hub.post(&post.id).await.unwrap().deliveries[0];
    assert_eq!(d.status, DeliveryStatus::Unconfirmed);
    // The dead worker's late writes are refused.
    assert!(
        w.hub
            .begin_attempt(&claimed.id, "doomed-worker", "segment:1", "k", Utc::now())
            .await
            .is_err()
    );

    let metrics = w.run_once(fast_config("rescuer")).await;
    w.assert_published_exactly_once().await;
    assert_eq!(metrics.published.load(Ordering::Relaxed), 1);
    let (found, not_found) = if sent_before_dying { (1, 0) } else { (0, 1) };
    assert_eq!(metrics.reconciled_found.load(Ordering::Relaxed), found);
    assert_eq!(
        metrics.reconciled_not_found.load(Ordering::Relaxed),
        not_found
    );
    let d = &w.hub.post_with_attempts(&post.id).await.unwrap().deliveries[0];
    let first = &d.attempts[0];
    assert_eq!(first.worker.as_deref(), Some("doomed-worker"));
    assert_eq!(
        first.status,
        if sent_before_dying {
            "reconciled"
        } else {
            "not_found"
        }
    );
    assert!(
        d.attempts[1..]
            .iter()
            .all(|a| a.worker.as_deref() == Some("rescuer") && a.status == "succeeded")
    );
    let creates = w
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .count();
    assert_eq!(creates, 3);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_sent_segment_is_reconciled_not_resent_sqlite() {
    dead_worker(Db::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_sent_segment_is_reconciled_not_resent_postgres() {
    dead_worker(Db::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_unsent_segment_is_sent_once_after_reconciling() {
    dead_worker(Db::Sqlite, false).await;
}

// ---------------------------------------------------------------------------------------------
// Reconciling before the account moves on

/// X's reconciliation reads the account's 100 most recent posts. A dead worker's segment must
/// be reconciled before the account publishes anything else, or 100 newer posts push it out
/// of sight and it is sent twice (here: refused by X as a duplicate, so the delivery fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_delivery_is_reconciled_before_the_account_publishes_more() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let first = w.schedule(&w.texts(1), &[&alice]).await;
    for _ in 0..120 {
        w.schedule(&w.texts(1), &[&alice]).await;
    }
    let lease = Duration::from_millis(300);
    let claimed = w
        .hub
        .claim_next("doomed-worker", &[Platform::X], Utc::now(), lease)
        .await
        .unwrap()
        .expect("a due delivery");
    assert_eq!(
        claimed.post_id, first.id,
        "the earliest post is claimed first"
    );
    let key = format!("psn:{}:{}:segment:0", claimed.post_id, claimed.account_id);
    w.hub
        .begin_attempt(&claimed.id, "doomed-worker", "segment:0", &key, Utc::now())
        .await
        .unwrap();
    let x = XPublisher::with_client(w.fake.base_url(), client_with_timeout(PATIENCE));
    let account = AccountContext {
        external_id: alice.external_id.clone(),
        handle: alice.handle.clone(),
        service_url: String::new(),
        access_token: AccessToken("tok-alice".into()),
    };
    x.publish_segment(
        &account,
        &SegmentRequest {
            text: &claimed.segments[0],
            index: 0,
            count: 1,
            reply_to: None,
            thread_root: None,
            idempotency_key: &key,
            language: Some("en"),
            media_ids: &[],
        },
    )
    .await
    .unwrap();
    wait_for("the lease to expire", PATIENCE, || async {
        Utc::now() > claimed.lease_expires_at + chrono::Duration::milliseconds(5)
    })
    .await;
    // The rescuer recovers the lease itself.
    let metrics = w.run_once(fast_config("rescuer")).await;
    assert_eq!(metrics.recovered.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.reconciled_found.load(Ordering::Relaxed), 1);
    w.assert_published_exactly_once().await;
    w.finish().await;
}

/// After an ambiguous create, the account's next request is the reconciliation, not another
/// post: the account waits for the unconfirmed delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_delivery_holds_its_account_until_reconciled() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    let bob = w.connect_x("2002", "bob").await;
    for i in 0..20 {
        let to = if i % 2 == 0 { &alice } else { &bob };
        w.schedule(&w.texts(1), &[to]).await;
    }
    w.fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let running = w.spawn(EngineConfig {
        reconcile_delay: Duration::from_millis(800),
        ..fast_config("holder")
    });
    wait_for("every post to publish", PATIENCE, || w.all_published()).await;
    let metrics = running.stop().await;
    w.assert_published_exactly_once().await;
    assert_eq!(metrics.reconciled_found.load(Ordering::Relaxed), 1);
    // Which account got the dropped create: the author of X's first post.
    let first = &w.fake.posts()[0];
    let author_path = format!("/2/users/{}/tweets", first.author_id);
    let requests = w.fake.requests();
    let dropped = requests
        .iter()
        .position(|r| r.method == "POST")
        .expect("a create");
    // The author's requests after the drop: first the timeline check, then new posts.
    let author_requests: Vec<&psn_testkit::RecordedRequest> = requests[dropped + 1..]
        .iter()
        .filter(|r| {
            r.path == author_path
                || (r.method == "POST"
                    && w.fake
                        .posts()
                        .iter()
                        .any(|p| p.author_id == first.author_id && r.body.contains(&p.text)))
        })
        .collect();
    assert_eq!(
        author_requests.first().map(|r| r.path.as_str()),
        Some(author_path.as_str()),
        "the account published again before its unknown outcome was checked"
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Idle when nothing can be claimed

/// Transactions committed in the hub's database so far (PostgreSQL's own statistics).
async fn commits(url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    // Statistics are flushed by each backend at most once a second.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    n
}

/// A delivery that is due but cannot be claimed (its account needs re-authorization) must
/// not make the worker spin: it checks again at its poll interval, not every few ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_delivery_that_cannot_be_claimed_does_not_make_the_worker_spin() {
    let w = World::new(Db::Postgres).await;
    w.fake.add_account("2001", "alice", "tok-alice");
    let alice = w
        .connect_x_with("2001", "alice", "tok-alice", Some("ref-revoked"))
        .await;
    w.fake.expire_token("tok-alice");
    w.schedule(&w.texts(1), &[&alice]).await;
    w.run_once(fast_config("reauth")).await;
    assert_eq!(
        w.hub.account(&alice.id).await.unwrap().status,
        AccountStatus::NeedsReauth
    );
    let url = w.url().expect("a PostgreSQL hub");
    let running = w.spawn(EngineConfig {
        poll: Duration::from_millis(500),
        ..fast_config("idle")
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = commits(&url).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    // Let every backend flush its statistics.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = commits(&url).await - before;
    eprintln!("{during} transactions in 3 s while idle");
    // Polling every 500 ms for 3 s is a few dozen transactions; spinning is thousands.
    assert!(
        during < 300,
        "{during} transactions in 3 s with nothing claimable: the worker spins"
    );
    w.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Upload progress

/// An upload's saved state lives in the delivery's progress under its own key, comes back
/// with the next claim, and cannot be written by a worker that lost its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_progress_survives_a_dead_worker_and_refuses_a_lost_lease() {
    let w = World::new(Db::Sqlite).await;
    let alice = w.connect_x("2001", "alice").await;
    w.schedule(&w.texts(1), &[&alice]).await;
    let lease = Duration::from_millis(300);
    let claimed = w
        .hub
        .claim_next("doomed-worker", &[Platform::X], Utc::now(), lease)
        .await
        .unwrap()
        .expect("a due delivery");
    let record = psn_store::StepRecord {
        external_id: "1900000000000000007".into(),
        url: None,
        state: Some(
            serde_json::json!({"phase": "transferring", "next_segment": 3, "offset": 6144}),
        ),
    };
    w.hub
        .save_step_progress(
            &claimed.id,
            "doomed-worker",
            "media:0:upload",
            &record,
            Utc::now(),
        )
        .await
        .unwrap();
    wait_for("the lease to expire", PATIENCE, || async {
        Utc::now() > claimed.lease_expires_at + chrono::Duration::milliseconds(5)
    })
    .await;
    assert_eq!(w.hub.recover_expired_leases(Utc::now()).await.unwrap(), 1);
    let late = w
        .hub
        .save_step_progress(
            &claimed.id,
            "doomed-worker",
            "media:0:upload",
            &record,
            Utc::now(),
        )
        .await;
    assert!(
        matches!(late, Err(psn_store::StoreError::Conflict(_))),
        "{late:?}"
    );
    let again = w
        .hub
        .claim_next("next-worker", &[Platform::X], Utc::now(), lease)
        .await
        .unwrap()
        .expect("the recovered delivery");
    assert_eq!(again.id, claimed.id);
    assert_eq!(again.progress.get("media:0:upload"), Some(&record));
    assert!(!again.progress.contains_key("media:0"));
    w.finish().await;
}
