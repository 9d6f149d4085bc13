//! A strict `multipart/form-data` reader for the fakes' upload endpoints.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};

/// One field of a form: its bytes, and the file name and content type of a file field.
#[derive(Debug, Clone)]
pub struct FormField {
    pub data: Vec<u8>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

impl FormField {
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// Parses a `multipart/form-data` body. `Err` says why it is not one (wrong content type, no
/// boundary, malformed part, a field given twice).
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, FormField>, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (mime, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!(
            "Content-Type must be multipart/form-data, not {content_type:?}"
        ));
    }
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .next()
        .ok_or("the multipart Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut fields = BTreeMap::new();
    let mut rest = body;
    // Preamble up to the first delimiter.
    let start = find(rest, &delimiter).ok_or("no multipart delimiter in the body")?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart delimiter")?;
        let headers_end = find(rest, b"\r\n\r\n").ok_or("a multipart part has no header end")?;
        let head =
            std::str::from_utf8(&rest[..headers_end]).map_err(|_| "non-UTF-8 part headers")?;
        rest = &rest[headers_end + 4..];
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let end = find(rest, &next_delimiter).ok_or("a multipart part is not terminated")?;
        let data = rest[..end].to_vec();
        rest = &rest[end + next_delimiter.len()..];
        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let (key, value) = line.split_once(':').ok_or("malformed part header")?;
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    if let Some((k, v)) = param.trim().split_once('=') {
                        let v = v.trim().trim_matches('"').to_owned();
                        match k.trim() {
                            "name" => name = Some(v),
                            "filename" => file_name = Some(v),
                            _ => {}
                        }
                    }
                }
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let name = name.ok_or("a multipart part has no name")?;
        if fields.contains_key(&name) {
            return Err(format!("the field {name:?} is given twice"));
        }
        fields.insert(
            name,
            FormField {
                data,
                file_name,
                content_type,
            },
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
