//! A generic upload server for the shared upload flows' own tests: a resumable
//! (`Content-Range`) session protocol and a multipart protocol with part ETags, both strict and
//! both able to break a transfer in the middle.
//!
//! Resumable (the YouTube / Google protocol):
//! - `POST /resumable` `{"total_bytes"}` → 200 `{"upload_url"}` (also in `Location`);
//! - `PUT /resumable/{id}` with `Content-Range: bytes A-B/TOTAL` and exactly `B-A+1` bytes;
//!   `A` must be the number of bytes the session has (else 400: no gap, no overlap); answers
//!   `308` with `Range: bytes=0-N` until the last byte, then `201 {"media_id"}`;
//! - `PUT /resumable/{id}` with `Content-Range: bytes */TOTAL` and no body: `308` with the
//!   received range (none when nothing arrived), or `200 {"media_id"}` when complete;
//! - unknown or expired session → 404.
//!
//! Multipart (the LinkedIn / S3 protocol):
//! - `POST /multipart` `{"total_bytes","part_size"}` → `{"upload_id","media_id","parts":[{"url",
//!   "first_byte","last_byte"}]}`;
//! - `PUT /multipart/{upload_id}/{n}` with exactly that part's bytes → 200 with an `ETag`;
//! - `POST /multipart/{upload_id}/complete` `{"etags":[…]}` → every part's ETag in order (else
//!   400) → `{"media_id"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde_json::{Value, json};

use crate::server::{close_connection, serve};

/// One `PUT` to a resumable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumablePut {
    /// A range starting at this offset with this many bytes.
    Range { start: u64, len: usize },
    /// `bytes */TOTAL`: what do you have?
    Query,
}

/// A resumable session.
#[derive(Debug, Clone, Default)]
pub struct ResumableSession {
    pub id: String,
    pub total: u64,
    pub data: Vec<u8>,
    pub complete: bool,
    pub puts: Vec<ResumablePut>,
}

/// A multipart upload.
#[derive(Debug, Clone, Default)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub media_id: String,
    pub total: u64,
    pub part_size: u64,
    /// Each part's bytes and ETag, once received.
    pub parts: Vec<Option<(Vec<u8>, String)>>,
    /// Part numbers in order of arrival (failed tries included).
    pub part_puts: Vec<usize>,
    pub completed: bool,
}

impl MultipartUpload {
    pub fn content(&self) -> Vec<u8> {
        self.parts
            .iter()
            .flatten()
            .flat_map(|(d, _)| d.clone())
            .collect()
    }
}

#[derive(Debug, Default)]
struct UploadsState {
    sessions: Vec<ResumableSession>,
    multiparts: Vec<MultipartUpload>,
    /// The next range `PUT` starting at this offset keeps only `keep` bytes, then the
    /// connection drops.
    cut: Option<(u64, usize)>,
    /// The next `PUT` of these parts fails (connection dropped, nothing kept).
    fail_parts: Vec<usize>,
    /// Sessions that expired (404).
    expired: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<UploadsState>,
    base_url: Mutex<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, UploadsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running upload server. Clones share it.
#[derive(Debug, Clone)]
pub struct FakeUploads {
    shared: Arc<Shared>,
    base_url: String,
}

impl FakeUploads {
    pub async fn start() -> FakeUploads {
        let shared = Arc::new(Shared {
            state: Mutex::new(UploadsState::default()),
            base_url: Mutex::new(String::new()),
        });
        let router = Router::new()
            .route("/resumable", post(resumable_start))
            .route("/resumable/{id}", put(resumable_put))
            .route("/multipart", post(multipart_start))
            .route("/multipart/{upload}/complete", post(multipart_complete))
            .route("/multipart/{upload}/{part}", put(multipart_put))
            .with_state(shared.clone());
        let addr = serve(router)
            .await
            .expect("the upload fake could not bind 127.0.0.1");
        let base_url = format!("http://{addr}");
        *shared.base_url.lock().unwrap_or_else(|p| p.into_inner()) = base_url.clone();
        FakeUploads { shared, base_url }
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The next range `PUT` that starts at `offset` is cut after `keep` bytes: the session
    /// keeps them and the connection drops without an answer.
    pub fn cut_transfer(&self, offset: u64, keep: usize) {
        self.shared.lock().cut = Some((offset, keep));
    }

    /// The next `PUT` of part `n` (0-based) drops the connection, keeping nothing.
    pub fn fail_part_once(&self, n: usize) {
        self.shared.lock().fail_parts.push(n);
    }

    /// Makes a session expire: every later request to it answers 404.
    pub fn expire_session(&self, id: &str) {
        self.shared.lock().expired.push(id.to_owned());
    }

    pub fn sessions(&self) -> Vec<ResumableSession> {
        self.shared.lock().sessions.clone()
    }

    pub fn multiparts(&self) -> Vec<MultipartUpload> {
        self.shared.lock().multiparts.clone()
    }
}

fn bad(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn base(shared: &Shared) -> String {
    shared
        .base_url
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn total_of(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("total_bytes")?
        .as_u64()
        .filter(|&t| t > 0)
}

async fn resumable_start(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(total) = total_of(&body) else {
        return bad("total_bytes must be a positive integer");
    };
    let mut state = shared.lock();
    let id = format!("s{}", state.sessions.len() + 1);
    state.sessions.push(ResumableSession {
        id: id.clone(),
        total,
        ..ResumableSession::default()
    });
    let url = format!("{}/resumable/{id}", base(&shared));
    let mut response = axum::Json(json!({ "upload_url": url })).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn incomplete(received: u64) -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    if received > 0
        && let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", received - 1))
    {
        response.headers_mut().insert(header::RANGE, v);
    }
    response
}

fn finished(status: StatusCode, id: &str) -> Response {
    (
        status,
        axum::Json(json!({ "media_id": format!("res-{id}") })),
    )
        .into_response()
}

async fn resumable_put(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    if state.expired.contains(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let cut = state.cut;
    let Some(session) = state.sessions.iter_mut().find(|s| s.id == id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(range) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .map(str::to_owned)
    else {
        return bad("Content-Range is required");
    };
    let Some((span, total)) = range.split_once('/') else {
        return bad("malformed Content-Range");
    };
    if total.parse::<u64>().ok() != Some(session.total) {
        return bad("Content-Range total differs from the session's");
    }
    let received = session.data.len() as u64;
    if span == "*" {
        if !body.is_empty() {
            return bad("a status query has no body");
        }
        session.puts.push(ResumablePut::Query);
        return if session.complete {
            finished(StatusCode::OK, &id)
        } else {
            incomplete(received)
        };
    }
    let Some((first, last)) = span
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
    else {
        return bad("malformed Content-Range");
    };
    if last < first || last - first + 1 != body.len() as u64 || last >= session.total {
        return bad("Content-Range does not match the body");
    }
    session.puts.push(ResumablePut::Range {
        start: first,
        len: body.len(),
    });
    if session.complete {
        return bad("the upload is already complete");
    }
    if first != received {
        return bad(&format!(
            "expected the range to start at byte {received}, not {first}"
        ));
    }
    if let Some((offset, keep)) = cut
        && offset == first
    {
        let keep = keep.min(body.len());
        session.data.extend_from_slice(&body[..keep]);
        state.cut = None;
        return close_connection();
    }
    session.data.extend_from_slice(&body);
    if session.data.len() as u64 == session.total {
        session.complete = true;
        return finished(StatusCode::CREATED, &id);
    }
    incomplete(session.data.len() as u64)
}

async fn multipart_start(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Some(total) = total_of(&body) else {
        return bad("total_bytes must be a positive integer");
    };
    let part_size = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("part_size")?.as_u64())
        .filter(|&p| p > 0)
        .unwrap_or(4 * 1024 * 1024);
    let mut state = shared.lock();
    let n = state.multiparts.len() + 1;
    let upload_id = format!("u{n}");
    let count = total.div_ceil(part_size) as usize;
    let root = base(&shared);
    let parts: Vec<Value> = (0..count)
        .map(|i| {
            let first = i as u64 * part_size;
            json!({
                "url": format!("{root}/multipart/{upload_id}/{i}"),
                "first_byte": first,
                "last_byte": (first + part_size).min(total) - 1,
            })
        })
        .collect();
    state.multiparts.push(MultipartUpload {
        upload_id: upload_id.clone(),
        media_id: format!("urn:li:video:{n}"),
        total,
        part_size,
        parts: vec![None; count],
        ..MultipartUpload::default()
    });
    axum::Json(
        json!({ "upload_id": upload_id, "media_id": format!("urn:li:video:{n}"), "parts": parts }),
    )
    .into_response()
}

async fn multipart_put(
    State(shared): State<Arc<Shared>>,
    Path((upload, part)): Path<(String, usize)>,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let fail = state.fail_parts.iter().position(|&p| p == part);
    if let Some(i) = fail {
        state.fail_parts.remove(i);
    }
    let Some(m) = state.multiparts.iter_mut().find(|m| m.upload_id == upload) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if part >= m.parts.len() {
        return bad("no such part");
    }
    m.part_puts.push(part);
    if fail.is_some() {
        return close_connection();
    }
    if m.completed {
        return bad("the upload is already complete");
    }
    let first = part as u64 * m.part_size;
    let expected = (first + m.part_size).min(m.total) - first;
    if body.len() as u64 != expected {
        return bad(&format!(
            "part {part} must be {expected} bytes, not {}",
            body.len()
        ));
    }
    let checksum = body
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let etag = format!("\"{part}-{checksum:x}\"");
    m.parts[part] = Some((body.to_vec(), etag.clone()));
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

async fn multipart_complete(
    State(shared): State<Arc<Shared>>,
    Path(upload): Path<String>,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let Some(m) = state.multiparts.iter_mut().find(|m| m.upload_id == upload) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etags: Vec<String> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("etags")?.clone()).ok())
        .unwrap_or_default();
    let expected: Vec<Option<String>> = m
        .parts
        .iter()
        .map(|p| p.as_ref().map(|(_, e)| e.clone()))
        .collect();
    if expected.iter().any(Option::is_none) {
        return bad("not every part was uploaded");
    }
    let expected: Vec<String> = expected.into_iter().flatten().collect();
    if etags != expected {
        return bad("the ETags do not match the parts, in order");
    }
    m.completed = true;
    let media: HashMap<&str, &str> = HashMap::from([("media_id", m.media_id.as_str())]);
    axum::Json(json!(media)).into_response()
}
