//! Media rules: how many files of which kinds each platform takes in one post, file sizes the
//! rules can judge from the summary, and alt-text lengths.
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
