//! What the rules need to know about a media file attached to a post. Probing files is the
//! media pipeline's job; this is only the summary it produces.

use serde::{Deserialize, Serialize};

/// The kind of a media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Gif,
    Video,
}

impl MediaKind {
    /// The kind implied by a file name's extension, if psn knows it.
    pub fn from_extension(ext: &str) -> Option<MediaKind> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "png" | "webp" | "heic" => Some(MediaKind::Image),
            "gif" => Some(MediaKind::Gif),
            "mp4" | "mov" | "m4v" | "webm" => Some(MediaKind::Video),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Gif => "gif",
            MediaKind::Video => "video",
        }
    }
}

/// One attached media file, as the pre-flight rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaSummary {
    pub kind: MediaKind,
    /// Size in bytes.
    pub bytes: u64,
    /// Duration in seconds, for videos whose duration is known.
    pub duration_secs: Option<f64>,
    /// Alt text, if given.
    pub alt: Option<String>,
}
