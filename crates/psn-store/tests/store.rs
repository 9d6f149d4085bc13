//! The store conformance suite, run against both backends.
//!
//! Every case in `conformance` is instantiated twice, `sqlite::case` and `postgres::case`,
//! each on a fresh database. The PostgreSQL half needs `PSN_TEST_DATABASE_URL` (an admin URL;
//! `scripts/test.sh` provides one) and fails, rather than skips, without it.

mod company;
mod conformance;
mod support;

macro_rules! conformance_suite {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let t = crate::support::sqlite_hub().await;
                    crate::conformance::$case(&t.hub).await;
                    t.finish().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let t = crate::support::postgres_hub().await;
                    crate::conformance::$case(&t.hub).await;
                    t.finish().await;
                }
            )+
        }
    };
}

conformance_suite!(
    migrations_apply_on_open,
    concurrent_migrators,
    newer_hub_is_read_only,
    accounts_upsert_tokens_and_disconnect,
    posts_create_and_idempotency,
    posts_filter,
    post_transitions,
    audit_trail_records_changes,
    no_plaintext_token_at_rest,
    media_lifecycle,
    queued_load_counts_what_will_be_posted,
);

/// SQLite-only properties of the hub's database and connections.
mod sqlite_only {
    use psn_domain::{Platform, PostStatus};
    use psn_store::StoreError;

    use crate::conformance::{cipher, connect, counts, new_post};
    use crate::support::{self, RawConnection};

    /// The hub's file is in WAL mode (persistent, so any connection sees it) and the hub's own
    /// connections enforce foreign keys (per connection, so it is checked through the hub: a
    /// trigger makes the hub's insert violate a foreign key, which must fail).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_journal_and_foreign_keys() {
        let t = support::sqlite_hub().await;
        let hub = &t.hub;
        let mut raw = RawConnection::open(&support::url(hub)).await;
        assert_eq!(raw.text("PRAGMA journal_mode").await, "wal");

        let key = cipher();
        let account = connect(hub, &key, Platform::Bluesky, "alice.bsky.social").await;
        let wal = support::sqlite_file(hub)
            .unwrap()
            .with_file_name("personal.db-wal");
        assert!(wal.exists(), "a WAL hub has a -wal file while open");

        raw.execute(
            "CREATE TRIGGER fk_probe AFTER INSERT ON audit_log WHEN NEW.subject_type = 'post' BEGIN \
             INSERT INTO deliveries (id, post_id, account_id, created_by, platform, status, run_at, \
             segments, created_at, updated_at) VALUES ('d_probe', 'p_nonexistent', NEW.subject_id, \
             'x', 'x', 'held', 0, '[]', 0, 0); END",
        )
        .await;
        let before = counts(hub).await;
        let post = new_post(
            "alice",
            PostStatus::Scheduled,
            Some(crate::conformance::at(1)),
            "fk",
            &[&account],
        );
        match hub.create_post(&post).await {
            Err(StoreError::Database(e)) => {
                assert!(
                    e.to_string().contains("FOREIGN KEY"),
                    "unexpected error: {e}"
                );
            }
            other => panic!("the hub's connection does not enforce foreign keys: {other:?}"),
        }
        assert_eq!(counts(hub).await, before);
        raw.execute("DROP TRIGGER fk_probe").await;
        assert!(hub.create_post(&post).await.is_ok());
        raw.close().await;
        t.finish().await;
    }
}

/// The hub's futures can be handed to `tokio::spawn` (a compile-time check: a generic sqlx
/// call held across an `.await` once made `Hub::open` and `migrate` not `Send`).
#[test]
fn hub_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    fn check(hub: psn_store::Hub) {
        assert_send(async { psn_store::Hub::open("hub", "sqlite://unused.db").await });
        assert_send(async { psn_store::Hub::connect("hub", "sqlite://unused.db").await });
        let h = hub.clone();
        assert_send(async move { h.migrate().await });
        let h = hub.clone();
        assert_send(async move { h.migration_state().await });
        let h = hub.clone();
        assert_send(async move { h.table_counts().await });
        let h = hub.clone();
        assert_send(async move { h.posts(&psn_store::PostFilter::default()).await });
        let h = hub.clone();
        assert_send(async move { h.accounts().await });
        assert_send(async move { hub.audit_trail("p_000000000000").await });
    }
    let _ = check;
}
