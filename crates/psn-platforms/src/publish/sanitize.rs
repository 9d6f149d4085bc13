//! Making platform error messages safe to store and print.
//!
//! Every error text psn keeps (attempt history, delivery errors, logs) goes through
//! [`sanitize_error`]: platform error pages are HTML, bodies can echo request headers, and a
//! message can be arbitrarily long.

/// The longest sanitized message, in characters (the ellipsis included).
pub const MAX_ERROR_CHARS: usize = 500;

/// What a removed secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Turns a platform's error text into something safe to store and print:
///
/// - HTML tags are stripped (an error page becomes its text; `<script>`/`<style>` contents
///   are dropped) and the common entities decoded;
/// - whitespace is collapsed to single spaces and trimmed;
/// - every occurrence of each of `secrets` (tokens, client secrets) is replaced with
///   `[redacted]`, and so is anything that looks like a credential: `Bearer …`,
///   `Authorization: …`, `access_token=…`, `refresh_token=…`, `client_secret=…`, `code=…`
///   and their JSON forms (`"access_token":"…"`);
/// - the result is bounded to [`MAX_ERROR_CHARS`] characters, cut on a character boundary
///   and ended with `…`.
pub fn sanitize_error(message: &str, secrets: &[&str]) -> String {
    // Secrets first, on the raw text, so that tag stripping cannot split one; then again at
    // the end in case entity decoding or whitespace collapsing revealed one.
    let mut text = redact_secrets(message, secrets);
    text = strip_html(&text);
    text = collapse_whitespace(&text);
    text = redact_secrets(&text, secrets);
    text = redact_credential_patterns(&text);
    truncate_chars(&text, MAX_ERROR_CHARS)
}

fn redact_secrets(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    // Longest first, so that a secret containing another is removed whole.
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| !s.trim().is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// Removes tags, comments and the contents of `<script>`/`<style>`, decoding entities.
fn strip_html(text: &str) -> String {
    if !text.contains('<') && !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let lower_head: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        if after.starts_with("<!--") {
            match after.find("-->") {
                Some(end) => rest = &after[end + 3..],
                None => rest = "",
            }
            continue;
        }
        let skip_block = ["script", "style"]
            .into_iter()
            .find(|name| lower_head.starts_with(&format!("<{name}")));
        // A '<' that does not open a tag (e.g. "a < b") is kept as text.
        let opens_tag = after[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?');
        if !opens_tag {
            out.push('<');
            rest = &after[1..];
            continue;
        }
        match after.find('>') {
            Some(end) => {
                rest = &after[end + 1..];
                if let Some(name) = skip_block {
                    let close = format!("</{name}");
                    let lower_rest = rest.to_ascii_lowercase();
                    match lower_rest.find(&close) {
                        Some(pos) => {
                            let tail = &rest[pos..];
                            rest = match tail.find('>') {
                                Some(e) => &tail[e + 1..],
                                None => "",
                            };
                        }
                        None => rest = "",
                    }
                }
                // Tags separate words ("<p>a</p><p>b</p>" → "a b").
                out.push(' ');
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    decode_entities(&out)
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if name.starts_with('#') => {
                    name[1..].parse::<u32>().ok().and_then(char::from_u32)
                }
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keys whose values are credentials, in `key=value`, `key: value` and JSON forms.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "oauth_token",
    "oauth_token_secret",
    "oauth_signature",
    "password",
    "api_key",
    "apikey",
    "code_verifier",
];

fn redact_credential_patterns(text: &str) -> String {
    let mut out = redact_after_marker(text, "bearer ", false);
    out = redact_after_marker(&out, "basic ", true);
    out = redact_authorization_header(&out);
    for key in SECRET_KEYS {
        out = redact_key_value(&out, key);
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=%:".contains(c)
}

/// Replaces the token after `marker` (ASCII, matched case-insensitively). With
/// `require_base64`, only when what follows looks like a credential (long enough).
fn redact_after_marker(text: &str, marker: &str, require_base64: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(marker) {
        let start = search + found;
        let value_start = start + marker.len();
        // Only at a word boundary: "bearer" preceded by a letter is another word.
        let boundary = start == 0
            || !text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        let value_len: usize = text[value_start..]
            .chars()
            .take_while(|&c| is_token_char(c))
            .map(char::len_utf8)
            .sum();
        let long_enough = !require_base64 || value_len >= 8;
        let already = text[value_start..].starts_with(REDACTED);
        if boundary && value_len > 0 && long_enough && !already {
            out.push_str(&text[last..value_start]);
            out.push_str(REDACTED);
            last = value_start + value_len;
        }
        search = value_start.max(start + 1);
        if search >= text.len() {
            break;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `Authorization: <anything up to a separator>` (any scheme).
fn redact_authorization_header(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let marker = "authorization";
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(marker) {
        let start = search + found;
        let mut i = start + marker.len();
        search = i;
        // Optional quote (JSON), then ':' or '=', then optional quote/space.
        let bytes = text.as_bytes();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || (bytes[i] != b':' && bytes[i] != b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'"') {
            i += 1;
        }
        let value_start = i;
        // The value runs to the end of the header: a quote, comma, semicolon or newline.
        let value_len: usize = text[value_start..]
            .chars()
            .take_while(|&c| !matches!(c, '"' | ',' | ';' | '\n' | '\r' | '}'))
            .map(char::len_utf8)
            .sum();
        if value_len == 0 || text[value_start..].starts_with(REDACTED) {
            continue;
        }
        out.push_str(&text[last..value_start]);
        out.push_str(REDACTED);
        last = value_start + value_len;
        search = last;
    }
    out.push_str(&text[last..]);
    out
}

/// `key=value`, `key: value`, `"key":"value"`, matched case-insensitively on the key.
fn redact_key_value(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(key) {
        let start = search + found;
        let bytes = text.as_bytes();
        let mut i = start + key.len();
        search = i;
        // Whole key only ("my_access_token_x" still counts: the key is what matters).
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || (bytes[i] != b'=' && bytes[i] != b':') {
            continue;
        }
        i += 1;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'"') {
            i += 1;
        }
        let value_start = i;
        let value_len: usize = text[value_start..]
            .chars()
            .take_while(|&c| is_token_char(c))
            .map(char::len_utf8)
            .sum();
        if value_len == 0 || text[value_start..].starts_with(REDACTED) {
            continue;
        }
        out.push_str(&text[last..value_start]);
        out.push_str(REDACTED);
        last = value_start + value_len;
        search = last;
    }
    out.push_str(&text[last..]);
    out
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            sanitize_error("You are not allowed to create a Tweet.", &[]),
            "You are not allowed to create a Tweet."
        );
    }

    #[test]
    fn html_error_page_becomes_its_text() {
        let page = "<!DOCTYPE html><html><head><title>503 Service Unavailable</title>\
                    <style>body { color: red }</style><script>var t = 1;</script></head>\
                    <body><h1>Over capacity</h1><p>Please try again &amp; again.</p><!-- x --></body></html>";
        assert_eq!(
            sanitize_error(page, &[]),
            "503 Service Unavailable Over capacity Please try again & again."
        );
    }

    #[test]
    fn lone_angle_brackets_are_text() {
        assert_eq!(sanitize_error("a < b and c > d", &[]), "a < b and c > d");
    }

    #[test]
    fn whitespace_is_collapsed() {
        assert_eq!(
            sanitize_error("  one\n\n two\t three  ", &[]),
            "one two three"
        );
    }

    #[test]
    fn given_secrets_are_removed_everywhere() {
        let s = sanitize_error(
            "token s3cr3tT0k3n was refused (s3cr3tT0k3n)",
            &["s3cr3tT0k3n", ""],
        );
        assert_eq!(s, "token [redacted] was refused ([redacted])");
        assert!(!s.contains("s3cr3t"));
    }

    #[test]
    fn secrets_split_by_tags_or_whitespace_still_go() {
        let s = sanitize_error("<b>abc</b>\n\n  SECRETVALUE", &["SECRETVALUE"]);
        assert_eq!(s, "abc [redacted]");
    }

    #[test]
    fn bearer_tokens_are_redacted() {
        let s = sanitize_error(
            "sent Bearer eyJhbGciOi.JIUzI1-NiJ9_x and bearer abc123",
            &[],
        );
        assert_eq!(s, "sent Bearer [redacted] and bearer [redacted]");
    }

    #[test]
    fn authorization_headers_are_redacted() {
        let s = sanitize_error(
            "request had Authorization: OAuth oauth_nonce=\"x\", more",
            &[],
        );
        assert!(!s.contains("OAuth oauth_nonce"), "{s}");
        assert!(s.contains("Authorization: [redacted]"), "{s}");
        let s = sanitize_error(r#"{"headers":{"authorization":"Token abcdef"}}"#, &[]);
        assert!(!s.contains("abcdef"), "{s}");
    }

    #[test]
    fn token_parameters_are_redacted() {
        let s = sanitize_error(
            "GET /cb?code=1&access_token=AAAA.bbb-ccc&refresh_token=zzz failed; {\"access_token\": \"qqq\"}",
            &[],
        );
        assert!(!s.contains("AAAA"), "{s}");
        assert!(!s.contains("zzz"), "{s}");
        assert!(!s.contains("qqq"), "{s}");
        assert!(s.contains("access_token=[redacted]"), "{s}");
    }

    #[test]
    fn long_messages_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let s = sanitize_error(&long, &[]);
        assert_eq!(s.chars().count(), MAX_ERROR_CHARS);
        assert!(s.ends_with('…'));
        let exact = "a".repeat(MAX_ERROR_CHARS);
        assert_eq!(sanitize_error(&exact, &[]), exact);
        let emoji = "😀".repeat(600);
        let s = sanitize_error(&emoji, &[]);
        assert_eq!(s.chars().count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn numeric_entities_decode() {
        assert_eq!(
            sanitize_error("&#39;x&#x27; &unknown; &", &[]),
            "'x' &unknown; &"
        );
    }
}
