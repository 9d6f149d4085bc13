//! The media library on real files: probing generated images and movies, refusing bad files,
//! stripping metadata (verified on the bytes and on the decoded pixels), storing by content
//! hash, and public URLs from a real S3-compatible server (`PSN_TEST_S3_URL`, started by
//! `scripts/test.sh`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use psn_domain::MediaKind;
use psn_media::probe::{Format, probe_file};
use psn_media::public::PublicMedia;
use psn_media::testing::{self, Mp4Spec, contains};
use psn_media::{Library, MediaError};

fn rgb_image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(rgb_image(w, h))
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(rgb_image(w, h))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn pixels(bytes: &[u8]) -> Vec<u8> {
    image::load_from_memory(bytes).unwrap().to_rgb8().into_raw()
}

fn assert_invalid(result: Result<impl std::fmt::Debug, MediaError>, needle: &str) {
    match result {
        Err(MediaError::Invalid(msg)) => assert!(
            msg.contains(needle),
            "expected '{needle}' in the message: {msg}"
        ),
        other => panic!("expected an invalid-file error with '{needle}', got {other:?}"),
    }
}

#[tokio::test]
async fn jpeg_metadata_is_stripped_and_the_pixels_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let dirty = testing::jpeg_with_metadata(&jpeg(64, 48));
    for needle in [
        testing::GPS_TEXT,
        testing::XMP_TEXT,
        testing::IPTC_TEXT,
        testing::C2PA_TEXT,
    ] {
        assert!(contains(&dirty, needle), "the fixture carries its metadata");
    }
    let original = write(dir.path(), "generated.jpg", &dirty);
    let prepared = Library::prepare(&original, None).unwrap();
    assert_eq!(prepared.probe.format, Format::Jpeg);
    assert_eq!(
        (prepared.probe.width, prepared.probe.height),
        (Some(64), Some(48))
    );
    for what in ["exif", "xmp", "iptc", "c2pa", "comment"] {
        assert!(
            prepared.removed.iter().any(|r| r == what),
            "{what} removed: {:?}",
            prepared.removed
        );
    }
    let library = Library::new(dir.path().join("content/media"));
    let stored = library.store(&prepared).unwrap();
    let clean = std::fs::read(&stored.path).unwrap();
    for needle in [
        testing::GPS_TEXT,
        testing::XMP_TEXT,
        testing::IPTC_TEXT,
        testing::C2PA_TEXT,
        b"Exif\0\0".as_slice(),
        b"http://ns.adobe.com/xap".as_slice(),
        b"Photoshop 3.0".as_slice(),
        b"jumb".as_slice(),
    ] {
        assert!(
            !contains(&clean, needle),
            "{} left in the stored file",
            String::from_utf8_lossy(needle)
        );
    }
    // Not re-encoded: the compressed data is the same, so the decoded pixels are identical.
    assert_eq!(pixels(&clean), pixels(&dirty));
    assert_eq!(pixels(&clean), pixels(&jpeg(64, 48)));
    // The original is untouched and the stored copy is named by its hash.
    assert_eq!(std::fs::read(&original).unwrap(), dirty);
    assert_eq!(
        stored.path.file_name().unwrap().to_str().unwrap(),
        format!("{}.jpg", stored.sha256)
    );
    assert_eq!(stored.probe.bytes, clean.len() as u64);
}

#[tokio::test]
async fn png_metadata_is_stripped_and_the_pixels_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let dirty = testing::png_with_metadata(&png(40, 30));
    let original = write(dir.path(), "chart.png", &dirty);
    let prepared = Library::prepare(&original, None).unwrap();
    let stored = Library::new(dir.path().join("media"))
        .store(&prepared)
        .unwrap();
    let clean = std::fs::read(&stored.path).unwrap();
    for needle in [
        testing::GPS_TEXT,
        testing::XMP_TEXT,
        testing::IPTC_TEXT,
        testing::C2PA_TEXT,
    ] {
        assert!(contains(&dirty, needle));
        assert!(!contains(&clean, needle));
    }
    for chunk in [b"eXIf", b"iTXt", b"tEXt", b"caBX"] {
        assert!(!contains(&clean, chunk));
    }
    assert_eq!(pixels(&clean), pixels(&dirty));
    assert_eq!(std::fs::read(&original).unwrap(), dirty);
}

#[tokio::test]
async fn webp_metadata_is_stripped_and_the_pixels_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(rgb_image(20, 10))
        .write_to(&mut plain, image::ImageFormat::WebP)
        .unwrap();
    let dirty = testing::webp_with_metadata(plain.get_ref());
    assert!(contains(&dirty, testing::GPS_TEXT) && contains(&dirty, testing::XMP_TEXT));
    let original = write(dir.path(), "sticker.webp", &dirty);
    let prepared = Library::prepare(&original, None).unwrap();
    assert_eq!(prepared.probe.format, Format::Webp);
    assert_eq!(
        (prepared.probe.width, prepared.probe.height),
        (Some(20), Some(10))
    );
    let stored = Library::new(dir.path().join("media"))
        .store(&prepared)
        .unwrap();
    let clean = std::fs::read(&stored.path).unwrap();
    assert!(!contains(&clean, testing::GPS_TEXT));
    assert!(!contains(&clean, testing::XMP_TEXT));
    assert!(!contains(&clean, b"EXIF") && !contains(&clean, b"XMP "));
    assert_eq!(pixels(&clean), pixels(&dirty));
    assert_eq!(pixels(&clean), pixels(plain.get_ref()));
}

#[tokio::test]
async fn the_same_content_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.jpg",
        &testing::jpeg_with_metadata(&jpeg(8, 8)),
    );
    let b = write(dir.path(), "b.jpg", &jpeg(8, 8));
    let library = Library::new(dir.path().join("media"));
    let first = library.store(&Library::prepare(&a, None).unwrap()).unwrap();
    let second = library.store(&Library::prepare(&b, None).unwrap()).unwrap();
    assert!(first.new);
    assert!(
        !second.new,
        "same pixels and no metadata: the same stored file"
    );
    assert_eq!(first.path, second.path);
    assert_eq!(library.files(), vec![first.path.clone()]);
}

#[tokio::test]
async fn mp4_and_mov_are_probed_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = write(
        dir.path(),
        "clip.mp4",
        &testing::mp4(&Mp4Spec {
            width: 1920,
            height: 1080,
            fps: 25,
            duration_secs: 12,
            ..Mp4Spec::default()
        }),
    );
    let p = probe_file(&mp4, None).unwrap();
    assert_eq!(p.format, Format::Mp4);
    assert_eq!(p.kind(), MediaKind::Video);
    assert_eq!(p.mime(), "video/mp4");
    assert_eq!((p.width, p.height), (Some(1920), Some(1080)));
    assert_eq!(p.duration_secs, Some(12.0));
    assert_eq!(p.video_codec.as_deref(), Some("h264"));
    assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    assert_eq!(p.frame_rate, Some(25.0));
    assert_eq!(p.aspect_ratio().as_deref(), Some("16:9"));

    let mov = write(
        dir.path(),
        "portrait.mov",
        &testing::mp4(&Mp4Spec {
            brand: *b"qt  ",
            video: Some(*b"hvc1"),
            audio: None,
            width: 1920,
            height: 1080,
            rotated: true,
            ..Mp4Spec::default()
        }),
    );
    let p = probe_file(&mov, None).unwrap();
    assert_eq!(p.format, Format::Mov);
    assert_eq!(p.mime(), "video/quicktime");
    assert_eq!(
        (p.width, p.height),
        (Some(1080), Some(1920)),
        "rotation applied"
    );
    assert_eq!(p.video_codec.as_deref(), Some("hevc"));
    assert_eq!(p.audio_codec, None);
    assert_eq!(p.aspect_ratio().as_deref(), Some("9:16"));
}

#[tokio::test]
async fn bad_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.jpg", b"");
    assert_invalid(probe_file(&empty, None), "empty (0 bytes)");

    let movie = testing::mp4(&Mp4Spec {
        mdat_bytes: 4096,
        ..Mp4Spec::default()
    });
    let truncated = write(dir.path(), "cut.mp4", &movie[..movie.len() - 1000]);
    assert_invalid(probe_file(&truncated, None), "truncated");

    // Only the file type box: the movie header never made it.
    let no_moov = write(dir.path(), "header-only.mp4", &movie[..24]);
    assert_invalid(probe_file(&no_moov, None), "no movie header");

    let jpeg_bytes = jpeg(16, 16);
    let cut_jpeg = write(dir.path(), "cut.jpg", &jpeg_bytes[..jpeg_bytes.len() / 2]);
    assert_invalid(probe_file(&cut_jpeg, None), "truncated");

    let png_bytes = png(16, 16);
    let cut_png = write(dir.path(), "cut.png", &png_bytes[..png_bytes.len() - 20]);
    assert!(probe_file(&cut_png, None).unwrap_err().is_invalid_input());

    let renamed = write(dir.path(), "photo.png", &jpeg_bytes);
    assert_invalid(probe_file(&renamed, None), "rename it to photo.jpg");

    let text = write(
        dir.path(),
        "notes.mp4",
        b"these are not the frames you are looking for",
    );
    assert_invalid(probe_file(&text, None), "not an image or video");

    let audio_only = write(
        dir.path(),
        "podcast.mp4",
        &testing::mp4(&Mp4Spec {
            video: None,
            ..Mp4Spec::default()
        }),
    );
    assert_invalid(probe_file(&audio_only, None), "no video track");

    let heic = write(
        dir.path(),
        "phone.heic",
        b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
    );
    assert_invalid(Library::prepare(&heic, None), "convert it to JPEG");

    let mkv = write(
        dir.path(),
        "clip.mkv",
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01matroska......",
    );
    assert_invalid(probe_file(&mkv, None), "install ffmpeg");
}

#[test]
fn public_configuration_is_validated() {
    let none = PublicMedia::from_vars(&|_| None).unwrap();
    assert!(none.is_none());
    let partial = PublicMedia::from_vars(&|k| {
        (k == "PSN_MEDIA_S3_ENDPOINT").then(|| "http://127.0.0.1:9".to_string())
    });
    assert_invalid(partial, "PSN_MEDIA_S3_BUCKET");
    let ttl =
        PublicMedia::from_vars(&|k| (k == "PSN_MEDIA_URL_TTL_SECS").then(|| "9999999".to_string()));
    assert_invalid(ttl, "7 days");
    let secret = "s3cr3t-never-printed";
    let s3 = PublicMedia::from_vars(&|k| match k {
        "PSN_MEDIA_S3_ENDPOINT" => Some("http://127.0.0.1:9".into()),
        "PSN_MEDIA_S3_BUCKET" => Some("media".into()),
        "PSN_MEDIA_S3_ACCESS_KEY_ID" => Some("key".into()),
        "PSN_MEDIA_S3_SECRET_ACCESS_KEY" => Some(secret.into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    assert!(!format!("{s3:?}").contains(secret));
    assert!(!s3.describe().contains(secret));
}

#[tokio::test]
async fn a_public_base_url_names_the_library_file() {
    let dir = tempfile::tempdir().unwrap();
    let original = write(dir.path(), "a.jpg", &jpeg(8, 8));
    let stored = Library::new(dir.path().join("media"))
        .store(&Library::prepare(&original, None).unwrap())
        .unwrap();
    let public = PublicMedia::from_vars(&|k| {
        (k == "PSN_MEDIA_PUBLIC_BASE_URL").then(|| "https://social.example.com/psn".to_string())
    })
    .unwrap()
    .unwrap();
    let url = public.url_for(&stored.path, "image/jpeg").await.unwrap();
    assert_eq!(
        url.url,
        format!("https://social.example.com/psn/media/{}.jpg", stored.sha256)
    );
    assert!(
        public.url_for(&original, "image/jpeg").await.is_err(),
        "only library files"
    );
}

/// The S3-compatible server started by `scripts/test.sh` (moto in server mode). Under CI its
/// absence is a failure; elsewhere the test says why it did not run.
fn s3_url() -> Option<String> {
    match std::env::var("PSN_TEST_S3_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PSN_TEST_S3_URL is not set under CI: scripts/test.sh starts the S3 server")
        }
        _ => {
            eprintln!(
                "skipped: PSN_TEST_S3_URL is not set (scripts/test.sh starts an S3-compatible server)"
            );
            None
        }
    }
}

fn s3_config(url: &str, bucket: &str) -> PublicMedia {
    let url = url.to_string();
    let bucket = bucket.to_string();
    PublicMedia::from_vars(&move |k| match k {
        "PSN_MEDIA_S3_ENDPOINT" => Some(url.clone()),
        "PSN_MEDIA_S3_BUCKET" => Some(bucket.clone()),
        "PSN_MEDIA_S3_ACCESS_KEY_ID" => Some("psn-test".into()),
        "PSN_MEDIA_S3_SECRET_ACCESS_KEY" => Some("psn-test-secret".into()),
        "PSN_MEDIA_URL_TTL_SECS" => Some("600".into()),
        _ => None,
    })
    .unwrap()
    .unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

#[tokio::test]
async fn s3_uploads_once_and_presigned_links_serve_the_stored_bytes() {
    let Some(url) = s3_url() else { return };
    let bucket = unique("psn-media");
    let public = s3_config(&url, &bucket);
    let PublicMedia::S3(s3) = &public else {
        panic!("S3 configured")
    };
    let missing = public.check().await.unwrap_err().to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    s3.create_bucket().await.unwrap();
    assert!(public.check().await.unwrap().contains(&bucket));

    let dir = tempfile::tempdir().unwrap();
    let original = write(
        dir.path(),
        "a.jpg",
        &testing::jpeg_with_metadata(&jpeg(32, 32)),
    );
    let stored = Library::new(dir.path().join("media"))
        .store(&Library::prepare(&original, None).unwrap())
        .unwrap();
    let first = public.url_for(&stored.path, "image/jpeg").await.unwrap();
    assert!(first.uploaded);
    assert!(first.expires_at.is_some());
    assert!(first.url.contains("X-Amz-Signature="), "{}", first.url);
    let second = public.url_for(&stored.path, "image/jpeg").await.unwrap();
    assert!(
        !second.uploaded,
        "already in the bucket: not uploaded again"
    );

    let resp = reqwest::get(&first.url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        std::fs::read(&stored.path).unwrap().as_slice()
    );
    assert!(
        !contains(&body, testing::GPS_TEXT),
        "the bucket holds the stripped copy"
    );
}
