//! A strict, stateful fake of the Mastodon API parts psn uses.
//!
//! Mastodon endpoints:
//! - `POST /api/v1/statuses` — bearer token of a known account (else 401
//!   `{"error":"The access token is invalid"}`); a JSON or form body. Then, as Mastodon does:
//!   `in_reply_to_id`, when given, must be a known status (else 404 "The post you are trying
//!   to reply to does not appear to exist."); an `Idempotency-Key` already used by the same
//!   account returns the FIRST status (200, same id) and creates nothing; then validation
//!   (422 `{"error":"Validation failed: …"}`): `status` a non-blank string of at most
//!   `max_characters` (500 by default; URLs count 23, see
//!   [`psn_platforms::rules::length::mastodon_length`]), `visibility` one of
//!   public/unlisted/private/direct, `language` a string. Stricter than Mastodon on purpose:
//!   fields outside the `TextStatus` request schema (a misspelt `in_reply_to`, which Mastodon
//!   would silently ignore and post unthreaded) and media/polls (the fake has none) → 422.
//!   200 with a Status entity: increasing numeric string ids, `content` as HTML
//!   (`<p>…</p>`, `<br />`, `&amp;`-escaped, links as Mastodon renders them), `url`
//!   `{base}/@{username}/{id}`.
//! - `GET /api/v1/accounts/{id}/statuses` — an invalid token → 401 (no token is fine: the
//!   endpoint is public); unknown account → 404 `{"error":"Record not found"}`; newest first;
//!   `limit` default 20, at most 40.
//! - `GET /api/v1/accounts/verify_credentials` — auth; the account.
//! - Media (see [`FakeAttachment`]): `POST /api/v2/media` — auth; multipart with a `file`
//!   (and optional `description` ≤ 1500 characters, `focus`, `thumbnail`; anything else →
//!   422); an image is ready at once (200 with `url`), a GIF or video answers 202 with `url:
//!   null` and processes for [`FakeMastodon::set_media_processing`] checks of
//!   `GET /api/v1/media/{id}` (206 while processing, then 200). A status's `media_ids` (at
//!   most 4) must be the account's own, processed, unattached attachments (else 422); a
//!   status with media may have no text.
//! - `GET /api/v2/instance` — `configuration.statuses.max_characters` (see
//!   [`FakeMastodon::set_max_characters`]) and `characters_reserved_per_url` 23.
//!
//! Every response carries `X-RateLimit-Limit/-Remaining/-Reset` (300 requests per 5 minutes
//! per account; the reset is an ISO 8601 time, as Mastodon sends it); an exhausted window,
//! and [`FaultKind::RateLimit`], answer 429 `{"error":"Too many requests"}` with those headers
//! only (Mastodon sends no `Retry-After`).
//!
//! Faults are the shared [`Fault`]/[`FaultKind`] (see [`crate::faults`]), with Mastodon's answers: `ServerError` → 503,
//! `Unauthorized` → 401, `BadRequest` → 422; `Slow`, `TimeoutBeforeWrite` and `DropAfterWrite`
//! as on FakeX. [`Fault::on_status_create`] targets `POST /api/v1/statuses`.
//!
//! Control endpoints (never faulted, not counted): `GET /_fake/statuses`,
//! `GET /_fake/requests`, `POST /_fake/faults` (a [`Fault`], `{"faults":[…]}` or
//! `{"random":{"probability","kinds","seed","path_prefix"?}}`), `DELETE /_fake/faults`,
//! `POST /_fake/accounts` (`{"account_id","username","token"}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use crate::faults::{Fault, FaultKind};
use crate::faults::{Faults, Gate};

use crate::server::{self, close_connection, serve};

/// The first status id; ids grow by 1000.
const FIRST_ID: u64 = 113_000_000_000_000_000;
/// Mastodon's default media size limits (16 MB images, 99 MB videos).
pub const DEFAULT_IMAGE_SIZE_LIMIT: u64 = 16 * 1024 * 1024;
pub const DEFAULT_VIDEO_SIZE_LIMIT: u64 = 99 * 1024 * 1024;
/// MIME types the fake takes for media.
const MEDIA_MIME_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "video/mp4",
    "video/quicktime",
    "video/webm",
];

/// Rate-limit window and budget (all requests of an account).
const WINDOW_SECS: u64 = 5 * 60;
const WINDOW_LIMIT: u32 = 300;
/// Mastodon's default `max_characters`.
pub const DEFAULT_MAX_CHARACTERS: usize = 500;
/// Fields of `POST /api/v1/statuses` the fake accepts (OpenAPI `TextStatus` = `BaseStatus` +
/// `status`, and `media_ids` of `MediaStatus`). `poll` is recognized and refused (no polls).
const CREATE_FIELDS: &[&str] = &[
    "status",
    "media_ids",
    "in_reply_to_id",
    "language",
    "quote_approval_policy",
    "quoted_status_id",
    "scheduled_at",
    "sensitive",
    "spoiler_text",
    "visibility",
];
const VISIBILITIES: &[&str] = &["public", "unlisted", "private", "direct"];

/// A status the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeStatus {
    pub id: String,
    pub account_id: String,
    /// The text as sent.
    pub text: String,
    pub in_reply_to_id: Option<String>,
    pub language: Option<String>,
    pub visibility: String,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
    /// Order of creation, from 1.
    pub created_seq: u64,
    /// Attached media ids, in order.
    #[serde(default)]
    pub media_ids: Vec<String>,
}

/// A media attachment the fake holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeAttachment {
    pub id: String,
    pub account_id: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: usize,
    pub description: Option<String>,
    /// Checks of `GET /api/v1/media/{id}` left before processing ends.
    pub checks_left: u32,
    /// How many checks were answered.
    pub checks: u32,
    /// The status it is attached to.
    pub status_id: Option<String>,
}

/// A request the fake received (control endpoints excluded). Of the headers only
/// `Idempotency-Key` and `Content-Type` are kept (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
}

impl Fault {
    /// `kind` for the next `POST /api/v1/statuses`.
    pub fn on_status_create(kind: FaultKind) -> Self {
        Fault::new(kind).path("/api/v1/statuses").method("POST")
    }
}

#[derive(Debug, Deserialize)]
struct AccountSpec {
    account_id: String,
    username: String,
    token: String,
}

#[derive(Debug)]
struct Window {
    start: u64,
    used: u32,
}

#[derive(Debug)]
struct FakeState {
    /// account id → username
    accounts: HashMap<String, String>,
    /// access token → account id
    tokens: HashMap<String, String>,
    statuses: Vec<FakeStatus>,
    /// (account id, Idempotency-Key) → status id
    idempotency: HashMap<(String, String), String>,
    faults: Faults,
    requests: Vec<RecordedRequest>,
    windows: HashMap<String, Window>,
    max_characters: usize,
    media: Vec<FakeAttachment>,
    media_checks: u32,
    /// (image, video) size limits in bytes.
    media_limits: (u64, u64),
}

impl FakeState {
    /// `Ok(None)` without a token, `Err(())` with an unknown one.
    fn account_for(&self, headers: &HeaderMap) -> Result<Option<String>, ()> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| ())?;
        let (scheme, token) = value.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(());
        }
        self.tokens.get(token.trim()).cloned().map(Some).ok_or(())
    }

    fn status_json(&self, base_url: &str, status: &FakeStatus) -> Value {
        let username = self
            .accounts
            .get(&status.account_id)
            .cloned()
            .unwrap_or_default();
        let in_reply_to_account_id = status.in_reply_to_id.as_ref().and_then(|id| {
            self.statuses
                .iter()
                .find(|s| &s.id == id)
                .map(|s| s.account_id.clone())
        });
        json!({
            "id": status.id,
            "created_at": created_at(status.created_seq),
            "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": in_reply_to_account_id,
            "sensitive": false,
            "spoiler_text": "",
            "visibility": status.visibility,
            "language": status.language,
            "uri": format!("{base_url}/users/{username}/statuses/{}", status.id),
            "url": format!("{base_url}/@{username}/{}", status.id),
            "replies_count": self.statuses.iter()
                .filter(|s| s.in_reply_to_id.as_deref() == Some(status.id.as_str())).count(),
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": null,
            "content": to_html(&status.text),
            "reblog": null,
            "application": { "name": "psn", "website": null },
            "account": account_json(base_url, &status.account_id, &username),
            "media_attachments": [],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": null,
            "poll": null,
        })
    }
}

fn account_json(base_url: &str, id: &str, username: &str) -> Value {
    json!({
        "id": id,
        "username": username,
        "acct": username,
        "display_name": username,
        "url": format!("{base_url}/@{username}"),
    })
}

/// Text as Mastodon renders it: escaped, paragraphs (blank lines) as `<p>`, line breaks as
/// `<br />`, http(s) URLs as links with Mastodon's invisible spans.
pub fn to_html(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n");
    let mut html = String::new();
    for paragraph in normalized.split("\n\n").filter(|p| !p.trim().is_empty()) {
        html.push_str("<p>");
        let lines: Vec<String> = paragraph.split('\n').map(linkify_line).collect();
        html.push_str(&lines.join("<br />"));
        html.push_str("</p>");
    }
    html
}

fn linkify_line(line: &str) -> String {
    let mut out = Vec::new();
    for word in line.split(' ') {
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| word.starts_with(s) && word.len() > s.len());
        match scheme {
            Some(scheme) => {
                let rest = &word[scheme.len()..];
                out.push(format!(
                    "<a href=\"{}\" rel=\"nofollow noopener\" target=\"_blank\"><span class=\"invisible\">{}</span><span class=\"\">{}</span><span class=\"invisible\"></span></a>",
                    escape_html(word),
                    escape_html(scheme),
                    escape_html(rest)
                ));
            }
            None => out.push(escape_html(word)),
        }
    }
    out.join(" ")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as ISO 8601 UTC with microseconds, as Mastodon writes `X-RateLimit-Reset`.
pub fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn created_at(seq: u64) -> String {
    // 2026-01-01T00:00:00Z plus one second per status: only the order matters.
    let mut s = iso8601(1_767_225_600 + seq);
    s.truncate(23);
    s.push('Z');
    s
}

#[derive(Debug)]
struct Shared {
    state: Mutex<FakeState>,
    base_url: Mutex<String>,
    /// Holds `POST /api/v1/statuses` on command.
    creates: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A running fake Mastodon instance. Clone it freely: clones share the server and its state.
/// The server runs on the runtime that called [`FakeMastodon::start`] until that runtime shuts
/// down.
#[derive(Debug, Clone)]
pub struct FakeMastodon {
    shared: Arc<Shared>,
    base_url: String,
}

impl FakeMastodon {
    /// Starts a fake on 127.0.0.1 with a free port.
    pub async fn start() -> FakeMastodon {
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState {
                accounts: HashMap::new(),
                tokens: HashMap::new(),
                statuses: Vec::new(),
                idempotency: HashMap::new(),
                faults: Faults::default(),
                requests: Vec::new(),
                windows: HashMap::new(),
                max_characters: DEFAULT_MAX_CHARACTERS,
                media: Vec::new(),
                media_checks: 1,
                media_limits: (DEFAULT_IMAGE_SIZE_LIMIT, DEFAULT_VIDEO_SIZE_LIMIT),
            }),
            base_url: Mutex::new(String::new()),
            creates: Gate::default(),
        });
        let router = Router::new()
            .route("/api/v1/statuses", post(create_status))
            .route(
                "/api/v1/accounts/verify_credentials",
                get(verify_credentials),
            )
            .route("/api/v1/accounts/{id}/statuses", get(account_statuses))
            .route("/api/v2/instance", get(instance))
            .route("/api/v2/media", post(media_upload))
            .route("/api/v1/media/{id}", get(media_get))
            .route("/_fake/statuses", get(control_statuses))
            .route("/_fake/requests", get(control_requests))
            .route(
                "/_fake/faults",
                post(control_set_faults).delete(control_clear_faults),
            )
            .route("/_fake/accounts", post(control_add_account))
            // Media uploads: bodies up to 64 MB (axum's default limit is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                mastodon_layer,
            ))
            .with_state(shared.clone());
        let addr = serve(router)
            .await
            .expect("the fake Mastodon could not bind 127.0.0.1");
        let base_url = format!("http://{addr}");
        *shared
            .base_url
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = base_url.clone();
        FakeMastodon { shared, base_url }
    }

    /// Starts a fake on its own thread and runtime, for tests without a tokio runtime. It
    /// runs until the process ends.
    pub fn start_in_thread() -> FakeMastodon {
        server::start_in_thread("fake-mastodon", FakeMastodon::start)
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash: the instance URL (an account's
    /// `service_url`, or `PSN_API_BASE_MASTODON`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Registers an account and a valid access token for it (more tokens: call again).
    pub fn add_account(&self, account_id: &str, username: &str, token: &str) {
        let mut state = self.shared.lock();
        state
            .accounts
            .insert(account_id.to_owned(), username.to_owned());
        state.tokens.insert(token.to_owned(), account_id.to_owned());
    }

    /// Revokes an access token: requests with it get 401.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().tokens.remove(token);
    }

    /// The statuses accepted so far, oldest first.
    pub fn posts(&self) -> Vec<FakeStatus> {
        self.shared.lock().statuses.clone()
    }

    /// Sets the instance's `max_characters` (default 500).
    pub fn set_max_characters(&self, max: usize) {
        self.shared.lock().max_characters = max;
    }

    /// The media attachments so far, in order of upload.
    pub fn media(&self) -> Vec<FakeAttachment> {
        self.shared.lock().media.clone()
    }

    /// Sets the instance's media size limits (bytes), reported in `configuration.media_attachments`
    /// and enforced by `POST /api/v2/media`.
    pub fn set_media_limits(&self, image_bytes: u64, video_bytes: u64) {
        self.shared.lock().media_limits = (image_bytes, video_bytes);
    }

    /// GIFs and videos process for `checks` checks of `GET /api/v1/media/{id}` (default 1).
    pub fn set_media_processing(&self, checks: u32) {
        self.shared.lock().media_checks = checks;
    }

    /// Holds `POST /api/v1/statuses` from the `n`-th one after this call (0: the next) until
    /// [`FakeMastodon::release_creates`]; a held create is written when released, even if its
    /// client is gone.
    pub fn hold_creates_from(&self, n: u64) {
        self.shared.creates.hold_from(n);
    }

    /// Lets held creates through.
    pub fn release_creates(&self) {
        self.shared.creates.release();
    }

    /// How many creates are waiting.
    pub fn held_creates(&self) -> usize {
        self.shared.creates.held()
    }

    /// Queues a fault; queued faults are consumed in order of injection.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// After queued faults, each Mastodon request gets one of `kinds` with `probability`,
    /// drawn from a generator seeded with `seed` (same seed and requests, same faults).
    pub fn set_random_faults(&self, probability: f64, kinds: Vec<FaultKind>, seed: u64) {
        self.shared
            .lock()
            .faults
            .set_random(None, probability, kinds, seed);
    }

    /// Removes queued and random faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The Mastodon requests received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many Mastodon requests arrived (control endpoints excluded).
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "The access token is invalid")
}

fn unprocessable(message: &str) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("Validation failed: {message}"),
    )
}

fn set_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, v);
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// Records, rate-limits and faults every Mastodon request.
async fn mastodon_layer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_fake") {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return close_connection(),
    };
    let now = now_secs();
    let (fault, remaining, reset, exhausted) = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            idempotency_key: header_string(&parts.headers, "idempotency-key"),
            content_type: header_string(&parts.headers, "content-type"),
        });
        let fault = state.faults.take(&method, &path);
        let who = state
            .account_for(&parts.headers)
            .ok()
            .flatten()
            .unwrap_or_else(|| "anonymous".into());
        let window = state.windows.entry(who).or_insert(Window {
            start: now,
            used: 0,
        });
        if now >= window.start + WINDOW_SECS {
            *window = Window {
                start: now,
                used: 0,
            };
        }
        // Faults and exhausted windows do not consume the budget.
        let exhausted = window.used >= WINDOW_LIMIT;
        if fault.is_none() && !exhausted {
            window.used += 1;
        }
        (
            fault,
            WINDOW_LIMIT.saturating_sub(window.used),
            window.start + WINDOW_SECS,
            exhausted,
        )
    };
    let too_many = |reset: u64| {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        set_header(&mut r, "x-ratelimit-limit", WINDOW_LIMIT.to_string());
        set_header(&mut r, "x-ratelimit-remaining", "0".into());
        set_header(&mut r, "x-ratelimit-reset", iso8601(reset));
        r
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut response = match fault {
        None if exhausted => return too_many(reset),
        None => next.run(request).await,
        Some(FaultKind::ServerError) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            return too_many(now + retry_after_secs);
        }
        Some(FaultKind::Unauthorized) => unauthorized(),
        Some(FaultKind::BadRequest) => {
            unprocessable("the request was refused (injected by the fake)")
        }
        Some(FaultKind::Slow { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Some(FaultKind::TimeoutBeforeWrite { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return close_connection();
        }
        Some(FaultKind::DropAfterWrite) => {
            let _ = next.run(request).await;
            return close_connection();
        }
    };
    set_header(&mut response, "x-ratelimit-limit", WINDOW_LIMIT.to_string());
    set_header(
        &mut response,
        "x-ratelimit-remaining",
        remaining.to_string(),
    );
    set_header(&mut response, "x-ratelimit-reset", iso8601(reset));
    response
}

/// The body as a JSON object, from JSON or a form (`media_ids[]=…` becomes an array).
/// Errors are boxed: a `Response` is large.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    let content_type = header_string(headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "Error while parsing request body",
            ))),
        };
    }
    if content_type.starts_with("application/x-www-form-urlencoded") || body.is_empty() {
        let text = std::str::from_utf8(body)
            .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "Invalid form body")))?;
        let uri = format!("/?{text}")
            .parse()
            .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "Invalid form body")))?;
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "Invalid form body")))?;
        let mut map = Map::new();
        for (k, v) in pairs {
            match k.strip_suffix("[]") {
                Some(name) => {
                    let entry = map
                        .entry(name.to_owned())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(items) = entry {
                        items.push(Value::String(v));
                    }
                }
                None => {
                    map.insert(k, Value::String(v));
                }
            }
        }
        return Ok(map);
    }
    Err(Box::new(error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Content-Type",
    )))
}

fn optional_string(
    request: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, Box<Response>> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Box::new(unprocessable(&format!("{name} must be a string")))),
    }
}

async fn create_status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.creates.pass().await;
    let base_url = shared.base_url();
    let mut state = shared.lock();
    let Ok(Some(account)) = state.account_for(&headers) else {
        return unauthorized();
    };
    let request = match parse_body(&headers, &body) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let in_reply_to_id = match optional_string(&request, "in_reply_to_id") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Some(id) = &in_reply_to_id
        && !state.statuses.iter().any(|s| &s.id == id)
    {
        return error(
            StatusCode::NOT_FOUND,
            "The post you are trying to reply to does not appear to exist.",
        );
    }
    let key = header_string(&headers, "idempotency-key").filter(|k| !k.is_empty());
    if let Some(key) = &key
        && let Some(id) = state.idempotency.get(&(account.clone(), key.clone()))
        && let Some(existing) = state.statuses.iter().find(|s| &s.id == id)
    {
        return axum::Json(state.status_json(&base_url, existing)).into_response();
    }
    if request.contains_key("poll") {
        return unprocessable("the fake Mastodon does not support polls");
    }
    let media_ids = match attached_media(&state, &account, request.get("media_ids")) {
        Ok(ids) => ids,
        Err(response) => return *response,
    };
    if let Some(field) = request
        .keys()
        .find(|k| !CREATE_FIELDS.contains(&k.as_str()))
    {
        return unprocessable(&format!("unknown parameter {field}"));
    }
    let text = match request.get("status") {
        Some(Value::String(text)) => text.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return unprocessable("Text must be a string"),
    };
    if text.trim().is_empty() && media_ids.is_empty() {
        return unprocessable("Text can't be blank");
    }
    let max = state.max_characters;
    if psn_platforms::rules::length::mastodon_length(&text) > max {
        return unprocessable(&format!("Text character limit of {max} exceeded"));
    }
    let visibility = match optional_string(&request, "visibility") {
        Ok(None) => "public".to_owned(),
        Ok(Some(v)) if VISIBILITIES.contains(&v.as_str()) => v,
        Ok(Some(_)) => return unprocessable("Visibility is not included in the list"),
        Err(r) => return *r,
    };
    let language = match optional_string(&request, "language") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Some(spoiler) = request.get("spoiler_text")
        && !spoiler.is_string()
    {
        return unprocessable("Spoiler text must be a string");
    }
    let seq = state.statuses.len() as u64 + 1;
    let id = (FIRST_ID + seq * 1000).to_string();
    let status = FakeStatus {
        id: id.clone(),
        account_id: account.clone(),
        text,
        in_reply_to_id,
        language,
        visibility,
        idempotency_key: key.clone(),
        created_seq: seq,
        media_ids: media_ids.clone(),
    };
    for attachment in state.media.iter_mut().filter(|m| media_ids.contains(&m.id)) {
        attachment.status_id = Some(id.clone());
    }
    let body = state.status_json(&base_url, &status);
    state.statuses.push(status);
    if let Some(key) = key {
        state.idempotency.insert((account, key), id);
    }
    axum::Json(body).into_response()
}

/// A status's `media_ids`: at most 4 of the account's own processed, unattached attachments.
fn attached_media(
    state: &FakeState,
    account: &str,
    ids: Option<&Value>,
) -> Result<Vec<String>, Box<Response>> {
    let ids = match ids {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(ids)) => ids,
        Some(_) => return Err(Box::new(unprocessable("media_ids must be a list"))),
    };
    if ids.len() > 4 {
        return Err(Box::new(unprocessable("Media can't exceed 4 attachments")));
    }
    let mut out = Vec::new();
    for id in ids {
        let Value::String(id) = id else {
            return Err(Box::new(unprocessable("media ids must be strings")));
        };
        match state
            .media
            .iter()
            .find(|m| &m.id == id && m.account_id == account)
        {
            None => return Err(Box::new(unprocessable(&format!("Media {id} not found")))),
            Some(m) if m.checks_left > 0 => {
                return Err(Box::new(unprocessable(
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                )));
            }
            Some(m) if m.status_id.is_some() => {
                return Err(Box::new(unprocessable(&format!(
                    "Media {id} is already attached"
                ))));
            }
            Some(_) => out.push(id.clone()),
        }
    }
    Ok(out)
}

fn attachment_json(base_url: &str, m: &FakeAttachment) -> Value {
    let kind = match m.content_type.as_deref().unwrap_or("") {
        t if t.starts_with("video/") => "video",
        "image/gif" => "gifv",
        _ => "image",
    };
    let url = (m.checks_left == 0).then(|| format!("{base_url}/system/media/{}", m.id));
    json!({
        "id": m.id,
        "type": kind,
        "url": url,
        "preview_url": url,
        "remote_url": null,
        "description": m.description,
        "blurhash": null,
        "meta": {},
    })
}

async fn media_upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base_url = shared.base_url();
    let mut state = shared.lock();
    let Ok(Some(account)) = state.account_for(&headers) else {
        return unauthorized();
    };
    let form = match crate::form::parse(&headers, &body) {
        Ok(form) => form,
        Err(e) => return unprocessable(&e),
    };
    if let Some(field) = form
        .keys()
        .find(|k| !["file", "thumbnail", "description", "focus"].contains(&k.as_str()))
    {
        return unprocessable(&format!("unknown parameter {field}"));
    }
    let Some(file) = form.get("file").filter(|f| !f.data.is_empty()) else {
        return unprocessable("Validation failed: File can't be blank");
    };
    let description = match form.get("description").map(|d| d.text()) {
        None => None,
        Some(Some(d)) if d.chars().count() <= 1500 => Some(d.to_owned()),
        Some(_) => {
            return unprocessable(
                "Validation failed: Description is too long (maximum is 1500 characters)",
            );
        }
    };
    let content_type = file.content_type.clone();
    let mime = content_type.as_deref().unwrap_or("");
    if !MEDIA_MIME_TYPES.contains(&mime) {
        return unprocessable(&format!(
            "Validation failed: File content type {mime:?} is invalid"
        ));
    }
    let (image_limit, video_limit) = state.media_limits;
    let limit = if mime.starts_with("video/") || mime == "image/gif" {
        video_limit
    } else {
        image_limit
    };
    if file.data.len() as u64 > limit {
        return unprocessable(&format!(
            "Validation failed: File file size must be less than {limit} Bytes"
        ));
    }
    let processes = content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("video/") || t == "image/gif");
    let id = (FIRST_ID + 500 + (state.media.len() as u64 + 1) * 1000).to_string();
    let attachment = FakeAttachment {
        id,
        account_id: account,
        file_name: file.file_name.clone(),
        content_type,
        bytes: file.data.len(),
        description,
        checks_left: if processes { state.media_checks } else { 0 },
        checks: 0,
        status_id: None,
    };
    let status = if attachment.checks_left > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = attachment_json(&base_url, &attachment);
    state.media.push(attachment);
    (status, axum::Json(body)).into_response()
}

async fn media_get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base_url = shared.base_url();
    let mut state = shared.lock();
    let Ok(Some(account)) = state.account_for(&headers) else {
        return unauthorized();
    };
    let Some(m) = state
        .media
        .iter_mut()
        .find(|m| m.id == id && m.account_id == account)
    else {
        return error(StatusCode::NOT_FOUND, "Record not found");
    };
    m.checks += 1;
    let status = if m.checks_left > 0 {
        m.checks_left -= 1;
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    // The answer that ends processing is still 206; the next one is 200.
    let body = attachment_json(&base_url, m);
    let body = if status == StatusCode::PARTIAL_CONTENT {
        let mut b = body;
        b["url"] = Value::Null;
        b
    } else {
        body
    };
    (status, axum::Json(body)).into_response()
}

async fn account_statuses(
    State(shared): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let base_url = shared.base_url();
    let state = shared.lock();
    if state.account_for(&headers).is_err() {
        return unauthorized();
    }
    if !state.accounts.contains_key(&account_id) {
        return error(StatusCode::NOT_FOUND, "Record not found");
    }
    // Mastodon: `[limit.to_i.abs, 2 * default].min`, default 20.
    let limit = params
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.trim().parse::<i64>().ok())
        .map(|n| usize::try_from(n.unsigned_abs()).unwrap_or(40).min(40))
        .unwrap_or(20);
    let statuses: Vec<Value> = state
        .statuses
        .iter()
        .rev()
        .filter(|s| s.account_id == account_id)
        .take(limit)
        .map(|s| state.status_json(&base_url, s))
        .collect();
    axum::Json(statuses).into_response()
}

async fn verify_credentials(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let base_url = shared.base_url();
    let state = shared.lock();
    let Ok(Some(account)) = state.account_for(&headers) else {
        return unauthorized();
    };
    let username = state.accounts.get(&account).cloned().unwrap_or_default();
    axum::Json(account_json(&base_url, &account, &username)).into_response()
}

async fn instance(State(shared): State<Arc<Shared>>) -> Response {
    let base_url = shared.base_url();
    let max = shared.lock().max_characters;
    let domain = base_url.trim_start_matches("http://").to_owned();
    let (image_limit, video_limit) = shared.lock().media_limits;
    let media_attachments = json!({
        "supported_mime_types": MEDIA_MIME_TYPES,
        "image_size_limit": image_limit,
        "video_size_limit": video_limit,
    });
    with_media_limits(
        json!({
            "domain": domain,
            "title": "Fake Mastodon",
            "version": "4.3.0",
            "configuration": {
                "urls": {},
                "accounts": { "max_featured_tags": 10 },
                "statuses": {
                    "max_characters": max,
                    "max_media_attachments": 4,
                    "characters_reserved_per_url": 23,
                },
            },
        }),
        media_attachments,
    )
    .into_response()
}

/// The instance document with `configuration.media_attachments`.
fn with_media_limits(mut instance: Value, media_attachments: Value) -> axum::Json<Value> {
    if let Some(config) = instance
        .get_mut("configuration")
        .and_then(|c| c.as_object_mut())
    {
        config.insert("media_attachments".into(), media_attachments);
    }
    axum::Json(instance)
}

async fn control_statuses(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().statuses.clone()).into_response()
}

async fn control_requests(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().requests.clone()).into_response()
}

async fn control_set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match shared.lock().faults.apply_control(&body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn control_clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn control_add_account(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: AccountSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad account: {e}")).into_response(),
    };
    let mut state = shared.lock();
    state
        .accounts
        .insert(spec.account_id.clone(), spec.username);
    state.tokens.insert(spec.token, spec.account_id);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso8601(1_767_225_600), "2026-01-01T00:00:00.000000Z");
        assert_eq!(iso8601(1_709_210_096), "2024-02-29T12:34:56.000000Z");
        assert_eq!(created_at(1), "2026-01-01T00:00:01.000Z");
    }

    #[test]
    fn html_is_escaped_and_paragraphed() {
        assert_eq!(to_html("a & <b>"), "<p>a &amp; &lt;b&gt;</p>");
        assert_eq!(
            to_html("one\ntwo\n\nthree"),
            "<p>one<br />two</p><p>three</p>"
        );
        assert!(to_html("see https://example.com/x").contains(
            "<a href=\"https://example.com/x\" rel=\"nofollow noopener\" target=\"_blank\">"
        ));
    }

    #[test]
    fn status_faults_target_the_create_endpoint() {
        let f = Fault::on_status_create(FaultKind::DropAfterWrite);
        assert!(f.matches(&Method::POST, "/api/v1/statuses"));
        assert!(!f.matches(&Method::GET, "/api/v1/accounts/1/statuses"));
    }
}
