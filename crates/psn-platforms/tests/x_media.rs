//! X media through the shared upload flows against the fake X: images in one request with alt
//! text, videos chunked with STATUS polls at X's suggested interval, resumed after a crash or a
//! dropped APPEND without a second upload session, attached to a post; request bodies checked
//! against X's OpenAPI description; and the fake's own strictness.

#[path = "support/upload.rs"]
mod support;

use std::time::Duration;

use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::x::XPublisher;
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Publisher, SegmentRequest,
};
use psn_platforms::upload::form::{self, Form};
use psn_platforms::upload::{Phase, UploadState};
use psn_testkit::{FakeX, Fault, FaultKind};
use serde_json::{Value, json};
use support::{Naps, Recorder, ctx, media_file};

const TOKEN: &str = "sEcReT-access-TOKEN-media-0123456789";

async fn fake() -> FakeX {
    let fake = FakeX::start().await;
    fake.add_account("100", "alice", TOKEN);
    fake
}

fn account() -> AccountContext {
    AccountContext {
        external_id: "100".into(),
        handle: "alice".into(),
        service_url: String::new(),
        access_token: AccessToken(TOKEN.into()),
    }
}

fn publisher(fake: &FakeX) -> XPublisher {
    XPublisher::with_client(fake.base_url(), client_with_timeout(Duration::from_secs(5)))
        .with_chunk_size(3000)
}

fn segment<'a>(text: &'a str, media_ids: &'a [String]) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to: None,
        thread_root: None,
        idempotency_key: "k",
        language: None,
        media_ids,
    }
}

fn requests(fake: &FakeX, method: &str, path_part: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path_part))
        .count()
}

#[tokio::test]
async fn an_image_uploads_in_one_request_with_alt_text_and_attaches_to_the_post() {
    let fake = fake().await;
    let x = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "photo.png", 20_000, Some("A red bicycle"));
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = x
        .upload_media(
            &account(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let stored = fake.media();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, media.media_id);
    assert!(!stored[0].chunked);
    assert_eq!(stored[0].category, "tweet_image");
    assert_eq!(stored[0].content(), data);
    assert_eq!(stored[0].alt.as_deref(), Some("A red bicycle"));
    assert!(progress.last().alt_done);
    assert!(naps.taken().is_empty());

    let ids = vec![media.media_id.clone()];
    x.publish_segment(&account(), &segment("with a picture", &ids))
        .await
        .unwrap();
    assert_eq!(fake.posts()[0].media_ids, ids);
}

#[tokio::test]
async fn a_video_uploads_in_chunks_and_polls_at_the_suggested_interval() {
    let fake = fake().await;
    fake.set_media_processing(2, 7);
    let x = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = x
        .upload_media(
            &account(),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let stored = &fake.media()[0];
    assert_eq!(stored.id, media.media_id);
    assert!(stored.chunked && stored.finalized && stored.ready);
    assert_eq!(stored.media_type, "video/mp4");
    assert_eq!(stored.category, "tweet_video");
    assert_eq!(
        stored.appends,
        vec![(0, 3000), (1, 3000), (2, 3000), (3, 1000)]
    );
    assert_eq!(stored.content(), data);
    assert_eq!(stored.status_checks, 2);
    assert_eq!(naps.taken(), vec![Duration::from_secs(7); 2]);
    let phases: Vec<(Phase, u32)> = progress
        .states()
        .iter()
        .map(|s| (s.phase, s.next_segment))
        .collect();
    assert_eq!(
        phases,
        vec![
            (Phase::Transferring, 0),
            (Phase::Transferring, 1),
            (Phase::Transferring, 2),
            (Phase::Transferring, 3),
            (Phase::Transferring, 4),
            (Phase::Finalized, 4),
            (Phase::Ready, 4),
        ]
    );
}

#[tokio::test]
async fn a_crashed_chunked_upload_resumes_the_same_media_id_at_the_next_segment() {
    let fake = fake().await;
    let x = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    let naps = Naps::default();
    // Saved: initialized, segment 0, segment 1; the worker dies right after segment 2 is sent.
    let first = Recorder::stopping_after(3);
    x.upload_media(
        &account(),
        &file,
        UploadState::default(),
        &ctx(&first, &naps),
    )
    .await
    .unwrap_err();
    let saved = first.last();
    assert_eq!((saved.next_segment, saved.offset), (2, 6000));

    let second = Recorder::default();
    let media = x
        .upload_media(&account(), &file, saved.clone(), &ctx(&second, &naps))
        .await
        .unwrap();
    assert_eq!(Some(media.media_id.clone()), saved.media_id);
    assert_eq!(
        requests(&fake, "POST", "/initialize"),
        1,
        "one upload session"
    );
    let stored = fake.media();
    assert_eq!(stored.len(), 1);
    // Segment 2 again (its acknowledgment was never saved), replacing itself; 0 and 1 once.
    assert_eq!(
        stored[0].appends,
        vec![(0, 3000), (1, 3000), (2, 3000), (2, 3000), (3, 1000)]
    );
    assert_eq!(stored[0].content(), data);
}

#[tokio::test]
async fn a_dropped_append_is_sent_again_under_the_same_index() {
    let fake = fake().await;
    let x = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "loop.gif", 7000, None);
    // The first APPEND is applied, then the connection drops before X answers.
    fake.inject(
        Fault::new(FaultKind::DropAfterWrite)
            .path("/2/media/upload/1")
            .method("POST"),
    );
    let (first, naps) = (Recorder::default(), Naps::default());
    let err = x
        .upload_media(
            &account(),
            &file,
            UploadState::default(),
            &ctx(&first, &naps),
        )
        .await
        .unwrap_err();
    // Re-sending a segment is safe, so a lost answer is transient, never ambiguous.
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    let second = Recorder::default();
    x.upload_media(&account(), &file, first.last(), &ctx(&second, &naps))
        .await
        .unwrap();
    let stored = fake.media();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].category, "tweet_gif");
    assert_eq!(
        stored[0].appends,
        vec![(0, 3000), (0, 3000), (1, 3000), (2, 1000)]
    );
    assert_eq!(stored[0].content(), data);
}

fn validator(spec: &Value, schema: &str) -> jsonschema::Validator {
    let mut root = spec.clone();
    root.as_object_mut().unwrap().insert(
        "$ref".into(),
        Value::String(format!("#/components/schemas/{schema}")),
    );
    jsonschema::draft4::new(&root).expect("the schema compiles")
}

fn form_fields(body: &str) -> Vec<String> {
    body.split("form-data; name=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The JSON bodies conform to `InitializeMediaUploadRequest`, `CreateMediaMetadataRequest`
/// and `CreatePostsRequest`; the multipart fields are those of `MediaUploadRequest` and
/// `AppendMediaUploadRequest`, with every required one present.
#[tokio::test]
async fn media_requests_conform_to_the_openapi_description() {
    let spec: Value = serde_json::from_str(include_str!("fixtures/x-api-openapi.json")).unwrap();
    let fake = fake().await;
    let x = publisher(&fake);
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = media_file(&dir, "photo.jpg", 4000, Some("alt text"));
    let (video, _) = media_file(&dir, "clip.mov", 4000, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    let a = x
        .upload_media(
            &account(),
            &image,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let b = x
        .upload_media(
            &account(),
            &video,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let ids = vec![a.media_id, b.media_id];
    x.publish_segment(&account(), &segment("", &ids))
        .await
        .unwrap();

    let checks = [
        ("/2/media/upload/initialize", "InitializeMediaUploadRequest"),
        ("/2/media/metadata", "CreateMediaMetadataRequest"),
        ("/2/tweets", "CreatePostsRequest"),
    ];
    for (path, schema) in checks {
        let v = validator(&spec, schema);
        let bodies: Vec<Value> = fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect();
        assert_eq!(bodies.len(), 1, "{path}");
        for body in &bodies {
            let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{path} {body}: {errors:?}");
        }
    }
    let schemas = &spec["components"]["schemas"];
    for (suffix, schema) in [
        ("/2/media/upload", "MediaUploadRequest"),
        ("/append", "AppendMediaUploadRequest"),
    ] {
        let allowed: Vec<&str> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let required: Vec<&str> = schemas[schema]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let bodies: Vec<String> = fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
            .map(|r| r.body)
            .collect();
        assert!(!bodies.is_empty(), "{suffix}");
        for body in bodies {
            let fields = form_fields(&body);
            assert!(
                fields.iter().all(|f| allowed.contains(&f.as_str())),
                "{schema}: {fields:?}"
            );
            assert!(
                required.iter().all(|r| fields.iter().any(|f| f == r)),
                "{schema}: {fields:?}"
            );
        }
    }
    // The post with only media has no text field at all or an empty one; the fake took it.
    assert_eq!(fake.posts()[0].media_ids, ids);
}

/// The fake refuses what X refuses: skipped segments, APPEND after FINALIZE, FINALIZE before
/// every byte arrived, a wrong content type, media of another account or not processed yet.
#[tokio::test]
async fn the_fake_x_media_endpoints_are_strict() {
    let fake = fake().await;
    fake.add_account("200", "bob", "bob-token");
    let client = reqwest::Client::new();
    let base = fake.base_url();
    let post = |path: &str| client.post(format!("{base}{path}")).bearer_auth(TOKEN);
    let init: Value = post("/2/media/upload/initialize")
        .json(
            &json!({"media_type": "video/mp4", "total_bytes": 6, "media_category": "tweet_video"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = init["data"]["id"].as_str().unwrap().to_owned();
    let append = |index: &str, bytes: &[u8]| {
        form::attach(
            post(&format!("/2/media/upload/{id}/append")),
            Form::new().text("segment_index", index).file(
                "media",
                "c",
                "application/octet-stream",
                bytes,
            ),
        )
    };
    assert_eq!(
        append("1", b"abc").send().await.unwrap().status(),
        400,
        "gap"
    );
    assert_eq!(
        post(&format!("/2/media/upload/{id}/append"))
            .body("raw")
            .send()
            .await
            .unwrap()
            .status(),
        400,
        "not multipart"
    );
    assert_eq!(append("0", b"abc").send().await.unwrap().status(), 200);
    assert_eq!(
        post(&format!("/2/media/upload/{id}/finalize"))
            .send()
            .await
            .unwrap()
            .status(),
        400,
        "bytes missing"
    );
    assert_eq!(
        append("1", b"defg").send().await.unwrap().status(),
        400,
        "over total_bytes"
    );
    assert_eq!(append("1", b"def").send().await.unwrap().status(), 200);
    // Not processed yet: a post cannot use it.
    let finalize = post(&format!("/2/media/upload/{id}/finalize"))
        .send()
        .await
        .unwrap();
    assert_eq!(finalize.status(), 200);
    let finalized: Value = finalize.json().await.unwrap();
    assert_eq!(finalized["data"]["processing_info"]["state"], "pending");
    let tweet = |ids: Value, token: &str| {
        client
            .post(format!("{base}/2/tweets"))
            .bearer_auth(token)
            .json(&json!({"text": "t", "media": {"media_ids": ids}}))
    };
    assert_eq!(
        tweet(json!([id]), TOKEN).send().await.unwrap().status(),
        400,
        "not processed"
    );
    assert_eq!(
        append("2", b"x").send().await.unwrap().status(),
        400,
        "APPEND after FINALIZE"
    );
    let status = client
        .get(format!("{base}/2/media/upload"))
        .query(&[("command", "STATUS"), ("media_id", id.as_str())])
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status: Value = status.json().await.unwrap();
    assert_eq!(status["data"]["processing_info"]["state"], "succeeded");
    assert_eq!(
        tweet(json!(["1234"]), TOKEN).send().await.unwrap().status(),
        400,
        "unknown media id"
    );
    assert_eq!(
        tweet(json!([id]), "bob-token")
            .send()
            .await
            .unwrap()
            .status(),
        400,
        "another account's media"
    );
    assert_eq!(
        tweet(json!([id]), TOKEN).send().await.unwrap().status(),
        201
    );
}

#[tokio::test]
async fn an_image_over_five_megabytes_goes_through_the_chunked_upload() {
    let fake = fake().await;
    let x = publisher(&fake).with_chunk_size(2 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "poster.jpg", 6 * 1024 * 1024, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    x.upload_media(
        &account(),
        &file,
        UploadState::default(),
        &ctx(&progress, &naps),
    )
    .await
    .unwrap();
    let stored = &fake.media()[0];
    assert!(stored.chunked && stored.ready);
    assert_eq!(stored.category, "tweet_image");
    assert_eq!(stored.appends.len(), 3);
    assert_eq!(stored.content(), data);
    assert!(naps.taken().is_empty(), "images need no processing");
}
