//! Pre-flight rules: decide, before a post is scheduled, whether each platform will take it.
//!
//! Platforms refuse bad posts late and vaguely (X answers an over-long post with a bare
//! "Forbidden"), so psn checks everything it can from the post alone, up front, and explains
//! each problem with a stable rule id (`x.length`, `pinterest.board_required`, …) and a message
//! a person can act on. This module must stay deterministic and free of I/O: no files, no
//! network, no clock, no async. Media are judged from their [`MediaSummary`], never opened.

pub mod fields;
pub mod length;
pub mod media;
pub mod split;

use psn_domain::{MediaSummary, Platform};

pub use length::{Length, measure};
pub use split::{SplitError, explicit_segments, split_thread};

use length::{BLUESKY_BYTE_LIMIT, count, default_limit, unit};

/// What to validate: one post's text and attachments for one platform.
#[derive(Debug, Clone, Copy)]
pub struct ValidationRequest<'a> {
    pub platform: Platform,
    pub text: &'a str,
    /// `--thread`: split over-long text into a thread where the platform has threads.
    pub thread: bool,
    /// Add " i/n" numbering to segments when the text is split.
    pub numbering: bool,
    pub media: &'a [MediaSummary],
    /// YouTube / Pinterest title.
    pub title: Option<&'a str>,
    /// Pinterest board.
    pub board: Option<&'a str>,
    /// Replaces the platform's default text limit (e.g. a Mastodon instance's limit).
    pub char_limit_override: Option<usize>,
}

impl<'a> ValidationRequest<'a> {
    /// A request for `text` alone: no thread splitting, numbering on (the CLI default), no
    /// media, title, board or limit override.
    pub fn new(platform: Platform, text: &'a str) -> ValidationRequest<'a> {
        ValidationRequest {
            platform,
            text,
            thread: false,
            numbering: true,
            media: &[],
            title: None,
            board: None,
            char_limit_override: None,
        }
    }
}

/// The verdict on one post for one platform.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidationReport {
    pub platform: Platform,
    /// True when there are no issues.
    pub valid: bool,
    /// Measured length of the whole text in the platform's unit.
    pub length: usize,
    /// The text limit that applied (default or override).
    pub limit: usize,
    /// "weighted characters", "graphemes", "characters" or "bytes".
    pub unit: &'static str,
    /// The text as it will be posted: one element if not split, else the thread segments.
    pub segments: Vec<String>,
    pub issues: Vec<RuleIssue>,
}

/// One broken rule: a stable id (`<platform>.<rule>`) and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleIssue {
    pub rule: String,
    pub message: String,
}

impl RuleIssue {
    /// An issue with id `<platform>.<rule>`.
    pub fn new(platform: Platform, rule: &str, message: String) -> RuleIssue {
        RuleIssue {
            rule: format!("{}.{rule}", platform.as_str()),
            message,
        }
    }
}

/// Where a length is being checked, which decides the message's prefix and hint.
#[derive(Debug, Clone)]
enum Context {
    Whole { thread: bool },
    Segment { index: usize, count: usize },
    SplitFailed(SplitError),
}

/// Run every rule for the request's platform.
pub fn validate(req: &ValidationRequest<'_>) -> ValidationReport {
    let p = req.platform;
    let limit = req.char_limit_override.unwrap_or_else(|| default_limit(p));
    let text = req.text.trim();
    let mut issues = Vec::new();

    let explicit = explicit_segments(text);
    // A text of nothing but `---` lines is as empty as no text at all.
    let empty = text.is_empty() || explicit.as_ref().is_some_and(Vec::is_empty);
    let segments = if empty {
        if req.media.is_empty() {
            issues.push(RuleIssue::new(
                p,
                "text_empty",
                format!(
                    "the {} post has no text and no media: write some text or attach media",
                    p.display_name()
                ),
            ));
        }
        vec![String::new()]
    } else if let Some(parts) = explicit {
        explicit_thread(req, limit, text, parts, &mut issues)
    } else {
        let over = length_issues(p, limit, text, &Context::Whole { thread: req.thread });
        if over.is_empty() {
            vec![text.to_string()]
        } else if p.has_threads() && req.thread {
            let measure = split_measure(p, limit);
            match split_thread(text, limit, req.numbering, &measure) {
                Ok(segments) => {
                    check_segments(p, limit, &segments, &mut issues);
                    segments
                }
                Err(e) => {
                    issues.extend(length_issues(p, limit, text, &Context::SplitFailed(e)));
                    vec![text.to_string()]
                }
            }
        } else {
            issues.extend(over);
            vec![text.to_string()]
        }
    };

    if p == Platform::X {
        let bad = length::x_invalid_characters(text);
        if !bad.is_empty() {
            let names: Vec<String> = bad
                .iter()
                .map(|c| format!("U+{:04X}", u32::from(*c)))
                .collect();
            issues.push(RuleIssue::new(
                p,
                "invalid_characters",
                format!(
                    "X refuses text containing {}; remove them",
                    names.join(", ")
                ),
            ));
        }
    }
    media::media_issues(p, req.media, &mut issues);
    fields::field_issues(req, &mut issues);

    ValidationReport {
        platform: p,
        valid: issues.is_empty(),
        length: count(p, text),
        limit,
        unit: unit(p),
        segments,
        issues,
    }
}

/// Text with `---` lines: each part is a segment of its own.
fn explicit_thread(
    req: &ValidationRequest<'_>,
    limit: usize,
    text: &str,
    parts: Vec<String>,
    issues: &mut Vec<RuleIssue>,
) -> Vec<String> {
    let p = req.platform;
    if !p.has_threads() {
        issues.push(RuleIssue::new(
            p,
            "thread_unsupported",
            format!(
                "the text has '---' lines, which mark thread segments, but {} has no threads: remove them to post one text",
                p.display_name()
            ),
        ));
        issues.extend(length_issues(
            p,
            limit,
            text,
            &Context::Whole { thread: req.thread },
        ));
        return vec![text.to_string()];
    }
    let n = parts.len();
    let segments: Vec<String> = if req.numbering && n > 1 {
        parts
            .into_iter()
            .enumerate()
            .map(|(i, s)| format!("{s} {}/{n}", i + 1))
            .collect()
    } else {
        parts
    };
    check_segments(p, limit, &segments, issues);
    segments
}

fn check_segments(p: Platform, limit: usize, segments: &[String], issues: &mut Vec<RuleIssue>) {
    let n = segments.len();
    for (i, s) in segments.iter().enumerate() {
        let ctx = Context::Segment {
            index: i + 1,
            count: n,
        };
        issues.extend(length_issues(p, limit, s, &ctx));
    }
}

/// The measure used to split a thread: the platform's own, and for Bluesky one that also
/// keeps each segment within the byte limit.
fn split_measure(p: Platform, limit: usize) -> impl Fn(&str) -> usize {
    move |s: &str| {
        if p == Platform::Bluesky {
            length::graphemes(s).max((s.len() * limit).div_ceil(BLUESKY_BYTE_LIMIT))
        } else {
            count(p, s)
        }
    }
}

/// The rule id of the platform's main text length.
fn text_rule(p: Platform) -> &'static str {
    match p {
        Platform::Youtube | Platform::Pinterest => "description_length",
        _ => "length",
    }
}

fn unit_detail(p: Platform) -> &'static str {
    match p {
        Platform::X => "; URLs count as 23, emoji and CJK characters as 2",
        Platform::Mastodon => "; URLs count as 23",
        Platform::Threads => "; emoji count as their UTF-8 bytes",
        Platform::Youtube => " (UTF-8)",
        _ => "",
    }
}

fn hint(p: Platform, ctx: &Context) -> String {
    match ctx {
        Context::Whole { thread } => {
            if p.has_threads() {
                "; add --thread to split it into a thread".to_string()
            } else if *thread {
                format!(
                    "; {} has no threads, so --thread cannot split it: shorten the text",
                    p.display_name()
                )
            } else {
                format!("; {} has no threads: shorten the text", p.display_name())
            }
        }
        Context::Segment { .. } => {
            "; shorten this segment or split it with another '---' line".to_string()
        }
        Context::SplitFailed(e) => format!("; it could not be split into a thread: {e}"),
    }
}

fn length_issues(p: Platform, limit: usize, text: &str, ctx: &Context) -> Vec<RuleIssue> {
    let prefix = match ctx {
        Context::Segment { index, count } => format!("segment {index} of {count}: "),
        _ => String::new(),
    };
    let what = match p {
        Platform::Youtube | Platform::Pinterest => "description is ",
        _ => "",
    };
    let mut out = Vec::new();
    let value = count(p, text);
    if value > limit {
        out.push(RuleIssue::new(
            p,
            text_rule(p),
            format!(
                "{prefix}{what}{value} of {limit} {}{}{}",
                unit(p),
                unit_detail(p),
                hint(p, ctx)
            ),
        ));
    }
    if p == Platform::Bluesky && text.len() > BLUESKY_BYTE_LIMIT {
        out.push(RuleIssue::new(
            p,
            "bytes",
            format!(
                "{prefix}{} of {BLUESKY_BYTE_LIMIT} UTF-8 bytes (emoji and many scripts take several bytes per character){}",
                text.len(),
                hint(p, ctx)
            ),
        ));
    }
    out
}
