//! What the rules need to know about a media file attached to a post. Probing files is the
//! media pipeline's job; this is only the summary it produces.

use serde::{Deserialize, Serialize};

/// The kind of a media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    #[default]
    Image,
    Gif,
    Video,
}

impl MediaKind {
    /// The kind implied by a file name's extension, if psn knows it.
    pub fn from_extension(ext: &str) -> Option<MediaKind> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "png" | "webp" | "heic" | "heif" => Some(MediaKind::Image),
            "gif" => Some(MediaKind::Gif),
            "mp4" | "mov" | "m4v" | "webm" | "mkv" | "avi" => Some(MediaKind::Video),
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
///
/// `kind`, `bytes`, `duration_secs` and `alt` are always present; the rest comes from probing
/// the file (`psn-media`) and is absent when a file could not be probed that far (a WebM
/// without ffprobe has no codecs, for example). Rules judge only what is known.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaSummary {
    pub kind: MediaKind,
    /// Size in bytes.
    pub bytes: u64,
    /// Duration in seconds, for videos whose duration is known.
    pub duration_secs: Option<f64>,
    /// Alt text, if given.
    pub alt: Option<String>,
    /// The content's MIME type from its bytes (`image/jpeg`, `video/mp4`, `video/quicktime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Pixel dimensions (for video, the display size of the video track).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Video codec, lowercase (`h264`, `hevc`, `vp9`, `av1`, `mpeg4`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    /// Audio codec, lowercase (`aac`, `opus`, `mp3`, …); absent for silent video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// Frames per second (average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
}

impl MediaSummary {
    /// A summary with only the kind and size known.
    pub fn new(kind: MediaKind, bytes: u64) -> MediaSummary {
        MediaSummary {
            kind,
            bytes,
            ..MediaSummary::default()
        }
    }

    /// Width divided by height, when both are known.
    pub fn aspect_ratio(&self) -> Option<f64> {
        match (self.width, self.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Some(f64::from(w) / f64::from(h)),
            _ => None,
        }
    }
}
