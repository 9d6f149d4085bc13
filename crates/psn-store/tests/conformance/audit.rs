//! The audit log records every person-driven change, in order, with its actor.

use psn_domain::Platform;
use psn_store::{Hub, PostEdit};

use super::{at, cipher, connect, schedule};

pub async fn audit_trail_records_changes(hub: &Hub) {
    let key = cipher();
    let bsky = connect(hub, &key, Platform::Bluesky, "alice.bsky.social").await;
    let masto = connect(hub, &key, Platform::Mastodon, "alice").await;

    let post = schedule(hub, 1, "audited", &[&bsky, &masto]).await;
    hub.reschedule_post(&post.id, at(2), "bob").await.unwrap();
    let edit = PostEdit {
        body: "audited, edited".to_string(),
        language: None,
        segments: vec![
            (Platform::Bluesky, vec!["b".to_string()]),
            (Platform::Mastodon, vec!["m".to_string()]),
        ],
    };
    hub.edit_post(&post.id, &edit, "carol").await.unwrap();
    hub.cancel_post(&post.id, "dave").await.unwrap();
    // A refused change is not audited.
    assert!(hub.cancel_post(&post.id, "eve").await.is_err());

    let trail = hub.audit_trail(post.id.as_str()).await.unwrap();
    let summary: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("post.create", "alice"),
            ("post.reschedule", "bob"),
            ("post.edit", "carol"),
            ("post.cancel", "dave"),
        ]
    );
    for entry in &trail {
        assert_eq!(entry.subject_type, "post");
        assert_eq!(entry.subject_id, post.id.as_str());
    }
    assert!(trail.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    assert_eq!(trail[0].detail["accounts"], 2);
    assert_eq!(trail[0].detail["phase"], "scheduled");
    assert_eq!(trail[1].detail["deliveries_changed"], 2);
    assert_eq!(trail[1].detail["run_at"], at(2).to_rfc3339());
    assert_eq!(trail[3].detail["from"], "scheduled");

    // Accounts are audited too, and trails do not mix.
    let account_trail = hub.audit_trail(bsky.id.as_str()).await.unwrap();
    assert_eq!(account_trail.len(), 1);
    assert_eq!(account_trail[0].action, "account.connect");
    assert_eq!(account_trail[0].subject_type, "account");
    assert_eq!(account_trail[0].detail["handle"], "alice.bsky.social");
    hub.disconnect_account(&masto.id, "alice", true)
        .await
        .unwrap();
    let masto_trail = hub.audit_trail(masto.id.as_str()).await.unwrap();
    let actions: Vec<&str> = masto_trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["account.connect", "account.disconnect"]);
    assert!(hub.audit_trail("p_000000000000").await.unwrap().is_empty());
}
