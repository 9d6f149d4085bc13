//! Accounts: connect and reconnect, tokens sealed with the right key, no token in listings,
//! disconnect.

use psn_domain::{AccountId, DeliveryStatus, Platform, PostStatus};
use psn_store::{AccountStatus, Hub, Secret, StoreError};

use super::{cipher, count, new_account, schedule};

pub async fn accounts_upsert_tokens_and_disconnect(hub: &Hub) {
    let key = cipher();

    // Connect: a new row, tokens sealed and readable with the same key.
    let new = new_account(
        Platform::Bluesky,
        "alice.bsky.social",
        "access-1",
        Some("refresh-1"),
    );
    let (account, created) = hub.upsert_account(&new, &key).await.unwrap();
    assert!(created);
    assert_eq!(account.platform, Platform::Bluesky);
    assert_eq!(account.handle, "alice.bsky.social");
    assert_eq!(account.external_id, "ext-alice.bsky.social");
    assert_eq!(account.service_url, "https://bsky.social");
    assert_eq!(account.status, AccountStatus::Active);
    assert_eq!(account.expires_at, new.expires_at);
    let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "access-1");
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("refresh-1")
    );

    // Reconnect with the same identity: same row, updated; no refresh token keeps the old one.
    let mut again = new_account(Platform::Bluesky, "alice.renamed", "access-2", None);
    again.external_id = new.external_id.clone();
    let (updated, created) = hub.upsert_account(&again, &key).await.unwrap();
    assert!(!created);
    assert_eq!(updated.id, account.id);
    assert_eq!(updated.handle, "alice.renamed");
    assert_eq!(count(hub, "accounts").await, 1);
    let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "access-2");
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("refresh-1")
    );

    // An empty (or blank) refresh token never overwrites the stored one either.
    for blank in ["", "   "] {
        let mut empty = again.clone();
        empty.tokens.access_token = Secret::new("access-3");
        empty.tokens.refresh_token = Some(Secret::new(blank));
        let (_, created) = hub.upsert_account(&empty, &key).await.unwrap();
        assert!(!created);
        let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
        assert_eq!(tokens.access_token.expose(), "access-3");
        assert_eq!(
            tokens.refresh_token.as_ref().map(Secret::expose),
            Some("refresh-1")
        );
    }
    // A real new refresh token replaces it.
    let mut rotated = again.clone();
    rotated.tokens.refresh_token = Some(Secret::new("refresh-2"));
    hub.upsert_account(&rotated, &key).await.unwrap();
    let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("refresh-2")
    );

    // An empty access token is refused.
    let mut no_access = again.clone();
    no_access.tokens.access_token = Secret::new(" ");
    assert!(matches!(
        hub.upsert_account(&no_access, &key).await,
        Err(StoreError::Invalid(_))
    ));

    // The wrong key cannot open the tokens, and says so.
    let wrong = cipher();
    match hub.account_tokens(&account.id, &wrong).await {
        Err(e @ StoreError::Crypto(_)) => {
            assert!(e.to_string().contains("wrong encryption key"), "{e}");
        }
        other => panic!("expected a crypto error, got {other:?}"),
    }
    assert!(matches!(
        hub.verify_cipher(&wrong).await,
        Err(StoreError::Crypto(_))
    ));
    assert_eq!(hub.verify_cipher(&key).await.unwrap(), 1);

    // Same identity but another creator is another account.
    let mut bobs = new.clone();
    bobs.created_by = "bob".to_string();
    let (bob_account, created) = hub.upsert_account(&bobs, &key).await.unwrap();
    assert!(created);
    assert_ne!(bob_account.id, account.id);

    // Listing: platform, then handle; serialized accounts carry no token.
    let (masto, created) = hub
        .upsert_account(
            &new_account(Platform::Mastodon, "alice", "access-m", Some("refresh-m")),
            &key,
        )
        .await
        .unwrap();
    assert!(created);
    let listed = hub.accounts().await.unwrap();
    let listed_ids: Vec<&AccountId> = listed.iter().map(|a| &a.id).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].id, masto.id, "mastodon sorts after bluesky");
    assert!(listed_ids.contains(&&account.id) && listed_ids.contains(&&bob_account.id));
    let json = serde_json::to_string(&listed).unwrap();
    for secret in ["access-", "refresh-", "token"] {
        assert!(
            !json.contains(secret),
            "serialized accounts contain '{secret}': {json}"
        );
    }
    assert!(json.contains("alice.renamed"), "{json}");
    assert_eq!(
        hub.account(&account.id).await.unwrap().handle,
        "alice.renamed"
    );
    let unknown = AccountId::from_random([7; 8]);
    assert!(matches!(
        hub.account(&unknown).await,
        Err(StoreError::NotFound { .. })
    ));

    // Disconnect is refused while a delivery waits for the account…
    let post = schedule(hub, 1, "waiting", &[&account, &masto]).await;
    match hub.disconnect_account(&account.id, "alice", false).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("--cancel-pending"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        hub.account(&account.id).await.unwrap().status,
        AccountStatus::Active
    );
    assert!(hub.account_tokens(&account.id, &key).await.is_ok());
    assert!(
        hub.post(&post.id)
            .await
            .unwrap()
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Scheduled)
    );

    // …unless told to cancel it: the delivery is cancelled and the tokens erased.
    let (gone, cancelled) = hub
        .disconnect_account(&account.id, "alice", true)
        .await
        .unwrap();
    assert_eq!(cancelled, 1);
    assert_eq!(gone.status, AccountStatus::Disconnected);
    match hub.account_tokens(&account.id, &key).await {
        Err(e @ StoreError::Invalid(_)) => assert!(e.to_string().contains("disconnected"), "{e}"),
        other => panic!("a disconnected account has no tokens, got {other:?}"),
    }
    let post = hub.post(&post.id).await.unwrap();
    for d in &post.deliveries {
        let want = if d.account == account.id {
            DeliveryStatus::Cancelled
        } else {
            DeliveryStatus::Scheduled
        };
        assert_eq!(d.status, want, "delivery to {}", d.handle);
    }
    assert_eq!(
        post.status,
        PostStatus::Scheduled,
        "the other delivery still runs"
    );

    // A disconnected account with nothing pending disconnects at once; unknown ids are not found.
    let (_, cancelled) = hub
        .disconnect_account(&bob_account.id, "bob", false)
        .await
        .unwrap();
    assert_eq!(cancelled, 0);
    assert!(matches!(
        hub.disconnect_account(&unknown, "alice", true).await,
        Err(StoreError::NotFound { .. })
    ));
    // Only the remaining active account's token is left to verify.
    assert_eq!(hub.verify_cipher(&key).await.unwrap(), 1);

    // Reconnecting brings the account back with fresh tokens.
    let (back, created) = hub.upsert_account(&rotated, &key).await.unwrap();
    assert!(!created);
    assert_eq!(back.id, account.id);
    assert_eq!(back.status, AccountStatus::Active);
    let tokens = hub.account_tokens(&account.id, &key).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "access-2");
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("refresh-2")
    );
}
