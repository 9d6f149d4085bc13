//! Migrations: applied on open, once, by exactly one of several concurrent migrators; a hub
//! from a newer psn opens read-only.

use psn_domain::{Platform, PostStatus};
use psn_store::{Hub, SCHEMA_VERSION, StoreError, migration_versions};

use super::{cipher, counts, new_account, new_post};
use crate::support::{self, RawConnection};

fn all_versions() -> Vec<i64> {
    migration_versions()
}

/// Migrations are applied by `Hub::open`, and only once.
pub async fn migrations_apply_on_open(hub: &Hub) {
    // The suite's hub was opened: it is current.
    let state = hub.migration_state().await.unwrap();
    assert_eq!(state.hub_version, SCHEMA_VERSION);
    assert_eq!(state.psn_version, SCHEMA_VERSION);
    assert!(state.pending.is_empty(), "pending: {:?}", state.pending);
    assert!(!state.hub_is_newer());
    assert!(counts(hub).await.iter().all(|(_, n)| *n == 0));

    // From an empty database: connect touches nothing, open migrates.
    let url = support::fresh_url(hub).await;
    let bare = Hub::connect("fresh", &url).await.unwrap();
    let state = bare.migration_state().await.unwrap();
    assert_eq!(state.hub_version, 0);
    assert_eq!(state.pending, all_versions());
    assert!(
        bare.table_counts().await.is_err(),
        "connect must not create tables"
    );
    bare.close().await;

    let opened = Hub::open("fresh", &url).await.unwrap();
    let state = opened.migration_state().await.unwrap();
    assert_eq!(state.hub_version, SCHEMA_VERSION);
    assert!(state.pending.is_empty());
    assert!(
        opened
            .table_counts()
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );

    let mut raw = RawConnection::open(&url).await;
    let applied_at = raw.i64("SELECT MAX(applied_at) FROM psn_migrations").await;

    // Opening again applies nothing, and so does migrating an up-to-date hub.
    let again = Hub::open("fresh", &url).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), Vec::<i64>::new());
    assert_eq!(opened.migrate().await.unwrap(), Vec::<i64>::new());
    assert_eq!(
        again.migration_state().await.unwrap().hub_version,
        SCHEMA_VERSION
    );
    assert_eq!(
        raw.i64("SELECT COUNT(*) FROM psn_migrations").await,
        all_versions().len() as i64
    );
    assert_eq!(
        raw.i64("SELECT MAX(applied_at) FROM psn_migrations").await,
        applied_at
    );
    raw.close().await;
    again.close().await;
    opened.close().await;
}

/// Four handles migrate one fresh database at once: one applies everything, the others find
/// the work done, nobody fails.
pub async fn concurrent_migrators(hub: &Hub) {
    const N: usize = 4;
    let url = support::fresh_url(hub).await;
    let mut hubs = Vec::with_capacity(N);
    for i in 0..N {
        hubs.push(Hub::connect(&format!("migrator-{i}"), &url).await.unwrap());
    }
    let tasks: Vec<_> = hubs
        .iter()
        .cloned()
        .map(|h| tokio::spawn(async move { h.migrate().await }))
        .collect();
    let mut results = Vec::with_capacity(N);
    for task in tasks {
        results.push(task.await.expect("migrator task panicked"));
    }
    let applied: Vec<Vec<i64>> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("migrator {i} failed: {e}")))
        .collect();
    let winners: Vec<&Vec<i64>> = applied.iter().filter(|a| !a.is_empty()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one migrator should apply: {applied:?}"
    );
    assert_eq!(*winners[0], all_versions());
    assert_eq!(applied.iter().filter(|a| a.is_empty()).count(), N - 1);

    for h in &hubs {
        let state = h.migration_state().await.unwrap();
        assert_eq!(state.hub_version, SCHEMA_VERSION);
        assert!(state.pending.is_empty());
    }
    let mut raw = RawConnection::open(&url).await;
    assert_eq!(
        raw.i64("SELECT COUNT(*) FROM psn_migrations").await,
        all_versions().len() as i64
    );
    raw.close().await;
    for h in hubs {
        h.close().await;
    }
}

/// A hub whose schema is newer than this psn opens, reads, and refuses every write, naming
/// both versions.
pub async fn newer_hub_is_read_only(hub: &Hub) {
    let cipher = cipher();
    let (account, _) = hub
        .upsert_account(
            &new_account(Platform::Bluesky, "alice.bsky.social", "access-a", None),
            &cipher,
        )
        .await
        .unwrap();
    support::exec(
        hub,
        "INSERT INTO psn_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await;
    let before = counts(hub).await;

    let newer = Hub::open("newer", &support::url(hub))
        .await
        .expect("a newer hub still opens");
    let state = newer.migration_state().await.unwrap();
    assert_eq!(state.hub_version, 999);
    assert_eq!(state.psn_version, SCHEMA_VERSION);
    assert!(state.hub_is_newer());
    assert!(state.pending.is_empty());

    // Reads work.
    assert_eq!(newer.accounts().await.unwrap().len(), 1);

    let assert_read_only = |what: &str, err: StoreError| match err {
        StoreError::ReadOnly(msg) => {
            assert!(
                msg.contains("999"),
                "{what}: '{msg}' should name the hub's version"
            );
            assert!(
                msg.contains(&format!("version {SCHEMA_VERSION}")),
                "{what}: '{msg}' should name psn's version"
            );
        }
        other => panic!("{what}: expected ReadOnly, got {other:?}"),
    };
    let err = newer
        .create_post(&new_post(
            "alice",
            PostStatus::Scheduled,
            Some(super::at(1)),
            "hi",
            &[&account],
        ))
        .await
        .unwrap_err();
    assert_read_only("create_post", err);
    let err = newer
        .upsert_account(
            &new_account(Platform::Mastodon, "bob", "access-b", None),
            &cipher,
        )
        .await
        .unwrap_err();
    assert_read_only("upsert_account", err);
    let err = newer
        .disconnect_account(&account.id, "alice", true)
        .await
        .unwrap_err();
    assert_read_only("disconnect_account", err);

    match newer.migrate().await {
        Err(StoreError::HubNewer { hub: 999, psn }) => assert_eq!(psn, SCHEMA_VERSION),
        other => panic!("expected HubNewer {{ hub: 999, psn: {SCHEMA_VERSION} }}, got {other:?}"),
    }
    assert_eq!(counts(hub).await, before, "a refused write wrote something");
    newer.close().await;
}
