//! Properties of `split_thread`: every segment within the limit by the given measure (numbering
//! included), no empty segment, numbering `i/n` correct, and the words kept in order.

use proptest::prelude::*;
use psn_domain::Platform;
use psn_platforms::{measure, split_thread};

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z]{1,10}",
        1 => "[a-z]{1,8}[.!?,]",
        1 => prop::sample::select(vec!["🐱", "👨‍👩‍👧", "🇯🇵", "☀️", "e\u{301}"]).prop_map(str::to_string),
        1 => "[日本語中文한국어]{1,5}",
        1 => "[a-z]{1,8}".prop_map(|s| format!("https://{s}.example.com/{s}")),
        1 => "[a-z]{1,8}".prop_map(|s| format!("{s}.com")),
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", " ", " ", "  ", "\n", "\n\n", "\t"])
}

fn text(max_words: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((word(), separator()), 1..max_words).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, s)| format!("{w}{s}"))
            .collect::<String>()
    })
}

/// Strip " i/n" from every segment, checking it is there and correct.
fn strip_numbering(segments: &[String]) -> Vec<String> {
    let n = segments.len();
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let suffix = format!(" {}/{n}", i + 1);
            s.strip_suffix(&suffix)
                .unwrap_or_else(|| panic!("segment {s:?} lacks {suffix:?}"))
                .to_string()
        })
        .collect()
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn check_split(
    text: &str,
    limit: usize,
    numbering: bool,
    m: &dyn Fn(&str) -> usize,
    words_fit: bool,
) -> Result<(), TestCaseError> {
    let segments = split_thread(text, limit, numbering, m).expect("split succeeds");
    prop_assert!(!segments.is_empty());
    for s in &segments {
        prop_assert!(
            m(s) <= limit,
            "segment {:?} measures {} > {}",
            s,
            m(s),
            limit
        );
        prop_assert!(!s.trim().is_empty());
    }
    let bare = if numbering && segments.len() > 1 {
        strip_numbering(&segments)
    } else {
        segments.clone()
    };
    for s in &bare {
        prop_assert!(!s.trim().is_empty(), "empty segment in {:?}", segments);
        prop_assert_eq!(s.trim(), s.as_str());
    }
    let joined = bare.join(" ");
    if words_fit {
        prop_assert_eq!(words(&joined), words(text));
    } else {
        let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        prop_assert_eq!(squash(&joined), squash(text));
    }
    Ok(())
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chars_measure_keeps_words(t in text(80), limit in 60usize..200, numbering: bool) {
        // Every word (at most 37 chars) plus " nn/nn" fits in 60.
        check_split(&t, limit, numbering, &chars, true)?;
    }

    #[test]
    fn long_words_are_hard_split(
        t in prop::collection::vec(("[a-z]{1,40}|[日本]{1,30}|(🐱){1,10}", separator()), 1..30)
            .prop_map(|p| p.into_iter().map(|(w, s)| format!("{w}{s}")).collect::<String>()),
        limit in 12usize..30,
        numbering: bool,
    ) {
        check_split(&t, limit, numbering, &chars, false)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn platform_measures_keep_words(t in text(250), numbering: bool) {
        for p in [Platform::X, Platform::Threads, Platform::Mastodon] {
            let m = |s: &str| measure(p, s).value;
            check_split(&t, measure(p, "").limit, numbering, &m, true)?;
        }
        // Bluesky: graphemes and bytes together, as `validate` does.
        let bluesky = |s: &str| {
            let g = measure(Platform::Bluesky, s).value;
            g.max(s.len().div_ceil(10))
        };
        check_split(&t, 300, numbering, &bluesky, true)?;
    }

    #[test]
    fn x_small_limits(t in text(60), limit in 30usize..80, numbering: bool) {
        // URLs weigh 23, so every word plus numbering fits in 30.
        let m = |s: &str| measure(Platform::X, s).value;
        check_split(&t, limit, numbering, &m, true)?;
    }
}

#[test]
fn numbering_settles_when_the_count_gains_a_digit() {
    // Around nine or ten segments the suffix grows from " 9/9" to " 10/10".
    for words in 30..60 {
        let t = "abcd ".repeat(words);
        let segs = split_thread(&t, 20, true, &chars).unwrap();
        let n = segs.len();
        for (i, s) in segs.iter().enumerate() {
            assert!(chars(s) <= 20, "{s:?}");
            assert!(s.ends_with(&format!(" {}/{n}", i + 1)), "{s:?}");
        }
    }
}
