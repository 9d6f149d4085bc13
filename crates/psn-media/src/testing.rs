//! Fixture builders for tests (here and in the CLI's tests): MP4/MOV files with chosen codecs,
//! size, frame rate and duration, and images with EXIF/GPS, XMP, IPTC and C2PA metadata added.
//! Nothing here runs in production paths.

use img_parts::Bytes;
use img_parts::jpeg::{Jpeg, JpegSegment};
use img_parts::png::{Png, PngChunk};

/// Text inside the fixture metadata, so tests can assert on the bytes that it is gone.
pub const GPS_TEXT: &[u8] = b"PSN-FIXTURE-GPS 48.8584N 2.2945E";
pub const XMP_TEXT: &[u8] = b"PSN-FIXTURE-XMP CreatorTool=ImageGenerator";
pub const IPTC_TEXT: &[u8] = b"PSN-FIXTURE-IPTC byline";
pub const C2PA_TEXT: &[u8] = b"PSN-FIXTURE-C2PA manifest";

/// What an MP4 fixture contains.
#[derive(Debug, Clone)]
pub struct Mp4Spec {
    /// `ftyp` major brand: `isom` (MP4), `qt  ` (MOV).
    pub brand: [u8; 4],
    /// Video sample entry (`avc1`, `hvc1`, `vp09`, `mp4v`, …).
    pub video: Option<[u8; 4]>,
    /// Audio sample entry (`mp4a`, `Opus`, …).
    pub audio: Option<[u8; 4]>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration_secs: u32,
    /// Shown rotated by 90° (a phone's portrait video stored landscape).
    pub rotated: bool,
    /// Bytes of media data to append (zeros).
    pub mdat_bytes: usize,
}

impl Default for Mp4Spec {
    fn default() -> Self {
        Mp4Spec {
            brand: *b"isom",
            video: Some(*b"avc1"),
            audio: Some(*b"mp4a"),
            width: 1280,
            height: 720,
            fps: 30,
            duration_secs: 10,
            rotated: false,
            mdat_bytes: 1024,
        }
    }
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn matrix(rotated: bool) -> Vec<u8> {
    let one = 0x0001_0000i32;
    let (a, b, c, d) = if rotated {
        (0, one, -one, 0)
    } else {
        (one, 0, 0, one)
    };
    [a, b, 0, c, d, 0, 0, 0, 0x4000_0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn track(spec: &Mp4Spec, id: u32, handler: &[u8; 4], entry: [u8; 4]) -> Vec<u8> {
    let video = handler == b"vide";
    let (timescale, samples, delta) = if video {
        (spec.fps * 1000, spec.fps * spec.duration_secs, 1000u32)
    } else {
        (48_000, spec.duration_secs * 48_000 / 1024, 1024)
    };
    let mut tkhd = vec![0, 0, 0, 3];
    tkhd.extend_from_slice(&[0; 8]);
    tkhd.extend_from_slice(&id.to_be_bytes());
    tkhd.extend_from_slice(&[0; 4]);
    tkhd.extend_from_slice(&(spec.duration_secs * 1000).to_be_bytes());
    tkhd.extend_from_slice(&[0; 16]);
    tkhd.extend_from_slice(&matrix(video && spec.rotated));
    let (w, h) = if video {
        (spec.width, spec.height)
    } else {
        (0, 0)
    };
    tkhd.extend_from_slice(&(w << 16).to_be_bytes());
    tkhd.extend_from_slice(&(h << 16).to_be_bytes());
    let mut mdhd = vec![0; 12];
    mdhd.extend_from_slice(&timescale.to_be_bytes());
    mdhd.extend_from_slice(&(samples * delta).to_be_bytes());
    mdhd.extend_from_slice(&[0x55, 0xC4, 0, 0]);
    let mut hdlr = vec![0; 8];
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0; 13]);
    let mut sample_entry = vec![0u8; 78];
    if video {
        sample_entry[24..26].copy_from_slice(&(spec.width as u16).to_be_bytes());
        sample_entry[26..28].copy_from_slice(&(spec.height as u16).to_be_bytes());
    }
    let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend_from_slice(&bx(&entry, &sample_entry));
    let mut stts = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stts.extend_from_slice(&samples.to_be_bytes());
    stts.extend_from_slice(&delta.to_be_bytes());
    let stbl = bx(b"stbl", &cat(&[bx(b"stsd", &stsd), bx(b"stts", &stts)]));
    let minf = bx(b"minf", &stbl);
    let mdia = bx(
        b"mdia",
        &cat(&[bx(b"mdhd", &mdhd), bx(b"hdlr", &hdlr), minf]),
    );
    bx(b"trak", &cat(&[bx(b"tkhd", &tkhd), mdia]))
}

/// An MP4/MOV file: `ftyp`, `moov` (movie header and one track per stream), `mdat`.
pub fn mp4(spec: &Mp4Spec) -> Vec<u8> {
    let mut ftyp = spec.brand.to_vec();
    ftyp.extend_from_slice(&[0, 0, 2, 0]);
    ftyp.extend_from_slice(&spec.brand);
    ftyp.extend_from_slice(b"isom");
    let mut mvhd = vec![0; 12];
    mvhd.extend_from_slice(&1000u32.to_be_bytes());
    mvhd.extend_from_slice(&(spec.duration_secs * 1000).to_be_bytes());
    mvhd.extend_from_slice(&[0; 80]);
    let mut moov = bx(b"mvhd", &mvhd);
    if let Some(v) = spec.video {
        moov.extend_from_slice(&track(spec, 1, b"vide", v));
    }
    if let Some(a) = spec.audio {
        moov.extend_from_slice(&track(spec, 2, b"soun", a));
    }
    cat(&[
        bx(b"ftyp", &ftyp),
        bx(b"moov", &moov),
        bx(b"mdat", &vec![0u8; spec.mdat_bytes]),
    ])
}

/// A minimal EXIF block (TIFF header) carrying [`GPS_TEXT`].
pub fn exif_payload() -> Vec<u8> {
    let mut v = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    v.extend_from_slice(GPS_TEXT);
    v
}

/// `jpeg` with EXIF (GPS), XMP, IPTC and C2PA (JUMBF) segments added after the first segment.
pub fn jpeg_with_metadata(jpeg: &[u8]) -> Vec<u8> {
    let mut image = Jpeg::from_bytes(Bytes::copy_from_slice(jpeg)).expect("a JPEG");
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>".to_vec();
    xmp.extend_from_slice(XMP_TEXT);
    xmp.extend_from_slice(b"</x:xmpmeta>");
    let mut iptc = b"Photoshop 3.0\08BIM\x04\x04".to_vec();
    iptc.extend_from_slice(IPTC_TEXT);
    let mut c2pa = b"JP\0\x01\0\0\0\x01\0\0\0\x20jumb".to_vec();
    c2pa.extend_from_slice(C2PA_TEXT);
    let segments = [
        (0xE1, exif_payload()),
        (0xE1, xmp),
        (0xED, iptc),
        (0xEB, c2pa),
        (0xFE, b"generated by an image model".to_vec()),
    ];
    for (i, (marker, contents)) in segments.into_iter().enumerate() {
        image.segments_mut().insert(
            1 + i,
            JpegSegment::new_with_contents(marker, Bytes::from(contents)),
        );
    }
    image.encoder().bytes().to_vec()
}

/// `png` with `eXIf` (GPS), XMP (`iTXt`), a `tEXt` comment and a C2PA `caBX` chunk added
/// before the image data.
pub fn png_with_metadata(png: &[u8]) -> Vec<u8> {
    let mut image = Png::from_bytes(Bytes::copy_from_slice(png)).expect("a PNG");
    let mut xmp = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    xmp.extend_from_slice(XMP_TEXT);
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(IPTC_TEXT);
    let chunks = [
        (*b"eXIf", exif_payload()[6..].to_vec()),
        (*b"iTXt", xmp),
        (*b"tEXt", text),
        (*b"caBX", C2PA_TEXT.to_vec()),
    ];
    for (i, (kind, contents)) in chunks.into_iter().enumerate() {
        image
            .chunks_mut()
            .insert(1 + i, PngChunk::new(kind, Bytes::from(contents)));
    }
    image.encoder().bytes().to_vec()
}

/// `webp` with an `EXIF` (GPS) and an `XMP ` chunk added (the VP8X header is added or updated).
pub fn webp_with_metadata(webp: &[u8]) -> Vec<u8> {
    use img_parts::ImageEXIF;
    use img_parts::riff::{RiffChunk, RiffContent};
    let mut image =
        img_parts::webp::WebP::from_bytes(Bytes::copy_from_slice(webp)).expect("a WebP");
    image.set_exif(Some(Bytes::from(exif_payload()[6..].to_vec())));
    let mut xmp = b"<x:xmpmeta>".to_vec();
    xmp.extend_from_slice(XMP_TEXT);
    image.chunks_mut().push(RiffChunk::new(
        *b"XMP ",
        RiffContent::Data(Bytes::from(xmp)),
    ));
    image.encoder().bytes().to_vec()
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
