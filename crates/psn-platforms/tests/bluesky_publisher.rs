//! The Bluesky connector against the fake PDS over real HTTP: sessions (cached, refreshed,
//! recreated), rich-text facets with UTF-8 byte offsets, reply chains, link cards from a page
//! served by the test, images with alt text, size refusals, error classes for every fault,
//! reconcile after a dropped connection, identity and metrics.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use psn_domain::MediaKind;
use psn_platforms::publish::bluesky::{BlueskyPublisher, StrongRef};
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::{
    AccessToken, AccountContext, PostMetrics, PublishError, Published, Publisher, SegmentRequest,
};
use psn_platforms::upload::{
    MediaFile, Phase, TokioSleeper, UploadContext, UploadProgress, UploadState,
};
use psn_testkit::bluesky::FakeBluesky;
use psn_testkit::faults::{Fault, FaultKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DID: &str = "did:plc:alice0000000000000000000";
const HANDLE: &str = "alice.test";
const PASSWORD: &str = "abcd-efgh-ijkl-mnop";
const BOB_DID: &str = "did:plc:bob00000000000000000000";

async fn fake() -> FakeBluesky {
    let fake = FakeBluesky::start().await;
    fake.add_account(DID, HANDLE, PASSWORD);
    fake.add_account(BOB_DID, "bob.bsky.social", "bob-password-0000");
    fake
}

fn account(fake: &FakeBluesky) -> AccountContext {
    AccountContext {
        external_id: DID.into(),
        handle: HANDLE.into(),
        service_url: format!("{}/", fake.base_url()),
        access_token: AccessToken(PASSWORD.into()),
    }
}

fn publisher() -> BlueskyPublisher {
    BlueskyPublisher::with_client(client_with_timeout(Duration::from_secs(5)))
}

fn segment(text: &str) -> SegmentRequest<'_> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to: None,
        thread_root: None,
        idempotency_key: "k",
        language: Some("en"),
        media_ids: &[],
    }
}

fn assert_no_secret(err: &PublishError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(!text.contains("eyJ"), "a session token leaked: {text}");
    }
}

fn faceted<'a>(text: &'a str, facet: &Value) -> &'a str {
    let s = facet["index"]["byteStart"].as_u64().unwrap() as usize;
    let e = facet["index"]["byteEnd"].as_u64().unwrap() as usize;
    &text[s..e]
}

#[tokio::test]
async fn publishes_text_with_byte_offset_facets() {
    let fake = fake().await;
    let b = publisher();
    let text = "✨ Grüße 日本 @bob.bsky.social and @nobody.example.com 🎉 see example.com/é, #rust #日本語!";
    let published = b
        .publish_segment(&account(&fake), &segment(text))
        .await
        .unwrap();
    let records = fake.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.text(), text);
    assert_eq!(r.value["langs"], json!(["en"]));
    assert_eq!(r.value["$type"], "app.bsky.feed.post");
    assert_eq!(
        published.external_id,
        StrongRef {
            uri: r.uri.clone(),
            cid: r.cid.clone()
        }
        .to_id()
    );
    assert_eq!(
        published.url.as_deref(),
        Some(format!("https://bsky.app/profile/{HANDLE}/post/{}", r.rkey).as_str())
    );
    let facets = r.value["facets"].as_array().unwrap();
    let got: Vec<(&str, Value)> = facets
        .iter()
        .map(|f| (faceted(text, f), f["features"][0].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "@bob.bsky.social",
                json!({"$type": "app.bsky.richtext.facet#mention", "did": BOB_DID})
            ),
            (
                "example.com/é",
                json!({"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/é"})
            ),
            (
                "#rust",
                json!({"$type": "app.bsky.richtext.facet#tag", "tag": "rust"})
            ),
            (
                "#日本語",
                json!({"$type": "app.bsky.richtext.facet#tag", "tag": "日本語"})
            ),
        ],
        "the unresolvable mention stays plain text"
    );
    // The byte offsets really are bytes: the mention starts after 3 + 1 + 7 + 1 + 6 + 1 bytes.
    assert_eq!(
        facets[0]["index"]["byteStart"],
        json!("✨ Grüße 日本 ".len())
    );
    // One session for the whole call, the mention resolved once per handle.
    assert_eq!(fake.sessions_created(), 1);
}

#[tokio::test]
async fn a_thread_chains_root_and_parent() {
    let fake = fake().await;
    let b = publisher();
    let texts = ["1/3 a thread", "2/3 goes on", "3/3 ends"];
    let mut published: Vec<Published> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let reply_to = published.last().map(|p| p.external_id.clone());
        let root = published.first().map(|p| p.external_id.clone());
        let seg = SegmentRequest {
            index: i,
            count: 3,
            reply_to: reply_to.as_deref(),
            thread_root: root.as_deref(),
            ..segment(text)
        };
        published.push(b.publish_segment(&account(&fake), &seg).await.unwrap());
    }
    let records = fake.records();
    assert_eq!(records.len(), 3);
    assert!(records[0].value.get("reply").is_none());
    for i in 1..3 {
        assert_eq!(
            records[i].value["reply"]["parent"],
            json!({"uri": records[i - 1].uri, "cid": records[i - 1].cid})
        );
        assert_eq!(
            records[i].value["reply"]["root"],
            json!({"uri": records[0].uri, "cid": records[0].cid})
        );
    }
    // A reply to an id that is not `at://…|cid` is refused before anything is sent.
    let seg = SegmentRequest {
        reply_to: Some("12345"),
        ..segment("orphan")
    };
    let err = b.publish_segment(&account(&fake), &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
    // The fake refuses a reply to a record that does not exist.
    let ghost = format!("at://{DID}/app.bsky.feed.post/3zzzzzzzzzzzz|bafyreighost");
    let seg = SegmentRequest {
        reply_to: Some(&ghost),
        thread_root: Some(&ghost),
        ..segment("orphan")
    };
    let err = b.publish_segment(&account(&fake), &seg).await.unwrap_err();
    match &err {
        PublishError::Permanent { message } => {
            assert!(message.contains("does not exist"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.records().len(), 3);
}

/// A tiny PNG: the signature and an IHDR with `w`×`h` (enough for size probing and the fake).
fn png(w: u32, h: u32, extra: usize) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(7u8, extra));
    v
}

/// Serves `/page` (HTML with Open Graph tags), `/card.png` and 404 otherwise, on 127.0.0.1.
async fn serve_pages(image: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let image = image.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, ctype, body): (&str, &str, Vec<u8>) = match path.as_str() {
                    "/page" => (
                        "200 OK",
                        "text/html; charset=utf-8",
                        br#"<!doctype html><html><head><title>Fallback</title>
<meta property="og:title" content="Caf&eacute; &amp; Co &#8212; news">
<meta property="og:description" content="What the page is about">
<meta property="og:image" content="/card.png"></head><body>hi</body></html>"#
                            .to_vec(),
                    ),
                    "/card.png" => ("200 OK", "image/png", image),
                    _ => ("404 Not Found", "text/plain", b"no".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_link_gets_a_card_with_a_thumbnail_and_a_dead_link_does_not_fail() {
    let fake = fake().await;
    let b = publisher();
    let thumb = png(1200, 630, 500);
    let site = serve_pages(thumb.clone()).await;
    let text = format!("Read {site}/page today");
    b.publish_segment(&account(&fake), &segment(&text))
        .await
        .unwrap();
    let records = fake.records();
    let embed = &records[0].value["embed"];
    assert_eq!(embed["$type"], "app.bsky.embed.external");
    assert_eq!(embed["external"]["uri"], format!("{site}/page"));
    assert_eq!(embed["external"]["description"], "What the page is about");
    // `&eacute;` is not decoded by the small entity table; the others are.
    assert!(
        embed["external"]["title"]
            .as_str()
            .unwrap()
            .ends_with("& Co — news"),
        "{embed}"
    );
    let blobs = fake.blobs();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].data, thumb);
    assert_eq!(embed["external"]["thumb"]["ref"]["$link"], blobs[0].cid);

    let text = format!("Gone {site}/missing and that is fine");
    b.publish_segment(&account(&fake), &segment(&text))
        .await
        .unwrap();
    let records = fake.records();
    assert_eq!(records.len(), 2);
    assert!(records[1].value.get("embed").is_none());
    assert_eq!(
        records[1].value["facets"][0]["features"][0]["uri"],
        format!("{site}/missing")
    );
}

#[derive(Default)]
struct Saved(Mutex<Vec<UploadState>>);

#[async_trait]
impl UploadProgress for Saved {
    async fn save(&self, state: &UploadState) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(state.clone());
        Ok(())
    }
}

fn media_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8], alt: Option<&str>) -> MediaFile {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    MediaFile {
        path,
        kind: MediaKind::Image,
        mime: "image/png".into(),
        bytes: bytes.len() as u64,
        alt: alt.map(str::to_owned),
    }
}

#[tokio::test]
async fn images_are_uploaded_as_blobs_with_alt_text_and_aspect_ratio() {
    let fake = fake().await;
    let b = publisher();
    let dir = tempfile::tempdir().unwrap();
    let saved = Saved::default();
    let ctx = UploadContext {
        progress: &saved,
        sleeper: &TokioSleeper,
    };
    let first = media_file(&dir, "a.png", &png(800, 600, 100), Some("A chart"));
    let second = media_file(&dir, "b.png", &png(10, 20, 50), None);
    let a = b
        .upload_media(&account(&fake), &first, UploadState::default(), &ctx)
        .await
        .unwrap();
    let c = b
        .upload_media(&account(&fake), &second, UploadState::default(), &ctx)
        .await
        .unwrap();
    let states = saved.0.lock().unwrap().clone();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].phase, Phase::Ready);
    assert_eq!(states[0].media_id.as_deref(), Some(a.media_id.as_str()));
    // A resumed upload that finished is not sent again.
    let again = b
        .upload_media(&account(&fake), &first, states[0].clone(), &ctx)
        .await
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(fake.blobs().len(), 2);
    let ids = vec![a.media_id.clone(), c.media_id.clone()];
    let seg = SegmentRequest {
        media_ids: &ids,
        ..segment("Two pictures https://example.com")
    };
    b.publish_segment(&account(&fake), &seg).await.unwrap();
    let records = fake.records();
    let embed = &records[0].value["embed"];
    assert_eq!(
        embed["$type"], "app.bsky.embed.images",
        "media beats the link card"
    );
    let images = embed["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["alt"], "A chart");
    assert_eq!(
        images[0]["aspectRatio"],
        json!({"width": 800, "height": 600})
    );
    assert_eq!(images[1]["alt"], "");
    assert_eq!(images[0]["image"]["ref"]["$link"], fake.blobs()[0].cid);
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("uploadBlob"))
            .count(),
        2
    );
}

#[tokio::test]
async fn too_big_or_too_many_images_are_refused_before_sending() {
    let fake = fake().await;
    let b = publisher();
    let dir = tempfile::tempdir().unwrap();
    let big = media_file(&dir, "big.png", &png(100, 100, 2_000_001 - 33), Some("big"));
    assert_eq!(big.bytes, 2_000_001);
    let err = b
        .upload_media(
            &account(&fake),
            &big,
            UploadState::default(),
            &UploadContext::detached(),
        )
        .await
        .unwrap_err();
    match &err {
        PublishError::Permanent { message } => {
            assert!(message.contains("2000000"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.path.ends_with("uploadBlob")),
        "nothing was sent"
    );
    // Exactly the limit is fine.
    let edge = media_file(&dir, "edge.png", &png(100, 100, 2_000_000 - 33), None);
    let one = b
        .upload_media(
            &account(&fake),
            &edge,
            UploadState::default(),
            &UploadContext::detached(),
        )
        .await
        .unwrap();
    let five = vec![one.media_id; 5];
    let seg = SegmentRequest {
        media_ids: &five,
        ..segment("five")
    };
    let err = b.publish_segment(&account(&fake), &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
    assert!(fake.records().is_empty());
}

#[tokio::test]
async fn an_expired_session_is_refreshed_then_recreated() {
    let fake = fake().await;
    let b = publisher();
    b.publish_segment(&account(&fake), &segment("one"))
        .await
        .unwrap();
    b.publish_segment(&account(&fake), &segment("two"))
        .await
        .unwrap();
    assert_eq!(fake.sessions_created(), 1, "the session is cached");
    fake.expire_access_tokens();
    b.publish_segment(&account(&fake), &segment("three"))
        .await
        .unwrap();
    assert_eq!(fake.sessions_refreshed(), 1);
    assert_eq!(fake.sessions_created(), 1);
    // Refresh token dead too: a new session from the app password.
    fake.expire_access_tokens();
    fake.revoke_refresh_tokens();
    b.publish_segment(&account(&fake), &segment("four"))
        .await
        .unwrap();
    assert_eq!(fake.sessions_created(), 2);
    let texts: Vec<String> = fake.records().iter().map(|r| r.text().to_owned()).collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    // The identity call works on the cached session.
    let id = b.identity(&account(&fake)).await.unwrap();
    assert_eq!((id.id.as_str(), id.handle.as_str()), (DID, HANDLE));
    // Nothing recorded holds the password.
    assert!(
        fake.requests().iter().all(|r| !r.body.contains(PASSWORD)),
        "recorded requests hold no password"
    );
}

#[tokio::test]
async fn a_wrong_app_password_is_an_auth_error() {
    let fake = fake().await;
    let b = publisher();
    let mut acct = account(&fake);
    acct.access_token = AccessToken("wrong-pass-word-0000".into());
    let err = b
        .publish_segment(&acct, &segment("never"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Invalid identifier or password"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-pass-word"));
    let err = b.identity(&acct).await.unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    let err = b
        .login(&fake.base_url(), HANDLE, "wrong-pass-word-0000")
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    let id = b.login(&fake.base_url(), HANDLE, PASSWORD).await.unwrap();
    assert_eq!((id.id.as_str(), id.handle.as_str()), (DID, HANDLE));
    assert!(fake.records().is_empty());
    // A revoked app password after a session existed: the session is refused, then login.
    fake.revoke_app_password(PASSWORD);
    fake.expire_access_tokens();
    fake.revoke_refresh_tokens();
    let err = b
        .publish_segment(&account(&fake), &segment("never"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn every_fault_maps_to_its_class() {
    let fake = fake().await;
    let b = publisher();
    let acct = account(&fake);
    // A session first, so the faults hit createRecord.
    b.identity(&acct).await.unwrap();

    fake.inject(Fault::on_record_create(FaultKind::ServerError));
    let err = b.publish_segment(&acct, &segment("a")).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");

    fake.inject(Fault::on_record_create(FaultKind::RateLimit {
        retry_after_secs: 120,
    }));
    let err = b.publish_segment(&acct, &segment("a")).await.unwrap_err();
    match &err {
        PublishError::RateLimited {
            reset_at: Some(at), ..
        } => {
            let secs = (*at - chrono::Utc::now()).num_seconds();
            assert!((100..=125).contains(&secs), "{secs}")
        }
        other => panic!("{other:?}"),
    }

    fake.inject(Fault::on_record_create(FaultKind::BadRequest));
    let err = b.publish_segment(&acct, &segment("a")).await.unwrap_err();
    match &err {
        PublishError::Permanent { message } => {
            assert!(message.starts_with("InvalidRequest: "), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // A 401 on a live session: log in again and send once more.
    fake.inject(Fault::on_record_create(FaultKind::Unauthorized));
    b.publish_segment(&acct, &segment("after a 401"))
        .await
        .unwrap();
    assert_eq!(fake.sessions_created(), 2);

    let long = "é".repeat(301);
    let err = b.publish_segment(&acct, &segment(&long)).await.unwrap_err();
    match &err {
        PublishError::Permanent { message } => {
            assert!(message.contains("300 graphemes"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.records().len(), 1);
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_dropped_create_is_ambiguous_and_reconcile_finds_it() {
    let fake = fake().await;
    let b = publisher();
    let acct = account(&fake);
    let first = b
        .publish_segment(&acct, &segment("the thread starts"))
        .await
        .unwrap();
    let seg = SegmentRequest {
        index: 1,
        count: 2,
        reply_to: Some(&first.external_id),
        thread_root: Some(&first.external_id),
        ..segment("and continues")
    };
    // Not sent yet: certainly not there.
    assert_eq!(b.reconcile(&acct, &seg).await.unwrap(), None);

    fake.inject(Fault::on_record_create(FaultKind::DropAfterWrite));
    let err = b.publish_segment(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    let records = fake.records();
    assert_eq!(records.len(), 2, "the write happened");

    let found = b.reconcile(&acct, &seg).await.unwrap().expect("found");
    assert_eq!(
        found.external_id,
        format!("{}|{}", records[1].uri, records[1].cid)
    );
    assert!(found.url.unwrap().ends_with(&records[1].rkey));
    // Same text, other parent: not that one.
    let other = SegmentRequest {
        reply_to: None,
        thread_root: None,
        ..seg.clone()
    };
    assert_eq!(b.reconcile(&acct, &other).await.unwrap(), None);

    // Reading failures are transient, never ambiguous.
    fake.inject(Fault::new(FaultKind::DropAfterWrite).path("/xrpc/com.atproto.repo.listRecords"));
    let err = b.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn metrics_come_from_get_posts() {
    let fake = fake().await;
    let b = publisher();
    let acct = account(&fake);
    let root = b
        .publish_segment(&acct, &segment("count me"))
        .await
        .unwrap();
    let seg = SegmentRequest {
        reply_to: Some(&root.external_id),
        thread_root: Some(&root.external_id),
        ..segment("a reply")
    };
    b.publish_segment(&acct, &seg).await.unwrap();
    let uri = StrongRef::parse(&root.external_id).unwrap().uri;
    assert_eq!(
        b.metrics(&acct, &root.external_id).await.unwrap(),
        PostMetrics {
            likes: 0,
            reposts: 0,
            replies: 1,
            quotes: 0
        }
    );
    fake.set_counts(&uri, 12, 3, 2, Some(7));
    assert_eq!(
        b.metrics(&acct, &root.external_id).await.unwrap(),
        PostMetrics {
            likes: 12,
            reposts: 3,
            replies: 7,
            quotes: 2
        }
    );
    let err = b.metrics(&acct, "not-an-id").await.unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }));
}

#[test]
fn debug_output_shows_no_password() {
    let acct = AccountContext {
        external_id: DID.into(),
        handle: HANDLE.into(),
        service_url: String::new(),
        access_token: AccessToken(PASSWORD.into()),
    };
    assert!(!format!("{acct:?} {:?}", publisher()).contains(PASSWORD));
    let caps = publisher().capabilities();
    assert!(caps.threads && caps.reconcile && !caps.refresh && !caps.idempotency_keys);
    assert_eq!(
        BlueskyPublisher::api_root(&acct),
        std::env::var("PSN_API_BASE_BLUESKY").unwrap_or_else(|_| "https://bsky.social".into())
    );
}

#[tokio::test]
async fn a_video_is_embedded_as_video_and_a_gif_is_refused() {
    let fake = fake().await;
    let b = publisher();
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let video = MediaFile {
        path,
        kind: MediaKind::Video,
        mime: "video/mp4".into(),
        bytes: bytes.len() as u64,
        alt: Some("A short clip".into()),
    };
    let uploaded = b
        .upload_media(
            &account(&fake),
            &video,
            UploadState::default(),
            &UploadContext::detached(),
        )
        .await
        .unwrap();
    let ids = vec![uploaded.media_id];
    let seg = SegmentRequest {
        media_ids: &ids,
        ..segment("Watch this")
    };
    b.publish_segment(&account(&fake), &seg).await.unwrap();
    let records = fake.records();
    let embed = &records[0].value["embed"];
    assert_eq!(embed["$type"], "app.bsky.embed.video");
    assert_eq!(embed["alt"], "A short clip");
    assert_eq!(embed["video"]["mimeType"], "video/mp4");
    assert_eq!(fake.blobs()[0].data, bytes);

    let gif = MediaFile {
        kind: MediaKind::Gif,
        mime: "image/gif".into(),
        ..video.clone()
    };
    let err = b
        .upload_media(
            &account(&fake),
            &gif,
            UploadState::default(),
            &UploadContext::detached(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
    assert_eq!(fake.blobs().len(), 1);
}
