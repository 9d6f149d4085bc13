//! Metadata stripping without re-encoding (seed 000, pitfall 5): generated images carry EXIF,
//! XMP, IPTC and C2PA provenance that platforms read to label or suppress content, and photos
//! carry GPS positions. The containers are rewritten without those segments and chunks; the
//! compressed picture data is copied unchanged, so the pixels are identical.
//!
//! - JPEG: every APPn segment except JFIF (APP0), the ICC colour profile (APP2 `ICC_PROFILE`)
//!   and Adobe's colour-transform marker (APP14) — so EXIF and XMP (APP1), IPTC (APP13),
//!   C2PA/JUMBF (APP11) and vendor blocks go — and comments (COM).
//! - PNG: `eXIf`, `tEXt`, `iTXt`, `zTXt`, `tIME` and the C2PA `caBX` chunk.
//! - WebP: the `EXIF` and `XMP ` chunks (the VP8X flags are updated).
//! - GIF carries no EXIF/GPS and is copied as is. HEIC cannot be cleaned without re-encoding
//!   and is refused with a hint to convert it.

use img_parts::{Bytes, ImageEXIF};
use serde::Serialize;

use crate::MediaError;
use crate::probe::Format;

/// The cleaned bytes and what was removed (for the user and the tests).
#[derive(Debug, Clone, Serialize)]
pub struct Stripped {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// One entry per removed segment or chunk: `exif`, `xmp`, `iptc`, `c2pa`, `comment`, …
    pub removed: Vec<String>,
}

const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP11: u8 = 0xEB;
const APP13: u8 = 0xED;
const APP14: u8 = 0xEE;
const COM: u8 = 0xFE;

fn jpeg_segment_name(marker: u8, contents: &[u8]) -> String {
    match marker {
        APP1 if contents.starts_with(b"Exif\0") => "exif".into(),
        APP1 if contents.starts_with(b"http://ns.adobe.com/xap/1.0/")
            || contents.starts_with(b"http://ns.adobe.com/xmp/extension/") =>
        {
            "xmp".into()
        }
        APP11 => "c2pa".into(),
        APP13 => "iptc".into(),
        COM => "comment".into(),
        m => format!("app{}", m - APP0),
    }
}

/// Removes the metadata from an image of `format`.
pub fn strip_metadata(format: Format, data: &[u8]) -> Result<Stripped, MediaError> {
    let mut removed = Vec::new();
    let bytes = match format {
        Format::Jpeg => {
            let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(Bytes::copy_from_slice(data))
                .map_err(|e| MediaError::Invalid(format!("the JPEG is damaged ({e})")))?;
            jpeg.segments_mut().retain(|s| {
                let m = s.marker();
                let keep = match m {
                    APP0 | APP14 => true,
                    APP2 => s.contents().starts_with(b"ICC_PROFILE\0"),
                    0xE1..=0xEF | COM => false,
                    _ => true,
                };
                if !keep {
                    removed.push(jpeg_segment_name(m, s.contents()));
                }
                keep
            });
            jpeg.encoder().bytes().to_vec()
        }
        Format::Png => {
            let mut png = img_parts::png::Png::from_bytes(Bytes::copy_from_slice(data))
                .map_err(|e| MediaError::Invalid(format!("the PNG is damaged ({e})")))?;
            png.chunks_mut().retain(|c| {
                let name = match &c.kind() {
                    b"eXIf" => Some("exif"),
                    b"iTXt" if c.contents().starts_with(b"XML:com.adobe.xmp\0") => Some("xmp"),
                    b"iTXt" | b"tEXt" | b"zTXt" => Some("text"),
                    b"tIME" => Some("time"),
                    b"caBX" => Some("c2pa"),
                    _ => None,
                };
                if let Some(n) = name {
                    removed.push(n.to_string());
                }
                name.is_none()
            });
            png.encoder().bytes().to_vec()
        }
        Format::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(Bytes::copy_from_slice(data))
                .map_err(|e| MediaError::Invalid(format!("the WebP is damaged ({e})")))?;
            if webp.has_chunk(*b"EXIF") {
                removed.push("exif".into());
            }
            if webp.has_chunk(*b"XMP ") {
                removed.push("xmp".into());
                webp.remove_chunks_by_id(*b"XMP ");
            }
            // Also recomputes the VP8X flags.
            webp.set_exif(None);
            webp.encoder().bytes().to_vec()
        }
        Format::Gif => data.to_vec(),
        Format::Heic => {
            return Err(MediaError::Invalid(
                "psn cannot remove the metadata (EXIF, GPS position) from a HEIC image without re-encoding it: \
                 convert it to JPEG first (for example `heif-convert photo.heic photo.jpg`)"
                    .into(),
            ));
        }
        _ => data.to_vec(),
    };
    Ok(Stripped { bytes, removed })
}
