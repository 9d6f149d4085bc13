//! The LinkedIn connector against the fake LinkedIn over real HTTP: member and organization
//! authors, the Rest.li headers, commentary escaping (the fake stores the text as a reader
//! sees it), images with alt text, multi-image posts, videos in parts with processing polls
//! (resumed after a dropped part), duplicates, error classes, a dropped create reconciled,
//! metrics and identity.

#[path = "support/upload.rs"]
mod support;

use std::time::Duration;

use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::linkedin::{API_VERSION, LinkedInPublisher, parse_media_ref};
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Published, Publisher, SegmentRequest,
};
use psn_platforms::upload::{Phase, UploadState};
use psn_testkit::linkedin::{FakeLinkedIn, Fault, FaultKind};
use serde_json::Value;
use support::{Naps, Recorder, ctx, media_file};

const TOKEN: &str = "sEcReT-linkedin-TOKEN-alice-0123456789";
const MEMBER: &str = "aBc123XyZ";
const ORG: &str = "5515715";

async fn fake() -> FakeLinkedIn {
    let fake = FakeLinkedIn::start().await;
    fake.add_member(MEMBER, "Alice Example", TOKEN);
    fake
}

fn member() -> AccountContext {
    AccountContext {
        external_id: MEMBER.into(),
        handle: "Alice Example".into(),
        service_url: String::new(),
        access_token: AccessToken(TOKEN.into()),
    }
}

fn organization() -> AccountContext {
    AccountContext {
        external_id: format!("urn:li:organization:{ORG}"),
        handle: "Acme".into(),
        ..member()
    }
}

fn publisher(fake: &FakeLinkedIn) -> LinkedInPublisher {
    LinkedInPublisher::with_client(fake.base_url(), client_with_timeout(Duration::from_secs(5)))
}

fn segment<'a>(text: &'a str, key: &'a str, media_ids: &'a [String]) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to: None,
        thread_root: None,
        idempotency_key: key,
        language: None,
        media_ids,
    }
}

fn assert_no_secret(err: &PublishError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

#[tokio::test]
async fn a_member_posts_with_the_restli_headers_and_escaped_commentary() {
    let fake = fake().await;
    let li = publisher(&fake);
    let text =
        "Launch (beta) today! @team [v2] {x} <3 a|b *bold* _u_ ~s~ back\\slash #psn #1 # done";
    let published = li
        .publish_segment(&member(), &segment(text, "k1", &[]))
        .await
        .unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, text, "the fake stores what a reader sees");
    assert_eq!(posts[0].author, format!("urn:li:person:{MEMBER}"));
    assert_eq!(posts[0].visibility, "PUBLIC");
    assert_eq!(published.external_id, posts[0].urn);
    assert_eq!(
        published.url.as_deref(),
        Some(format!("https://www.linkedin.com/feed/update/{}/", posts[0].urn).as_str())
    );
    assert!(posts[0].commentary.contains("\\(beta\\)"));
    assert!(
        posts[0].commentary.contains("#psn"),
        "hashtags stay hashtags"
    );

    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/rest/posts")
        .unwrap();
    assert_eq!(create.linkedin_version.as_deref(), Some(API_VERSION));
    assert_eq!(create.restli_protocol_version.as_deref(), Some("2.0.0"));
    assert!(create.bearer);
    assert!(create.content_type.unwrap().starts_with("application/json"));
    let body: Value = serde_json::from_str(&create.body).unwrap();
    assert_eq!(body["lifecycleState"], "PUBLISHED");
    assert_eq!(body["isReshareDisabledByAuthor"], false);
    assert_eq!(
        body["distribution"],
        serde_json::json!({"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []})
    );
}

#[tokio::test]
async fn an_organization_posts_when_its_member_is_an_admin() {
    let fake = fake().await;
    let li = publisher(&fake);
    let refused = li
        .publish_segment(&organization(), &segment("From the page", "k1", &[]))
        .await
        .unwrap_err();
    let PublishError::Permanent { message } = &refused else {
        panic!("{refused:?}");
    };
    assert!(message.contains("not an administrator"), "{message}");
    assert!(message.contains("w_organization_social"), "{message}");
    assert_no_secret(&refused);

    fake.add_organization(ORG, MEMBER);
    let published = li
        .publish_segment(&organization(), &segment("From the page", "k1", &[]))
        .await
        .unwrap();
    let posts = fake.posts();
    assert_eq!(posts[0].author, format!("urn:li:organization:{ORG}"));
    assert_eq!(published.external_id, posts[0].urn);
}

#[tokio::test]
async fn a_missing_scope_is_named() {
    let fake = fake().await;
    fake.set_scopes(TOKEN, &["openid", "profile"]);
    let err = publisher(&fake)
        .publish_segment(&member(), &segment("Hi", "k", &[]))
        .await
        .unwrap_err();
    let PublishError::Permanent { message } = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("w_member_social"), "{message}");
}

#[tokio::test]
async fn the_fake_refuses_unescaped_markup_and_old_versions() {
    let fake = fake().await;
    let client = reqwest::Client::new();
    let send = |version: Option<&str>, protocol: Option<&str>, commentary: &str| {
        let mut r = client
            .post(format!("{}/rest/posts", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({
                "author": format!("urn:li:person:{MEMBER}"),
                "commentary": commentary,
                "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
                "lifecycleState": "PUBLISHED",
            }));
        if let Some(v) = version {
            r = r.header("LinkedIn-Version", v);
        }
        if let Some(p) = protocol {
            r = r.header("X-Restli-Protocol-Version", p);
        }
        r.send()
    };
    let r = send(Some(API_VERSION), Some("2.0.0"), "a (b")
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("'('"));
    assert_eq!(send(None, Some("2.0.0"), "ok").await.unwrap().status(), 400);
    assert_eq!(
        send(Some("202301"), Some("2.0.0"), "ok")
            .await
            .unwrap()
            .status(),
        426
    );
    assert_eq!(
        send(Some(API_VERSION), None, "ok").await.unwrap().status(),
        400
    );
    let long = "a".repeat(3001);
    assert_eq!(
        send(Some(API_VERSION), Some("2.0.0"), &long)
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        send(Some(API_VERSION), Some("2.0.0"), "fine")
            .await
            .unwrap()
            .status(),
        201
    );
    assert!(fake.posts().len() == 1);

    // The connector's own version is refused once LinkedIn retires it: a permanent error.
    fake.set_min_version("209901");
    let err = publisher(&fake)
        .publish_segment(&member(), &segment("later", "k", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Permanent { ref message } if message.contains("not active")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_image_with_alt_text_is_uploaded_and_attached() {
    let fake = fake().await;
    let li = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "chart.png", 5000, Some("Sales (by month)"));
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = li
        .upload_media(
            &member(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let (urn, alt) = parse_media_ref(&media.media_id);
    assert_eq!(alt.as_deref(), Some("Sales (by month)"));
    let images = fake.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].urn, urn);
    assert_eq!(images[0].bytes.as_deref(), Some(data.as_slice()));
    assert_eq!(images[0].owner, format!("urn:li:person:{MEMBER}"));
    let phases: Vec<Phase> = progress.states().iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        vec![Phase::Transferring, Phase::Finalized, Phase::Ready]
    );

    let ids = vec![media.media_id.clone()];
    li.publish_segment(&member(), &segment("A chart", "k", &ids))
        .await
        .unwrap();
    let post = &fake.posts()[0];
    assert_eq!(post.media, vec![urn]);
    assert_eq!(post.alt_texts, vec![Some("Sales (by month)".to_owned())]);
    assert_eq!(post.content_kind.as_deref(), Some("media"));
}

#[tokio::test]
async fn several_images_make_a_multi_image_post() {
    let fake = fake().await;
    let li = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for (i, alt) in [Some("first"), None, Some("third")].into_iter().enumerate() {
        let (file, _) = media_file(&dir, &format!("p{i}.jpg"), 1000 + i, alt);
        let (progress, naps) = (Recorder::default(), Naps::default());
        ids.push(
            li.upload_media(
                &member(),
                &file,
                UploadState::default(),
                &ctx(&progress, &naps),
            )
            .await
            .unwrap()
            .media_id,
        );
    }
    li.publish_segment(&member(), &segment("Three photos", "k", &ids))
        .await
        .unwrap();
    let post = &fake.posts()[0];
    assert_eq!(post.content_kind.as_deref(), Some("multiImage"));
    assert_eq!(post.media.len(), 3);
    assert_eq!(
        post.alt_texts,
        vec![Some("first".to_owned()), None, Some("third".to_owned())]
    );
}

#[tokio::test]
async fn media_of_another_author_or_never_uploaded_is_refused() {
    let fake = fake().await;
    let li = publisher(&fake);
    let ids = vec!["urn:li:image:C4E10AQ99999999".to_owned()];
    let err = li
        .publish_segment(&member(), &segment("Ghost", "k", &ids))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
}

#[tokio::test]
async fn a_video_uploads_in_parts_and_waits_for_processing() {
    let fake = fake().await;
    fake.set_video_part_size(4000);
    fake.set_video_processing(3);
    let li = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, Some("A clip"));
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = li
        .upload_media(
            &member(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let videos = fake.videos();
    assert_eq!(videos.len(), 1);
    let (urn, alt) = parse_media_ref(&media.media_id);
    assert_eq!(urn, videos[0].urn);
    assert_eq!(alt.as_deref(), Some("A clip"));
    assert_eq!(videos[0].puts, vec![0, 1, 2]);
    assert_eq!(videos[0].content(), data);
    assert!(videos[0].finalized);
    assert_eq!(
        videos[0].status_checks, 4,
        "three PROCESSING, then AVAILABLE"
    );
    assert_eq!(naps.taken().len(), 4);
    let init = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/rest/videos" && r.query.as_deref() == Some("action=initializeUpload"))
        .unwrap();
    let body: Value = serde_json::from_str(&init.body).unwrap();
    assert_eq!(body["initializeUploadRequest"]["fileSizeBytes"], 10_000);
    assert_eq!(body["initializeUploadRequest"]["uploadCaptions"], false);
    assert_eq!(body["initializeUploadRequest"]["uploadThumbnail"], false);
    let last = progress.last();
    assert_eq!(last.phase, Phase::Ready);
    assert_eq!(last.etags.len(), 3);

    let ids = vec![media.media_id];
    li.publish_segment(&member(), &segment("Watch this", "k", &ids))
        .await
        .unwrap();
    assert_eq!(fake.posts()[0].media, vec![urn]);
}

#[tokio::test]
async fn a_video_upload_resumes_after_a_dropped_part() {
    let fake = fake().await;
    fake.set_video_part_size(4000);
    let li = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    // Part 1's PUT lands but its answer is lost, three times in a row: the call gives up.
    fake.inject(
        Fault::new(FaultKind::DropAfterWrite)
            .path("/dms-uploads/video/1/1")
            .method("PUT")
            .times(3),
    );
    let (progress, naps) = (Recorder::default(), Naps::default());
    let err = li
        .upload_media(
            &member(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    let saved = progress.last();
    assert_eq!(saved.phase, Phase::Transferring);
    assert_eq!(saved.etags.len(), 1, "part 0 is done");

    let (progress2, naps2) = (Recorder::default(), Naps::default());
    let media = li
        .upload_media(&member(), &file, saved, &ctx(&progress2, &naps2))
        .await
        .unwrap();
    let videos = fake.videos();
    assert_eq!(videos.len(), 1, "the same upload, resumed");
    assert_eq!(videos[0].puts, vec![0, 1, 1, 1, 1, 2]);
    assert_eq!(videos[0].content(), data);
    assert_eq!(parse_media_ref(&media.media_id).0, videos[0].urn);
    let inits = fake
        .requests()
        .iter()
        .filter(|r| r.query.as_deref() == Some("action=initializeUpload"))
        .count();
    assert_eq!(inits, 1);
}

#[tokio::test]
async fn failed_video_processing_is_permanent() {
    let fake = fake().await;
    fake.fail_video_processing(true);
    let li = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = media_file(&dir, "clip.mp4", 3000, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    let err = li
        .upload_media(
            &member(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap_err();
    let PublishError::Permanent { message } = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("transcoded"), "{message}");
}

#[tokio::test]
async fn a_duplicate_is_refused_unless_an_earlier_attempt_may_have_landed() {
    let fake = fake().await;
    let li = publisher(&fake);
    li.publish_segment(&member(), &segment("Same words", "k1", &[]))
        .await
        .unwrap();
    let err = li
        .publish_segment(&member(), &segment("Same words", "k2", &[]))
        .await
        .unwrap_err();
    let PublishError::Permanent { message } = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("duplicate of urn:li:share:"), "{message}");
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn statuses_are_classified() {
    let fake = fake().await;
    let li = publisher(&fake);
    let cases = [
        (FaultKind::Unauthorized, "auth"),
        (
            FaultKind::RateLimit {
                retry_after_secs: 30,
            },
            "rate",
        ),
        (FaultKind::ServerError, "transient"),
        (FaultKind::BadRequest, "permanent"),
    ];
    for (i, (kind, class)) in cases.into_iter().enumerate() {
        fake.inject(Fault::on_post_create(kind));
        let text = format!("case {i}");
        let err = li
            .publish_segment(&member(), &segment(&text, "k", &[]))
            .await
            .unwrap_err();
        assert_no_secret(&err);
        let ok = match class {
            "auth" => matches!(err, PublishError::Auth { .. }),
            "rate" => matches!(
                err,
                PublishError::RateLimited {
                    reset_at: Some(_),
                    ..
                }
            ),
            "transient" => matches!(err, PublishError::Transient { .. }),
            _ => matches!(err, PublishError::Permanent { .. }),
        };
        assert!(ok, "{class}: {err:?}");
    }
    fake.expire_token(TOKEN);
    let err = li
        .publish_segment(&member(), &segment("expired", "k", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Auth { ref message } if message.contains("expired")),
        "{err:?}"
    );
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn a_dropped_create_is_ambiguous_and_reconcile_finds_it() {
    let fake = fake().await;
    let li = publisher(&fake);
    let text = "Dropped (but posted) #psn";
    fake.inject(Fault::on_post_create(FaultKind::DropAfterWrite));
    let err = li
        .publish_segment(&member(), &segment(text, "k1", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_eq!(fake.posts().len(), 1, "the post exists");

    // A fresh connector (a new worker process) reconciles through the author's posts.
    let found = publisher(&fake)
        .reconcile(&member(), &segment(text, "k1", &[]))
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.external_id, fake.posts()[0].urn);
    let list = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/rest/posts")
        .unwrap();
    let query = list.query.unwrap();
    assert!(query.contains("q=author"), "{query}");
    assert!(
        query.contains(&format!("author=urn%3Ali%3Aperson%3A{MEMBER}")),
        "{query}"
    );
    assert_eq!(list.linkedin_version.as_deref(), Some(API_VERSION));
    assert!(
        publisher(&fake)
            .reconcile(&member(), &segment("never sent", "k2", &[]))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn without_listing_rights_the_duplicate_check_guards_the_resend() {
    let fake = fake().await;
    fake.set_scopes(TOKEN, &["openid", "profile", "w_member_social"]);
    let text = "Posted once, whatever happens";
    fake.inject(Fault::on_post_create(FaultKind::DropAfterWrite));
    let li = publisher(&fake);
    assert!(matches!(
        li.publish_segment(&member(), &segment(text, "k1", &[]))
            .await,
        Err(PublishError::Ambiguous { .. })
    ));
    // The next worker cannot list the member's posts: reconcile says "send it again"…
    let next = publisher(&fake);
    assert_eq!(
        next.reconcile(&member(), &segment(text, "k1", &[]))
            .await
            .unwrap(),
        None
    );
    // …and LinkedIn's duplicate refusal names the post the first attempt created.
    let published: Published = next
        .publish_segment(&member(), &segment(text, "k1", &[]))
        .await
        .unwrap();
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(published.external_id, fake.posts()[0].urn);
}

#[tokio::test]
async fn metrics_for_members_and_organizations() {
    let fake = fake().await;
    fake.add_organization(ORG, MEMBER);
    let li = publisher(&fake);
    let mine = li
        .publish_segment(&member(), &segment("Mine", "k1", &[]))
        .await
        .unwrap();
    let page = li
        .publish_segment(&organization(), &segment("The page's", "k2", &[]))
        .await
        .unwrap();
    fake.set_engagement(&mine.external_id, 5, 2, 1, 100);
    fake.set_engagement(&page.external_id, 7, 3, 4, 900);
    let m = li.metrics(&member(), &mine.external_id).await.unwrap();
    assert_eq!(
        (m.likes, m.replies, m.reposts, m.impressions),
        (5, 2, 0, None)
    );
    let o = li
        .metrics(&organization(), &page.external_id)
        .await
        .unwrap();
    assert_eq!(
        (o.likes, o.replies, o.reposts, o.impressions),
        (7, 3, 4, Some(900))
    );
    let stats = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/rest/organizationalEntityShareStatistics")
        .unwrap();
    assert!(
        stats
            .query
            .unwrap()
            .contains("shares=List(urn%3Ali%3Ashare%3A")
    );
}

#[tokio::test]
async fn identity_and_capabilities() {
    let fake = fake().await;
    let li = publisher(&fake);
    let who = li.identity(&member()).await.unwrap();
    assert_eq!(who.id, MEMBER);
    assert_eq!(who.handle, "Alice Example");
    let caps = li.capabilities();
    assert!(!caps.threads);
    assert!(caps.reconcile);
    let err = li
        .publish_segment(
            &member(),
            &SegmentRequest {
                index: 1,
                count: 2,
                ..segment("two", "k", &[])
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }));
    assert!(fake.posts().is_empty());
}
