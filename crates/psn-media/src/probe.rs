//! Probing: what a file is, from its bytes.
//!
//! Images: format from the signature, dimensions from the headers (`imagesize`). MP4/MOV:
//! a box walker that reads box headers and the `moov` box only (never the media data), checks
//! every length against the file, and takes the duration (`mvhd`), each track's kind (`hdlr`),
//! codec (`stsd`), display size (`tkhd`, rotation applied) and frame rate (`stts`). A file
//! whose boxes run past its end is truncated. WebM, Matroska and AVI go to `ffprobe` when it
//! is installed; without it psn knows only that they are video.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use psn_domain::{MediaKind, MediaSummary};
use serde::Serialize;

use crate::MediaError;

/// A container or image format psn recognizes from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Heic,
    Mp4,
    Mov,
    M4v,
    Webm,
    Matroska,
    Avi,
}

impl Format {
    pub fn kind(self) -> MediaKind {
        match self {
            Format::Jpeg | Format::Png | Format::Webp | Format::Heic => MediaKind::Image,
            Format::Gif => MediaKind::Gif,
            _ => MediaKind::Video,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Heic => "image/heic",
            Format::Mp4 => "video/mp4",
            Format::Mov => "video/quicktime",
            Format::M4v => "video/x-m4v",
            Format::Webm => "video/webm",
            Format::Matroska => "video/x-matroska",
            Format::Avi => "video/x-msvideo",
        }
    }

    /// The extension psn stores the file under.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Heic => "heic",
            Format::Mp4 => "mp4",
            Format::Mov => "mov",
            Format::M4v => "m4v",
            Format::Webm => "webm",
            Format::Matroska => "mkv",
            Format::Avi => "avi",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "a JPEG image",
            Format::Png => "a PNG image",
            Format::Gif => "a GIF",
            Format::Webp => "a WebP image",
            Format::Heic => "a HEIC image",
            Format::Mp4 => "an MP4 video",
            Format::Mov => "a QuickTime (MOV) video",
            Format::M4v => "an M4V video",
            Format::Webm => "a WebM video",
            Format::Matroska => "a Matroska video",
            Format::Avi => "an AVI video",
        }
    }

    /// Whether a file named `.ext` may hold this format. The ISO media family (MP4, MOV, M4V)
    /// shares one structure and is accepted under any of its extensions, as are WebM/Matroska.
    pub fn matches_extension(self, ext: &str) -> bool {
        let ext = ext.to_ascii_lowercase();
        let allowed: &[&str] = match self {
            Format::Jpeg => &["jpg", "jpeg"],
            Format::Png => &["png"],
            Format::Gif => &["gif"],
            Format::Webp => &["webp"],
            Format::Heic => &["heic", "heif"],
            Format::Mp4 | Format::Mov | Format::M4v => &["mp4", "mov", "m4v"],
            Format::Webm | Format::Matroska => &["webm", "mkv"],
            Format::Avi => &["avi"],
        };
        allowed.contains(&ext.as_str())
    }

    /// Recognizes the format from the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(Format::Jpeg);
        }
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(Format::Png);
        }
        if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            return Some(Format::Gif);
        }
        if head.len() >= 12 && &head[0..4] == b"RIFF" {
            return match &head[8..12] {
                b"WEBP" => Some(Format::Webp),
                b"AVI " => Some(Format::Avi),
                _ => None,
            };
        }
        if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            let window = &head[..head.len().min(64)];
            return Some(if window.windows(4).any(|w| w == b"webm") {
                Format::Webm
            } else {
                Format::Matroska
            });
        }
        if head.len() >= 12 && &head[4..8] == b"ftyp" {
            return match &head[8..12] {
                b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some(Format::Heic),
                b"qt  " => Some(Format::Mov),
                b"M4V " | b"M4VH" | b"M4VP" => Some(Format::M4v),
                _ => Some(Format::Mp4),
            };
        }
        // Old QuickTime files start with other top-level boxes.
        if head.len() >= 8 && matches!(&head[4..8], b"moov" | b"wide" | b"mdat" | b"free") {
            return Some(Format::Mov);
        }
        None
    }
}

/// Everything probing found out about a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub format: Format,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_secs: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub frame_rate: Option<f64>,
}

impl Probe {
    pub fn kind(&self) -> MediaKind {
        self.format.kind()
    }

    pub fn mime(&self) -> &'static str {
        self.format.mime()
    }

    /// The summary the platform rules judge.
    pub fn summary(&self, alt: Option<String>) -> MediaSummary {
        MediaSummary {
            kind: self.kind(),
            bytes: self.bytes,
            duration_secs: self.duration_secs,
            alt,
            mime: Some(self.mime().to_string()),
            width: self.width,
            height: self.height,
            video_codec: self.video_codec.clone(),
            audio_codec: self.audio_codec.clone(),
            frame_rate: self.frame_rate,
        }
    }

    /// Width:height reduced (`16:9`, `9:16`, `1:1`), when known.
    pub fn aspect_ratio(&self) -> Option<String> {
        let (w, h) = (self.width?, self.height?);
        if w == 0 || h == 0 {
            return None;
        }
        let g = gcd(w, h);
        Some(format!("{}:{}", w / g, h / g))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> MediaError {
    MediaError::Invalid(format!("media file {}: {what}", path.display()))
}

/// Probes a file in process (and through ffprobe for containers psn cannot read itself, when
/// `ffprobe` is given). Checks that the extension agrees with the content.
pub fn probe_file(path: &Path, ffprobe: Option<&Path>) -> Result<Probe, MediaError> {
    let meta = std::fs::metadata(path).map_err(|e| invalid(path, e))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a file"));
    }
    if meta.len() == 0 {
        return Err(invalid(path, "the file is empty (0 bytes)"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| invalid(path, e))?;
    let mut head = vec![0u8; 64.min(meta.len() as usize)];
    file.read_exact(&mut head).map_err(|e| invalid(path, e))?;
    let format = Format::sniff(&head).ok_or_else(|| {
        invalid(
            path,
            "not an image or video psn knows (it takes JPEG, PNG, WebP, HEIC, GIF, MP4, MOV, M4V, WebM; \
             MKV and AVI when ffmpeg is installed)",
        )
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !format.matches_extension(ext) {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
        return Err(invalid(
            path,
            format!(
                "the file is {} but its name ends in '.{ext}': rename it to {stem}.{}",
                format.name(),
                format.extension()
            ),
        ));
    }
    let bytes = meta.len();
    let mut probe = Probe {
        format,
        bytes,
        width: None,
        height: None,
        duration_secs: None,
        video_codec: None,
        audio_codec: None,
        frame_rate: None,
    };
    match format {
        Format::Jpeg | Format::Png | Format::Gif | Format::Webp | Format::Heic => {
            let data = std::fs::read(path).map_err(|e| invalid(path, e))?;
            check_image_complete(format, &data).map_err(|what| invalid(path, what))?;
            match imagesize::blob_size(&data) {
                Ok(size) => {
                    probe.width = Some(size.width as u32);
                    probe.height = Some(size.height as u32);
                }
                // HEIC is refused later (its metadata cannot be stripped) with a better hint.
                Err(_) if format == Format::Heic => {}
                Err(e) => {
                    return Err(invalid(path, format!("cannot read the image size: {e}")));
                }
            }
        }
        Format::Mp4 | Format::Mov | Format::M4v => {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| invalid(path, e))?;
            let movie = read_movie(&mut file, bytes).map_err(|what| invalid(path, what))?;
            probe.duration_secs = movie.duration_secs;
            probe.width = movie.width;
            probe.height = movie.height;
            probe.video_codec = movie.video_codec;
            probe.audio_codec = movie.audio_codec;
            probe.frame_rate = movie.frame_rate;
            if probe.video_codec.is_none() {
                return Err(invalid(
                    path,
                    "the movie has no video track (psn posts video files, not audio)",
                ));
            }
        }
        Format::Webm | Format::Matroska | Format::Avi => {
            if let Some(ffprobe) = ffprobe {
                crate::transcode::ffprobe_into(ffprobe, path, &mut probe)?;
            } else if format != Format::Webm {
                return Err(invalid(
                    path,
                    format!(
                        "psn reads {} only through ffprobe, which is not installed: install ffmpeg (apt-get install ffmpeg) or convert it to MP4",
                        format.name()
                    ),
                ));
            }
        }
    }
    Ok(probe)
}

/// A truncated image is refused before anything else looks at it.
fn check_image_complete(format: Format, data: &[u8]) -> Result<(), String> {
    match format {
        Format::Jpeg => {
            let end = data
                .iter()
                .rposition(|&b| b != 0)
                .map(|i| i + 1)
                .unwrap_or(0);
            if end < 4 || data[end - 2..end] != [0xFF, 0xD9] {
                return Err(
                    "the JPEG is truncated (no end-of-image marker): export or download it again"
                        .into(),
                );
            }
        }
        Format::Png => {
            let png = img_parts::png::Png::from_bytes(img_parts::Bytes::copy_from_slice(data))
                .map_err(|e| format!("the PNG is damaged or truncated ({e})"))?;
            if png.chunks().last().map(|c| c.kind()) != Some(*b"IEND") {
                return Err("the PNG is truncated (no IEND chunk): export it again".into());
            }
        }
        Format::Webp => {
            img_parts::webp::WebP::from_bytes(img_parts::Bytes::copy_from_slice(data))
                .map_err(|e| format!("the WebP is damaged or truncated ({e})"))?;
        }
        Format::Gif if data.last() != Some(&0x3B) => {
            return Err("the GIF is truncated (no trailer): export it again".into());
        }
        _ => {}
    }
    Ok(())
}

/// What the `moov` box says.
#[derive(Debug, Default)]
struct Movie {
    duration_secs: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    frame_rate: Option<f64>,
}

/// The largest `moov` psn reads into memory (sample tables of hours of video fit easily).
const MAX_MOOV: u64 = 256 * 1024 * 1024;

fn read_movie<R: Read + Seek>(r: &mut R, len: u64) -> Result<Movie, String> {
    let mut pos = 0u64;
    let mut moov = None;
    while pos < len {
        if len - pos < 8 {
            return Err(format!(
                "truncated: {} stray bytes at the end of the file",
                len - pos
            ));
        }
        r.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut h = [0u8; 16];
        r.read_exact(&mut h[..8]).map_err(|e| e.to_string())?;
        let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
        let kind: [u8; 4] = [h[4], h[5], h[6], h[7]];
        let (size, header) = match size32 {
            0 => (len - pos, 8),
            1 => {
                if len - pos < 16 {
                    return Err("truncated box header".into());
                }
                r.read_exact(&mut h[8..16]).map_err(|e| e.to_string())?;
                (u64::from_be_bytes(h[8..16].try_into().unwrap()), 16)
            }
            n => (n, 8),
        };
        if size < header {
            return Err(format!(
                "damaged: box '{}' has an impossible size",
                fourcc(&kind)
            ));
        }
        if pos + size > len {
            return Err(format!(
                "truncated: the '{}' box needs {} bytes but the file ends after {} (download or export it again)",
                fourcc(&kind),
                size,
                len - pos
            ));
        }
        if &kind == b"moov" {
            let body = size - header;
            if body > MAX_MOOV {
                return Err("the movie header is implausibly large".into());
            }
            let mut buf = vec![0u8; body as usize];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            moov = Some(buf);
        }
        pos += size;
    }
    let moov = moov.ok_or_else(|| {
        "incomplete: it has no movie header ('moov' box); the upload or export probably stopped early"
            .to_string()
    })?;
    parse_moov(&moov)
}

fn fourcc(k: &[u8; 4]) -> String {
    k.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Child boxes of a box body, bounds-checked.
/// A child box: its type and its body.
type Child<'a> = ([u8; 4], &'a [u8]);

fn children(mut body: &[u8]) -> Result<Vec<Child<'_>>, String> {
    let mut out = Vec::new();
    while body.len() >= 8 {
        let size32 = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = body[4..8].try_into().unwrap();
        let (size, header) = match size32 {
            0 => (body.len(), 8),
            1 => {
                if body.len() < 16 {
                    return Err("damaged box header".into());
                }
                (
                    usize::try_from(u64::from_be_bytes(body[8..16].try_into().unwrap()))
                        .map_err(|_| "damaged box size".to_string())?,
                    16,
                )
            }
            n => (n, 8),
        };
        if size < header || size > body.len() {
            return Err(format!(
                "damaged: box '{}' runs past its parent",
                fourcc(&kind)
            ));
        }
        out.push((kind, &body[header..size]));
        body = &body[size..];
    }
    Ok(out)
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    Ok(children(body)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "damaged: a header is too short".to_string())
}

fn be64(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "damaged: a header is too short".to_string())
}

/// (timescale, duration) of an `mvhd` or `mdhd` body.
fn time_header(b: &[u8]) -> Result<(u32, u64), String> {
    match b.first() {
        Some(1) => Ok((be32(b, 20)?, be64(b, 24)?)),
        Some(_) => Ok((be32(b, 12)?, be32(b, 16)? as u64)),
        None => Err("damaged: empty time header".into()),
    }
}

fn codec_name(entry: &[u8; 4]) -> String {
    match entry {
        b"avc1" | b"avc3" => "h264".into(),
        b"hvc1" | b"hev1" => "hevc".into(),
        b"vp08" => "vp8".into(),
        b"vp09" => "vp9".into(),
        b"av01" => "av1".into(),
        b"mp4v" => "mpeg4".into(),
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg".into(),
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores".into(),
        b"mp4a" => "aac".into(),
        b"Opus" => "opus".into(),
        b"fLaC" => "flac".into(),
        b"ac-3" => "ac3".into(),
        b"ec-3" => "eac3".into(),
        b".mp3" => "mp3".into(),
        b"lpcm" | b"sowt" | b"twos" | b"in24" | b"fl32" => "pcm".into(),
        other => fourcc(other).trim().to_ascii_lowercase(),
    }
}

fn parse_moov(moov: &[u8]) -> Result<Movie, String> {
    let mut movie = Movie::default();
    let boxes = children(moov)?;
    if let Some((_, mvhd)) = boxes.iter().find(|(k, _)| k == b"mvhd") {
        let (scale, duration) = time_header(mvhd)?;
        if scale > 0 && duration > 0 && duration != u64::MAX && duration != u32::MAX as u64 {
            movie.duration_secs = Some(duration as f64 / scale as f64);
        }
    }
    let mut longest_track = 0f64;
    for (_, trak) in boxes.iter().filter(|(k, _)| k == b"trak") {
        let Some(mdia) = child(trak, b"mdia")? else {
            continue;
        };
        let Some(hdlr) = child(mdia, b"hdlr")? else {
            continue;
        };
        let handler: [u8; 4] = hdlr
            .get(8..12)
            .ok_or("damaged hdlr box")?
            .try_into()
            .unwrap();
        let (scale, duration) = match child(mdia, b"mdhd")? {
            Some(mdhd) => time_header(mdhd)?,
            None => (0, 0),
        };
        if scale > 0 {
            longest_track = longest_track.max(duration as f64 / scale as f64);
        }
        let stbl = match child(mdia, b"minf")? {
            Some(minf) => child(minf, b"stbl")?,
            None => None,
        };
        let entry = match stbl.map(|s| child(s, b"stsd")).transpose()?.flatten() {
            Some(stsd) if stsd.len() >= 16 => Some(<[u8; 4]>::try_from(&stsd[12..16]).unwrap()),
            _ => None,
        };
        match &handler {
            b"vide" if movie.video_codec.is_none() => {
                movie.video_codec = entry.as_ref().map(codec_name);
                if let Some(tkhd) = child(trak, b"tkhd")? {
                    // Width and height are the last 8 bytes (16.16 fixed point); the matrix
                    // before them says whether the picture is shown rotated.
                    let n = tkhd.len();
                    if n >= 84 {
                        let w = be32(tkhd, n - 8)? >> 16;
                        let h = be32(tkhd, n - 4)? >> 16;
                        let a = be32(tkhd, n - 44)? as i32;
                        let b = be32(tkhd, n - 40)? as i32;
                        let rotated = a == 0 && b != 0;
                        if w > 0 && h > 0 {
                            let (w, h) = if rotated { (h, w) } else { (w, h) };
                            movie.width = Some(w);
                            movie.height = Some(h);
                        }
                    }
                }
                if let Some(stts) = stbl.map(|s| child(s, b"stts")).transpose()?.flatten() {
                    let count = be32(stts, 4)? as usize;
                    let (mut samples, mut ticks) = (0u64, 0u64);
                    for i in 0..count.min(1 << 20) {
                        let n = be32(stts, 8 + i * 8)? as u64;
                        samples += n;
                        ticks += n * be32(stts, 12 + i * 8)? as u64;
                    }
                    if scale > 0 && ticks > 0 {
                        let fps = samples as f64 * scale as f64 / ticks as f64;
                        movie.frame_rate = Some((fps * 100.0).round() / 100.0);
                    }
                }
            }
            b"soun" if movie.audio_codec.is_none() => {
                movie.audio_codec = entry.as_ref().map(codec_name);
            }
            _ => {}
        }
    }
    if movie.duration_secs.is_none() && longest_track > 0.0 {
        movie.duration_secs = Some(longest_track);
    }
    Ok(movie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognized_from_their_signatures() {
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(
            Format::sniff(b"\0\0\0\x18ftypqt  \0\0\0\0"),
            Some(Format::Mov)
        );
        assert_eq!(
            Format::sniff(b"\0\0\0\x18ftypisom\0\0\0\0"),
            Some(Format::Mp4)
        );
        assert_eq!(
            Format::sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some(Format::Heic)
        );
        assert_eq!(Format::sniff(b"hello world, not media"), None);
    }

    #[test]
    fn aspect_ratios_are_reduced() {
        let p = Probe {
            format: Format::Mp4,
            bytes: 1,
            width: Some(1080),
            height: Some(1920),
            duration_secs: None,
            video_codec: None,
            audio_codec: None,
            frame_rate: None,
        };
        assert_eq!(p.aspect_ratio().as_deref(), Some("9:16"));
    }
}
