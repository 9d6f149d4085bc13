//! One triggering and one passing case for every rule id, plus the Bluesky grapheme/byte cases
//! and thread behaviour through `validate`.

use psn_domain::{MediaKind, MediaSummary, Platform};
use psn_platforms::{ValidationReport, ValidationRequest, measure, validate};

fn media(kind: MediaKind) -> MediaSummary {
    MediaSummary::new(kind, 1000)
}

fn images(n: usize) -> Vec<MediaSummary> {
    vec![media(MediaKind::Image); n]
}

fn videos(n: usize) -> Vec<MediaSummary> {
    vec![media(MediaKind::Video); n]
}

fn rules(report: &ValidationReport) -> Vec<&str> {
    report.issues.iter().map(|i| i.rule.as_str()).collect()
}

fn check(req: ValidationRequest<'_>) -> ValidationReport {
    validate(&req)
}

fn text(p: Platform, t: &str) -> ValidationReport {
    check(ValidationRequest::new(p, t))
}

fn with_media<'a>(p: Platform, t: &'a str, m: &'a [MediaSummary]) -> ValidationRequest<'a> {
    ValidationRequest {
        media: m,
        ..ValidationRequest::new(p, t)
    }
}

/// Requests that satisfy every non-length rule of the platform, so one rule can be tested at
/// a time.
fn ok_request<'a>(p: Platform, t: &'a str, m: &'a [MediaSummary]) -> ValidationRequest<'a> {
    ValidationRequest {
        media: m,
        title: Some("A title"),
        board: Some("Recipes"),
        ..ValidationRequest::new(p, t)
    }
}

fn needed_media(p: Platform) -> Vec<MediaSummary> {
    match p {
        Platform::Instagram | Platform::Pinterest => images(1),
        Platform::Tiktok | Platform::Youtube => videos(1),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- text_empty

#[test]
fn empty_text_without_media_is_refused_everywhere() {
    for p in Platform::ALL {
        for t in ["", "   \n\t ", "---\n---"] {
            let r = text(p, t);
            assert!(
                rules(&r).contains(&format!("{p}.text_empty").as_str()),
                "{p}: {r:?}"
            );
            assert!(!r.valid);
        }
    }
}

#[test]
fn empty_text_with_media_is_allowed_everywhere() {
    for p in Platform::ALL {
        let m = needed_media(p);
        let m = if m.is_empty() { images(1) } else { m };
        let r = check(ok_request(p, "  ", &m));
        assert!(r.valid, "{p}: {:?}", r.issues);
        assert_eq!(r.segments, vec![String::new()]);
    }
}

// ---------------------------------------------------------------- X

#[test]
fn x_length() {
    let fits = "a".repeat(280);
    assert!(text(Platform::X, &fits).valid);
    let long = format!("{} https://example.com/{}", "a".repeat(288), "p".repeat(50));
    let r = text(Platform::X, &long);
    assert_eq!(rules(&r), vec!["x.length"]);
    assert_eq!(r.length, 312);
    assert!(
        r.issues[0]
            .message
            .starts_with("312 of 280 weighted characters; URLs count as 23"),
        "{}",
        r.issues[0].message
    );
    assert!(
        r.issues[0]
            .message
            .ends_with("add --thread to split it into a thread")
    );
}

#[test]
fn x_invalid_characters() {
    let r = text(Platform::X, "abc\u{FFFF}");
    assert_eq!(rules(&r), vec!["x.invalid_characters"]);
    assert!(r.issues[0].message.contains("U+FFFF"));
    assert!(text(Platform::X, "abc\u{202A}").valid);
}

#[test]
fn x_media_count_and_mix() {
    assert!(check(with_media(Platform::X, "hi", &images(4))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &images(5)))),
        vec!["x.media_count"]
    );
    assert!(check(with_media(Platform::X, "hi", &videos(1))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &videos(2)))),
        vec!["x.media_count"]
    );
    let gifs = vec![media(MediaKind::Gif); 2];
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &gifs))),
        vec!["x.media_count"]
    );
    let mixed = vec![media(MediaKind::Image), media(MediaKind::Gif)];
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &mixed))),
        vec!["x.media_mixed"]
    );
}

fn with_alt(n: usize) -> Vec<MediaSummary> {
    vec![MediaSummary {
        alt: Some("é".repeat(n)),
        ..media(MediaKind::Image)
    }]
}

#[test]
fn alt_lengths() {
    for (p, limit) in [
        (Platform::X, 1000),
        (Platform::Bluesky, 1000),
        (Platform::Mastodon, 1500),
    ] {
        assert!(check(with_media(p, "hi", &with_alt(limit))).valid, "{p}");
        let r = check(with_media(p, "hi", &with_alt(limit + 1)));
        assert_eq!(rules(&r), vec![format!("{p}.alt_length")], "{p}");
        assert!(r.issues[0].message.contains("media 1"));
    }
}

// ---------------------------------------------------------------- Bluesky

#[test]
fn bluesky_301_ascii_is_too_long() {
    assert!(text(Platform::Bluesky, &"a".repeat(300)).valid);
    let r = text(Platform::Bluesky, &"a".repeat(301));
    assert_eq!(rules(&r), vec!["bluesky.length"]);
    assert!(
        r.issues[0].message.starts_with("301 of 300 graphemes"),
        "{}",
        r.issues[0].message
    );
}

#[test]
fn bluesky_family_emoji_fit_graphemes_but_not_bytes() {
    let family = "👨‍👩‍👧";
    assert_eq!(family.len(), 18);
    let t = family.repeat(300);
    let m = measure(Platform::Bluesky, &t);
    assert_eq!((m.value, m.limit, m.unit), (300, 300, "graphemes"));
    let r = text(Platform::Bluesky, &t);
    assert_eq!(rules(&r), vec!["bluesky.bytes"]);
    assert!(r.issues[0].message.starts_with("5400 of 3000 UTF-8 bytes"));
    // 166 families are 2988 bytes: fine.
    assert!(text(Platform::Bluesky, &family.repeat(166)).valid);
}

#[test]
fn bluesky_combining_characters_are_one_grapheme() {
    // "e" + combining acute accent: two chars, one grapheme.
    let e = "e\u{301}";
    let t = e.repeat(300);
    assert_eq!(t.chars().count(), 600);
    assert_eq!(measure(Platform::Bluesky, &t).value, 300);
    assert!(text(Platform::Bluesky, &t).valid);
    let r = text(Platform::Bluesky, &format!("{t}{e}"));
    assert_eq!(rules(&r), vec!["bluesky.length"]);
    // Hangul jamo and flags are single graphemes too.
    assert_eq!(
        measure(Platform::Bluesky, "\u{1100}\u{1161}\u{11A8}").value,
        1
    );
    assert_eq!(measure(Platform::Bluesky, "🇯🇵🇫🇷").value, 2);
}

#[test]
fn bluesky_thread_split_respects_bytes() {
    let t = "👨‍👩‍👧 ".repeat(300);
    let r = check(ValidationRequest {
        thread: true,
        ..ValidationRequest::new(Platform::Bluesky, &t)
    });
    assert!(r.valid, "{:?}", r.issues);
    assert!(r.segments.len() >= 2);
    for s in &r.segments {
        assert!(s.len() <= 3000 && measure(Platform::Bluesky, s).value <= 300);
    }
}

#[test]
fn bluesky_media_rules() {
    assert!(check(with_media(Platform::Bluesky, "hi", &images(4))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::Bluesky, "hi", &images(5)))),
        vec!["bluesky.media_count"]
    );
    assert!(check(with_media(Platform::Bluesky, "hi", &videos(1))).valid);
    let mixed = vec![media(MediaKind::Image), media(MediaKind::Video)];
    assert_eq!(
        rules(&check(with_media(Platform::Bluesky, "hi", &mixed))),
        vec!["bluesky.media_count"]
    );
    let big = vec![MediaSummary {
        bytes: 2_000_001,
        ..media(MediaKind::Image)
    }];
    assert_eq!(
        rules(&check(with_media(Platform::Bluesky, "hi", &big))),
        vec!["bluesky.image_size"]
    );
    let limit = vec![MediaSummary {
        bytes: 2_000_000,
        ..media(MediaKind::Image)
    }];
    assert!(check(with_media(Platform::Bluesky, "hi", &limit)).valid);
}

// ---------------------------------------------------------------- Mastodon

#[test]
fn mastodon_length_counts_urls_as_23() {
    let url = format!("https://example.com/{}", "p".repeat(200));
    let t = format!("{} {url}", "a".repeat(476));
    assert_eq!(measure(Platform::Mastodon, &t).value, 500);
    assert!(text(Platform::Mastodon, &t).valid);
    let r = text(Platform::Mastodon, &format!("a{t}"));
    assert_eq!(rules(&r), vec!["mastodon.length"]);
    assert!(
        r.issues[0]
            .message
            .starts_with("501 of 500 characters; URLs count as 23")
    );
}

#[test]
fn mastodon_limit_override() {
    let t = "a".repeat(600);
    let mut req = ValidationRequest::new(Platform::Mastodon, &t);
    assert!(!check(req).valid);
    req.char_limit_override = Some(1000);
    let r = check(req);
    assert!(r.valid);
    assert_eq!(r.limit, 1000);
}

#[test]
fn mastodon_media_count() {
    assert!(check(with_media(Platform::Mastodon, "hi", &images(4))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::Mastodon, "hi", &images(5)))),
        vec!["mastodon.media_count"]
    );
}

// ---------------------------------------------------------------- Threads

#[test]
fn threads_length_counts_emoji_bytes() {
    let t = "🐱".repeat(125);
    assert_eq!(measure(Platform::Threads, &t).value, 500);
    assert!(text(Platform::Threads, &t).valid);
    let r = text(Platform::Threads, &format!("{t}a"));
    assert_eq!(rules(&r), vec!["threads.length"]);
}

#[test]
fn threads_media_count() {
    assert!(check(with_media(Platform::Threads, "hi", &images(20))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::Threads, "hi", &images(21)))),
        vec!["threads.media_count"]
    );
}

// ---------------------------------------------------------------- LinkedIn, Facebook

#[test]
fn linkedin_length_and_no_threads() {
    assert!(text(Platform::Linkedin, &"a".repeat(3000)).valid);
    let t = "a ".repeat(1600);
    let r = check(ValidationRequest {
        thread: true,
        ..ValidationRequest::new(Platform::Linkedin, &t)
    });
    assert_eq!(rules(&r), vec!["linkedin.length"]);
    assert!(
        r.issues[0].message.contains("LinkedIn has no threads"),
        "{}",
        r.issues[0].message
    );
    assert_eq!(r.segments.len(), 1);
}

#[test]
fn linkedin_media_count() {
    assert!(check(with_media(Platform::Linkedin, "hi", &images(20))).valid);
    assert!(check(with_media(Platform::Linkedin, "hi", &videos(1))).valid);
    assert_eq!(
        rules(&check(with_media(Platform::Linkedin, "hi", &images(21)))),
        vec!["linkedin.media_count"]
    );
    assert_eq!(
        rules(&check(with_media(Platform::Linkedin, "hi", &videos(2)))),
        vec!["linkedin.media_count"]
    );
}

#[test]
fn facebook_length() {
    assert!(text(Platform::Facebook, &"a".repeat(63206)).valid);
    assert_eq!(
        rules(&text(Platform::Facebook, &"a".repeat(63207))),
        vec!["facebook.length"]
    );
}

// ---------------------------------------------------------------- Instagram

#[test]
fn instagram_rules() {
    let one = images(1);
    assert!(check(with_media(Platform::Instagram, "hi", &one)).valid);
    assert_eq!(
        rules(&text(Platform::Instagram, "hi")),
        vec!["instagram.media_required"]
    );
    assert_eq!(
        rules(&check(with_media(Platform::Instagram, "hi", &images(11)))),
        vec!["instagram.media_count"]
    );
    assert!(check(with_media(Platform::Instagram, "hi", &images(10))).valid);
    let long = "a".repeat(2201);
    assert_eq!(
        rules(&check(with_media(Platform::Instagram, &long, &one))),
        vec!["instagram.length"]
    );
    assert!(check(with_media(Platform::Instagram, &"a".repeat(2200), &one)).valid);

    let tags = |n: usize| {
        (0..n)
            .map(|i| format!("#tag{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(check(with_media(Platform::Instagram, &tags(30), &one)).valid);
    let t31 = tags(31);
    assert_eq!(
        rules(&check(with_media(Platform::Instagram, &t31, &one))),
        vec!["instagram.hashtags"]
    );
    let mentions = |n: usize| {
        (0..n)
            .map(|i| format!("@user{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(check(with_media(Platform::Instagram, &mentions(20), &one)).valid);
    let m21 = mentions(21);
    assert_eq!(
        rules(&check(with_media(Platform::Instagram, &m21, &one))),
        vec!["instagram.mentions"]
    );
}

// ---------------------------------------------------------------- TikTok

#[test]
fn tiktok_rules() {
    let v = videos(1);
    assert!(check(with_media(Platform::Tiktok, "hi", &v)).valid);
    assert_eq!(
        rules(&text(Platform::Tiktok, "hi")),
        vec!["tiktok.video_required"]
    );
    let r = check(with_media(Platform::Tiktok, "hi", &images(2)));
    assert_eq!(rules(&r), vec!["tiktok.video_required"]);
    assert!(r.issues[0].message.contains("psn posts TikTok videos only"));
    let gif = vec![media(MediaKind::Gif)];
    assert_eq!(
        rules(&check(with_media(Platform::Tiktok, "hi", &gif))),
        vec!["tiktok.video_required"]
    );
    let long = "a".repeat(2201);
    assert_eq!(
        rules(&check(with_media(Platform::Tiktok, &long, &v))),
        vec!["tiktok.length"]
    );
    assert!(check(with_media(Platform::Tiktok, &"a".repeat(2200), &v)).valid);
}

// ---------------------------------------------------------------- YouTube

#[test]
fn youtube_media_rules() {
    let v = videos(1);
    assert!(check(ok_request(Platform::Youtube, "desc", &v)).valid);
    assert_eq!(
        rules(&check(ok_request(Platform::Youtube, "desc", &images(1)))),
        vec!["youtube.video_required"]
    );
    assert_eq!(
        rules(&check(ok_request(Platform::Youtube, "desc", &videos(2)))),
        vec!["youtube.media_count"]
    );
}

#[test]
fn youtube_title_rules() {
    let v = videos(1);
    // No --title: the first line is the title.
    assert!(
        check(with_media(
            Platform::Youtube,
            "My title\nThe description",
            &v
        ))
        .valid
    );
    assert_eq!(
        rules(&check(with_media(Platform::Youtube, "", &v))),
        vec!["youtube.title_required"]
    );
    let long_first_line = format!("{}\nrest", "t".repeat(101));
    let r = check(with_media(Platform::Youtube, &long_first_line, &v));
    assert_eq!(rules(&r), vec!["youtube.title_length"]);
    assert!(r.issues[0].message.contains("first line"));
    let t100 = "t".repeat(100);
    let ok = ValidationRequest {
        title: Some(&t100),
        ..with_media(Platform::Youtube, "", &v)
    };
    assert!(check(ok).valid);
    let bad = ValidationRequest {
        title: Some("a <b> title"),
        ..with_media(Platform::Youtube, "desc", &v)
    };
    assert_eq!(rules(&check(bad)), vec!["youtube.title_characters"]);
}

#[test]
fn youtube_description_bytes() {
    let v = videos(1);
    // 2500 two-byte characters are exactly 5000 bytes.
    let fits = "é".repeat(2500);
    assert!(check(ok_request(Platform::Youtube, &fits, &v)).valid);
    let over = format!("{fits}a");
    let r = check(ok_request(Platform::Youtube, &over, &v));
    assert_eq!(rules(&r), vec!["youtube.description_length"]);
    assert!(r.issues[0].message.contains("5001 of 5000 bytes"));
}

// ---------------------------------------------------------------- Pinterest

#[test]
fn pinterest_rules() {
    let one = images(1);
    assert!(check(ok_request(Platform::Pinterest, "desc", &one)).valid);
    assert_eq!(
        rules(&check(ok_request(Platform::Pinterest, "desc", &[]))),
        vec!["pinterest.media_required"]
    );
    assert_eq!(
        rules(&check(with_media(Platform::Pinterest, "desc", &one))),
        vec!["pinterest.board_required"]
    );
    let long = "a".repeat(801);
    assert_eq!(
        rules(&check(ok_request(Platform::Pinterest, &long, &one))),
        vec!["pinterest.description_length"]
    );
    assert!(check(ok_request(Platform::Pinterest, &"a".repeat(800), &one)).valid);
    let t101 = "t".repeat(101);
    let long_title = ValidationRequest {
        title: Some(&t101),
        ..ok_request(Platform::Pinterest, "desc", &one)
    };
    assert_eq!(rules(&check(long_title)), vec!["pinterest.title_length"]);
    let mixed = vec![media(MediaKind::Image), media(MediaKind::Video)];
    assert_eq!(
        rules(&check(ok_request(Platform::Pinterest, "desc", &mixed))),
        vec!["pinterest.media_mixed"]
    );
    assert!(check(ok_request(Platform::Pinterest, "desc", &images(5))).valid);
    assert_eq!(
        rules(&check(ok_request(Platform::Pinterest, "desc", &images(6)))),
        vec!["pinterest.media_count"]
    );
    assert!(check(ok_request(Platform::Pinterest, "desc", &videos(1))).valid);
    assert_eq!(
        rules(&check(ok_request(Platform::Pinterest, "desc", &videos(2)))),
        vec!["pinterest.media_count"]
    );
}

// ---------------------------------------------------------------- threads and segments

#[test]
fn over_long_text_is_split_with_thread() {
    let t = "This is a sentence that goes on. ".repeat(30);
    for p in [
        Platform::X,
        Platform::Bluesky,
        Platform::Threads,
        Platform::Mastodon,
    ] {
        let r = text(p, &t);
        assert_eq!(rules(&r), vec![format!("{p}.length")], "{p}");
        let r = check(ValidationRequest {
            thread: true,
            ..ValidationRequest::new(p, &t)
        });
        assert!(r.valid, "{p}: {:?}", r.issues);
        let n = r.segments.len();
        assert!(n >= 2, "{p}");
        for (i, s) in r.segments.iter().enumerate() {
            assert!(measure(p, s).value <= measure(p, s).limit, "{p}: {s}");
            assert!(s.ends_with(&format!(" {}/{n}", i + 1)), "{p}: {s}");
            // Sentence boundaries are preferred.
            assert!(s.contains("goes on. "), "{p}: {s}");
        }
        assert_eq!(r.length, measure(p, t.trim()).value);
    }
}

#[test]
fn thread_without_numbering() {
    let t = "word ".repeat(100);
    let r = check(ValidationRequest {
        thread: true,
        numbering: false,
        ..ValidationRequest::new(Platform::X, &t)
    });
    assert!(r.valid);
    assert_eq!(r.segments.len(), 2);
    assert!(r.segments.iter().all(|s| s.ends_with("word")));
}

#[test]
fn explicit_segments_are_validated_one_by_one() {
    let t = format!("First part.\n---\n{}\n---\nThird.", "b".repeat(290));
    let r = text(Platform::X, &t);
    assert_eq!(rules(&r), vec!["x.length"]);
    assert!(
        r.issues[0].message.starts_with("segment 2 of 3:"),
        "{}",
        r.issues[0].message
    );
    assert_eq!(r.segments.len(), 3);
    assert_eq!(r.segments[0], "First part. 1/3");

    let ok = text(Platform::X, "One.\n---\nTwo.");
    assert!(ok.valid);
    assert_eq!(ok.segments, vec!["One. 1/2", "Two. 2/2"]);
    let unnumbered = check(ValidationRequest {
        numbering: false,
        ..ValidationRequest::new(Platform::Bluesky, "One.\n---\nTwo.")
    });
    assert_eq!(unnumbered.segments, vec!["One.", "Two."]);
}

#[test]
fn explicit_segments_on_platforms_without_threads() {
    let m = images(1);
    let r = check(with_media(Platform::Instagram, "One.\n---\nTwo.", &m));
    assert_eq!(rules(&r), vec!["instagram.thread_unsupported"]);
    assert_eq!(r.segments.len(), 1);
    assert!(text(Platform::Linkedin, "no separators here").valid);
}

#[test]
fn media_rules_apply_once_for_a_thread() {
    let t = "word ".repeat(200);
    let m = images(4);
    let r = check(ValidationRequest {
        thread: true,
        ..with_media(Platform::X, &t, &m)
    });
    assert!(r.valid, "{:?}", r.issues);
    assert!(r.segments.len() > 1);
}

#[test]
fn report_serializes_to_json() {
    let r = text(Platform::Bluesky, &"a".repeat(301));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["platform"], "bluesky");
    assert_eq!(json["valid"], false);
    assert_eq!(json["length"], 301);
    assert_eq!(json["unit"], "graphemes");
    assert_eq!(json["issues"][0]["rule"], "bluesky.length");
    assert_eq!(json["segments"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- per-file media rules

fn probed_video(codec: &str, audio: Option<&str>, mime: &str, secs: f64) -> MediaSummary {
    MediaSummary {
        duration_secs: Some(secs),
        mime: Some(mime.into()),
        width: Some(1080),
        height: Some(1920),
        video_codec: Some(codec.into()),
        audio_codec: audio.map(Into::into),
        frame_rate: Some(30.0),
        ..MediaSummary::new(MediaKind::Video, 5_000_000)
    }
}

#[test]
fn video_duration_limits() {
    let long = vec![probed_video("h264", Some("aac"), "video/mp4", 141.0)];
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &long))),
        vec!["x.video_duration"]
    );
    let ok = vec![probed_video("h264", Some("aac"), "video/mp4", 140.0)];
    assert!(check(with_media(Platform::X, "hi", &ok)).valid);
    let short = vec![probed_video("h264", Some("aac"), "video/mp4", 2.0)];
    assert_eq!(
        rules(&check(ok_request(Platform::Tiktok, "hi", &short))),
        vec!["tiktok.video_duration"]
    );
}

#[test]
fn video_codecs_and_containers() {
    let webm = vec![probed_video("vp9", Some("opus"), "video/webm", 10.0)];
    let r = check(with_media(Platform::X, "hi", &webm));
    assert_eq!(rules(&r), vec!["x.video_format"]);
    assert!(
        r.issues[0].message.contains("ffmpeg"),
        "{}",
        r.issues[0].message
    );
    // TikTok takes VP9 in WebM; Mastodon and YouTube take anything.
    assert!(check(ok_request(Platform::Tiktok, "hi", &webm)).valid);
    assert!(check(ok_request(Platform::Mastodon, "hi", &webm)).valid);
    assert!(check(ok_request(Platform::Youtube, "hi", &webm)).valid);
    let mpeg4 = vec![probed_video("mpeg4", Some("aac"), "video/mp4", 10.0)];
    assert_eq!(
        rules(&check(ok_request(Platform::Instagram, "hi", &mpeg4))),
        vec!["instagram.video_format"]
    );
    assert!(psn_platforms::rules::media::needs_transcode(
        Platform::Instagram,
        &mpeg4[0]
    ));
    let hevc = vec![probed_video("hevc", Some("aac"), "video/quicktime", 10.0)];
    assert!(check(ok_request(Platform::Instagram, "hi", &hevc)).valid);
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &hevc))),
        vec!["x.video_format"]
    );
    // Nothing known about the codec: not judged.
    let unknown = vec![MediaSummary {
        mime: Some("video/mp4".into()),
        ..media(MediaKind::Video)
    }];
    assert!(check(with_media(Platform::X, "hi", &unknown)).valid);
}

#[test]
fn sizes_aspect_ratios_frame_rates_and_resolution() {
    let big_video = vec![MediaSummary {
        bytes: 600 * 1024 * 1024,
        ..probed_video("h264", Some("aac"), "video/mp4", 10.0)
    }];
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &big_video))),
        vec!["x.video_size"]
    );
    let big_image = vec![MediaSummary {
        bytes: 6 * 1024 * 1024,
        mime: Some("image/jpeg".into()),
        ..media(MediaKind::Image)
    }];
    assert_eq!(
        rules(&check(with_media(Platform::X, "hi", &big_image))),
        vec!["x.image_size"]
    );
    let wide = vec![MediaSummary {
        width: Some(3000),
        height: Some(1000),
        mime: Some("image/jpeg".into()),
        ..media(MediaKind::Image)
    }];
    assert_eq!(
        rules(&check(ok_request(Platform::Instagram, "hi", &wide))),
        vec!["instagram.aspect_ratio"]
    );
    let png = vec![MediaSummary {
        mime: Some("image/png".into()),
        ..media(MediaKind::Image)
    }];
    assert_eq!(
        rules(&check(ok_request(Platform::Instagram, "hi", &png))),
        vec!["instagram.image_format"]
    );
    let slow = vec![MediaSummary {
        frame_rate: Some(15.0),
        ..probed_video("h264", Some("aac"), "video/mp4", 10.0)
    }];
    assert_eq!(
        rules(&check(ok_request(Platform::Tiktok, "hi", &slow))),
        vec!["tiktok.frame_rate"]
    );
    let tiny = vec![MediaSummary {
        width: Some(320),
        height: Some(240),
        ..probed_video("h264", Some("aac"), "video/mp4", 10.0)
    }];
    assert_eq!(
        rules(&check(ok_request(Platform::Tiktok, "hi", &tiny))),
        vec!["tiktok.resolution"]
    );
    let gif = vec![media(MediaKind::Gif)];
    assert_eq!(
        rules(&check(ok_request(Platform::Instagram, "hi", &gif))),
        vec!["instagram.image_format"]
    );
}
