//! Splitting an over-long text into a thread, and reading explicit `---` segments.
//!
//! The splitter is generic over the measure (each platform counts differently) and checks
//! every segment with that measure, numbering suffix included, so a thread it returns is known
//! to fit. It prefers sentence and line boundaries, then word boundaries, and cuts a single
//! over-long word between graphemes only as a last resort. Pure text manipulation: no I/O.

use unicode_segmentation::UnicodeSegmentation;

/// Why a text could not be split into a thread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Not even one character plus the numbering fits in the limit.
    #[error("a limit of {limit} is too small to hold any text plus the thread numbering")]
    LimitTooSmall { limit: usize },
    /// The numbering suffix kept changing the number of segments (should not happen).
    #[error("the thread numbering did not settle on a segment count")]
    NumberingUnstable,
}

/// How strong the boundary before a word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// Only whitespace: the previous word does not end a sentence.
    Word,
    /// The previous word ends a sentence, or a line break separates them.
    Sentence,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    before: Boundary,
}

/// Split `text` into thread segments that each measure at most `limit`.
///
/// A text that already fits comes back as one segment, unnumbered. Otherwise, with
/// `numbering`, each segment ends with " i/n"; the suffix is counted by `measure`. Segments are
/// trimmed slices of the text (line breaks inside a segment are kept), so joining them with
/// whitespace gives back the words in order. Whitespace-only text gives no segments.
pub fn split_thread(
    text: &str,
    limit: usize,
    numbering: bool,
    measure: &dyn Fn(&str) -> usize,
) -> Result<Vec<String>, SplitError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if measure(text) <= limit {
        return Ok(vec![text.to_string()]);
    }
    let tokens = tokenize(text);
    if !numbering {
        return pack(text, &tokens, limit, &|_| String::new(), measure);
    }
    let mut total = 2;
    for _ in 0..32 {
        let bare = pack(text, &tokens, limit, &|i| suffix(i, total), measure)?;
        let n = bare.len();
        if n == total {
            return Ok(number(bare));
        }
        if n > total {
            total = n;
            continue;
        }
        // Fewer segments than numbered for: the shorter numbering fits wherever the longer one
        // did, but check rather than assume.
        if n == 1 {
            if measure(&bare[0]) <= limit {
                return Ok(bare);
            }
        } else {
            let numbered = number(bare);
            if numbered.iter().all(|s| measure(s) <= limit) {
                return Ok(numbered);
            }
        }
        total += 1;
    }
    Err(SplitError::NumberingUnstable)
}

fn suffix(i: usize, n: usize) -> String {
    format!(" {i}/{n}")
}

fn number(bare: Vec<String>) -> Vec<String> {
    let n = bare.len();
    bare.into_iter()
        .enumerate()
        .map(|(i, s)| format!("{s}{}", suffix(i + 1, n)))
        .collect()
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut start: Option<usize> = None;
    let mut saw_newline = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                push_token(text, &mut tokens, s, i, saw_newline);
                saw_newline = false;
            }
            if c == '\n' {
                saw_newline = true;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        push_token(text, &mut tokens, s, text.len(), saw_newline);
    }
    tokens
}

fn push_token(text: &str, tokens: &mut Vec<Token>, start: usize, end: usize, newline: bool) {
    let before = match tokens.last() {
        Some(prev) if newline || ends_sentence(&text[prev.start..prev.end]) => Boundary::Sentence,
        _ => Boundary::Word,
    };
    tokens.push(Token { start, end, before });
}

fn ends_sentence(word: &str) -> bool {
    let core = word.trim_end_matches(['"', '\'', ')', ']', '»', '”', '’']);
    core.ends_with(['.', '!', '?', '…', '。', '！', '？'])
}

/// Greedy packing: each segment takes as many words as fit (with its suffix), ending at the
/// last sentence boundary if that still fills at least half the limit. Returns bare segments.
fn pack(
    text: &str,
    tokens: &[Token],
    limit: usize,
    suffix: &dyn Fn(usize) -> String,
    measure: &dyn Fn(&str) -> usize,
) -> Result<Vec<String>, SplitError> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    // Byte offset where the rest of token `i` starts, after a hard split of that token.
    let mut head: Option<usize> = None;
    while i < tokens.len() {
        let sfx = suffix(out.len() + 1);
        let start = head.unwrap_or(tokens[i].start);
        let mut best: Option<usize> = None;
        let mut best_sentence: Option<usize> = None;
        for k in i..tokens.len() {
            let candidate = format!("{}{sfx}", &text[start..tokens[k].end]);
            let m = measure(&candidate);
            if m > limit {
                break;
            }
            best = Some(k);
            let at_sentence_end = tokens
                .get(k + 1)
                .is_none_or(|t| t.before == Boundary::Sentence);
            if at_sentence_end && m * 2 >= limit {
                best_sentence = Some(k);
            }
        }
        match best {
            Some(k) => {
                let end = if k + 1 == tokens.len() {
                    k
                } else {
                    best_sentence.unwrap_or(k)
                };
                out.push(text[start..tokens[end].end].to_string());
                i = end + 1;
                head = None;
            }
            None => {
                // The first word alone does not fit: cut it between graphemes.
                let word = &text[start..tokens[i].end];
                let mut cut = 0;
                for (offset, g) in word.grapheme_indices(true) {
                    let end = offset + g.len();
                    if measure(&format!("{}{sfx}", &word[..end])) <= limit {
                        cut = end;
                    } else {
                        break;
                    }
                }
                if cut == 0 {
                    return Err(SplitError::LimitTooSmall { limit });
                }
                out.push(word[..cut].to_string());
                head = Some(start + cut);
            }
        }
    }
    Ok(out)
}

/// The segments of a text written as an explicit thread: lines that are exactly `---`
/// separate segments. `None` if the text has no such line. Empty segments are dropped.
pub fn explicit_segments(text: &str) -> Option<Vec<String>> {
    let mut found = false;
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        if line.trim() == "---" {
            found = true;
            parts.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    parts.push(current);
    if !found {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    #[test]
    fn text_that_fits_is_one_unnumbered_segment() {
        assert_eq!(
            split_thread("  hello  ", 10, true, &chars).unwrap(),
            vec!["hello"]
        );
        assert!(split_thread("   ", 10, true, &chars).unwrap().is_empty());
    }

    #[test]
    fn prefers_sentence_boundaries() {
        let text = "One two three. Four five six seven. Eight nine.";
        let segs = split_thread(text, 26, false, &chars).unwrap();
        assert_eq!(
            segs,
            vec!["One two three.", "Four five six seven.", "Eight nine."]
        );
    }

    #[test]
    fn numbers_segments_and_counts_the_suffix() {
        let text = "aaaa bbbb cccc dddd eeee ffff";
        let segs = split_thread(text, 14, true, &chars).unwrap();
        for s in &segs {
            assert!(chars(s) <= 14, "{s:?}");
        }
        let n = segs.len();
        for (i, s) in segs.iter().enumerate() {
            assert!(s.ends_with(&format!(" {}/{n}", i + 1)), "{s:?}");
        }
    }

    #[test]
    fn hard_splits_a_long_word() {
        let text = "x".repeat(25);
        let segs = split_thread(&text, 10, false, &chars).unwrap();
        assert_eq!(segs, vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
    }

    #[test]
    fn limit_too_small_for_numbering_is_an_error() {
        let err = split_thread("aaaa bbbb cccc", 4, true, &chars).unwrap_err();
        assert_eq!(err, SplitError::LimitTooSmall { limit: 4 });
    }

    #[test]
    fn explicit_segments_split_at_dash_lines() {
        assert_eq!(explicit_segments("a\nb"), None);
        assert_eq!(
            explicit_segments("first\n---\nsecond\nline\n ---\n\n---\nthird").unwrap(),
            vec!["first", "second\nline", "third"]
        );
        // Not a separator unless the dashes are the whole line.
        assert_eq!(explicit_segments("a --- b"), None);
    }
}
