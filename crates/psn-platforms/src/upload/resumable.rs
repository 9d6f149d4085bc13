//! Resumable uploads with `Content-Range` (the YouTube / TikTok / Google Cloud Storage
//! protocol): a session URL takes the file in byte ranges; `308 Resume Incomplete` with
//! `Range: bytes=0-N` says what the platform has; `200`/`201` ends the upload.
//!
//! After an interruption (a dropped connection, a 5xx, a crash of the worker) the flow asks
//! the session what it received — an empty `PUT` with `Content-Range: bytes */TOTAL` — and
//! continues at that offset: bytes the platform has are never sent again, and the session is
//! never opened twice.
//!
//! State: `upload_url` once the session is open, `offset` after every acknowledged range,
//! `media_id` and `Ready` when the platform answered the last range.

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};

use crate::publish::PublishError;
use crate::publish::http::{self, CallKind};

use super::{MediaFile, Phase, UploadContext, UploadState, log_progress};

/// How many interruptions in a row one call of [`upload`] recovers from before it gives up
/// (the engine retries later, from the saved state).
pub const MAX_INTERRUPTIONS: u32 = 3;

/// The platform side of a resumable upload.
#[async_trait]
pub trait ResumableApi: Send + Sync {
    /// Opens an upload session; returns its URL.
    async fn start(&self, file: &MediaFile) -> Result<String, PublishError>;
    /// Adds what the platform needs (authorization) to a request to the session URL.
    fn prepare(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
    }
    /// The media id from the body of the final response.
    fn finished(&self, body: &str) -> Result<String, PublishError>;
}

/// What the session said.
enum Answer {
    /// It has bytes `0..offset`.
    Incomplete(u64),
    /// The upload is complete; the final response body.
    Done(String),
    /// The session expired or is unknown: start a new one.
    Gone,
}

/// Runs (or resumes) a resumable upload of `file` in ranges of `chunk_size` bytes. Returns
/// the media id.
pub async fn upload(
    client: &reqwest::Client,
    api: &dyn ResumableApi,
    file: &MediaFile,
    state: UploadState,
    chunk_size: usize,
    ctx: &UploadContext<'_>,
) -> Result<(String, UploadState), PublishError> {
    let chunk_size = chunk_size.max(1);
    let mut state = state.for_file(file);
    if let (Phase::Ready, Some(id)) = (state.phase, &state.media_id) {
        return Ok((id.clone(), state));
    }
    // A session saved by an earlier run: ask what it has before sending anything.
    let mut must_query = state.upload_url.is_some();
    let mut restarted = false;
    let mut interruptions = 0;
    loop {
        let url = match state.upload_url.clone() {
            Some(url) => url,
            None => {
                let url = api.start(file).await?;
                state = UploadState {
                    phase: Phase::Transferring,
                    upload_url: Some(url.clone()),
                    total_bytes: file.bytes,
                    ..UploadState::default()
                };
                ctx.progress.save(&state).await?;
                url
            }
        };
        let answer = if must_query || state.offset >= file.bytes {
            query(client, api, &url, file.bytes).await
        } else {
            let chunk = file.read_chunk(state.offset, chunk_size).await?;
            put_range(client, api, &url, state.offset, chunk, file.bytes).await
        };
        match answer {
            Ok(Answer::Incomplete(offset)) => {
                must_query = false;
                interruptions = 0;
                if offset != state.offset {
                    log_progress(file, state.offset, offset);
                    state.offset = offset;
                    ctx.progress.save(&state).await?;
                }
            }
            Ok(Answer::Done(body)) => {
                let id = api.finished(&body)?;
                log_progress(file, state.offset, file.bytes);
                state.offset = file.bytes;
                state.media_id = Some(id.clone());
                state.phase = Phase::Ready;
                ctx.progress.save(&state).await?;
                return Ok((id, state));
            }
            Ok(Answer::Gone) if !restarted => {
                tracing::info!(file = %file.path.display(), "the upload session expired; starting a new one");
                restarted = true;
                must_query = false;
                state = UploadState::default();
            }
            Ok(Answer::Gone) => {
                return Err(PublishError::Transient {
                    message: "the platform dropped the upload session twice".into(),
                    retry_after: None,
                });
            }
            Err(Interrupted::Retry(e)) => {
                interruptions += 1;
                if interruptions > MAX_INTERRUPTIONS {
                    return Err(e);
                }
                tracing::info!(error = %e, "upload interrupted; asking the platform what it received");
                must_query = true;
            }
            Err(Interrupted::Stop(e)) => return Err(e),
        }
    }
}

enum Interrupted {
    /// The transfer broke (connection, 5xx): ask for the received range and go on.
    Retry(PublishError),
    /// Anything else (auth, refusal, rate limit): stop.
    Stop(PublishError),
}

async fn put_range(
    client: &reqwest::Client,
    api: &dyn ResumableApi,
    url: &str,
    offset: u64,
    chunk: Vec<u8>,
    total: u64,
) -> Result<Answer, Interrupted> {
    let last = offset + chunk.len() as u64 - 1;
    let request = api
        .prepare(client.put(url))
        .header(CONTENT_RANGE, format!("bytes {offset}-{last}/{total}"))
        .body(chunk);
    answer(request).await
}

/// `PUT` with no body and `Content-Range: bytes */TOTAL`: what does the session have?
async fn query(
    client: &reqwest::Client,
    api: &dyn ResumableApi,
    url: &str,
    total: u64,
) -> Result<Answer, Interrupted> {
    let request = api
        .prepare(client.put(url))
        .header(CONTENT_RANGE, format!("bytes */{total}"))
        .header(CONTENT_LENGTH, "0");
    answer(request).await
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Answer, Interrupted> {
    let response = request.send().await.map_err(|e| {
        let err = http::classify_transport(&e, CallKind::Reading, &[]);
        if e.is_builder() {
            Interrupted::Stop(err)
        } else {
            Interrupted::Retry(err)
        }
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    if status == StatusCode::PERMANENT_REDIRECT {
        return Ok(Answer::Incomplete(received(&headers)));
    }
    let body = response
        .text()
        .await
        .map_err(|e| Interrupted::Retry(http::classify_transport(&e, CallKind::Reading, &[])))?;
    if status.is_success() {
        return Ok(Answer::Done(body));
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Ok(Answer::Gone);
    }
    match http::classify_status(status, &headers, &body, &[]) {
        Err(e @ PublishError::Transient { .. }) => Err(Interrupted::Retry(e)),
        Err(e) => Err(Interrupted::Stop(e)),
        Ok(()) => Ok(Answer::Done(body)),
    }
}

/// The offset after the `Range: bytes=0-N` a 308 carries; 0 without one.
fn received(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(_, last)| last.trim().parse::<u64>().ok())
        .map_or(0, |last| last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn range_header_gives_the_next_offset() {
        let mut h = HeaderMap::new();
        assert_eq!(received(&h), 0);
        h.insert(RANGE, HeaderValue::from_static("bytes=0-1023"));
        assert_eq!(received(&h), 1024);
    }
}
