//! Bluesky rich text: finding the links, mentions and hashtags of a post's text, with UTF-8
//! **byte** offsets (`app.bsky.richtext.facet#byteSlice`).
//!
//! The detection follows the official client's (`@atproto/api`, `rich-text/detection.ts`)
//! regular expressions, written out by hand so that psn needs neither `regex` nor the
//! `bsky-sdk`/`atrium` stack (which pulls a second HTTP client and native TLS):
//!
//! - mention: `(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)` whose handle is a domain with a known-shaped
//!   TLD (or ends in `.test`); psn resolves it to a DID afterwards and keeps the facet only
//!   when it resolves (a mention facet without a DID makes the PDS refuse the whole post);
//! - link: `(^|\s|\()((https?://\S+)|(domain\S*))` where a bare domain
//!   (`[a-z][a-z0-9]*(\.[a-z0-9]+)+`) must end in a known TLD and gets `https://`; one
//!   trailing `.,;:!?` is dropped, and a trailing `)` when the link has no `(`;
//! - hashtag: `(^|\s)[#＃]` then a run without whitespace (or the invisible characters the
//!   official expression excludes) that has at least one character that is neither a digit
//!   nor punctuation, trailing punctuation removed, at most 64 characters.
//!
//! Punctuation (`\p{P}`) is approximated by ASCII punctuation (without the ASCII symbols
//! `$+<=>^`|~`) and the common Unicode punctuation blocks.

/// What a facet points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacetKind {
    /// A complete URL (`https://` added to a bare domain).
    Link(String),
    /// A handle, without the `@` (still to be resolved to a DID).
    Mention(String),
    /// A hashtag, without the `#`.
    Tag(String),
}

/// A facet found in the text: `text[start..end]` (UTF-8 byte offsets) is what it annotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedFacet {
    pub start: usize,
    pub end: usize,
    pub kind: FacetKind,
}

/// Characters the official tag expression treats like whitespace.
const INVISIBLE: &[char] = &[
    '\u{00AD}', '\u{2060}', '\u{200A}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{20E2}',
];

/// The longest hashtag, in characters (the lexicon's `maxGraphemes` is 64 too).
pub const MAX_TAG_CHARS: usize = 64;

/// Generic and common TLDs a bare domain may end in (besides every two-letter country code).
const TLDS: &[&str] = &[
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "info",
    "biz",
    "name",
    "pro",
    "aero",
    "coop",
    "museum",
    "mobi",
    "asia",
    "tel",
    "travel",
    "jobs",
    "cat",
    "xxx",
    "post",
    "app",
    "dev",
    "page",
    "io",
    "ai",
    "social",
    "blog",
    "news",
    "online",
    "site",
    "website",
    "tech",
    "store",
    "shop",
    "club",
    "xyz",
    "top",
    "live",
    "life",
    "world",
    "today",
    "space",
    "art",
    "design",
    "email",
    "cloud",
    "media",
    "network",
    "software",
    "systems",
    "solutions",
    "agency",
    "studio",
    "company",
    "digital",
    "global",
    "group",
    "link",
    "click",
    "one",
    "zone",
    "fun",
    "games",
    "wiki",
    "review",
    "science",
    "academy",
    "center",
    "works",
    "tools",
    "codes",
    "run",
    "build",
    "bot",
    "chat",
    "blue",
    "pink",
    "red",
    "green",
    "black",
    "gay",
    "lgbt",
    "team",
    "community",
    "foundation",
    "institute",
    "university",
    "school",
    "church",
    "health",
    "care",
    "law",
    "finance",
    "money",
    "capital",
    "fund",
    "bank",
    "insurance",
    "city",
    "town",
    "land",
    "place",
    "house",
    "photo",
    "photos",
    "photography",
    "pictures",
    "video",
    "film",
    "movie",
    "music",
    "audio",
    "radio",
    "fm",
    "tv",
    "press",
    "report",
    "events",
    "party",
    "moe",
    "ninja",
    "guru",
    "rocks",
    "lol",
    "wtf",
    "sexy",
    "cool",
    "fyi",
    "day",
    "new",
    "now",
    "how",
    "here",
    "web",
    "win",
    "eco",
    "earth",
    "energy",
    "help",
    "support",
    "dog",
    "horse",
    "garden",
    "farm",
    "food",
    "cafe",
    "coffee",
    "pizza",
    "restaurant",
    "bar",
    "pub",
    "wine",
    "beer",
    "vip",
    "ltd",
    "inc",
    "llc",
    "gmbh",
    "srl",
    "sarl",
    "plus",
    "ooo",
    "meme",
    "quest",
    "surf",
    "boo",
    "foo",
    "zip",
    "mov",
    "nexus",
    "sh",
    "gg",
];

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `\p{P}`, approximately (see the module documentation).
pub fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c);
    }
    matches!(c as u32,
        0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF
        | 0x037E | 0x0387 | 0x055A..=0x055F | 0x0589 | 0x058A | 0x05BE | 0x05C0 | 0x05C3
        | 0x05C6 | 0x05F3 | 0x05F4 | 0x0609 | 0x060A | 0x060C | 0x060D | 0x061B | 0x061D..=0x061F
        | 0x066A..=0x066D | 0x06D4 | 0x0964 | 0x0965 | 0x0970 | 0x0E4F | 0x0E5A | 0x0E5B
        | 0x2010..=0x2027 | 0x2030..=0x2043 | 0x2045..=0x2051 | 0x2053..=0x205E
        | 0x207D | 0x207E | 0x208D | 0x208E | 0x2308..=0x230B | 0x2329 | 0x232A
        | 0x2768..=0x2775 | 0x27C5 | 0x27C6 | 0x27E6..=0x27EF | 0x2983..=0x2998
        | 0x29D8..=0x29DB | 0x29FC | 0x29FD | 0x2CF9..=0x2CFC | 0x2CFE | 0x2CFF
        | 0x2E00..=0x2E2E | 0x2E30..=0x2E4F | 0x3001..=0x3003 | 0x3008..=0x3011
        | 0x3014..=0x301F | 0x3030 | 0x303D | 0x30A0 | 0x30FB | 0xFE10..=0xFE19
        | 0xFE30..=0xFE52 | 0xFE54..=0xFE61 | 0xFE63 | 0xFE68 | 0xFE6A | 0xFE6B
        | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F
        | 0xFF20 | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65)
}

/// Whether `domain` ends in a TLD a link or handle may have: a known one, or two ASCII
/// letters (country codes).
pub fn has_valid_tld(domain: &str) -> bool {
    let Some((rest, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    let tld = tld.to_ascii_lowercase();
    (tld.len() == 2 && tld.chars().all(|c| c.is_ascii_alphabetic())) || TLDS.contains(&tld.as_str())
}

/// Whether the character before byte `at` allows a mention or link to start there: the
/// start of the text, whitespace or `(`.
fn starts_after(text: &str, at: usize, allow_paren: bool) -> bool {
    match text[..at].chars().next_back() {
        None => true,
        Some(c) => c.is_whitespace() || (allow_paren && c == '('),
    }
}

/// Every link, mention and hashtag of `text`, ordered by position. Facets never overlap
/// (a later one overlapping an earlier is dropped).
pub fn detect(text: &str) -> Vec<DetectedFacet> {
    let mut facets = Vec::new();
    facets.extend(detect_mentions(text));
    facets.extend(detect_links(text));
    facets.extend(detect_tags(text));
    facets.sort_by_key(|f| (f.start, f.end));
    let mut out: Vec<DetectedFacet> = Vec::with_capacity(facets.len());
    for f in facets {
        if out.last().is_none_or(|last| f.start >= last.end) {
            out.push(f);
        }
    }
    out
}

fn detect_mentions(text: &str) -> Vec<DetectedFacet> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices('@') {
        if !starts_after(text, at, true) {
            continue;
        }
        let body_start = at + 1;
        let run: usize = text[body_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .map(char::len_utf8)
            .sum();
        // `\b`: the handle ends on a word character followed by a non-word one.
        let handle = text[body_start..body_start + run].trim_end_matches(['.', '-']);
        if handle.is_empty() {
            continue;
        }
        let end = body_start + handle.len();
        if text[end..].chars().next().is_some_and(is_word_char) {
            continue;
        }
        if !(has_valid_tld(handle) || handle.to_ascii_lowercase().ends_with(".test")) {
            continue;
        }
        out.push(DetectedFacet {
            start: at,
            end,
            kind: FacetKind::Mention(handle.to_ascii_lowercase()),
        });
    }
    out
}

fn detect_links(text: &str) -> Vec<DetectedFacet> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let Some(c) = text[pos..].chars().next() else {
            break;
        };
        let next = pos + c.len_utf8();
        if !starts_after(text, pos, true) || c.is_whitespace() {
            pos = next;
            continue;
        }
        let word_len: usize = text[pos..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .map(char::len_utf8)
            .sum();
        let word = &text[pos..pos + word_len];
        let lower = word.to_ascii_lowercase();
        let uri = if (lower.starts_with("https://") && word.len() > 8)
            || (lower.starts_with("http://") && word.len() > 7)
        {
            Some(word.to_owned())
        } else {
            bare_domain(word)
                .filter(|d| has_valid_tld(d))
                .map(|_| format!("https://{word}"))
        };
        let Some(mut uri) = uri else {
            pos = next;
            continue;
        };
        let mut end = pos + word_len;
        if uri.ends_with(['.', ',', ';', ':', '!', '?']) {
            uri.pop();
            end -= 1;
        }
        if uri.ends_with(')') && !uri.contains('(') {
            uri.pop();
            end -= 1;
        }
        out.push(DetectedFacet {
            start: pos,
            end,
            kind: FacetKind::Link(uri),
        });
        pos += word_len;
    }
    out
}

/// The domain at the start of `word`: `[a-z][a-z0-9]*(\.[a-z0-9]+)+` (ASCII, any case).
fn bare_domain(word: &str) -> Option<&str> {
    let bytes = word.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
        i += 1;
    }
    let mut labels = 0;
    while i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_alphanumeric() {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        labels += 1;
    }
    (labels > 0).then(|| &word[..i])
}

fn is_tag_char(c: char) -> bool {
    !c.is_whitespace() && !INVISIBLE.contains(&c)
}

fn detect_tags(text: &str) -> Vec<DetectedFacet> {
    let mut out = Vec::new();
    for (hash, mark) in text.match_indices(['#', '＃']) {
        if !starts_after(text, hash, false) {
            continue;
        }
        let body_start = hash + mark.len();
        let rest = &text[body_start..];
        if rest.starts_with('\u{FE0F}') {
            continue;
        }
        let run: usize = rest
            .chars()
            .take_while(|c| is_tag_char(*c))
            .map(char::len_utf8)
            .sum();
        let body = &rest[..run];
        if !body
            .chars()
            .any(|c| !c.is_ascii_digit() && !is_punctuation(c))
        {
            continue;
        }
        let tag = body.trim_end_matches(is_punctuation);
        let chars = tag.chars().count();
        if chars == 0 || chars > MAX_TAG_CHARS {
            continue;
        }
        out.push(DetectedFacet {
            start: hash,
            end: body_start + tag.len(),
            kind: FacetKind::Tag(tag.to_owned()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, FacetKind)> {
        detect(text)
            .into_iter()
            .map(|f| (text[f.start..f.end].to_owned(), f.kind))
            .collect()
    }

    fn link(s: &str) -> FacetKind {
        FacetKind::Link(s.into())
    }

    #[test]
    fn links_follow_the_official_cases() {
        assert_eq!(
            kinds("start https://middle.com end"),
            vec![("https://middle.com".into(), link("https://middle.com"))]
        );
        assert_eq!(
            kinds("start middle.com/foo/bar?baz=bux#hash end"),
            vec![(
                "middle.com/foo/bar?baz=bux#hash".into(),
                link("https://middle.com/foo/bar?baz=bux#hash")
            )]
        );
        assert_eq!(
            kinds("newline1 https://newline2.com\nnewline3"),
            vec![("https://newline2.com".into(), link("https://newline2.com"))]
        );
        assert_eq!(
            kinds("a example.com, b (https://example.com/x) c example.com."),
            vec![
                ("example.com".into(), link("https://example.com")),
                (
                    "https://example.com/x".into(),
                    link("https://example.com/x")
                ),
                ("example.com".into(), link("https://example.com")),
            ]
        );
        assert_eq!(
            kinds("https://en.wikipedia.org/wiki/Rust_(programming_language)"),
            vec![(
                "https://en.wikipedia.org/wiki/Rust_(programming_language)".into(),
                link("https://en.wikipedia.org/wiki/Rust_(programming_language)")
            )]
        );
        // Not links: a file name, a version, a word joined to a URL.
        assert!(kinds("see notes.txt and v1.2 and xhttps://a.com").is_empty());
        assert!(kinds("a.b sub-domain.com").is_empty());
    }

    #[test]
    fn mentions_need_a_domain_handle() {
        assert_eq!(
            kinds("hi @alice.bsky.social, and (@bob.test) @carol @x.y.z. mail@me.com"),
            vec![
                (
                    "@alice.bsky.social".into(),
                    FacetKind::Mention("alice.bsky.social".into())
                ),
                ("@bob.test".into(), FacetKind::Mention("bob.test".into())),
            ]
        );
        assert_eq!(
            kinds("@Dan.Example.COM."),
            vec![(
                "@Dan.Example.COM".into(),
                FacetKind::Mention("dan.example.com".into())
            )]
        );
    }

    #[test]
    fn tags_skip_numbers_and_trailing_punctuation() {
        assert_eq!(
            kinds("#rust, #123 #1st ＃日本語! a#no #a…"),
            vec![
                ("#rust".into(), FacetKind::Tag("rust".into())),
                ("#1st".into(), FacetKind::Tag("1st".into())),
                ("＃日本語".into(), FacetKind::Tag("日本語".into())),
                ("#a".into(), FacetKind::Tag("a".into())),
            ]
        );
        let long = format!("#{}", "a".repeat(65));
        assert!(kinds(&long).is_empty());
        assert!(kinds("#\u{FE0F}⃣ x").is_empty());
    }

    #[test]
    fn offsets_are_utf8_bytes() {
        let text = "✨ 日本 @alice.bsky.social 🎉 https://example.com/é #タグ";
        let facets = detect(text);
        assert_eq!(facets.len(), 3);
        for f in &facets {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        assert_eq!(facets[0].start, "✨ 日本 ".len());
        assert_eq!(&text[facets[0].start..facets[0].end], "@alice.bsky.social");
        assert_eq!(
            &text[facets[1].start..facets[1].end],
            "https://example.com/é"
        );
        assert_eq!(&text[facets[2].start..facets[2].end], "#タグ");
        assert_eq!(facets[2].end, text.len());
    }
}
