//! Rules on the parts of a post other than its length and media: titles (YouTube, Pinterest),
//! boards (Pinterest), hashtag and mention counts (Instagram).
//!
//! Pure checks on the request's strings; no I/O, and no lookups (whether a board exists is the
//! connector's business, not a pre-flight rule).

use psn_domain::Platform;

use super::{RuleIssue, ValidationRequest};

pub const YOUTUBE_TITLE_LIMIT: usize = 100;
pub const PINTEREST_TITLE_LIMIT: usize = 100;
pub const INSTAGRAM_HASHTAG_LIMIT: usize = 30;
pub const INSTAGRAM_MENTION_LIMIT: usize = 20;

pub(crate) fn field_issues(req: &ValidationRequest<'_>, issues: &mut Vec<RuleIssue>) {
    let p = req.platform;
    match p {
        Platform::Youtube => youtube_title_issues(req, issues),
        Platform::Pinterest => {
            let board = req.board.map(str::trim).unwrap_or("");
            if board.is_empty() {
                issues.push(RuleIssue::new(
                    p,
                    "board_required",
                    "Pinterest pins must go on a board: choose one with --board".to_string(),
                ));
            }
            if let Some(title) = req.title {
                let n = title.trim().chars().count();
                if n > PINTEREST_TITLE_LIMIT {
                    issues.push(RuleIssue::new(
                        p,
                        "title_length",
                        format!("title is {n} of {PINTEREST_TITLE_LIMIT} characters"),
                    ));
                }
            }
        }
        Platform::Instagram => {
            let tags = count_hashtags(req.text);
            if tags > INSTAGRAM_HASHTAG_LIMIT {
                issues.push(RuleIssue::new(
                    p,
                    "hashtags",
                    format!("caption has {tags} hashtags; Instagram allows at most {INSTAGRAM_HASHTAG_LIMIT}"),
                ));
            }
            let mentions = count_mentions(req.text);
            if mentions > INSTAGRAM_MENTION_LIMIT {
                issues.push(RuleIssue::new(
                    p,
                    "mentions",
                    format!(
                        "caption has {mentions} @mentions; Instagram allows at most {INSTAGRAM_MENTION_LIMIT}"
                    ),
                ));
            }
        }
        _ => {}
    }
}

/// The title a YouTube upload will get: `--title` if given, else the first non-empty line of
/// the text.
pub fn youtube_title<'a>(title: Option<&'a str>, text: &'a str) -> Option<&'a str> {
    title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()))
}

fn youtube_title_issues(req: &ValidationRequest<'_>, issues: &mut Vec<RuleIssue>) {
    let p = req.platform;
    let from_text = req.title.map(str::trim).is_none_or(str::is_empty);
    let Some(title) = youtube_title(req.title, req.text) else {
        issues.push(RuleIssue::new(
            p,
            "title_required",
            "YouTube videos need a title: pass --title or put it on the first line of the text"
                .to_string(),
        ));
        return;
    };
    let source = if from_text {
        " (taken from the first line of the text; pass --title to set it)"
    } else {
        ""
    };
    let n = title.chars().count();
    if n > YOUTUBE_TITLE_LIMIT {
        issues.push(RuleIssue::new(
            p,
            "title_length",
            format!("title is {n} of {YOUTUBE_TITLE_LIMIT} characters{source}"),
        ));
    }
    if title.contains(['<', '>']) {
        issues.push(RuleIssue::new(
            p,
            "title_characters",
            format!("YouTube titles cannot contain '<' or '>'{source}"),
        ));
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `#tag` occurrences: a `#` at the start or after a non-word character, followed by a word
/// character.
pub fn count_hashtags(text: &str) -> usize {
    count_sigils(text, '#', is_word_char)
}

/// `@name` occurrences: an `@` at the start or after a non-word character (so not an email
/// address), followed by a name character.
pub fn count_mentions(text: &str) -> usize {
    count_sigils(text, '@', |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '.'
    })
}

fn count_sigils(text: &str, sigil: char, name_char: fn(char) -> bool) -> usize {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len())
        .filter(|&i| {
            chars[i] == sigil
                && (i == 0 || !(is_word_char(chars[i - 1]) || chars[i - 1] == sigil))
                && chars.get(i + 1).is_some_and(|&c| name_char(c) && c != '.')
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hashtags_and_mentions() {
        assert_eq!(count_hashtags("#a #b c#d # e ##f #_g"), 3);
        assert_eq!(count_mentions("@a hi @b.c mail x@y.z @ @"), 2);
    }

    #[test]
    fn youtube_title_falls_back_to_first_line() {
        assert_eq!(youtube_title(None, "\n  My video \nmore"), Some("My video"));
        assert_eq!(youtube_title(Some("  "), "line"), Some("line"));
        assert_eq!(youtube_title(Some("T"), "line"), Some("T"));
        assert_eq!(youtube_title(None, "  "), None);
    }
}
