//! The official twitter-text conformance suite (`validate.yml`, Apache-2.0, see
//! `fixtures/twitter-text/LICENSE-twitter-text`) run against psn's X length rule.
//!
//! Which sections apply: the reference implementations run `WeightedTweetsCounterTest` with
//! the v2 configuration and `WeightedTweetsWithDiscountedEmojiCounterTest` and
//! `UnicodeDirectionalMarkerCounterTest` with v3, the configuration X uses and psn implements.
//! So the two v3 sections are run through psn's public API (`measure`, `validate`); the v2
//! section is run directly against the twitter-text library with the v2 configuration and
//! psn's parser backend, as a check of the library only. The remaining sections (`tweets`,
//! `usernames`, `lists`, `hashtags`, `urls`, `urls_without_protocol`) test legacy 140-character
//! validity and entity syntax, not weighting, and are not run.

use psn_domain::Platform;
use psn_platforms::{ValidationRequest, measure, validate};
use serde::Deserialize;
use twitter_text::ParserBackend;

const VALIDATE_YML: &str = include_str!("fixtures/twitter-text/validate.yml");

#[derive(Debug, Deserialize)]
struct Manifest {
    tests: Sections,
}

#[derive(Debug, Deserialize)]
struct Sections {
    #[serde(rename = "WeightedTweetsCounterTest")]
    weighted_v2: Vec<WeightedCase>,
    #[serde(rename = "WeightedTweetsWithDiscountedEmojiCounterTest")]
    weighted_v3: Vec<WeightedCase>,
    #[serde(rename = "UnicodeDirectionalMarkerCounterTest")]
    directional_v3: Vec<WeightedCase>,
}

#[derive(Debug, Deserialize)]
struct WeightedCase {
    description: String,
    text: String,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    weighted_length: i32,
    valid: bool,
    permillage: i32,
    display_range_start: i32,
    display_range_end: i32,
    valid_range_start: i32,
    valid_range_end: i32,
}

fn manifest() -> Manifest {
    serde_saphyr::from_str(VALIDATE_YML).expect("validate.yml parses")
}

/// Everything twitter-text reports, as psn's backend computes it.
fn library_result(text: &str, config: &twitter_text_config::Configuration) -> Expected {
    let r = twitter_text::parse_with_parser_backend(text, config, true, ParserBackend::External);
    Expected {
        weighted_length: r.weighted_length,
        valid: r.is_valid,
        permillage: r.permillage,
        display_range_start: r.display_text_range.start(),
        display_range_end: r.display_text_range.end(),
        valid_range_start: r.valid_text_range.start(),
        valid_range_end: r.valid_text_range.end(),
    }
}

fn as_tuple(e: &Expected) -> (i32, bool, i32, i32, i32, i32, i32) {
    (
        e.weighted_length,
        e.valid,
        e.permillage,
        e.display_range_start,
        e.display_range_end,
        e.valid_range_start,
        e.valid_range_end,
    )
}

#[test]
fn v3_weighting_cases_pass_through_psn() {
    let m = manifest();
    let sections = [
        (
            "WeightedTweetsWithDiscountedEmojiCounterTest",
            &m.tests.weighted_v3,
        ),
        (
            "UnicodeDirectionalMarkerCounterTest",
            &m.tests.directional_v3,
        ),
    ];
    let mut run = 0;
    let mut failures = Vec::new();
    for (section, cases) in sections {
        for case in cases.iter() {
            run += 1;
            let length = measure(Platform::X, &case.text);
            let expected_len = usize::try_from(case.expected.weighted_length).unwrap();
            if length.value != expected_len {
                failures.push(format!(
                    "{section} / {}: psn measured {}, expected {expected_len}",
                    case.description, length.value
                ));
            }
            let report = validate(&ValidationRequest::new(Platform::X, &case.text));
            if report.valid != case.expected.valid {
                failures.push(format!(
                    "{section} / {}: psn valid={} ({:?}), expected {}",
                    case.description, report.valid, report.issues, case.expected.valid
                ));
            }
            let lib = library_result(&case.text, twitter_text_config::config_v3());
            if as_tuple(&lib) != as_tuple(&case.expected) {
                failures.push(format!(
                    "{section} / {}: library gave {lib:?}, expected {:?}",
                    case.description, case.expected
                ));
            }
        }
    }
    println!("twitter-text conformance: {run} v3 weighting cases run");
    assert_eq!(
        run, 24,
        "validate.yml should hold 22 + 2 v3 weighting cases"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn v2_weighting_cases_pass_in_the_library() {
    let m = manifest();
    let mut failures = Vec::new();
    for case in &m.tests.weighted_v2 {
        let lib = library_result(&case.text, twitter_text_config::config_v2());
        if as_tuple(&lib) != as_tuple(&case.expected) {
            failures.push(format!(
                "{}: library gave {lib:?}, expected {:?}",
                case.description, case.expected
            ));
        }
    }
    println!(
        "twitter-text conformance: {} v2 weighting cases run (library only)",
        m.tests.weighted_v2.len()
    );
    assert_eq!(m.tests.weighted_v2.len(), 20);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn protocol_less_url_weighs_23() {
    // The Nom backend gets this wrong (15); X links `example.com` and counts it as 23.
    assert_eq!(measure(Platform::X, "a example.com b").value, 27);
    assert_eq!(measure(Platform::X, "example.com").value, 23);
}

#[test]
fn near_limit_texts() {
    let exact = "a".repeat(280);
    let report = validate(&ValidationRequest::new(Platform::X, &exact));
    assert!(report.valid, "{:?}", report.issues);
    let over = "a".repeat(281);
    let report = validate(&ValidationRequest::new(Platform::X, &over));
    assert_eq!(report.issues[0].rule, "x.length");
    // 140 CJK characters weigh 280.
    let cjk = "界".repeat(140);
    assert_eq!(measure(Platform::X, &cjk).value, 280);
    assert_eq!(measure(Platform::X, &format!("{cjk}a")).value, 281);
}

/// An independent reading of the v3 ranges for text with no URLs and no emoji.
fn v3_weight_without_entities(text: &str) -> usize {
    let units: usize = text
        .chars()
        .map(|c| match u32::from(c) {
            0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 100,
            _ => 200,
        })
        .sum();
    units / 100
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    #[test]
    fn plain_text_weights_follow_the_v3_ranges(
        text in "[a-zA-Z0-9 éñüжй日本한—‘’…\u{2032}\u{2038}\n]{0,200}"
    ) {
        proptest::prop_assert_eq!(
            measure(Platform::X, &text).value,
            v3_weight_without_entities(&text)
        );
    }
}
