//! Single-request uploads: the whole file in one call, then (when the platform processes
//! asynchronously) polling until it is ready.
//!
//! State: `media_id` and `Finalized` once the platform accepted the file; `Ready` once
//! processed. A resumed upload whose file was accepted only polls.

use async_trait::async_trait;

use crate::publish::PublishError;

use super::poll::{self, PollPolicy, Processing};
use super::{MediaFile, Phase, UploadContext, UploadState};

/// The platform side of a single-request upload.
#[async_trait]
pub trait SingleApi: Send + Sync {
    /// Sends the whole file; returns the media id and where processing stands.
    async fn send(
        &self,
        file: &MediaFile,
        bytes: Vec<u8>,
    ) -> Result<(String, Processing), PublishError>;
    /// The processing status.
    async fn status(&self, media_id: &str) -> Result<Processing, PublishError>;
}

/// Runs (or resumes) a single-request upload. Returns the media id once processed.
pub async fn upload(
    api: &dyn SingleApi,
    file: &MediaFile,
    state: UploadState,
    policy: PollPolicy,
    ctx: &UploadContext<'_>,
) -> Result<(String, UploadState), PublishError> {
    let mut state = state.for_file(file);
    let (media_id, processing) = match (&state.media_id, state.phase) {
        (Some(id), Phase::Ready) => return Ok((id.clone(), state)),
        (Some(id), Phase::Finalized) => (id.clone(), api.status(id).await?),
        _ => {
            let bytes = file.read_all().await?;
            let (id, processing) = api.send(file, bytes).await?;
            state.phase = Phase::Finalized;
            state.media_id = Some(id.clone());
            state.offset = file.bytes;
            ctx.progress.save(&state).await?;
            (id, processing)
        }
    };
    poll::until_ready(processing, policy, ctx.sleeper, || api.status(&media_id)).await?;
    state.phase = Phase::Ready;
    ctx.progress.save(&state).await?;
    Ok((media_id, state))
}
