//! Media rules: how many files of which kinds each platform takes in one post, and what each
//! file must be (size, duration, format and codecs, aspect ratio, frame rate, resolution — see
//! [`FileLimits`]), and alt-text lengths.
//!
//! Works only on [`MediaSummary`] values produced elsewhere; it must not open or probe files
//! (no I/O). Media attach to the first segment of a thread, so these rules apply once per post.

use psn_domain::{MediaKind, MediaSummary, Platform};

use super::RuleIssue;

/// Bluesky: bytes per image.
pub const BLUESKY_IMAGE_BYTES: u64 = 2_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    images: usize,
    gifs: usize,
    videos: usize,
}

impl Counts {
    fn of(media: &[MediaSummary]) -> Counts {
        let mut c = Counts::default();
        for m in media {
            match m.kind {
                MediaKind::Image => c.images += 1,
                MediaKind::Gif => c.gifs += 1,
                MediaKind::Video => c.videos += 1,
            }
        }
        c
    }

    fn total(self) -> usize {
        self.images + self.gifs + self.videos
    }
}

fn issue(platform: Platform, rule: &str, message: String) -> RuleIssue {
    RuleIssue::new(platform, rule, message)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Every media rule for `platform`.
pub(crate) fn media_issues(
    platform: Platform,
    media: &[MediaSummary],
    issues: &mut Vec<RuleIssue>,
) {
    let c = Counts::of(media);
    match platform {
        Platform::X => {
            let moving = c.videos + c.gifs;
            if moving > 0 && c.images > 0 {
                issues.push(issue(
                    platform,
                    "media_mixed",
                    format!(
                        "X cannot mix images with a video or GIF in one post (got {} and {})",
                        plural(c.images, "image", "images"),
                        plural(moving, "video/GIF", "videos/GIFs")
                    ),
                ));
            } else if moving > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("X takes one video or GIF per post; got {moving}"),
                ));
            } else if c.images > 4 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("X takes at most 4 images per post; got {}", c.images),
                ));
            }
            alt_issues(platform, media, 1000, issues);
        }
        Platform::Bluesky => {
            // Bluesky posts GIFs as video, so a GIF counts as a video here.
            let moving = c.videos + c.gifs;
            if moving > 0 && c.images > 0 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Bluesky takes up to 4 images or 1 video per post, not both (got {} and {})",
                        plural(c.images, "image", "images"),
                        plural(moving, "video/GIF", "videos/GIFs")
                    ),
                ));
            } else if moving > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("Bluesky takes one video per post; got {moving}"),
                ));
            } else if c.images > 4 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("Bluesky takes at most 4 images per post; got {}", c.images),
                ));
            }
            for (i, m) in media.iter().enumerate() {
                if m.kind == MediaKind::Image && m.bytes > BLUESKY_IMAGE_BYTES {
                    issues.push(issue(
                        platform,
                        "image_size",
                        format!(
                            "media {}: image is {} bytes; Bluesky takes at most {BLUESKY_IMAGE_BYTES} bytes per image",
                            i + 1,
                            m.bytes
                        ),
                    ));
                }
            }
            alt_issues(platform, media, 1000, issues);
        }
        Platform::Mastodon => {
            // Mastodon converts GIFs to video, and a video must be the only attachment.
            let moving = c.videos + c.gifs;
            if c.total() > 4 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Mastodon takes at most 4 attachments per post; got {}",
                        c.total()
                    ),
                ));
            } else if moving > 0 && c.total() > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Mastodon takes a video or GIF only on its own; got {} attachments",
                        c.total()
                    ),
                ));
            }
            alt_issues(platform, media, 1500, issues);
        }
        Platform::Threads => {
            if c.total() > 20 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Threads takes at most 20 media in a carousel; got {}",
                        c.total()
                    ),
                ));
            }
        }
        Platform::Linkedin => {
            if c.videos > 1 || (c.videos == 1 && c.total() > 1) {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "LinkedIn takes up to 20 images or exactly 1 video per post; got {} and {}",
                        plural(c.videos, "video", "videos"),
                        plural(c.images + c.gifs, "image", "images")
                    ),
                ));
            } else if c.images + c.gifs > 20 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "LinkedIn takes at most 20 images per post; got {}",
                        c.images + c.gifs
                    ),
                ));
            }
        }
        Platform::Instagram => {
            if media.is_empty() {
                issues.push(issue(
                    platform,
                    "media_required",
                    "Instagram posts need at least one image or video".to_string(),
                ));
            } else if c.total() > 10 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Instagram takes at most 10 media in a carousel; got {}",
                        c.total()
                    ),
                ));
            }
        }
        Platform::Tiktok => {
            if c.videos == 0 {
                let what = if media.is_empty() {
                    "no media is attached".to_string()
                } else {
                    format!(
                        "only {} attached",
                        plural(c.images + c.gifs, "image/GIF is", "images/GIFs are")
                    )
                };
                issues.push(issue(
                    platform,
                    "video_required",
                    format!(
                        "psn posts TikTok videos only (photo posts and GIFs are not supported) and {what}: attach one video"
                    ),
                ));
            } else if c.images + c.gifs > 0 {
                issues.push(issue(
                    platform,
                    "video_required",
                    format!(
                        "TikTok posts are one video; remove the {} (GIFs must be converted to video)",
                        plural(c.images + c.gifs, "image/GIF", "images/GIFs")
                    ),
                ));
            } else if c.videos > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("TikTok posts are exactly one video; got {}", c.videos),
                ));
            }
        }
        Platform::Youtube => {
            if c.videos == 0 {
                issues.push(issue(
                    platform,
                    "video_required",
                    "YouTube uploads need a video file".to_string(),
                ));
            } else if c.total() > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "YouTube takes exactly one video per upload; got {} media",
                        c.total()
                    ),
                ));
            }
        }
        Platform::Pinterest => {
            // Pinterest takes GIFs as images.
            let images = c.images + c.gifs;
            if media.is_empty() {
                issues.push(issue(
                    platform,
                    "media_required",
                    "Pinterest pins need an image or a video".to_string(),
                ));
            } else if images > 0 && c.videos > 0 {
                issues.push(issue(
                    platform,
                    "media_mixed",
                    format!(
                        "Pinterest cannot mix images and videos in one pin (got {} and {})",
                        plural(images, "image", "images"),
                        plural(c.videos, "video", "videos")
                    ),
                ));
            } else if images > 5 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!("Pinterest takes 1 to 5 images per pin; got {images}"),
                ));
            } else if c.videos > 1 {
                issues.push(issue(
                    platform,
                    "media_count",
                    format!(
                        "Pinterest takes exactly one video per pin; got {}",
                        c.videos
                    ),
                ));
            }
        }
        Platform::Facebook => {}
    }
    file_issues(platform, media, issues);
}

fn alt_issues(
    platform: Platform,
    media: &[MediaSummary],
    limit: usize,
    issues: &mut Vec<RuleIssue>,
) {
    for (i, m) in media.iter().enumerate() {
        if let Some(alt) = &m.alt {
            let n = alt.chars().count();
            if n > limit {
                issues.push(issue(
                    platform,
                    "alt_length",
                    format!(
                        "media {}: alt text is {n} of {limit} characters {} allows",
                        i + 1,
                        platform.display_name()
                    ),
                ));
            }
        }
    }
}

/// What one file must be for a platform (vendor documentation, November 2026; platforms.md).
/// `None` means the platform sets no limit psn knows of. Facts a summary lacks (no codec for a
/// WebM probed without ffprobe) are not judged.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub image_bytes: Option<u64>,
    pub gif_bytes: Option<u64>,
    pub video_bytes: Option<u64>,
    /// Shortest and longest video, seconds.
    pub video_secs: Option<(f64, f64)>,
    /// Image MIME types accepted (GIFs are judged by `gif_bytes` only).
    pub image_mimes: Option<&'static [&'static str]>,
    /// Video containers (MIME types), video codecs and audio codecs accepted.
    pub video_mimes: Option<&'static [&'static str]>,
    pub video_codecs: Option<&'static [&'static str]>,
    pub audio_codecs: Option<&'static [&'static str]>,
    /// Width / height, inclusive.
    pub image_aspect: Option<(f64, f64)>,
    pub video_aspect: Option<(f64, f64)>,
    /// Frames per second, inclusive.
    pub frame_rate: Option<(f64, f64)>,
    /// Smallest and largest side of a video, pixels.
    pub video_side: Option<(u32, u32)>,
}

const NO_LIMITS: FileLimits = FileLimits {
    image_bytes: None,
    gif_bytes: None,
    video_bytes: None,
    video_secs: None,
    image_mimes: None,
    video_mimes: None,
    video_codecs: None,
    audio_codecs: None,
    image_aspect: None,
    video_aspect: None,
    frame_rate: None,
    video_side: None,
};

const MB: u64 = 1024 * 1024;
const MP4_MOV: &[&str] = &["video/mp4", "video/quicktime"];
const H264: &[&str] = &["h264"];
const H264_HEVC: &[&str] = &["h264", "hevc"];
const AAC: &[&str] = &["aac"];

/// The per-file limits of `platform`.
pub fn file_limits(platform: Platform) -> FileLimits {
    match platform {
        Platform::X => FileLimits {
            image_bytes: Some(5 * MB),
            gif_bytes: Some(15 * MB),
            video_bytes: Some(512 * MB),
            video_secs: Some((0.5, 140.0)),
            image_mimes: Some(&["image/jpeg", "image/png", "image/webp"]),
            video_mimes: Some(MP4_MOV),
            video_codecs: Some(H264),
            audio_codecs: Some(AAC),
            video_aspect: Some((1.0 / 3.0, 3.0)),
            frame_rate: Some((0.0, 60.0)),
            ..NO_LIMITS
        },
        Platform::Bluesky => FileLimits {
            // Images: `image_size` above (2,000,000 bytes).
            video_bytes: Some(100_000_000),
            video_secs: Some((0.0, 180.0)),
            image_mimes: Some(&["image/jpeg", "image/png", "image/webp"]),
            video_mimes: Some(&["video/mp4"]),
            video_codecs: Some(H264),
            audio_codecs: Some(AAC),
            ..NO_LIMITS
        },
        Platform::Mastodon => FileLimits {
            // mastodon.social's defaults; an instance may set others.
            image_bytes: Some(16 * MB),
            gif_bytes: Some(16 * MB),
            video_bytes: Some(99 * MB),
            ..NO_LIMITS
        },
        Platform::Linkedin => FileLimits {
            image_bytes: Some(36 * MB),
            gif_bytes: Some(36 * MB),
            video_bytes: Some(500 * MB),
            video_secs: Some((3.0, 1800.0)),
            image_mimes: Some(&["image/jpeg", "image/png"]),
            video_mimes: Some(&["video/mp4"]),
            video_codecs: Some(H264),
            audio_codecs: Some(AAC),
            ..NO_LIMITS
        },
        Platform::Instagram => FileLimits {
            image_bytes: Some(8 * MB),
            gif_bytes: Some(0),
            video_bytes: Some(300 * MB),
            video_secs: Some((3.0, 900.0)),
            image_mimes: Some(&["image/jpeg"]),
            video_mimes: Some(MP4_MOV),
            video_codecs: Some(H264_HEVC),
            audio_codecs: Some(AAC),
            image_aspect: Some((0.8, 1.91)),
            frame_rate: Some((23.0, 60.0)),
            ..NO_LIMITS
        },
        Platform::Facebook => FileLimits {
            image_bytes: Some(10 * MB),
            gif_bytes: Some(10 * MB),
            video_bytes: Some(10 * 1024 * MB),
            video_secs: Some((1.0, 14_400.0)),
            ..NO_LIMITS
        },
        Platform::Threads => FileLimits {
            image_bytes: Some(8 * MB),
            gif_bytes: Some(0),
            video_bytes: Some(1024 * MB),
            video_secs: Some((0.0, 300.0)),
            image_mimes: Some(&["image/jpeg", "image/png"]),
            video_mimes: Some(MP4_MOV),
            video_codecs: Some(H264_HEVC),
            audio_codecs: Some(AAC),
            image_aspect: Some((0.1, 10.0)),
            video_aspect: Some((0.01, 10.0)),
            frame_rate: Some((23.0, 60.0)),
            ..NO_LIMITS
        },
        Platform::Tiktok => FileLimits {
            video_bytes: Some(4 * 1024 * MB),
            video_secs: Some((3.0, 600.0)),
            video_mimes: Some(&["video/mp4", "video/quicktime", "video/webm"]),
            video_codecs: Some(&["h264", "hevc", "vp8", "vp9"]),
            frame_rate: Some((23.0, 60.0)),
            video_side: Some((360, 4096)),
            ..NO_LIMITS
        },
        Platform::Youtube => FileLimits {
            video_bytes: Some(256 * 1024 * MB),
            video_secs: Some((0.0, 43_200.0)),
            ..NO_LIMITS
        },
        Platform::Pinterest => FileLimits {
            image_bytes: Some(20 * MB),
            gif_bytes: Some(20 * MB),
            video_bytes: Some(2 * 1024 * MB),
            video_secs: Some((4.0, 900.0)),
            image_mimes: Some(&["image/jpeg", "image/png", "image/webp"]),
            video_mimes: Some(&["video/mp4", "video/quicktime", "video/x-m4v"]),
            video_codecs: Some(H264_HEVC),
            video_aspect: Some((0.5, 1.91)),
            ..NO_LIMITS
        },
    }
}

fn format_mb(bytes: u64) -> String {
    if bytes >= MB {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// A readable name for a container MIME type.
fn container_name(mime: &str) -> &str {
    match mime {
        "video/mp4" => "MP4",
        "video/quicktime" => "MOV",
        "video/x-m4v" => "M4V",
        "video/webm" => "WebM",
        "video/x-matroska" => "Matroska",
        "video/x-msvideo" => "AVI",
        other => other,
    }
}

fn list(items: &[&str]) -> String {
    items.join(", ")
}

/// True when `platform` would refuse this video's container or codecs, which H.264/AAC in MP4
/// (what psn transcodes to with ffmpeg) would fix.
pub fn needs_transcode(platform: Platform, m: &MediaSummary) -> bool {
    if m.kind != MediaKind::Video {
        return false;
    }
    let l = file_limits(platform);
    let container_bad =
        matches!((l.video_mimes, m.mime.as_deref()), (Some(ok), Some(mime)) if !ok.contains(&mime));
    let video_bad = matches!((l.video_codecs, m.video_codec.as_deref()), (Some(ok), Some(c)) if !ok.contains(&c));
    let audio_bad = matches!((l.audio_codecs, m.audio_codec.as_deref()), (Some(ok), Some(c)) if !ok.contains(&c));
    container_bad || video_bad || audio_bad
}

const TRANSCODE_HINT: &str = "psn converts it to H.264/AAC MP4 when ffmpeg is installed (apt-get install ffmpeg), or convert it yourself: ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p -c:a aac -movflags +faststart OUT.mp4";

/// The per-file rules alone (size, duration, format, aspect ratio, frame rate, resolution),
/// for checking files before they are attached to a post.
pub fn check_files(platform: Platform, media: &[MediaSummary]) -> Vec<RuleIssue> {
    let mut issues = Vec::new();
    file_issues(platform, media, &mut issues);
    issues
}

/// Size, duration, format, aspect ratio, frame rate and resolution of each file.
fn file_issues(platform: Platform, media: &[MediaSummary], issues: &mut Vec<RuleIssue>) {
    let l = file_limits(platform);
    let name = platform.display_name();
    for (i, m) in media.iter().enumerate() {
        let n = i + 1;
        match m.kind {
            MediaKind::Image => {
                if let (Some(ok), Some(mime)) = (l.image_mimes, m.mime.as_deref())
                    && !ok.contains(&mime)
                {
                    issues.push(issue(
                        platform,
                        "image_format",
                        format!(
                            "media {n}: {name} takes {} images; this one is {mime}: convert it (for example to JPEG)",
                            list(ok)
                        ),
                    ));
                }
                if let Some(max) = l.image_bytes
                    && m.bytes > max
                {
                    issues.push(issue(
                        platform,
                        "image_size",
                        format!(
                            "media {n}: image is {}; {name} takes at most {} per image",
                            format_mb(m.bytes),
                            format_mb(max)
                        ),
                    ));
                }
                if let (Some((lo, hi)), Some(ratio)) = (l.image_aspect, m.aspect_ratio())
                    && !(lo - 1e-3..=hi + 1e-3).contains(&ratio)
                {
                    issues.push(issue(
                        platform,
                        "aspect_ratio",
                        format!(
                            "media {n}: image is {}x{} (aspect ratio {ratio:.2}); {name} takes {lo:.2} to {hi:.2} (width / height): crop it",
                            m.width.unwrap_or(0),
                            m.height.unwrap_or(0)
                        ),
                    ));
                }
            }
            MediaKind::Gif => {
                if let Some(max) = l.gif_bytes {
                    if max == 0 {
                        issues.push(issue(
                            platform,
                            "image_format",
                            format!("media {n}: {name} does not take GIFs; convert it to a video or a JPEG"),
                        ));
                    } else if m.bytes > max {
                        issues.push(issue(
                            platform,
                            "gif_size",
                            format!(
                                "media {n}: GIF is {}; {name} takes at most {}",
                                format_mb(m.bytes),
                                format_mb(max)
                            ),
                        ));
                    }
                }
            }
            MediaKind::Video => video_issues(platform, &l, n, m, issues),
        }
    }
}

fn video_issues(
    platform: Platform,
    l: &FileLimits,
    n: usize,
    m: &MediaSummary,
    issues: &mut Vec<RuleIssue>,
) {
    let name = platform.display_name();
    if needs_transcode(platform, m) {
        let what = format!(
            "{}{}{}",
            m.video_codec.as_deref().unwrap_or("video"),
            m.audio_codec
                .as_deref()
                .map(|a| format!("/{a}"))
                .unwrap_or_default(),
            m.mime
                .as_deref()
                .map(|c| format!(" in {}", container_name(c)))
                .unwrap_or_default()
        );
        let wants = format!(
            "{} video{} in {}",
            l.video_codecs.map(list).unwrap_or_else(|| "any".into()),
            l.audio_codecs
                .map(|a| format!(" with {} audio", list(a)))
                .unwrap_or_default(),
            l.video_mimes
                .map(|c| c
                    .iter()
                    .map(|m| container_name(m))
                    .collect::<Vec<_>>()
                    .join("/"))
                .unwrap_or_else(|| "any container".into())
        );
        issues.push(issue(
            platform,
            "video_format",
            format!("media {n}: {name} takes {wants}; this is {what}. {TRANSCODE_HINT}"),
        ));
    }
    if let Some(max) = l.video_bytes
        && m.bytes > max
    {
        issues.push(issue(
            platform,
            "video_size",
            format!(
                "media {n}: video is {}; {name} takes at most {}",
                format_mb(m.bytes),
                format_mb(max)
            ),
        ));
    }
    if let (Some((lo, hi)), Some(secs)) = (l.video_secs, m.duration_secs) {
        if secs > hi {
            issues.push(issue(
                platform,
                "video_duration",
                format!(
                    "media {n}: video is {secs:.1} s long; {name} takes at most {hi} s: trim it"
                ),
            ));
        } else if secs < lo {
            issues.push(issue(
                platform,
                "video_duration",
                format!("media {n}: video is {secs:.1} s long; {name} needs at least {lo} s"),
            ));
        }
    }
    if let (Some((lo, hi)), Some(ratio)) = (l.video_aspect, m.aspect_ratio())
        && !(lo - 1e-3..=hi + 1e-3).contains(&ratio)
    {
        issues.push(issue(
            platform,
            "aspect_ratio",
            format!(
                "media {n}: video is {}x{} (aspect ratio {ratio:.2}); {name} takes {lo:.2} to {hi:.2} (width / height)",
                m.width.unwrap_or(0),
                m.height.unwrap_or(0)
            ),
        ));
    }
    if let (Some((lo, hi)), Some(fps)) = (l.frame_rate, m.frame_rate)
        && !(lo - 0.05..=hi + 0.05).contains(&fps)
    {
        issues.push(issue(
            platform,
            "frame_rate",
            format!(
                "media {n}: video runs at {fps:.2} frames per second; {name} takes {lo} to {hi}"
            ),
        ));
    }
    if let (Some((lo, hi)), Some(w), Some(h)) = (l.video_side, m.width, m.height)
        && (w.min(h) < lo || w.max(h) > hi)
    {
        issues.push(issue(
            platform,
            "resolution",
            format!("media {n}: video is {w}x{h}; {name} takes sides of {lo} to {hi} pixels"),
        ));
    }
}
