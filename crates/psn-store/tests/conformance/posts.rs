//! Posts: creation (idempotent, all-or-nothing), listing, and the person-driven transitions.

use chrono::Utc;
use psn_domain::{AccountId, DeliveryStatus, Platform, PostId, PostStatus};
use psn_store::{CreateOutcome, Hub, NewDelivery, Post, PostEdit, PostFilter, StoreError};

use super::{assert_transition, at, cipher, connect, counts, new_post, schedule, segments_for};
use crate::support;

fn ids(posts: &[Post]) -> Vec<PostId> {
    posts.iter().map(|p| p.id.clone()).collect()
}

pub async fn posts_create_and_idempotency(hub: &Hub) {
    let key = cipher();
    let bsky = connect(hub, &key, Platform::Bluesky, "alice.bsky.social").await;
    let masto = connect(hub, &key, Platform::Mastodon, "alice").await;

    // Scheduled on two accounts.
    let post = schedule(hub, 1, "hello", &[&bsky, &masto]).await;
    assert_eq!(post.status, PostStatus::Scheduled);
    assert_eq!(post.body, "hello");
    assert_eq!(post.language.as_deref(), Some("en"));
    assert_eq!(post.run_at, Some(at(1)));
    assert_eq!(post.created_by, "alice");
    assert_eq!(post.options, serde_json::json!({"thread": true}));
    assert_eq!(post.deliveries.len(), 2);
    for d in &post.deliveries {
        assert_eq!(d.status, DeliveryStatus::Scheduled);
        assert_eq!(d.run_at, at(1));
        assert_eq!(d.segments, segments_for(d.platform, "hello"));
        assert_eq!(d.attempt_count, 0);
        let account = if d.platform == Platform::Bluesky {
            &bsky
        } else {
            &masto
        };
        assert_eq!(d.account, account.id);
        assert_eq!(d.handle, account.handle);
    }
    let read = hub.post(&post.id).await.unwrap();
    assert_eq!(read.status, PostStatus::Scheduled);
    assert_eq!(read.body, post.body);
    assert_eq!(
        read.deliveries
            .iter()
            .map(|d| (&d.id, d.status, &d.segments))
            .collect::<Vec<_>>(),
        post.deliveries
            .iter()
            .map(|d| (&d.id, d.status, &d.segments))
            .collect::<Vec<_>>()
    );
    let with_attempts = hub.post_with_attempts(&post.id).await.unwrap();
    assert!(
        with_attempts
            .deliveries
            .iter()
            .all(|d| d.attempts.is_empty())
    );
    assert!(matches!(
        hub.post(&PostId::from_random([3; 8])).await,
        Err(StoreError::NotFound { what: "post", .. })
    ));

    // Idempotency: the same creator and key return the first post and write nothing.
    let mut keyed = new_post(
        "alice",
        PostStatus::Scheduled,
        Some(at(2)),
        "once",
        &[&bsky, &masto],
    );
    keyed.idempotency_key = Some("key-1".to_string());
    let first = match hub.create_post(&keyed).await.unwrap() {
        CreateOutcome::Created(p) => p,
        CreateOutcome::Existing(p) => panic!("{} should be new", p.id),
    };
    assert_eq!(first.idempotency_key.as_deref(), Some("key-1"));
    let before = counts(hub).await;
    let mut retried = keyed.clone();
    retried.body = "once, but typed again".to_string();
    match hub.create_post(&retried).await.unwrap() {
        CreateOutcome::Existing(p) => {
            assert_eq!(p.id, first.id);
            assert_eq!(p.body, "once", "the first post is returned as it is");
        }
        CreateOutcome::Created(p) => panic!("a second post {} was created for the same key", p.id),
    }
    assert_eq!(
        counts(hub).await,
        before,
        "an idempotent repeat wrote something"
    );

    // The same key from another creator is another post.
    let mut bobs = keyed.clone();
    bobs.created_by = "bob".to_string();
    let bob_post = match hub.create_post(&bobs).await.unwrap() {
        CreateOutcome::Created(p) => p,
        CreateOutcome::Existing(p) => panic!("bob's post was taken for alice's {}", p.id),
    };
    assert_ne!(bob_post.id, first.id);
    assert_eq!(bob_post.created_by, "bob");

    // A draft: held deliveries, no time needed.
    let draft = match hub
        .create_post(&new_post(
            "alice",
            PostStatus::Draft,
            None,
            "draft",
            &[&bsky, &masto],
        ))
        .await
        .unwrap()
    {
        CreateOutcome::Created(p) => p,
        CreateOutcome::Existing(p) => panic!("{} should be new", p.id),
    };
    assert_eq!(draft.status, PostStatus::Draft);
    assert_eq!(draft.run_at, None);
    assert!(
        draft
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Held)
    );
    // Awaiting approval: held too.
    let pending = hub
        .create_post(&new_post(
            "alice",
            PostStatus::PendingApproval,
            Some(at(3)),
            "ok?",
            &[&bsky],
        ))
        .await
        .unwrap()
        .into_post();
    assert_eq!(pending.status, PostStatus::PendingApproval);
    assert!(
        pending
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Held)
    );

    // Invalid requests are refused before anything is written.
    let before = counts(hub).await;
    let no_time = new_post("alice", PostStatus::Scheduled, None, "when?", &[&bsky]);
    assert!(matches!(
        hub.create_post(&no_time).await,
        Err(StoreError::Invalid(_))
    ));
    let nobody = new_post(
        "alice",
        PostStatus::Scheduled,
        Some(at(1)),
        "to nobody",
        &[],
    );
    assert!(matches!(
        hub.create_post(&nobody).await,
        Err(StoreError::Invalid(_))
    ));
    let published = new_post(
        "alice",
        PostStatus::Published,
        Some(at(1)),
        "done?",
        &[&bsky],
    );
    assert!(matches!(
        hub.create_post(&published).await,
        Err(StoreError::Invalid(_))
    ));

    // An unknown account: not found, and the whole post is rolled back — even the delivery to
    // the good account that was inserted before it.
    let mut unknown = new_post(
        "alice",
        PostStatus::Scheduled,
        Some(at(1)),
        "lost",
        &[&bsky],
    );
    unknown.deliveries.push(NewDelivery {
        account_id: AccountId::from_random([5; 8]),
        platform: Platform::X,
        segments: vec!["lost".to_string()],
    });
    match hub.create_post(&unknown).await {
        Err(StoreError::NotFound {
            what: "account", ..
        }) => {}
        other => panic!("expected account not found, got {other:?}"),
    }
    assert_eq!(
        counts(hub).await,
        before,
        "a failed create left rows behind"
    );

    // A disconnected account: refused, nothing written.
    hub.disconnect_account(&masto.id, "alice", true)
        .await
        .unwrap();
    let before = counts(hub).await;
    let to_disconnected = new_post(
        "alice",
        PostStatus::Scheduled,
        Some(at(1)),
        "gone",
        &[&bsky, &masto],
    );
    match hub.create_post(&to_disconnected).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("disconnected"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        counts(hub).await,
        before,
        "a failed create left rows behind"
    );
    // The hub is still usable for writes afterwards (the failed transaction was rolled back).
    let after = schedule(hub, 5, "still works", &[&bsky]).await;
    assert_eq!(after.status, PostStatus::Scheduled);
}

pub async fn posts_filter(hub: &Hub) {
    let key = cipher();
    let bsky = connect(hub, &key, Platform::Bluesky, "alice.bsky.social").await;

    // Created out of order on purpose.
    let p3 = schedule(hub, 3, "three", &[&bsky]).await;
    let p1 = schedule(hub, 1, "one", &[&bsky]).await;
    let draft = hub
        .create_post(&new_post(
            "alice",
            PostStatus::Draft,
            None,
            "draft",
            &[&bsky],
        ))
        .await
        .unwrap()
        .into_post();
    let p2 = schedule(hub, 2, "two", &[&bsky]).await;
    let p4 = schedule(hub, 4, "four", &[&bsky]).await;
    let p4 = hub.cancel_post(&p4.id, "alice").await.unwrap();
    assert_eq!(p4.status, PostStatus::Cancelled);

    let list = |filter: PostFilter| async move { ids(&hub.posts(&filter).await.unwrap()) };

    // Everything, soonest first, drafts without a time last.
    assert_eq!(
        list(PostFilter::default()).await,
        vec![
            p1.id.clone(),
            p2.id.clone(),
            p3.id.clone(),
            p4.id.clone(),
            draft.id.clone()
        ]
    );
    let all = hub.posts(&PostFilter::default()).await.unwrap();
    assert!(all.windows(2).all(|w| match (w[0].run_at, w[1].run_at) {
        (Some(a), Some(b)) => a <= b,
        (_, None) => true,
        (None, Some(_)) => false,
    }));
    assert!(
        all.iter().all(|p| !p.deliveries.is_empty()),
        "listed posts carry their deliveries"
    );

    // By status.
    let scheduled = PostFilter {
        statuses: vec![PostStatus::Scheduled],
        ..Default::default()
    };
    assert_eq!(
        list(scheduled).await,
        vec![p1.id.clone(), p2.id.clone(), p3.id.clone()]
    );
    let not_live = PostFilter {
        statuses: vec![PostStatus::Draft, PostStatus::Cancelled],
        ..Default::default()
    };
    assert_eq!(list(not_live).await, vec![p4.id.clone(), draft.id.clone()]);
    let published = PostFilter {
        statuses: vec![PostStatus::Published],
        ..Default::default()
    };
    assert!(list(published).await.is_empty());

    // By window: from is inclusive, to is exclusive, posts without a time are outside.
    let from = PostFilter {
        from: Some(at(2)),
        ..Default::default()
    };
    assert_eq!(
        list(from).await,
        vec![p2.id.clone(), p3.id.clone(), p4.id.clone()]
    );
    let to = PostFilter {
        to: Some(at(3)),
        ..Default::default()
    };
    assert_eq!(list(to).await, vec![p1.id.clone(), p2.id.clone()]);
    let window = PostFilter {
        from: Some(at(2)),
        to: Some(at(4)),
        ..Default::default()
    };
    assert_eq!(list(window).await, vec![p2.id.clone(), p3.id.clone()]);
    let empty = PostFilter {
        from: Some(at(10)),
        to: Some(at(20)),
        ..Default::default()
    };
    assert!(list(empty).await.is_empty());

    // Limit keeps the soonest.
    let limited = PostFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(list(limited).await, vec![p1.id.clone(), p2.id.clone()]);
    let everything = PostFilter {
        statuses: vec![PostStatus::Scheduled, PostStatus::Cancelled],
        from: Some(at(2)),
        to: Some(at(5)),
        limit: Some(2),
    };
    assert_eq!(list(everything).await, vec![p2.id.clone(), p3.id.clone()]);
}

pub async fn post_transitions(hub: &Hub) {
    let key = cipher();
    let bsky = connect(hub, &key, Platform::Bluesky, "alice.bsky.social").await;
    let masto = connect(hub, &key, Platform::Mastodon, "alice").await;

    // Reschedule moves the post and every delivery.
    let post = schedule(hub, 1, "hello", &[&bsky, &masto]).await;
    let moved = hub.reschedule_post(&post.id, at(6), "alice").await.unwrap();
    assert_eq!(moved.run_at, Some(at(6)));
    assert_eq!(moved.status, PostStatus::Scheduled);
    assert!(
        moved
            .deliveries
            .iter()
            .all(|d| d.run_at == at(6) && d.status == DeliveryStatus::Scheduled)
    );

    // Edit replaces the body and each platform's segments.
    let edit = PostEdit {
        body: "hello again".to_string(),
        language: Some("es".parse().unwrap()),
        segments: vec![
            (Platform::Bluesky, vec!["b1".to_string(), "b2".to_string()]),
            (Platform::Mastodon, vec!["m1".to_string()]),
        ],
    };
    let edited = hub.edit_post(&post.id, &edit, "alice").await.unwrap();
    assert_eq!(edited.body, "hello again");
    assert_eq!(edited.language.as_deref(), Some("es"));
    assert_eq!(edited.status, PostStatus::Scheduled);
    assert_eq!(edited.run_at, Some(at(6)));
    for d in &edited.deliveries {
        let want: Vec<&str> = if d.platform == Platform::Bluesky {
            vec!["b1", "b2"]
        } else {
            vec!["m1"]
        };
        assert_eq!(d.segments, want, "{}", d.platform);
        assert_eq!(d.status, DeliveryStatus::Scheduled);
        assert_eq!(d.run_at, at(6));
    }
    // An edit that misses a platform is refused and changes nothing.
    let partial = PostEdit {
        body: "half".to_string(),
        language: None,
        segments: vec![(Platform::Bluesky, vec!["half".to_string()])],
    };
    match hub.edit_post(&post.id, &partial, "alice").await {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains("mastodon"), "{msg}"),
        other => panic!("expected invalid edit, got {other:?}"),
    }
    let unchanged = hub.post(&post.id).await.unwrap();
    assert_eq!(unchanged.body, "hello again");
    assert!(
        unchanged
            .deliveries
            .iter()
            .any(|d| d.segments == ["b1", "b2"])
    );

    // Retry is only for failed posts.
    assert_transition(hub.retry_post(&post.id, "alice").await, "retr");
    let unknown = PostId::from_random([4; 8]);
    assert!(matches!(
        hub.cancel_post(&unknown, "alice").await,
        Err(StoreError::NotFound { .. })
    ));

    // Cancel, then nothing else is allowed.
    let cancelled = hub.cancel_post(&post.id, "alice").await.unwrap();
    assert_eq!(cancelled.status, PostStatus::Cancelled);
    assert!(
        cancelled
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Cancelled)
    );
    assert_transition(
        hub.reschedule_post(&post.id, at(7), "alice").await,
        "cancelled",
    );
    assert_transition(hub.edit_post(&post.id, &edit, "alice").await, "cancelled");
    assert_transition(hub.cancel_post(&post.id, "alice").await, "cancelled");
    assert_transition(hub.retry_post(&post.id, "alice").await, "cancelled");
    assert_eq!(hub.post(&post.id).await.unwrap().run_at, Some(at(6)));

    // Retry of a failed post: every failed delivery is due again, now.
    let failed = schedule(hub, 2, "will fail", &[&bsky, &masto]).await;
    support::exec(
        hub,
        &format!(
            "UPDATE deliveries SET status = 'failed', last_error = 'boom', attempt_count = 3 \
             WHERE post_id = '{id}'; UPDATE posts SET status = 'failed' WHERE id = '{id}'",
            id = failed.id
        ),
    )
    .await;
    let read = hub.post(&failed.id).await.unwrap();
    assert_eq!(read.status, PostStatus::Failed);
    assert!(
        read.deliveries
            .iter()
            .all(|d| d.last_error.as_deref() == Some("boom"))
    );
    // A failed post cannot be rescheduled (retry does that).
    assert_transition(
        hub.reschedule_post(&failed.id, at(8), "alice").await,
        "retry",
    );
    let before = Utc::now();
    let retried = hub.retry_post(&failed.id, "alice").await.unwrap();
    let after = Utc::now();
    assert_eq!(retried.status, PostStatus::Scheduled);
    for d in &retried.deliveries {
        assert_eq!(d.status, DeliveryStatus::Scheduled);
        assert_eq!(d.last_error, None, "retry clears the error");
        let window =
            before - chrono::Duration::milliseconds(1)..=after + chrono::Duration::milliseconds(1);
        assert!(
            window.contains(&d.run_at),
            "retry makes it due now: {}",
            d.run_at
        );
    }

    // Retry of a partially published post: only the failed delivery moves.
    let partial = schedule(hub, 3, "half there", &[&bsky, &masto]).await;
    let published = partial
        .deliveries
        .iter()
        .find(|d| d.platform == Platform::Bluesky)
        .unwrap();
    let failing = partial
        .deliveries
        .iter()
        .find(|d| d.platform == Platform::Mastodon)
        .unwrap();
    support::exec(
        hub,
        &format!(
            "UPDATE deliveries SET status = 'published', external_id = 'at://post/1', \
             external_url = 'https://bsky.app/post/1', published_at = 1 WHERE id = '{published}'; \
             UPDATE deliveries SET status = 'failed', last_error = 'quota' WHERE id = '{failing}'; \
             UPDATE posts SET status = 'partially_published' WHERE id = '{post}'",
            published = published.id,
            failing = failing.id,
            post = partial.id,
        ),
    )
    .await;
    assert_eq!(
        hub.post(&partial.id).await.unwrap().status,
        PostStatus::PartiallyPublished
    );
    // Part of it is out: editing, rescheduling and cancelling are refused.
    assert_transition(
        hub.reschedule_post(&partial.id, at(9), "alice").await,
        "partially_published",
    );
    assert_transition(
        hub.cancel_post(&partial.id, "alice").await,
        "partially_published",
    );
    let retried = hub.retry_post(&partial.id, "alice").await.unwrap();
    let still = retried
        .deliveries
        .iter()
        .find(|d| d.id == published.id)
        .unwrap();
    assert_eq!(
        still.status,
        DeliveryStatus::Published,
        "a published delivery never moves"
    );
    assert_eq!(still.external_id.as_deref(), Some("at://post/1"));
    assert_eq!(still.url.as_deref(), Some("https://bsky.app/post/1"));
    assert_eq!(still.run_at, at(3));
    let again = retried
        .deliveries
        .iter()
        .find(|d| d.id == failing.id)
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Scheduled);
    assert_eq!(again.last_error, None);
    assert_eq!(
        retried.status,
        psn_domain::status::derive_post_status(
            PostStatus::Scheduled,
            &[DeliveryStatus::Published, DeliveryStatus::Scheduled]
        ),
        "the post's status is derived from its deliveries again"
    );
    assert_ne!(retried.status, PostStatus::PartiallyPublished);
    // Nothing is left to retry.
    assert!(hub.retry_post(&partial.id, "alice").await.is_err());
}

/// `queued_load`: a platform's deliveries that are or will be posted in a time range, with
/// their segment counts; drafts and cancelled posts do not count, nor other platforms.
pub async fn queued_load_counts_what_will_be_posted(hub: &Hub) {
    let cipher = cipher();
    let alice = connect(hub, &cipher, Platform::X, "alice").await;
    let bob = connect(hub, &cipher, Platform::X, "bob").await;
    let masto = connect(hub, &cipher, Platform::Mastodon, "masto").await;
    let create = |phase, hours: i64, body: &str, accounts: Vec<&psn_store::Account>| {
        let post = new_post("alice", phase, Some(at(hours)), body, &accounts);
        async move { hub.create_post(&post).await.unwrap().into_post() }
    };
    create(PostStatus::Scheduled, 1, "both", vec![&alice, &bob, &masto]).await;
    create(PostStatus::Scheduled, 30, "later", vec![&alice]).await;
    create(PostStatus::Draft, 2, "draft", vec![&alice]).await;
    let cancelled = create(PostStatus::Scheduled, 3, "cancelled", vec![&alice]).await;
    hub.cancel_post(&cancelled.id, "alice").await.unwrap();
    let load = hub.queued_load(Platform::X, at(0), at(24)).await.unwrap();
    let mut seen: Vec<(String, i64, usize)> = load
        .iter()
        .map(|q| (q.account.to_string(), q.at.timestamp_millis(), q.posts))
        .collect();
    seen.sort();
    let mut expected = vec![
        (alice.id.to_string(), at(1).timestamp_millis(), 2),
        (bob.id.to_string(), at(1).timestamp_millis(), 2),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // The range's end is exclusive, its start inclusive.
    assert!(
        hub.queued_load(Platform::X, at(2), at(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        hub.queued_load(Platform::X, at(30), at(31))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        hub.queued_load(Platform::Mastodon, at(0), at(24))
            .await
            .unwrap()
            .len(),
        1
    );
}
