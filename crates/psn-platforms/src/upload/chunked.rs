//! Chunked uploads in the X style: initialize a session, append numbered segments, finalize,
//! then poll the processing status.
//!
//! State after each step: `media_id` once initialized; `next_segment`/`offset` after every
//! accepted segment; `Finalized` after finalize; `Ready` once processed. On resume the flow
//! continues with the first segment not yet acknowledged; a segment whose acknowledgment was
//! lost is sent again under the same index (the platform replaces it).

use async_trait::async_trait;

use crate::publish::PublishError;

use super::poll::{self, PollPolicy, Processing};
use super::{MediaFile, Phase, UploadContext, UploadState, log_progress};

/// The platform side of a chunked upload.
#[async_trait]
pub trait ChunkedApi: Send + Sync {
    /// Opens an upload session; returns the media id.
    async fn init(&self, file: &MediaFile) -> Result<String, PublishError>;
    /// Sends segment `index` (0-based, consecutive).
    async fn append(&self, media_id: &str, index: u32, chunk: Vec<u8>) -> Result<(), PublishError>;
    /// Ends the upload; returns where processing stands.
    async fn finalize(&self, media_id: &str) -> Result<Processing, PublishError>;
    /// The processing status.
    async fn status(&self, media_id: &str) -> Result<Processing, PublishError>;
}

/// Runs (or resumes) a chunked upload of `file` in chunks of `chunk_size` bytes. Returns the
/// media id once the platform has processed it.
pub async fn upload(
    api: &dyn ChunkedApi,
    file: &MediaFile,
    state: UploadState,
    chunk_size: usize,
    policy: PollPolicy,
    ctx: &UploadContext<'_>,
) -> Result<(String, UploadState), PublishError> {
    let chunk_size = chunk_size.max(1);
    let mut state = state.for_file(file);
    let media_id = match (&state.media_id, state.phase) {
        (Some(id), phase) if phase != Phase::New => id.clone(),
        _ => {
            let id = api.init(file).await?;
            state = UploadState {
                phase: Phase::Transferring,
                media_id: Some(id.clone()),
                total_bytes: file.bytes,
                ..UploadState::default()
            };
            ctx.progress.save(&state).await?;
            id
        }
    };
    if state.phase == Phase::Transferring {
        while state.offset < file.bytes {
            let chunk = file.read_chunk(state.offset, chunk_size).await?;
            let len = chunk.len() as u64;
            api.append(&media_id, state.next_segment, chunk).await?;
            let before = state.offset;
            state.next_segment += 1;
            state.offset += len;
            log_progress(file, before, state.offset);
            ctx.progress.save(&state).await?;
        }
        let processing = api.finalize(&media_id).await?;
        state.phase = Phase::Finalized;
        ctx.progress.save(&state).await?;
        poll::until_ready(processing, policy, ctx.sleeper, || api.status(&media_id)).await?;
        state.phase = Phase::Ready;
        ctx.progress.save(&state).await?;
    } else if state.phase == Phase::Finalized {
        let processing = api.status(&media_id).await?;
        poll::until_ready(processing, policy, ctx.sleeper, || api.status(&media_id)).await?;
        state.phase = Phase::Ready;
        ctx.progress.save(&state).await?;
    }
    Ok((media_id, state))
}
