//! The optional tools: `ffprobe` for containers psn does not read itself, `ffmpeg` to
//! transcode a video to H.264/AAC MP4 when a platform needs it. Both are found on `PATH`;
//! without them psn says what to install instead of failing obscurely.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::MediaError;
use crate::probe::Probe;

/// How to get the tools.
pub const INSTALL_HINT: &str = "install ffmpeg (apt-get install ffmpeg; brew install ffmpeg)";

/// A program on `PATH`, if installed.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[derive(Debug, Deserialize)]
struct FfprobeOutput {
    #[serde(default)]
    streams: Vec<FfprobeStream>,
    format: Option<FfprobeFormat>,
}

#[derive(Debug, Deserialize)]
struct FfprobeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FfprobeFormat {
    duration: Option<String>,
}

fn ratio(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then(|| (n / d * 100.0).round() / 100.0)
}

/// Fills `probe` from `ffprobe -show_streams -show_format`.
pub fn ffprobe_into(ffprobe: &Path, path: &Path, probe: &mut Probe) -> Result<(), MediaError> {
    let out = std::process::Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .map_err(|e| MediaError::Tool(format!("cannot run {}: {e}", ffprobe.display())))?;
    if !out.status.success() {
        return Err(MediaError::Invalid(format!(
            "media file {}: ffprobe cannot read it ({}): the file is damaged or not a video",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let parsed: FfprobeOutput = serde_json::from_slice(&out.stdout)
        .map_err(|e| MediaError::Tool(format!("unexpected ffprobe output: {e}")))?;
    for s in &parsed.streams {
        match s.codec_type.as_deref() {
            Some("video") if probe.video_codec.is_none() => {
                probe.video_codec = s.codec_name.clone();
                probe.width = s.width;
                probe.height = s.height;
                probe.frame_rate = s.avg_frame_rate.as_deref().and_then(ratio);
            }
            Some("audio") if probe.audio_codec.is_none() => {
                probe.audio_codec = s.codec_name.clone();
            }
            _ => {}
        }
    }
    probe.duration_secs = parsed
        .format
        .and_then(|f| f.duration)
        .and_then(|d| d.parse().ok());
    if probe.video_codec.is_none() {
        return Err(MediaError::Invalid(format!(
            "media file {}: it has no video stream",
            path.display()
        )));
    }
    Ok(())
}

/// Transcodes `input` to H.264 video and AAC audio in MP4 (`output`), with the index at the
/// front so platforms can start processing while downloading.
pub fn transcode_h264(ffmpeg: &Path, input: &Path, output: &Path) -> Result<(), MediaError> {
    let out = std::process::Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(input)
        .args([
            "-map_metadata",
            "-1",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "medium",
            "-crf",
            "20",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ])
        .arg(output)
        .output()
        .map_err(|e| MediaError::Tool(format!("cannot run {}: {e}", ffmpeg.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.trim().chars().take(500).collect();
        return Err(MediaError::Tool(format!(
            "ffmpeg could not convert {} to H.264/AAC MP4: {err}",
            input.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_are_read_from_ratios() {
        assert_eq!(ratio("30000/1001"), Some(29.97));
        assert_eq!(ratio("25/1"), Some(25.0));
        assert_eq!(ratio("0/0"), None);
    }
}
