//! The media library's records and the lifecycle queries: unattached files expire after their
//! grace period, used files only once every post using them is finished and the retention has
//! passed since the last publication; orphaned platform containers are reported once.

use std::time::Duration;

use psn_domain::Platform;
use psn_store::{Hub, NewMedia};

use super::{at, cipher, connect, schedule};
use crate::support::exec;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn media(sha: &str) -> NewMedia {
    NewMedia {
        sha256: sha.repeat(64 / sha.len()),
        created_by: "alice".into(),
        path: format!("/ws/content/media/{}.jpg", sha.repeat(64 / sha.len())),
        kind: "image".into(),
        mime: "image/jpeg".into(),
        bytes: 1234,
        original_name: "photo.jpg".into(),
        probe: serde_json::json!({"width": 10, "height": 10}),
    }
}

fn shas(due: &[psn_store::MediaCleanup]) -> Vec<(String, &'static str)> {
    due.iter()
        .map(|d| (d.sha256[..2].to_string(), d.reason))
        .collect()
}

pub async fn media_lifecycle(hub: &Hub) {
    let c = cipher();
    let account = connect(hub, &c, Platform::X, "me").await;
    let published = schedule(hub, 1, "published one", &[&account]).await;
    let waiting = schedule(hub, 2, "still waiting", &[&account]).await;
    let (a, b, u) = (media("aa"), media("bb"), media("cc"));
    for m in [&a, &b, &u] {
        hub.record_media(m, at(0)).await.unwrap();
    }
    hub.attach_media(
        published.id.as_str(),
        std::slice::from_ref(&a.sha256),
        "alice",
    )
    .await
    .unwrap();
    hub.attach_media(
        waiting.id.as_str(),
        std::slice::from_ref(&b.sha256),
        "alice",
    )
    .await
    .unwrap();
    let listed = hub.list_media(false).await.unwrap();
    assert_eq!(listed.len(), 3);
    let rec_a = listed.iter().find(|m| m.sha256 == a.sha256).unwrap();
    assert_eq!(rec_a.posts, vec![published.id.as_str().to_string()]);
    assert_eq!(hub.find_media("bbbbbb").await.unwrap().len(), 1);
    assert_eq!(
        hub.media_in_use(&b.sha256).await.unwrap(),
        vec![waiting.id.as_str().to_string()]
    );

    // Unattached: not before 24 h.
    let due = |h: i64| {
        let hub = hub.clone();
        async move {
            hub.media_due_for_cleanup(at(h), 7 * DAY, DAY)
                .await
                .unwrap()
        }
    };
    assert!(due(23).await.is_empty());
    assert_eq!(shas(&due(25).await), vec![("cc".into(), "unattached")]);

    // Published: 7 days after the last delivery was published, not before.
    let published_ms = at(10).timestamp_millis();
    exec(
        hub,
        &format!(
            "UPDATE deliveries SET status = 'published', published_at = {published_ms} WHERE post_id = '{}'; \
             UPDATE posts SET status = 'published', updated_at = {published_ms} WHERE id = '{}'",
            published.id.as_str(),
            published.id.as_str()
        ),
    )
    .await;
    assert_eq!(
        shas(&due(10 + 6 * 24).await),
        vec![("cc".into(), "unattached")]
    );
    assert_eq!(
        shas(&due(10 + 7 * 24 + 1).await),
        vec![("aa".into(), "published"), ("cc".into(), "unattached")],
        "bb is used by a post still waiting: kept"
    );
    assert!(hub.media_in_use(&a.sha256).await.unwrap().is_empty());

    // Deleted records are not due again; adding the file again restarts its clock.
    assert!(hub.mark_media_deleted(&u.sha256, at(30)).await.unwrap());
    assert!(!hub.mark_media_deleted(&u.sha256, at(30)).await.unwrap());
    assert_eq!(hub.list_media(false).await.unwrap().len(), 2);
    assert_eq!(hub.list_media(true).await.unwrap().len(), 3);
    hub.record_media(&u, at(100)).await.unwrap();
    assert!(
        !shas(&due(110).await).contains(&("cc".into(), "unattached")),
        "re-added: a new 24 h"
    );

    // A delivery that failed after creating a platform container is reported once.
    exec(
        hub,
        &format!(
            "UPDATE deliveries SET status = 'failed', progress = '{{\"container:0\":{{\"external_id\":\"17890\",\"url\":null}}}}' WHERE post_id = '{}'",
            waiting.id.as_str()
        ),
    )
    .await;
    let orphans = hub.report_orphan_containers(at(40)).await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].post_id, waiting.id.as_str());
    assert!(
        hub.report_orphan_containers(at(41))
            .await
            .unwrap()
            .is_empty()
    );
    let alerts = hub.open_alerts().await.unwrap();
    assert!(alerts.iter().any(|al| al.kind == "orphan_container"));
}
