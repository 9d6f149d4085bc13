//! Media upload flows shared by every connector.
//!
//! Platforms take media in one of four shapes, each a small resumable state machine here:
//!
//! - [`single`]: one request carries the whole file (X images, Mastodon);
//! - [`chunked`]: initialize / append numbered segments / finalize (X video and GIFs);
//! - [`resumable`]: a session URL that takes byte ranges (`Content-Range`), whose received
//!   range can be asked for after an interruption (YouTube, TikTok);
//! - [`multipart`]: pre-signed part URLs, each answering an `ETag`, completed with the list
//!   of ETags (LinkedIn video).
//!
//! and [`poll`] waits for the platform's processing at the interval it suggests.
//!
//! Every flow starts from an [`UploadState`] (empty for a new upload) and hands the state to
//! [`UploadProgress::save`] after every finished step (a session opened, a chunk accepted, the
//! upload finalized). The engine persists it in the delivery's progress, so a worker that
//! crashes mid-upload resumes the same upload session at the last finished step instead of
//! starting over.

pub mod chunked;
pub mod form;
pub mod multipart;
pub mod poll;
pub mod resumable;
pub mod single;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use psn_domain::MediaKind;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::publish::PublishError;

/// Environment variable overriding connectors' upload chunk size (bytes), for tests.
pub const CHUNK_BYTES_ENV: &str = "PSN_UPLOAD_CHUNK_BYTES";

/// The chunk size from `PSN_UPLOAD_CHUNK_BYTES` when set to a positive number.
pub fn chunk_bytes_from_env() -> Option<usize> {
    std::env::var(CHUNK_BYTES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// One media file to upload, as a post carries it (`posts.media`).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFile {
    pub path: PathBuf,
    pub kind: MediaKind,
    /// The MIME type: the media pipeline's when it recorded one, else from the extension.
    pub mime: String,
    /// Size in bytes (read from the file when the post does not say).
    pub bytes: u64,
    pub alt: Option<String>,
}

/// Why a post's media list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attached media #{index}: {reason}")]
pub struct MediaListError {
    /// 1-based.
    pub index: usize,
    pub reason: String,
}

/// The MIME type implied by a file name's extension.
pub fn mime_for_path(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "gif" => "image/gif",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => return None,
    })
}

impl MediaFile {
    /// Reads a post's media list: an array of `{"path", "mime"?, "summary": {"kind", "bytes",
    /// "alt"}}`. Fields it does not know are ignored. `bytes` of 0 or absent is read from the
    /// file system.
    pub fn from_post_media(media: &serde_json::Value) -> Result<Vec<MediaFile>, MediaListError> {
        let items = match media {
            serde_json::Value::Null => return Ok(Vec::new()),
            serde_json::Value::Array(items) => items,
            _ => {
                return Err(MediaListError {
                    index: 1,
                    reason: "the post's media is not a list".into(),
                });
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Self::from_item(item).map_err(|reason| MediaListError {
                    index: i + 1,
                    reason,
                })
            })
            .collect()
    }

    fn from_item(item: &serde_json::Value) -> Result<MediaFile, String> {
        let path = item
            .get("path")
            .and_then(|p| p.as_str())
            .filter(|p| !p.trim().is_empty())
            .ok_or("it has no file path")?;
        let path = PathBuf::from(path);
        let summary = item.get("summary");
        let field = |name: &str| item.get(name).or_else(|| summary.and_then(|s| s.get(name)));
        let kind = match field("kind").and_then(|k| k.as_str()) {
            Some(k) => serde_json::from_value::<MediaKind>(serde_json::Value::String(k.into()))
                .map_err(|_| format!("unknown media kind {k:?}"))?,
            None => path
                .extension()
                .and_then(|e| e.to_str())
                .and_then(MediaKind::from_extension)
                .ok_or_else(|| format!("cannot tell the kind of {}", path.display()))?,
        };
        let mime = field("mime")
            .and_then(|m| m.as_str())
            .filter(|m| !m.trim().is_empty())
            .map(str::to_owned)
            .or_else(|| mime_for_path(&path).map(str::to_owned))
            .ok_or_else(|| format!("cannot tell the MIME type of {}", path.display()))?;
        let bytes = field("bytes").and_then(|b| b.as_u64()).unwrap_or(0);
        let bytes = if bytes > 0 {
            bytes
        } else {
            std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .len()
        };
        let alt = field("alt")
            .and_then(|a| a.as_str())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        Ok(MediaFile {
            path,
            kind,
            mime,
            bytes,
            alt,
        })
    }

    /// The file name, for multipart bodies.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("media")
            .to_owned()
    }

    /// Reads `len` bytes at `offset` (fewer at the end of the file). A file that cannot be
    /// read, or that is shorter than the post says, is a permanent failure.
    pub async fn read_chunk(&self, offset: u64, len: usize) -> Result<Vec<u8>, PublishError> {
        let unreadable = |e: std::io::Error| PublishError::Permanent {
            message: format!("cannot read the media file {}: {e}", self.path.display()),
        };
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(unreadable)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(unreadable)?;
        let want = (self.bytes.saturating_sub(offset)).min(len as u64) as usize;
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf)
            .await
            .map_err(|e| PublishError::Permanent {
                message: format!(
                    "the media file {} changed: expected {} bytes ({e})",
                    self.path.display(),
                    self.bytes
                ),
            })?;
        Ok(buf)
    }

    /// The whole file.
    pub async fn read_all(&self) -> Result<Vec<u8>, PublishError> {
        self.read_chunk(0, self.bytes as usize).await
    }
}

/// How far an upload got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing sent yet.
    #[default]
    New,
    /// A session exists; bytes are being sent.
    Transferring,
    /// Every byte was sent and the platform acknowledged the end of the upload; it may still
    /// be processing.
    Finalized,
    /// Processed and usable in a post.
    Ready,
}

/// The saved state of one upload, serializable into the delivery's progress. Each flow uses
/// the fields it needs; a field it does not use stays empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadState {
    pub phase: Phase,
    /// The platform's id of the media (or of the upload session that becomes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// Resumable uploads: the session URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// Multipart uploads: the platform's upload id and the part plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<multipart::PartPlan>,
    /// Multipart uploads: the ETag of every finished part, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub etags: Vec<String>,
    /// Bytes the platform has.
    pub offset: u64,
    /// Chunked uploads: the next segment index to send.
    pub next_segment: u32,
    /// The size of the file this state belongs to: a different size starts over.
    pub total_bytes: u64,
    /// Whether the alt text was attached (platforms that set it in a separate call).
    pub alt_done: bool,
}

impl UploadState {
    /// `self` if it belongs to `file`, else a fresh state (the file changed since).
    pub fn for_file(self, file: &MediaFile) -> UploadState {
        if self.phase == Phase::New || self.total_bytes == file.bytes {
            UploadState {
                total_bytes: file.bytes,
                ..self
            }
        } else {
            UploadState {
                total_bytes: file.bytes,
                ..UploadState::default()
            }
        }
    }
}

/// A finished upload: what a post attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub media_id: String,
}

/// Where a flow hands its state after every finished step. The engine persists it; an error
/// (for example, the worker lost its claim) stops the upload.
#[async_trait]
pub trait UploadProgress: Send + Sync {
    async fn save(&self, state: &UploadState) -> Result<(), PublishError>;
}

/// Keeps nothing: for callers that do not resume.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

#[async_trait]
impl UploadProgress for NoProgress {
    async fn save(&self, _state: &UploadState) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Waits between processing-status polls; tests inject one that records instead.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: Duration);
}

/// Sleeps on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// What an upload call gets besides the file: where to save progress and how to wait.
#[derive(Clone, Copy)]
pub struct UploadContext<'a> {
    pub progress: &'a dyn UploadProgress,
    pub sleeper: &'a dyn Sleeper,
}

impl std::fmt::Debug for UploadContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadContext").finish_non_exhaustive()
    }
}

impl UploadContext<'static> {
    /// No persistence, real sleeps.
    pub fn detached() -> UploadContext<'static> {
        UploadContext {
            progress: &NoProgress,
            sleeper: &TokioSleeper,
        }
    }
}

/// Logs upload progress at most every 10 % (the worker runs headless).
pub(crate) fn log_progress(file: &MediaFile, before: u64, after: u64) {
    if file.bytes == 0 {
        return;
    }
    let step = |b: u64| b.saturating_mul(10) / file.bytes;
    if step(after) != step(before) || after == file.bytes {
        tracing::info!(
            file = %file.path.display(),
            sent = after,
            total = file.bytes,
            percent = after.saturating_mul(100) / file.bytes,
            "uploading media"
        );
    }
}
