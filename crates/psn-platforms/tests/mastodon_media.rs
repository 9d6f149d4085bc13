//! Mastodon media through the shared single-request flow against the fake Mastodon: alt text
//! as `description`, 202 then polls until processed, a resumed upload that only polls, the
//! ids in `media_ids` of the status; bodies checked against the OpenAPI description.

#[path = "support/upload.rs"]
mod support;

use std::time::Duration;

use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::mastodon::MastodonPublisher;
use psn_platforms::publish::mastodon_media::POLL_INTERVAL;
use psn_platforms::publish::{AccessToken, AccountContext, Publisher, SegmentRequest};
use psn_platforms::upload::{Phase, UploadState};
use psn_testkit::mastodon::FakeMastodon;
use serde_json::{Value, json};
use support::{Naps, Recorder, ctx, media_file};

const TOKEN: &str = "sEcReT-mastodon-TOKEN-media-0123456789";

async fn fake() -> FakeMastodon {
    let fake = FakeMastodon::start().await;
    fake.add_account("109", "alice", TOKEN);
    fake
}

fn account(fake: &FakeMastodon) -> AccountContext {
    AccountContext {
        external_id: "109".into(),
        handle: "@alice@fake.example".into(),
        service_url: fake.base_url(),
        access_token: AccessToken(TOKEN.into()),
    }
}

fn publisher() -> MastodonPublisher {
    MastodonPublisher::with_client(client_with_timeout(Duration::from_secs(5)))
}

fn segment<'a>(text: &'a str, media_ids: &'a [String]) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to: None,
        thread_root: None,
        idempotency_key: "media-key",
        language: None,
        media_ids,
    }
}

#[tokio::test]
async fn an_image_with_alt_text_is_ready_at_once_and_attaches_to_the_status() {
    let fake = fake().await;
    let m = publisher();
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "photo.webp", 3000, Some("A heron at dawn"));
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = m
        .upload_media(
            &account(&fake),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let stored = fake.media();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, media.media_id);
    assert_eq!(stored[0].bytes, data.len());
    assert_eq!(stored[0].content_type.as_deref(), Some("image/webp"));
    assert_eq!(stored[0].description.as_deref(), Some("A heron at dawn"));
    assert!(naps.taken().is_empty());
    let ids = vec![media.media_id];
    m.publish_segment(&account(&fake), &segment("", &ids))
        .await
        .unwrap();
    assert_eq!(fake.posts()[0].media_ids, ids);
    assert_eq!(
        fake.media()[0].status_id.as_deref(),
        Some(fake.posts()[0].id.as_str())
    );
}

#[tokio::test]
async fn a_video_answers_202_and_is_polled_until_processed() {
    let fake = fake().await;
    fake.set_media_processing(2);
    let m = publisher();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = media_file(&dir, "clip.mp4", 5000, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = m
        .upload_media(
            &account(&fake),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    // 206, 206, then 200.
    assert_eq!(fake.media()[0].checks, 3);
    assert_eq!(naps.taken(), vec![POLL_INTERVAL; 3]);
    let phases: Vec<Phase> = progress.states().iter().map(|s| s.phase).collect();
    assert_eq!(phases, vec![Phase::Finalized, Phase::Ready]);
    let ids = vec![media.media_id];
    m.publish_segment(&account(&fake), &segment("a clip", &ids))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_resumed_upload_polls_the_accepted_attachment_instead_of_uploading_again() {
    let fake = fake().await;
    let m = publisher();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = media_file(&dir, "clip.webm", 5000, None);
    let naps = Naps::default();
    // The attachment was accepted and saved; the worker died while it processed.
    let first = Recorder::stopping_after(1);
    m.upload_media(
        &account(&fake),
        &file,
        UploadState::default(),
        &ctx(&first, &naps),
    )
    .await
    .unwrap_err();
    let second = Recorder::default();
    let media = m
        .upload_media(&account(&fake), &file, first.last(), &ctx(&second, &naps))
        .await
        .unwrap();
    assert_eq!(fake.media().len(), 1, "uploaded once");
    assert_eq!(Some(media.media_id), first.last().media_id);
}

#[tokio::test]
async fn media_requests_conform_to_the_openapi_description_and_the_fake_is_strict() {
    let spec: Value = serde_json::from_str(include_str!("fixtures/mastodon-openapi.json")).unwrap();
    let fake = fake().await;
    fake.set_media_processing(1);
    let m = publisher();
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = media_file(&dir, "photo.jpg", 2000, Some("alt"));
    let (progress, naps) = (Recorder::default(), Naps::default());
    let media = m
        .upload_media(
            &account(&fake),
            &file,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap();
    let ids = vec![media.media_id.clone()];
    m.publish_segment(&account(&fake), &segment("with media", &ids))
        .await
        .unwrap();

    // The status body is a `MediaStatus`.
    let operation = &spec["paths"]["/api/v1/statuses"]["post"];
    let mut root = spec.clone();
    let obj = root.as_object_mut().unwrap();
    obj.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    obj.insert("$ref".into(), "#/components/schemas/MediaStatus".into());
    let validator = jsonschema::draft202012::new(&root).expect("the schema compiles");
    assert!(
        operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["$ref"] == "#/components/schemas/MediaStatus")
    );
    let requests = fake.requests();
    let status: Value = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/statuses")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&status)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{status}: {errors:?}");
    assert_eq!(status["media_ids"], json!(ids));
    // The multipart fields are those of `POST /api/v2/media`, with `file`.
    let form_schema = &spec["paths"]["/api/v2/media"]["post"]["requestBody"]["content"]["multipart/form-data"]
        ["schema"];
    let allowed: Vec<&str> = form_schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let upload = requests.iter().find(|r| r.path == "/api/v2/media").unwrap();
    let fields: Vec<&str> = upload
        .body
        .split("form-data; name=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(
        fields.contains(&"file") && fields.contains(&"description"),
        "{fields:?}"
    );
    assert!(fields.iter().all(|f| allowed.contains(f)), "{fields:?}");

    // Strict: an attached attachment, an unknown one, one still processing.
    let client = reqwest::Client::new();
    let post = |ids: Value| {
        client
            .post(format!("{}/api/v1/statuses", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({ "status": "again", "media_ids": ids }))
    };
    assert_eq!(
        post(json!(ids)).send().await.unwrap().status(),
        422,
        "already attached"
    );
    assert_eq!(
        post(json!(["1"])).send().await.unwrap().status(),
        422,
        "unknown"
    );
    let (video, _) = media_file(&dir, "clip.mp4", 2000, None);
    let bytes = std::fs::read(&video.path).unwrap();
    let form =
        psn_platforms::upload::form::Form::new().file("file", "clip.mp4", "video/mp4", &bytes);
    let accepted = psn_platforms::upload::form::attach(
        client
            .post(format!("{}/api/v2/media", fake.base_url()))
            .bearer_auth(TOKEN),
        form,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(accepted.status(), 202);
    let pending: Value = accepted.json().await.unwrap();
    assert!(pending["url"].is_null());
    assert_eq!(
        post(json!([pending["id"]])).send().await.unwrap().status(),
        422,
        "still processing"
    );
}

#[tokio::test]
async fn a_file_over_the_instance_limit_is_refused_before_it_is_sent() {
    let fake = fake().await;
    fake.set_media_limits(1000, 4000);
    let m = publisher();
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = media_file(&dir, "big.png", 1500, None);
    let (progress, naps) = (Recorder::default(), Naps::default());
    let err = m
        .upload_media(
            &account(&fake),
            &image,
            UploadState::default(),
            &ctx(&progress, &naps),
        )
        .await
        .unwrap_err();
    match err {
        psn_platforms::publish::PublishError::Permanent { message } => {
            assert!(
                message.contains("big.png") && message.contains("1000"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.media().is_empty());
    assert!(!fake.requests().iter().any(|r| r.path == "/api/v2/media"));
    // A video under the video limit goes through.
    let (video, _) = media_file(&dir, "small.mp4", 3000, None);
    m.upload_media(
        &account(&fake),
        &video,
        UploadState::default(),
        &ctx(&progress, &naps),
    )
    .await
    .unwrap();
    assert_eq!(fake.media().len(), 1);
}
