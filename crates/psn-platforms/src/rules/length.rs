//! How long a text is, in each platform's own unit.
//!
//! Platforms do not agree on what "a character" is: X weighs code points and URLs
//! (twitter-text v3), Bluesky counts extended graphemes and UTF-8 bytes, Mastodon counts
//! characters with every URL as 23, Threads counts emoji by their UTF-8 length, YouTube counts
//! description bytes. This module is the single place that knows those units. It must stay
//! pure: no I/O, no configuration lookups; limits that vary (a Mastodon instance's limit) are
//! passed in by the caller.

use psn_domain::Platform;
use twitter_text::ParserBackend;
use twitter_text::extractor::{Extract, Extractor};
use unicode_segmentation::UnicodeSegmentation;

/// The measured length of a text against a platform's default limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Length {
    /// The length in `unit`.
    pub value: usize,
    /// The platform's default limit, in `unit`.
    pub limit: usize,
    /// What is counted: "weighted characters", "graphemes", "characters" or "bytes".
    pub unit: &'static str,
}

impl Length {
    /// Whether the text fits within the limit.
    pub fn fits(&self) -> bool {
        self.value <= self.limit
    }
}

/// X: weighted characters (twitter-text v3).
pub const X_LIMIT: usize = 280;
/// X and Mastodon: every URL counts as this many characters.
pub const URL_LENGTH: usize = 23;
/// Bluesky: graphemes per post.
pub const BLUESKY_GRAPHEME_LIMIT: usize = 300;
/// Bluesky: UTF-8 bytes per post.
pub const BLUESKY_BYTE_LIMIT: usize = 3000;
/// Mastodon's default; instances may configure another (see `char_limit_override`).
pub const MASTODON_DEFAULT_LIMIT: usize = 500;
pub const THREADS_LIMIT: usize = 500;
pub const LINKEDIN_LIMIT: usize = 3000;
pub const INSTAGRAM_LIMIT: usize = 2200;
pub const FACEBOOK_LIMIT: usize = 63206;
pub const TIKTOK_LIMIT: usize = 2200;
/// YouTube description, in UTF-8 bytes.
pub const YOUTUBE_DESCRIPTION_LIMIT: usize = 5000;
pub const PINTEREST_DESCRIPTION_LIMIT: usize = 800;

/// Measure `text` as `platform` counts it, against the platform's default limit.
pub fn measure(platform: Platform, text: &str) -> Length {
    Length {
        value: count(platform, text),
        limit: default_limit(platform),
        unit: unit(platform),
    }
}

/// The default limit of the platform's main text (post, caption or description).
pub fn default_limit(platform: Platform) -> usize {
    match platform {
        Platform::X => X_LIMIT,
        Platform::Bluesky => BLUESKY_GRAPHEME_LIMIT,
        Platform::Mastodon => MASTODON_DEFAULT_LIMIT,
        Platform::Threads => THREADS_LIMIT,
        Platform::Linkedin => LINKEDIN_LIMIT,
        Platform::Instagram => INSTAGRAM_LIMIT,
        Platform::Facebook => FACEBOOK_LIMIT,
        Platform::Tiktok => TIKTOK_LIMIT,
        Platform::Youtube => YOUTUBE_DESCRIPTION_LIMIT,
        Platform::Pinterest => PINTEREST_DESCRIPTION_LIMIT,
    }
}

/// The unit the platform's main text is counted in.
pub fn unit(platform: Platform) -> &'static str {
    match platform {
        Platform::X => "weighted characters",
        Platform::Bluesky => "graphemes",
        Platform::Youtube => "bytes",
        _ => "characters",
    }
}

/// The length of `text` in the platform's unit.
pub fn count(platform: Platform, text: &str) -> usize {
    match platform {
        Platform::X => x_weighted_length(text),
        Platform::Bluesky => graphemes(text),
        Platform::Mastodon => mastodon_length(text),
        Platform::Threads => threads_length(text),
        Platform::Youtube => text.len(),
        Platform::Linkedin
        | Platform::Instagram
        | Platform::Facebook
        | Platform::Tiktok
        | Platform::Pinterest => chars(text),
    }
}

/// Unicode scalar values.
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Extended grapheme clusters (what a reader sees as one character).
pub fn graphemes(text: &str) -> usize {
    text.graphemes(true).count()
}

/// The twitter-text v3 weighted length: 280 max, code points 0–4351 and some punctuation weigh
/// 1, others 2, an emoji sequence 2, every URL (with or without protocol) 23.
///
/// Uses the `External` parser backend: the default (Nom) backend miscounts URLs without a
/// protocol (`a example.com b` must weigh 27, Nom gives 15).
pub fn x_weighted_length(text: &str) -> usize {
    let results = twitter_text::parse_with_parser_backend(
        text,
        twitter_text_config::config_v3(),
        true,
        ParserBackend::External,
    );
    usize::try_from(results.weighted_length).unwrap_or(0)
}

/// Characters X refuses outright whatever the length (twitter-text's invalid characters).
pub fn x_invalid_characters(text: &str) -> Vec<char> {
    let mut found: Vec<char> = text
        .chars()
        .filter(|c| matches!(c, '\u{FFFE}' | '\u{FEFF}' | '\u{FFFF}'))
        .collect();
    found.dedup();
    found
}

/// Mastodon's countable length: characters, with every http(s) URL counted as 23 and a remote
/// mention `@user@domain` counted as `@user`.
///
/// Mastodon's server counts graphemes of this countable text and its composer counts code
/// points; psn counts code points, which is never lower, so it never lets through a post the
/// server would refuse.
pub fn mastodon_length(text: &str) -> usize {
    let mut extractor = Extractor::with_parser_backend(ParserBackend::External);
    extractor.set_extract_url_without_protocol(false);
    let urls = extractor.extract_urls_with_indices(text);
    let mut length = chars(text);
    for url in &urls {
        let url_chars = chars(url.get_value());
        length = length - url_chars.min(length) + URL_LENGTH;
    }
    length.saturating_sub(remote_mention_domain_chars(text))
}

/// The characters taken by the `@domain` part of `@user@domain` mentions.
fn remote_mention_domain_chars(text: &str) -> usize {
    let mut total = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let preceded_ok = i == 0 || !is_handle_byte(bytes[i - 1]);
        if bytes[i] == b'@' && preceded_ok {
            let user_start = i + 1;
            let mut j = user_start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > user_start && j < bytes.len() && bytes[j] == b'@' {
                let domain_start = j + 1;
                let mut k = domain_start;
                while k < bytes.len()
                    && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'.' || bytes[k] == b'-')
                {
                    k += 1;
                }
                // A domain has a dot that is not its last character.
                let domain = text[domain_start..k].trim_end_matches('.');
                if domain.contains('.') {
                    total += 1 + domain.len();
                    i = domain_start + domain.len();
                    continue;
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    total
}

fn is_handle_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'@'
}

/// Threads: characters, except that an emoji counts its UTF-8 byte length.
///
/// "Emoji" is approximated as any code point from U+1F000 up, or in U+2600–U+27BF
/// (miscellaneous symbols and dingbats).
pub fn threads_length(text: &str) -> usize {
    text.chars()
        .map(|c| if is_threads_emoji(c) { c.len_utf8() } else { 1 })
        .sum()
}

fn is_threads_emoji(c: char) -> bool {
    let cp = u32::from(c);
    cp >= 0x1F000 || (0x2600..=0x27BF).contains(&cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_counts_urls_emoji_and_cjk() {
        assert_eq!(x_weighted_length("hello"), 5);
        assert_eq!(x_weighted_length("a example.com b"), 27);
        assert_eq!(
            x_weighted_length("see https://example.com/a/very/long/path"),
            27
        );
        assert_eq!(x_weighted_length("🐱"), 2);
        assert_eq!(x_weighted_length("👨‍👩‍👧"), 2);
        assert_eq!(x_weighted_length("日本"), 4);
    }

    #[test]
    fn mastodon_counts_urls_as_23_and_remote_mentions_by_user() {
        assert_eq!(mastodon_length("hi"), 2);
        let url = "https://example.com/an/extremely/long/path/that/goes/on/and/on";
        assert_eq!(mastodon_length(url), 23);
        assert_eq!(mastodon_length(&format!("a {url} b")), 27);
        // Bare domains are not links on Mastodon.
        assert_eq!(mastodon_length("a example.com b"), 15);
        assert_eq!(
            mastodon_length("@alice@example.social hi"),
            "@alice hi".len()
        );
        assert_eq!(mastodon_length("mail me: bob@example.com"), 24);
    }

    #[test]
    fn threads_counts_emoji_by_bytes() {
        assert_eq!(threads_length("abc"), 3);
        assert_eq!(threads_length("🐱"), 4);
        assert_eq!(threads_length("☀"), 3);
        assert_eq!(threads_length("é"), 1);
    }

    #[test]
    fn measure_reports_unit_and_default_limit() {
        let l = measure(Platform::Youtube, "é");
        assert_eq!((l.value, l.limit, l.unit), (2, 5000, "bytes"));
        let l = measure(Platform::Bluesky, "é");
        assert_eq!((l.value, l.limit, l.unit), (1, 300, "graphemes"));
        assert!(l.fits());
    }
}
