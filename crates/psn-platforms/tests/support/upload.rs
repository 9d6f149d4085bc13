//! Shared pieces of the upload tests: a progress sink that records (and can stop the upload
//! as a crash would), a sleeper that records instead of sleeping, and media files on disk.

#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use psn_domain::MediaKind;
use psn_platforms::publish::PublishError;
use psn_platforms::upload::{MediaFile, Sleeper, UploadContext, UploadProgress, UploadState};

/// Records every saved state; after `stop_after` saves, refuses the next one (the worker
/// "died" right after that step: the state it saved is all the next run gets).
#[derive(Default)]
pub struct Recorder {
    pub saved: Mutex<Vec<UploadState>>,
    pub stop_after: Option<usize>,
}

impl Recorder {
    pub fn stopping_after(n: usize) -> Recorder {
        Recorder {
            saved: Mutex::new(Vec::new()),
            stop_after: Some(n),
        }
    }

    pub fn states(&self) -> Vec<UploadState> {
        self.saved.lock().unwrap().clone()
    }

    pub fn last(&self) -> UploadState {
        self.states().last().cloned().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl UploadProgress for Recorder {
    async fn save(&self, state: &UploadState) -> Result<(), PublishError> {
        let mut saved = self.saved.lock().unwrap();
        if self.stop_after.is_some_and(|n| saved.len() >= n) {
            return Err(PublishError::Transient {
                message: "stopped by the test".into(),
                retry_after: None,
            });
        }
        saved.push(state.clone());
        Ok(())
    }
}

/// Records the waits instead of sleeping.
#[derive(Default)]
pub struct Naps(pub Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Sleeper for Naps {
    async fn sleep(&self, duration: Duration) {
        self.0.lock().unwrap().push(duration);
    }
}

impl Naps {
    pub fn taken(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

pub fn ctx<'a>(progress: &'a Recorder, naps: &'a Naps) -> UploadContext<'a> {
    UploadContext {
        progress,
        sleeper: naps,
    }
}

/// Deterministic bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A file of `n` bytes named `name` in `dir`.
pub fn media_file(
    dir: &tempfile::TempDir,
    name: &str,
    n: usize,
    alt: Option<&str>,
) -> (MediaFile, Vec<u8>) {
    let data = bytes(n);
    let path = dir.path().join(name);
    std::fs::write(&path, &data).unwrap();
    let value = serde_json::json!([{ "path": path, "summary": { "alt": alt } }]);
    let mut files = MediaFile::from_post_media(&value).unwrap();
    let file = files.remove(0);
    assert_eq!(file.bytes, n as u64);
    assert!(matches!(
        file.kind,
        MediaKind::Image | MediaKind::Gif | MediaKind::Video
    ));
    (file, data)
}
