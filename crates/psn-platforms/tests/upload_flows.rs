//! The shared upload flows against a strict upload server that breaks transfers on command:
//! resumable uploads continue at the offset the server reports after a cut connection or a
//! crash (never re-sending what it has, never opening a second session), and multipart
//! uploads retry a failed part and, resumed, send only the parts without an ETag.

#[path = "support/upload.rs"]
mod support;

use std::time::Duration;

use async_trait::async_trait;
use psn_platforms::publish::PublishError;
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::upload::multipart::{self, MultipartApi, MultipartPlan, PartPlan};
use psn_platforms::upload::poll::{PollPolicy, Processing};
use psn_platforms::upload::resumable::{self, ResumableApi};
use psn_platforms::upload::{MediaFile, Phase, UploadState};
use psn_testkit::uploads::{FakeUploads, ResumablePut};
use support::{Naps, Recorder, ctx, media_file};

struct Resumable {
    base: String,
    client: reqwest::Client,
}

#[async_trait]
impl ResumableApi for Resumable {
    async fn start(&self, file: &MediaFile) -> Result<String, PublishError> {
        let response = self
            .client
            .post(format!("{}/resumable", self.base))
            .json(&serde_json::json!({ "total_bytes": file.bytes }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        Ok(body["upload_url"].as_str().unwrap().to_owned())
    }

    fn finished(&self, body: &str) -> Result<String, PublishError> {
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        Ok(body["media_id"].as_str().unwrap().to_owned())
    }
}

fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn a_cut_transfer_resumes_at_the_offset_the_server_reports() {
    let fake = FakeUploads::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    // The second range (from byte 4096) breaks after 1000 bytes arrived.
    fake.cut_transfer(4096, 1000);
    let api = Resumable {
        base: fake.base_url(),
        client: client(),
    };
    let (progress, naps) = (Recorder::default(), Naps::default());
    let (id, state) = resumable::upload(
        &client(),
        &api,
        &file,
        UploadState::default(),
        4096,
        &ctx(&progress, &naps),
    )
    .await
    .unwrap();
    assert_eq!(id, "res-s1");
    assert_eq!(state.phase, Phase::Ready);
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1, "one session, never a second");
    assert_eq!(sessions[0].data, data);
    assert_eq!(
        sessions[0].puts,
        vec![
            ResumablePut::Range {
                start: 0,
                len: 4096
            },
            ResumablePut::Range {
                start: 4096,
                len: 4096
            },
            ResumablePut::Query,
            // 4096 + the 1000 bytes that arrived before the cut.
            ResumablePut::Range {
                start: 5096,
                len: 4096
            },
            ResumablePut::Range {
                start: 9192,
                len: 808
            },
        ]
    );
    let offsets: Vec<u64> = progress.states().iter().map(|s| s.offset).collect();
    assert_eq!(offsets, vec![0, 4096, 5096, 9192, 10_000]);
}

#[tokio::test]
async fn a_crashed_upload_resumes_the_same_session_from_its_saved_state() {
    let fake = FakeUploads::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    let api = Resumable {
        base: fake.base_url(),
        client: client(),
    };
    let naps = Naps::default();
    // Saves: session opened, 4096 acknowledged; the third save fails as if the worker died
    // right after the server acknowledged byte 8191.
    let first = Recorder::stopping_after(2);
    let err = resumable::upload(
        &client(),
        &api,
        &file,
        UploadState::default(),
        4096,
        &ctx(&first, &naps),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    let saved = first.last();
    assert_eq!(saved.offset, 4096);
    assert!(saved.upload_url.is_some());

    let second = Recorder::default();
    let (id, _) = resumable::upload(&client(), &api, &file, saved, 4096, &ctx(&second, &naps))
        .await
        .unwrap();
    assert_eq!(id, "res-s1");
    let sessions = fake.sessions();
    assert_eq!(
        sessions.len(),
        1,
        "the resumed upload used the saved session"
    );
    assert_eq!(sessions[0].data, data);
    // The resumed run asked first, learned the server had 8192 bytes (more than the saved
    // state said), and sent only the rest.
    assert_eq!(
        sessions[0].puts[2..],
        [
            ResumablePut::Query,
            ResumablePut::Range {
                start: 8192,
                len: 1808
            }
        ]
    );
}

#[tokio::test]
async fn an_expired_session_starts_over_once() {
    let fake = FakeUploads::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 5000, None);
    let api = Resumable {
        base: fake.base_url(),
        client: client(),
    };
    let naps = Naps::default();
    let first = Recorder::stopping_after(2);
    resumable::upload(
        &client(),
        &api,
        &file,
        UploadState::default(),
        4096,
        &ctx(&first, &naps),
    )
    .await
    .unwrap_err();
    fake.expire_session("s1");
    let second = Recorder::default();
    let (id, _) = resumable::upload(
        &client(),
        &api,
        &file,
        first.last(),
        4096,
        &ctx(&second, &naps),
    )
    .await
    .unwrap();
    assert_eq!(id, "res-s2");
    assert_eq!(fake.sessions()[1].data, data);
}

struct Multipart {
    base: String,
    client: reqwest::Client,
    part_size: u64,
}

#[async_trait]
impl MultipartApi for Multipart {
    async fn start(&self, file: &MediaFile) -> Result<MultipartPlan, PublishError> {
        let body: serde_json::Value = self
            .client
            .post(format!("{}/multipart", self.base))
            .json(&serde_json::json!({ "total_bytes": file.bytes, "part_size": self.part_size }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Ok(MultipartPlan {
            upload_id: body["upload_id"].as_str().unwrap().into(),
            media_id: body["media_id"].as_str().unwrap().into(),
            parts: serde_json::from_value::<Vec<PartPlan>>(body["parts"].clone()).unwrap(),
        })
    }

    async fn complete(
        &self,
        upload_id: &str,
        _media_id: &str,
        etags: &[String],
    ) -> Result<Processing, PublishError> {
        let response = self
            .client
            .post(format!("{}/multipart/{upload_id}/complete", self.base))
            .json(&serde_json::json!({ "etags": etags }))
            .send()
            .await
            .unwrap();
        if !response.status().is_success() {
            return Err(PublishError::Permanent {
                message: response.text().await.unwrap(),
            });
        }
        Ok(Processing::Ready)
    }
}

#[tokio::test]
async fn multipart_retries_a_failed_part_and_completes_with_every_etag_in_order() {
    let fake = FakeUploads::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    fake.fail_part_once(1);
    let api = Multipart {
        base: fake.base_url(),
        client: client(),
        part_size: 4096,
    };
    let (progress, naps) = (Recorder::default(), Naps::default());
    let (id, state) = multipart::upload(
        &client(),
        &api,
        &file,
        UploadState::default(),
        PollPolicy::default(),
        &ctx(&progress, &naps),
    )
    .await
    .unwrap();
    assert_eq!(id, "urn:li:video:1");
    assert_eq!(state.etags.len(), 3);
    let uploads = fake.multiparts();
    assert_eq!(uploads.len(), 1);
    assert!(uploads[0].completed);
    assert_eq!(uploads[0].content(), data);
    assert_eq!(uploads[0].part_puts, vec![0, 1, 1, 2]);
}

#[tokio::test]
async fn a_resumed_multipart_upload_sends_only_the_parts_without_an_etag() {
    let fake = FakeUploads::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = media_file(&dir, "clip.mp4", 10_000, None);
    let api = Multipart {
        base: fake.base_url(),
        client: client(),
        part_size: 4096,
    };
    let naps = Naps::default();
    // Saves: plan, part 0; then the worker dies after part 1 was sent.
    let first = Recorder::stopping_after(2);
    multipart::upload(
        &client(),
        &api,
        &file,
        UploadState::default(),
        PollPolicy::default(),
        &ctx(&first, &naps),
    )
    .await
    .unwrap_err();
    assert_eq!(first.last().etags.len(), 1);
    let second = Recorder::default();
    multipart::upload(
        &client(),
        &api,
        &file,
        first.last(),
        PollPolicy::default(),
        &ctx(&second, &naps),
    )
    .await
    .unwrap();
    let uploads = fake.multiparts();
    assert_eq!(uploads.len(), 1, "one upload, never a second");
    assert!(uploads[0].completed);
    assert_eq!(uploads[0].content(), data);
    // Part 1 again (its ETag was never saved), then part 2; part 0 once.
    assert_eq!(uploads[0].part_puts, vec![0, 1, 1, 2]);
}

#[tokio::test]
async fn polling_waits_the_interval_the_platform_suggests() {
    let naps = Naps::default();
    let mut answers = vec![
        Processing::Pending {
            check_after: Some(Duration::from_secs(3)),
        },
        Processing::Ready,
    ]
    .into_iter();
    psn_platforms::upload::poll::until_ready(
        Processing::Pending {
            check_after: Some(Duration::from_secs(5)),
        },
        PollPolicy::default(),
        &naps,
        || {
            let next = answers.next().unwrap();
            async move { Ok(next) }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        naps.taken(),
        vec![Duration::from_secs(5), Duration::from_secs(3)]
    );

    let failed = psn_platforms::upload::poll::until_ready(
        Processing::Failed {
            message: "unsupported codec".into(),
        },
        PollPolicy::default(),
        &naps,
        || async { Ok(Processing::Ready) },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(failed, PublishError::Permanent { ref message } if message.contains("unsupported codec"))
    );
}
