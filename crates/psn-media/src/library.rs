//! The library folder (`content/media/`, gitignored): one file per content hash,
//! `<sha256>.<ext>`, holding what psn uploads — the metadata-stripped image or the (possibly
//! transcoded) video. The user's original is read, never modified.
//!
//! Adding is two steps so that nothing is written for a file a platform would refuse:
//! [`Library::prepare`] probes and cleans in memory (or in a temporary file when transcoding),
//! the caller checks the platform rules on [`Prepared::summary`], then [`Library::store`]
//! writes the file atomically (temporary name, then rename).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use psn_domain::{MediaKind, MediaSummary};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::MediaError;
use crate::probe::{Format, Probe, probe_file};
use crate::strip::strip_metadata;
use crate::transcode::transcode_h264;

/// The library folder.
#[derive(Debug, Clone)]
pub struct Library {
    dir: PathBuf,
}

#[derive(Debug)]
enum Content {
    /// Cleaned image bytes.
    Bytes(Vec<u8>),
    /// A file to copy as is (the user's video, or a transcoded temporary file).
    File(PathBuf),
}

/// A file probed and cleaned, not yet stored.
#[derive(Debug)]
pub struct Prepared {
    /// The user's file.
    pub source: PathBuf,
    /// Its file name, for listings.
    pub original_name: String,
    /// What will be stored.
    pub probe: Probe,
    /// Metadata removed from the image (`exif`, `xmp`, `iptc`, `c2pa`, …).
    pub removed: Vec<String>,
    /// Converted to H.264/AAC MP4 by ffmpeg.
    pub transcoded: bool,
    /// SHA-256 of what will be stored, lowercase hex.
    pub sha256: String,
    content: Content,
    _temp: Option<tempfile::TempDir>,
}

impl Prepared {
    /// The summary the platform rules judge.
    pub fn summary(&self, alt: Option<String>) -> MediaSummary {
        self.probe.summary(alt)
    }

    /// A copy converted to H.264/AAC MP4 with `ffmpeg`, in a temporary folder until stored.
    pub fn transcode(self, ffmpeg: &Path) -> Result<Prepared, MediaError> {
        let Content::File(input) = &self.content else {
            return Err(MediaError::Tool("only videos are transcoded".into()));
        };
        let temp = tempfile::tempdir().map_err(|e| MediaError::io("temporary folder", e))?;
        let output = temp.path().join("transcoded.mp4");
        transcode_h264(ffmpeg, input, &output)?;
        let probe = probe_file(&output, None)?;
        let sha256 = hash_file(&output)?;
        Ok(Prepared {
            probe,
            sha256,
            transcoded: true,
            content: Content::File(output),
            _temp: Some(temp),
            ..self
        })
    }
}

/// A file in the library.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMedia {
    pub sha256: String,
    /// Absolute path under the library folder.
    pub path: PathBuf,
    pub original_name: String,
    pub probe: Probe,
    pub removed: Vec<String>,
    pub transcoded: bool,
    /// False when the same content was already in the library.
    pub new: bool,
}

impl StoredMedia {
    pub fn summary(&self, alt: Option<String>) -> MediaSummary {
        self.probe.summary(alt)
    }
}

fn hash_file(path: &Path) -> Result<String, MediaError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| MediaError::io(format!("cannot read {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| MediaError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for a library file name: 64 lowercase hex digits, a dot, a known extension.
pub fn is_library_name(name: &str) -> bool {
    let Some((hash, ext)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && MediaKind::from_extension(ext).is_some()
}

impl Library {
    pub fn new(dir: impl Into<PathBuf>) -> Library {
        Library { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Probes `path`, strips an image's metadata in memory and hashes the result. Writes
    /// nothing.
    pub fn prepare(path: &Path, ffprobe: Option<&Path>) -> Result<Prepared, MediaError> {
        let mut probe = probe_file(path, ffprobe)?;
        let source = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let original_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (content, removed, sha256) = if probe.format.kind() == MediaKind::Video {
            let sha = hash_file(&source)?;
            (Content::File(source.clone()), Vec::new(), sha)
        } else {
            let data = std::fs::read(&source)
                .map_err(|e| MediaError::io(format!("cannot read {}", source.display()), e))?;
            let stripped = strip_metadata(probe.format, &data).map_err(|e| match e {
                MediaError::Invalid(m) => {
                    MediaError::Invalid(format!("media file {}: {m}", path.display()))
                }
                other => other,
            })?;
            probe.bytes = stripped.bytes.len() as u64;
            let sha = hex(&Sha256::digest(&stripped.bytes));
            (Content::Bytes(stripped.bytes), stripped.removed, sha)
        };
        Ok(Prepared {
            source,
            original_name,
            probe,
            removed,
            transcoded: false,
            sha256,
            content,
            _temp: None,
        })
    }

    /// Where content with this hash and format lives.
    pub fn path_for(&self, sha256: &str, format: Format) -> PathBuf {
        self.dir.join(format!("{sha256}.{}", format.extension()))
    }

    /// Writes a prepared file into the library (nothing happens when the same content is
    /// already there).
    pub fn store(&self, prepared: &Prepared) -> Result<StoredMedia, MediaError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| MediaError::io(format!("cannot create {}", self.dir.display()), e))?;
        let dir = self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone());
        let path = dir.join(format!(
            "{}.{}",
            prepared.sha256,
            prepared.probe.format.extension()
        ));
        let new = !path.is_file();
        if new {
            let mut temp = tempfile::NamedTempFile::new_in(&dir)
                .map_err(|e| MediaError::io(format!("cannot write in {}", dir.display()), e))?;
            let write_err = |e| MediaError::io(format!("cannot write {}", path.display()), e);
            match &prepared.content {
                Content::Bytes(b) => temp.write_all(b).map_err(write_err)?,
                Content::File(src) => {
                    let mut f = std::fs::File::open(src)
                        .map_err(|e| MediaError::io(format!("cannot read {}", src.display()), e))?;
                    std::io::copy(&mut f, temp.as_file_mut()).map_err(write_err)?;
                }
            }
            temp.as_file().sync_all().map_err(write_err)?;
            temp.persist(&path)
                .map_err(|e| MediaError::io(format!("cannot write {}", path.display()), e.error))?;
        }
        Ok(StoredMedia {
            sha256: prepared.sha256.clone(),
            path,
            original_name: prepared.original_name.clone(),
            probe: prepared.probe.clone(),
            removed: prepared.removed.clone(),
            transcoded: prepared.transcoded,
            new,
        })
    }

    /// The library files on disk, by name.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_library_name)
            })
            .collect();
        out.sort();
        out
    }
}

/// Deletes a library file; a file already gone is not an error.
pub fn remove_file(path: &Path) -> Result<bool, MediaError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(MediaError::io(
            format!("cannot delete {}", path.display()),
            e,
        )),
    }
}
