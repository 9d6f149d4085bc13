//! The store conformance suite: every case is `pub async fn case(hub: &Hub)` and runs against
//! both backends (see `tests/store.rs`). A case gets a freshly migrated, empty hub.

mod accounts;
mod audit;
mod media;
mod migrations;
mod posts;
mod secrets;

pub use accounts::*;
pub use audit::*;
pub use media::*;
pub use migrations::*;
pub use posts::*;
pub use secrets::*;

use chrono::{DateTime, Duration, TimeZone, Utc};
use psn_domain::{Platform, PostStatus};
use psn_store::{
    Account, Hub, NewAccount, NewDelivery, NewPost, Post, Secret, StoreError, TokenCipher, TokenSet,
};

/// A fresh random encryption key.
pub fn cipher() -> TokenCipher {
    TokenCipher::from_base64(&TokenCipher::generate_key_base64()).expect("generated key")
}

/// A time `hours` from a fixed base in the future, whole milliseconds (what the store keeps).
pub fn at(hours: i64) -> DateTime<Utc> {
    // 2100-01-01T00:00:00Z: far enough ahead that nothing is ever due during a test.
    Utc.timestamp_millis_opt(4_102_444_800_000)
        .single()
        .expect("base time")
        + Duration::hours(hours)
}

pub fn new_account(
    platform: Platform,
    handle: &str,
    access: &str,
    refresh: Option<&str>,
) -> NewAccount {
    let service_url = match platform {
        Platform::Bluesky => "https://bsky.social".to_string(),
        Platform::Mastodon => "https://mastodon.example".to_string(),
        _ => String::new(),
    };
    NewAccount {
        platform,
        handle: handle.to_string(),
        external_id: format!("ext-{handle}"),
        service_url,
        tokens: TokenSet {
            access_token: Secret::new(access),
            refresh_token: refresh.map(Secret::new),
        },
        expires_at: Some(at(24)),
        created_by: "alice".to_string(),
    }
}

/// Connects an account and returns it.
pub async fn connect(hub: &Hub, cipher: &TokenCipher, platform: Platform, handle: &str) -> Account {
    let (account, created) = hub
        .upsert_account(
            &new_account(
                platform,
                handle,
                &format!("access-{handle}"),
                Some(&format!("refresh-{handle}")),
            ),
            cipher,
        )
        .await
        .expect("connect account");
    assert!(created, "{handle} should be new");
    account
}

/// The segments the fixtures give a delivery on `platform`.
pub fn segments_for(platform: Platform, body: &str) -> Vec<String> {
    vec![
        format!("{body} [{platform}]"),
        format!("{body} [{platform}] 2/2"),
    ]
}

/// A post to `accounts` in `phase`, due at `run_at`.
pub fn new_post(
    created_by: &str,
    phase: PostStatus,
    run_at: Option<DateTime<Utc>>,
    body: &str,
    accounts: &[&Account],
) -> NewPost {
    NewPost {
        created_by: created_by.to_string(),
        idempotency_key: None,
        phase,
        body: body.to_string(),
        language: Some("en".parse().expect("language")),
        media: serde_json::json!([]),
        options: serde_json::json!({"thread": true}),
        run_at,
        deliveries: accounts
            .iter()
            .map(|a| NewDelivery {
                account_id: a.id.clone(),
                platform: a.platform,
                segments: segments_for(a.platform, body),
            })
            .collect(),
    }
}

/// Creates a scheduled post and returns it (asserting it was created, not found).
pub async fn schedule(hub: &Hub, hours: i64, body: &str, accounts: &[&Account]) -> Post {
    match hub
        .create_post(&new_post(
            "alice",
            PostStatus::Scheduled,
            Some(at(hours)),
            body,
            accounts,
        ))
        .await
        .expect("create post")
    {
        psn_store::CreateOutcome::Created(post) => post,
        psn_store::CreateOutcome::Existing(post) => panic!("post {} already existed", post.id),
    }
}

/// The row counts of every table.
pub async fn counts(hub: &Hub) -> Vec<(&'static str, i64)> {
    hub.table_counts().await.expect("table counts")
}

/// The count of one table.
pub async fn count(hub: &Hub, table: &str) -> i64 {
    counts(hub)
        .await
        .into_iter()
        .find(|(t, _)| *t == table)
        .map(|(_, n)| n)
        .unwrap_or_else(|| panic!("no table {table}"))
}

/// Asserts a refused transition whose message names `word`.
#[track_caller]
pub fn assert_transition<T: std::fmt::Debug>(result: Result<T, StoreError>, word: &str) {
    match result {
        Err(StoreError::Transition(e)) => {
            assert!(
                e.to_string().contains(word),
                "'{e}' should mention '{word}'"
            );
        }
        other => panic!("expected a refused transition mentioning '{word}', got {other:?}"),
    }
}
