//! The media library: what psn knows about a media file and what it does to it before a
//! platform sees it.
//!
//! - [`probe`]: the format from the bytes (never the extension alone), image dimensions from
//!   the headers, MP4/MOV duration, codecs, resolution and frame rate from the `moov` box, other
//!   containers through `ffprobe` when it is installed.
//! - [`strip`]: EXIF (GPS), XMP, IPTC and C2PA/JUMBF provenance removed from JPEG, PNG and WebP
//!   without re-encoding: the pixels stay byte for byte the same.
//! - [`transcode`]: H.264/AAC MP4 through `ffmpeg` when a platform needs it.
//! - [`library`]: files stored under `content/media/` by the SHA-256 of what is stored; the
//!   original is never modified.
//! - [`public`]: public URLs for platforms that fetch media themselves (an S3-compatible bucket
//!   with presigned GET links, or a public base URL served by `psn up`).
//!
//! No database here: the store records which post uses which file; this crate only reads and
//! writes files and talks to the bucket.

pub mod library;
pub mod probe;
pub mod public;
pub mod strip;
pub mod testing;
pub mod transcode;

pub use library::{Library, Prepared, StoredMedia};
pub use probe::{Format, Probe};
pub use public::PublicMedia;

/// What went wrong with a media file or tool.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file itself is unusable (empty, truncated, wrong extension, unknown format): the
    /// caller's input, exit code 2.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// ffmpeg/ffprobe failed or is missing.
    #[error("{0}")]
    Tool(String),
    /// The public URL could not be made (bucket unreachable, refused upload, bad configuration).
    #[error("{0}")]
    Public(String),
}

impl MediaError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> MediaError {
        MediaError::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error is about the caller's file or configuration (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, MediaError::Invalid(_))
    }
}
