//! Multipart uploads with part ETags (LinkedIn video, S3-style): the platform plans the parts
//! and hands out one URL per part; each `PUT` answers an `ETag`; the upload is completed with
//! every ETag in order.
//!
//! State: `upload_id`, `media_id` and the part plan once started; the ETag list grows after
//! every finished part; `Finalized` after completion, `Ready` once processed. On resume the
//! flow sends only the parts without an ETag.

use async_trait::async_trait;
use reqwest::header::ETAG;
use serde::{Deserialize, Serialize};

use crate::publish::PublishError;
use crate::publish::http::{self, CallKind};

use super::poll::{self, PollPolicy, Processing};
use super::{MediaFile, Phase, UploadContext, UploadState, log_progress};

/// How many times one part is tried within one call of [`upload`].
pub const PART_TRIES: u32 = 3;

/// One part: where it goes and which bytes (inclusive) it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    pub url: String,
    pub first_byte: u64,
    pub last_byte: u64,
}

/// What the platform answers when the upload starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartPlan {
    pub upload_id: String,
    pub media_id: String,
    pub parts: Vec<PartPlan>,
}

/// The platform side of a multipart upload.
#[async_trait]
pub trait MultipartApi: Send + Sync {
    async fn start(&self, file: &MediaFile) -> Result<MultipartPlan, PublishError>;
    /// Adds what the platform needs to a part `PUT` (pre-signed URLs need nothing).
    fn prepare(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
    }
    /// Completes the upload with the ETags of every part, in order.
    async fn complete(
        &self,
        upload_id: &str,
        media_id: &str,
        etags: &[String],
    ) -> Result<Processing, PublishError>;
    async fn status(&self, media_id: &str) -> Result<Processing, PublishError> {
        let _ = media_id;
        Ok(Processing::Ready)
    }
}

/// Runs (or resumes) a multipart upload. Returns the media id once processed.
pub async fn upload(
    client: &reqwest::Client,
    api: &dyn MultipartApi,
    file: &MediaFile,
    state: UploadState,
    policy: PollPolicy,
    ctx: &UploadContext<'_>,
) -> Result<(String, UploadState), PublishError> {
    let mut state = state.for_file(file);
    if state.phase == Phase::New || state.upload_id.is_none() || state.media_id.is_none() {
        let plan = api.start(file).await?;
        state = UploadState {
            phase: Phase::Transferring,
            media_id: Some(plan.media_id),
            upload_id: Some(plan.upload_id),
            parts: plan.parts,
            total_bytes: file.bytes,
            ..UploadState::default()
        };
        ctx.progress.save(&state).await?;
    }
    let media_id = state.media_id.clone().unwrap_or_default();
    let upload_id = state.upload_id.clone().unwrap_or_default();
    if state.phase == Phase::Transferring {
        while state.etags.len() < state.parts.len() {
            let part = state.parts[state.etags.len()].clone();
            let etag = put_part(client, api, file, &part).await?;
            state.etags.push(etag);
            let before = state.offset;
            state.offset = part.last_byte + 1;
            log_progress(file, before, state.offset);
            ctx.progress.save(&state).await?;
        }
        let processing = api.complete(&upload_id, &media_id, &state.etags).await?;
        state.phase = Phase::Finalized;
        ctx.progress.save(&state).await?;
        poll::until_ready(processing, policy, ctx.sleeper, || api.status(&media_id)).await?;
    } else if state.phase == Phase::Finalized {
        let processing = api.status(&media_id).await?;
        poll::until_ready(processing, policy, ctx.sleeper, || api.status(&media_id)).await?;
    }
    state.phase = Phase::Ready;
    ctx.progress.save(&state).await?;
    Ok((media_id, state))
}

async fn put_part(
    client: &reqwest::Client,
    api: &dyn MultipartApi,
    file: &MediaFile,
    part: &PartPlan,
) -> Result<String, PublishError> {
    if part.last_byte < part.first_byte || part.last_byte >= file.bytes {
        return Err(PublishError::Permanent {
            message: format!(
                "the platform planned a part (bytes {}-{}) outside the file ({} bytes)",
                part.first_byte, part.last_byte, file.bytes
            ),
        });
    }
    let bytes = file
        .read_chunk(
            part.first_byte,
            (part.last_byte - part.first_byte + 1) as usize,
        )
        .await?;
    let mut tries = 0;
    loop {
        tries += 1;
        let request = api.prepare(client.put(&part.url)).body(bytes.clone());
        // Sending a part again is safe: the same bytes replace it.
        match http::send(request, CallKind::Reading, &[]).await {
            Ok(response) => {
                let etag = response
                    .headers
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .filter(|v| !v.is_empty());
                return etag.ok_or_else(|| PublishError::Transient {
                    message: "the platform accepted a part without an ETag".into(),
                    retry_after: None,
                });
            }
            Err(PublishError::Transient { message, .. }) if tries < PART_TRIES => {
                tracing::info!(%message, first_byte = part.first_byte, "part upload failed; sending it again");
            }
            Err(e) => return Err(e),
        }
    }
}
