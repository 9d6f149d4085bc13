//! A strict, stateful fake of the Bluesky PDS (AT Protocol XRPC) parts psn uses.
//!
//! Sessions ([`FakeBluesky::add_account`] registers a DID, a handle and an app password):
//! - `POST /xrpc/com.atproto.server.createSession` `{identifier, password}` (identifier: the
//!   handle, case-insensitive, or the DID) → `{accessJwt, refreshJwt, did, handle, active}`;
//!   a wrong identifier or password → 401 `AuthenticationRequired` "Invalid identifier or
//!   password".
//! - Every authenticated call takes `Authorization: Bearer <accessJwt>`: none → 401
//!   `AuthMissing`; unknown → 401 `InvalidToken`; a refresh JWT → 400 `InvalidToken`; an
//!   access JWT expired by [`FakeBluesky::expire_access_tokens`] (or past
//!   [`FakeBluesky::set_access_ttl`]) → 400 `ExpiredToken` "Token has expired", as the PDS does.
//! - `POST /xrpc/com.atproto.server.refreshSession` with the refresh JWT → a new pair; the old
//!   refresh JWT is spent (rotation); a spent or revoked one → 400 `ExpiredToken`.
//! - `GET /xrpc/com.atproto.server.getSession` → `{did, handle, active}`.
//!
//! Repository:
//! - `POST /xrpc/com.atproto.repo.uploadBlob` (raw bytes, `Content-Type`) → `{"blob":
//!   {"$type":"blob","ref":{"$link":cid},"mimeType","size"}}`; an empty body or no content
//!   type → 400; an image over 2,000,000 bytes or a video over 300,000,000 → 400
//!   `BlobTooLarge`.
//! - `POST /xrpc/com.atproto.repo.createRecord` `{repo, collection, record, rkey?, validate?}`:
//!   `repo` must be the session's DID or handle (else 401), the collection
//!   `app.bsky.feed.post`, and the record is validated as the PDS validates it — and stricter
//!   where psn's correctness is at stake — each refusal a 400 `InvalidRequest` "Invalid
//!   app.bsky.feed.post record: …": `$type` equal to the collection, `text` a string of at
//!   most 300 graphemes and 3000 bytes, `createdAt` an RFC 3339 time, `langs` at most 3;
//!   facets whose byte range is empty, out of the text or not on UTF-8 character boundaries,
//!   a link whose `uri` is not the faceted text (or it with `https://`/`http://`), a mention
//!   whose DID is unknown or whose text is not `@` + that account's handle, a tag that is not
//!   the faceted text after `#`; a reply without `root` or `parent`, or whose refs do not name
//!   an existing record with that CID, or whose root is not the parent's root; an embed of an
//!   unknown type, more than 4 images, an image without `alt`, a blob ref not uploaded by
//!   this repo (or whose mimeType/size differ from the upload), an image blob over
//!   2,000,000 bytes, a video that is not `video/mp4`, a card thumbnail over 1,000,000 bytes.
//!   → `{uri: at://<did>/app.bsky.feed.post/<tid>, cid, commit, validationStatus: "valid"}`.
//! - `GET /xrpc/com.atproto.repo.listRecords?repo&collection&limit&cursor&reverse` → newest
//!   first, `limit` 1–100 (default 50).
//! - `GET /xrpc/com.atproto.identity.resolveHandle?handle` → `{did}` or 400 "Unable to
//!   resolve handle".
//! - `GET /xrpc/app.bsky.feed.getPosts?uris=…` (at most 25) → post views with `likeCount`,
//!   `repostCount`, `quoteCount` (set by [`FakeBluesky::set_counts`]) and `replyCount` (the
//!   replies the fake holds, unless set).
//!
//! Every response carries `ratelimit-limit/-remaining/-reset/-policy`; a
//! [`FaultKind::RateLimit`] answers 429 `RateLimitExceeded` with `ratelimit-reset` (Unix
//! seconds). Other faults are the shared [`Fault`]/[`FaultKind`] (see [`crate::faults`]):
//! `ServerError` → 502 `UpstreamFailure`, `Unauthorized` → 401 `InvalidToken`, `BadRequest` →
//! 400 `InvalidRequest`; `Slow`, `TimeoutBeforeWrite`, `DropAfterWrite` as on the other fakes.
//! [`Fault::on_record_create`] targets createRecord. [`FakeBluesky::hold_creates_from`] holds
//! createRecord calls (a shared [`Gate`]: unanswered, not yet written) until released, so a
//! test can kill a worker mid-thread without racing it.
//!
//! Control endpoints (never faulted, not recorded): `GET /_fake/records`,
//! `GET /_fake/requests`, `POST /_fake/faults`, `DELETE /_fake/faults`,
//! `POST /_fake/accounts` (`{"did","handle","password"}`), `POST /_fake/expire_sessions`.
//! Recorded requests never hold a token or a password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::{Fault, FaultKind, Faults, Gate};
use crate::server::{self, close_connection, serve};

pub const POST_COLLECTION: &str = "app.bsky.feed.post";
pub const MAX_GRAPHEMES: usize = 300;
pub const MAX_TEXT_BYTES: usize = 3000;
pub const MAX_IMAGES: usize = 4;
pub const MAX_IMAGE_BYTES: usize = 2_000_000;
pub const MAX_VIDEO_BYTES: usize = 300_000_000;
pub const MAX_THUMB_BYTES: usize = 1_000_000;
/// Requests per window and the window (the PDS's global limit: 3000 per 5 minutes).
const WINDOW_LIMIT: u32 = 3000;
const WINDOW_SECS: u64 = 300;

impl Fault {
    /// `kind` for the next `com.atproto.repo.createRecord`.
    pub fn on_record_create(kind: FaultKind) -> Self {
        Fault::new(kind)
            .path("/xrpc/com.atproto.repo.createRecord")
            .method("POST")
    }
}

/// A post the fake holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeRecord {
    pub uri: String,
    pub cid: String,
    pub did: String,
    pub rkey: String,
    /// The record as sent.
    pub value: Value,
    /// Order of creation, from 1.
    pub created_seq: u64,
}

impl FakeRecord {
    pub fn text(&self) -> &str {
        self.value
            .get("text")
            .and_then(|t| t.as_str())
            .unwrap_or("")
    }

    /// `reply.parent.uri`, when it is a reply.
    pub fn parent_uri(&self) -> Option<&str> {
        self.value
            .pointer("/reply/parent/uri")
            .and_then(|u| u.as_str())
    }

    /// `reply.root.uri`, when it is a reply.
    pub fn root_uri(&self) -> Option<&str> {
        self.value
            .pointer("/reply/root/uri")
            .and_then(|u| u.as_str())
    }
}

/// A blob the fake holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeBlob {
    pub cid: String,
    pub did: String,
    pub mime: String,
    pub size: usize,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// A request the fake received (control endpoints excluded): no headers but the content type,
/// passwords replaced, blob bodies summarized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone)]
struct Account {
    did: String,
    handle: String,
    passwords: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
struct Token {
    did: String,
    kind: TokenKind,
    issued: Instant,
    /// Expired (access) or spent/revoked (refresh).
    dead: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    likes: u64,
    reposts: u64,
    quotes: u64,
    replies: Option<u64>,
}

#[derive(Debug)]
struct FakeState {
    accounts: Vec<Account>,
    tokens: HashMap<String, Token>,
    token_seq: u64,
    access_ttl: Option<Duration>,
    records: Vec<FakeRecord>,
    blobs: Vec<FakeBlob>,
    counts: HashMap<String, Counts>,
    faults: Faults,
    requests: Vec<RecordedRequest>,
    sessions_created: usize,
    sessions_refreshed: usize,
    window: (u64, u32),
}

impl FakeState {
    fn account_by_did(&self, did: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.did == did)
    }

    fn account_by_id(&self, identifier: &str) -> Option<&Account> {
        let id = identifier.trim().trim_start_matches('@');
        self.accounts
            .iter()
            .find(|a| a.did == id || a.handle.eq_ignore_ascii_case(id))
    }

    fn issue(&mut self, did: &str, kind: TokenKind) -> String {
        self.token_seq += 1;
        let prefix = match kind {
            TokenKind::Access => "eyJhY2Nlc3Mi",
            TokenKind::Refresh => "eyJyZWZyZXNoIi",
        };
        let token = format!(
            "{prefix}.{}.{:08x}",
            self.token_seq,
            fnv(did.as_bytes(), self.token_seq)
        );
        self.tokens.insert(
            token.clone(),
            Token {
                did: did.to_owned(),
                kind,
                issued: Instant::now(),
                dead: false,
            },
        );
        token
    }

    fn session_json(&mut self, did: &str) -> Value {
        let access = self.issue(did, TokenKind::Access);
        let refresh = self.issue(did, TokenKind::Refresh);
        let handle = self
            .account_by_did(did)
            .map(|a| a.handle.clone())
            .unwrap_or_default();
        json!({
            "accessJwt": access,
            "refreshJwt": refresh,
            "did": did,
            "handle": handle,
            "active": true,
        })
    }

    /// The DID of the bearer's access token, or the XRPC error.
    fn authed(&self, headers: &HeaderMap) -> Result<String, Box<Response>> {
        let Some(token) = bearer(headers) else {
            return Err(Box::new(xrpc(
                StatusCode::UNAUTHORIZED,
                "AuthMissing",
                "Authentication Required",
            )));
        };
        let Some(t) = self.tokens.get(&token) else {
            return Err(Box::new(xrpc(
                StatusCode::UNAUTHORIZED,
                "InvalidToken",
                "Token could not be verified",
            )));
        };
        if t.kind != TokenKind::Access {
            return Err(Box::new(xrpc(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Invalid token type",
            )));
        }
        let expired = t.dead || self.access_ttl.is_some_and(|ttl| t.issued.elapsed() >= ttl);
        if expired {
            return Err(Box::new(xrpc(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "Token has expired",
            )));
        }
        Ok(t.did.clone())
    }

    fn record(&self, uri: &str) -> Option<&FakeRecord> {
        self.records.iter().find(|r| r.uri == uri)
    }

    fn post_view(&self, r: &FakeRecord) -> Value {
        let counts = self.counts.get(&r.uri).copied().unwrap_or_default();
        let replies = counts.replies.unwrap_or_else(|| {
            self.records
                .iter()
                .filter(|x| x.parent_uri() == Some(r.uri.as_str()))
                .count() as u64
        });
        let handle = self
            .account_by_did(&r.did)
            .map(|a| a.handle.clone())
            .unwrap_or_default();
        json!({
            "uri": r.uri,
            "cid": r.cid,
            "author": { "did": r.did, "handle": handle },
            "record": r.value,
            "replyCount": replies,
            "repostCount": counts.reposts,
            "likeCount": counts.likes,
            "quoteCount": counts.quotes,
            "indexedAt": created_at(r.created_seq),
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// FNV-1a, seeded: ids that look random but are the same on every run.
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const BASE32_SORTABLE: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A TID (13 base32-sortable characters) for creation number `seq`.
fn tid(seq: u64) -> String {
    // Microseconds since the epoch (2026-01-01 plus seq ms), 10-bit clock id 0.
    let micros = 1_767_225_600_000_000_u64 + seq * 1000;
    let mut v = (micros << 10) & 0x7FFF_FFFF_FFFF_FFFF;
    let mut out = [b'2'; 13];
    for slot in out.iter_mut().rev() {
        *slot = BASE32_SORTABLE[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn make_cid(prefix: &str, bytes: &[u8]) -> String {
    format!(
        "{prefix}{:016x}{:016x}{:016x}",
        fnv(bytes, 1),
        fnv(bytes, 2),
        fnv(bytes, 3)
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn created_at(seq: u64) -> String {
    let mut s = crate::mastodon::iso8601(1_767_225_600 + seq);
    s.truncate(19);
    s.push_str(".000Z");
    s
}

fn xrpc(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "message": message })),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    xrpc(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn invalid_record(message: &str) -> Response {
    invalid(&format!("Invalid app.bsky.feed.post record: {message}"))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<FakeState>,
    /// Holds createRecord on command.
    creates: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake PDS. Clone it freely: clones share the server and its state. The server
/// runs on the runtime that called [`FakeBluesky::start`] until that runtime shuts down.
#[derive(Debug, Clone)]
pub struct FakeBluesky {
    shared: Arc<Shared>,
    base_url: String,
}

impl FakeBluesky {
    /// Starts a fake on 127.0.0.1 with a free port.
    pub async fn start() -> FakeBluesky {
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState {
                accounts: Vec::new(),
                tokens: HashMap::new(),
                token_seq: 0,
                access_ttl: None,
                records: Vec::new(),
                blobs: Vec::new(),
                counts: HashMap::new(),
                faults: Faults::default(),
                requests: Vec::new(),
                sessions_created: 0,
                sessions_refreshed: 0,
                window: (now_secs(), 0),
            }),
            creates: Gate::default(),
        });
        let router = Router::new()
            .route(
                "/xrpc/com.atproto.server.createSession",
                post(create_session),
            )
            .route(
                "/xrpc/com.atproto.server.refreshSession",
                post(refresh_session),
            )
            .route("/xrpc/com.atproto.server.getSession", get(get_session))
            .route(
                "/xrpc/com.atproto.identity.resolveHandle",
                get(resolve_handle),
            )
            .route("/xrpc/com.atproto.repo.uploadBlob", post(upload_blob))
            .route("/xrpc/com.atproto.repo.createRecord", post(create_record))
            .route("/xrpc/com.atproto.repo.listRecords", get(list_records))
            .route("/xrpc/app.bsky.feed.getPosts", get(get_posts))
            .route("/_fake/records", get(control_records))
            .route("/_fake/requests", get(control_requests))
            .route(
                "/_fake/faults",
                post(control_set_faults).delete(control_clear_faults),
            )
            .route("/_fake/accounts", post(control_add_account))
            .route("/_fake/expire_sessions", post(control_expire))
            .fallback(|| async {
                xrpc(
                    StatusCode::NOT_IMPLEMENTED,
                    "MethodNotImplemented",
                    "Method Not Implemented",
                )
            })
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .layer(middleware::from_fn_with_state(shared.clone(), pds_layer))
            .with_state(shared.clone());
        let addr = serve(router)
            .await
            .expect("the fake Bluesky could not bind 127.0.0.1");
        FakeBluesky {
            shared,
            base_url: format!("http://{addr}"),
        }
    }

    /// Starts a fake on its own thread and runtime, for tests without a tokio runtime. It
    /// runs until the process ends.
    pub fn start_in_thread() -> FakeBluesky {
        server::start_in_thread("fake-bluesky", FakeBluesky::start)
    }

    /// `http://127.0.0.1:<port>`: the PDS URL (an account's `service_url`, or
    /// `PSN_API_BASE_BLUESKY`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Registers an account (or adds an app password to it).
    pub fn add_account(&self, did: &str, handle: &str, app_password: &str) {
        let mut state = self.shared.lock();
        match state.accounts.iter_mut().find(|a| a.did == did) {
            Some(a) => {
                a.handle = handle.to_owned();
                a.passwords.push(app_password.to_owned());
            }
            None => state.accounts.push(Account {
                did: did.to_owned(),
                handle: handle.to_owned(),
                passwords: vec![app_password.to_owned()],
            }),
        }
    }

    /// Revokes an app password: createSession with it fails from now on.
    pub fn revoke_app_password(&self, app_password: &str) {
        for a in &mut self.shared.lock().accounts {
            a.passwords.retain(|p| p != app_password);
        }
    }

    /// Expires every access JWT issued so far (the next call with one gets `ExpiredToken`).
    pub fn expire_access_tokens(&self) {
        for t in self.shared.lock().tokens.values_mut() {
            if t.kind == TokenKind::Access {
                t.dead = true;
            }
        }
    }

    /// Revokes every refresh JWT issued so far.
    pub fn revoke_refresh_tokens(&self) {
        for t in self.shared.lock().tokens.values_mut() {
            if t.kind == TokenKind::Refresh {
                t.dead = true;
            }
        }
    }

    /// Access JWTs expire `ttl` after they were issued (default: never, until expired).
    pub fn set_access_ttl(&self, ttl: Option<Duration>) {
        self.shared.lock().access_ttl = ttl;
    }

    /// Successful createSession and refreshSession calls so far.
    pub fn sessions_created(&self) -> usize {
        self.shared.lock().sessions_created
    }

    pub fn sessions_refreshed(&self) -> usize {
        self.shared.lock().sessions_refreshed
    }

    /// The posts held, oldest first.
    pub fn records(&self) -> Vec<FakeRecord> {
        self.shared.lock().records.clone()
    }

    /// The blobs held, in order of upload.
    pub fn blobs(&self) -> Vec<FakeBlob> {
        self.shared.lock().blobs.clone()
    }

    /// Sets the counters `getPosts` reports for `uri` (`replies: None` counts the replies held).
    pub fn set_counts(
        &self,
        uri: &str,
        likes: u64,
        reposts: u64,
        quotes: u64,
        replies: Option<u64>,
    ) {
        self.shared.lock().counts.insert(
            uri.to_owned(),
            Counts {
                likes,
                reposts,
                quotes,
                replies,
            },
        );
    }

    /// Queues a fault; queued faults are consumed in order of injection.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// After queued faults, each request gets one of `kinds` with `probability`.
    pub fn set_random_faults(&self, probability: f64, kinds: Vec<FaultKind>, seed: u64) {
        self.shared
            .lock()
            .faults
            .set_random(None, probability, kinds, seed);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The requests received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Holds createRecord from the `n`-th one after this call (0: the next), before anything
    /// is written, until [`FakeBluesky::release_creates`]; a held create is written when
    /// released, even if its client is gone.
    pub fn hold_creates_from(&self, n: u64) {
        self.shared.creates.hold_from(n);
    }

    /// Lets held creates through.
    pub fn release_creates(&self) {
        self.shared.creates.release();
    }

    /// How many createRecord calls are waiting.
    pub fn held_creates(&self) -> usize {
        self.shared.creates.held()
    }
}

fn set_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, v);
    }
}

/// What is recorded of a body: passwords replaced, binary bodies summarized.
fn recorded_body(path: &str, bytes: &[u8]) -> String {
    if path.ends_with("uploadBlob") {
        return format!("<{} bytes>", bytes.len());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            if let Some(p) = v.get_mut("password") {
                *p = json!("[redacted]");
            }
            v.to_string()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Records, rate-limits and faults every XRPC request.
async fn pds_layer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_fake") {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return close_connection();
    };
    let now = now_secs();
    let (fault, remaining, reset) = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query,
            body: recorded_body(&path, &bytes),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        let fault = state.faults.take(&method, &path);
        if now >= state.window.0 + WINDOW_SECS {
            state.window = (now, 0);
        }
        state.window.1 += 1;
        (
            fault,
            WINDOW_LIMIT.saturating_sub(state.window.1),
            state.window.0 + WINDOW_SECS,
        )
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut response = match fault {
        None => next.run(request).await,
        Some(FaultKind::ServerError) => xrpc(
            StatusCode::BAD_GATEWAY,
            "UpstreamFailure",
            "Upstream Failure",
        ),
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let mut r = xrpc(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                "Rate Limit Exceeded",
            );
            set_header(&mut r, "ratelimit-limit", WINDOW_LIMIT.to_string());
            set_header(&mut r, "ratelimit-remaining", "0".into());
            set_header(
                &mut r,
                "ratelimit-reset",
                (now + retry_after_secs).to_string(),
            );
            set_header(
                &mut r,
                "ratelimit-policy",
                format!("{WINDOW_LIMIT};w={WINDOW_SECS}"),
            );
            return r;
        }
        Some(FaultKind::Unauthorized) => xrpc(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            "Token could not be verified",
        ),
        Some(FaultKind::BadRequest) => invalid("the request was refused (injected by the fake)"),
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
    set_header(&mut response, "ratelimit-limit", WINDOW_LIMIT.to_string());
    set_header(&mut response, "ratelimit-remaining", remaining.to_string());
    set_header(&mut response, "ratelimit-reset", reset.to_string());
    set_header(
        &mut response,
        "ratelimit-policy",
        format!("{WINDOW_LIMIT};w={WINDOW_SECS}"),
    );
    response
}

fn json_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Box::new(invalid("Request body must be a JSON object"))),
    }
}

async fn create_session(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request = match json_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let (Some(identifier), Some(password)) = (
        request.get("identifier").and_then(|v| v.as_str()),
        request.get("password").and_then(|v| v.as_str()),
    ) else {
        return invalid("Input must have the properties \"identifier\" and \"password\"");
    };
    let mut state = shared.lock();
    let did = match state.account_by_id(identifier) {
        Some(a) if a.passwords.iter().any(|p| p == password) => a.did.clone(),
        _ => {
            return xrpc(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "Invalid identifier or password",
            );
        }
    };
    state.sessions_created += 1;
    axum::Json(state.session_json(&did)).into_response()
}

async fn refresh_session(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut state = shared.lock();
    let Some(token) = bearer(&headers) else {
        return xrpc(
            StatusCode::UNAUTHORIZED,
            "AuthMissing",
            "Authentication Required",
        );
    };
    let did = match state.tokens.get_mut(&token) {
        None => {
            return xrpc(
                StatusCode::UNAUTHORIZED,
                "InvalidToken",
                "Token could not be verified",
            );
        }
        Some(t) if t.kind != TokenKind::Refresh => {
            return xrpc(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Invalid token type",
            );
        }
        Some(t) if t.dead => {
            return xrpc(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "Token has been revoked",
            );
        }
        Some(t) => {
            t.dead = true;
            t.did.clone()
        }
    };
    state.sessions_refreshed += 1;
    axum::Json(state.session_json(&did)).into_response()
}

async fn get_session(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let state = shared.lock();
    let did = match state.authed(&headers) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let handle = state
        .account_by_did(&did)
        .map(|a| a.handle.clone())
        .unwrap_or_default();
    axum::Json(json!({ "did": did, "handle": handle, "active": true })).into_response()
}

async fn resolve_handle(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Some(handle) = params.iter().find(|(k, _)| k == "handle").map(|(_, v)| v) else {
        return invalid("Params must have the property \"handle\"");
    };
    let state = shared.lock();
    match state
        .accounts
        .iter()
        .find(|a| a.handle.eq_ignore_ascii_case(handle))
    {
        Some(a) => axum::Json(json!({ "did": a.did })).into_response(),
        None => invalid("Unable to resolve handle"),
    }
}

async fn upload_blob(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let did = match state.authed(&headers) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if mime.is_empty() || mime == "*/*" {
        return invalid("A Content-Type is required");
    }
    if body.is_empty() {
        return invalid("Request body is empty");
    }
    let limit = if mime.starts_with("image/") {
        MAX_IMAGE_BYTES
    } else {
        MAX_VIDEO_BYTES
    };
    if body.len() > limit {
        return xrpc(
            StatusCode::BAD_REQUEST,
            "BlobTooLarge",
            &format!(
                "This file is too large: {} bytes, at most {limit}",
                body.len()
            ),
        );
    }
    let cid = make_cid("bafkrei", &body);
    if !state.blobs.iter().any(|b| b.cid == cid && b.did == did) {
        state.blobs.push(FakeBlob {
            cid: cid.clone(),
            did,
            mime: mime.clone(),
            size: body.len(),
            data: body.to_vec(),
        });
    }
    axum::Json(json!({
        "blob": { "$type": "blob", "ref": { "$link": cid }, "mimeType": mime, "size": body.len() }
    }))
    .into_response()
}

async fn create_record(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.creates.pass().await;
    let mut state = shared.lock();
    let did = match state.authed(&headers) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let request = match json_body(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let repo = request.get("repo").and_then(|v| v.as_str()).unwrap_or("");
    match state.account_by_id(repo) {
        Some(a) if a.did == did => {}
        Some(_) => {
            return xrpc(
                StatusCode::UNAUTHORIZED,
                "AuthRequired",
                "Unauthorized: the session's account does not own this repo",
            );
        }
        None => return invalid(&format!("Could not find repo: {repo}")),
    }
    let collection = request.get("collection").and_then(|v| v.as_str());
    if collection != Some(POST_COLLECTION) {
        return invalid(&format!(
            "the fake Bluesky holds only {POST_COLLECTION} records, not {collection:?}"
        ));
    }
    let Some(record) = request.get("record").filter(|r| r.is_object()) else {
        return invalid("Input must have the property \"record\"");
    };
    if let Err(message) = check_post(&state, &did, record) {
        return invalid_record(&message);
    }
    let seq = state.records.len() as u64 + 1;
    let rkey = tid(seq);
    let uri = format!("at://{did}/{POST_COLLECTION}/{rkey}");
    let cid = make_cid("bafyrei", format!("{uri}{record}").as_bytes());
    state.records.push(FakeRecord {
        uri: uri.clone(),
        cid: cid.clone(),
        did,
        rkey: rkey.clone(),
        value: record.clone(),
        created_seq: seq,
    });
    axum::Json(json!({
        "uri": uri,
        "cid": cid,
        "commit": { "cid": make_cid("bafyreic", rkey.as_bytes()), "rev": rkey },
        "validationStatus": "valid",
    }))
    .into_response()
}

fn str_field<'a>(v: &'a Value, name: &str, at: &str) -> Result<&'a str, String> {
    match v.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{at}/{name} must be a string")),
        None => Err(format!("{at} must have the property \"{name}\"")),
    }
}

/// The checks of a post record (see the module documentation).
fn check_post(state: &FakeState, did: &str, record: &Value) -> Result<(), String> {
    match record.get("$type").and_then(|t| t.as_str()) {
        Some(POST_COLLECTION) => {}
        Some(other) => {
            return Err(format!(
                "Record/$type must be {POST_COLLECTION}, not {other}"
            ));
        }
        None => return Err("Record must have the property \"$type\"".into()),
    }
    let text = str_field(record, "text", "Record")?;
    let graphemes = psn_platforms::rules::length::graphemes(text);
    if graphemes > MAX_GRAPHEMES {
        return Err(format!(
            "Record/text must not be longer than {MAX_GRAPHEMES} graphemes (got {graphemes})"
        ));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "Record/text must not be longer than {MAX_TEXT_BYTES} characters"
        ));
    }
    let created = str_field(record, "createdAt", "Record")?;
    if !looks_like_datetime(created) {
        return Err(
            "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
                .into(),
        );
    }
    if let Some(langs) = record.get("langs") {
        let Some(langs) = langs.as_array() else {
            return Err("Record/langs must be an array".into());
        };
        if langs.len() > 3 || langs.iter().any(|l| l.as_str().is_none_or(str::is_empty)) {
            return Err("Record/langs must hold at most 3 language tags".into());
        }
    }
    if let Some(facets) = record.get("facets") {
        check_facets(state, text, facets)?;
    }
    if let Some(reply) = record.get("reply") {
        check_reply(state, reply)?;
    }
    let embed = record.get("embed");
    if text.is_empty() && embed.is_none() {
        return Err("Record/text may only be empty with an embed".into());
    }
    if let Some(embed) = embed {
        check_embed(state, did, embed)?;
    }
    Ok(())
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    s.is_ascii()
        && s.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

fn check_facets(state: &FakeState, text: &str, facets: &Value) -> Result<(), String> {
    let Some(facets) = facets.as_array() else {
        return Err("Record/facets must be an array".into());
    };
    for (i, facet) in facets.iter().enumerate() {
        let at = format!("Record/facets/{i}");
        let start = facet.pointer("/index/byteStart").and_then(|v| v.as_u64());
        let end = facet.pointer("/index/byteEnd").and_then(|v| v.as_u64());
        let (Some(start), Some(end)) = (start, end) else {
            return Err(format!("{at}/index must have byteStart and byteEnd"));
        };
        let (start, end) = (start as usize, end as usize);
        if start >= end || end > text.len() {
            return Err(format!(
                "{at}/index {start}..{end} is not a range of the text ({} bytes)",
                text.len()
            ));
        }
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return Err(format!(
                "{at}/index {start}..{end} does not fall on UTF-8 character boundaries"
            ));
        }
        let slice = &text[start..end];
        let features = facet
            .get("features")
            .and_then(|f| f.as_array())
            .filter(|f| !f.is_empty())
            .ok_or_else(|| format!("{at}/features must be a non-empty array"))?;
        for feature in features {
            match feature.get("$type").and_then(|t| t.as_str()) {
                Some("app.bsky.richtext.facet#link") => {
                    let uri = str_field(feature, "uri", &at)?;
                    let matches = uri == slice
                        || uri == format!("https://{slice}")
                        || uri == format!("http://{slice}");
                    if !uri.contains(':') || !matches {
                        return Err(format!(
                            "{at}: the link {uri:?} does not match the faceted text {slice:?}"
                        ));
                    }
                }
                Some("app.bsky.richtext.facet#mention") => {
                    let did = str_field(feature, "did", &at)?;
                    let Some(account) = state.account_by_did(did) else {
                        return Err(format!("{at}: Invalid DID {did:?} (unknown)"));
                    };
                    if !slice.eq_ignore_ascii_case(&format!("@{}", account.handle)) {
                        return Err(format!(
                            "{at}: the mention of {did} does not match the faceted text {slice:?}"
                        ));
                    }
                }
                Some("app.bsky.richtext.facet#tag") => {
                    let tag = str_field(feature, "tag", &at)?;
                    if tag.is_empty()
                        || psn_platforms::rules::length::graphemes(tag) > 64
                        || tag.len() > 640
                    {
                        return Err(format!("{at}: tag {tag:?} must be 1 to 64 graphemes"));
                    }
                    if slice != format!("#{tag}") && slice != format!("＃{tag}") {
                        return Err(format!(
                            "{at}: the tag {tag:?} does not match the faceted text {slice:?}"
                        ));
                    }
                }
                other => return Err(format!("{at}: unknown facet feature {other:?}")),
            }
        }
    }
    Ok(())
}

fn check_strong_ref<'a>(
    state: &'a FakeState,
    reply: &Value,
    name: &str,
) -> Result<&'a FakeRecord, String> {
    let at = "Record/reply";
    let Some(r) = reply.get(name) else {
        return Err(format!("{at} must have the property \"{name}\""));
    };
    let uri = str_field(r, "uri", &format!("{at}/{name}"))?;
    let cid = str_field(r, "cid", &format!("{at}/{name}"))?;
    match state.record(uri) {
        Some(rec) if rec.cid == cid => Ok(rec),
        Some(_) => Err(format!(
            "{at}/{name}: the cid does not match the record {uri}"
        )),
        None => Err(format!("{at}/{name}: the record {uri} does not exist")),
    }
}

fn check_reply(state: &FakeState, reply: &Value) -> Result<(), String> {
    let root = check_strong_ref(state, reply, "root")?;
    let parent = check_strong_ref(state, reply, "parent")?;
    let parents_root = parent.root_uri().unwrap_or(parent.uri.as_str());
    if parents_root != root.uri {
        return Err(format!(
            "Record/reply/root must be the root of the parent's thread ({parents_root})"
        ));
    }
    Ok(())
}

/// A blob ref: uploaded by `did`, with the same mimeType and size; returns the blob.
fn check_blob<'a>(
    state: &'a FakeState,
    did: &str,
    blob: Option<&Value>,
    at: &str,
) -> Result<&'a FakeBlob, String> {
    let Some(blob) = blob else {
        return Err(format!("{at} must be a blob"));
    };
    if blob.get("$type").and_then(|t| t.as_str()) != Some("blob") {
        return Err(format!("{at} must be a blob ($type \"blob\")"));
    }
    let cid = blob
        .pointer("/ref/$link")
        .and_then(|c| c.as_str())
        .ok_or_else(|| format!("{at}/ref must be a cid link"))?;
    let stored = state
        .blobs
        .iter()
        .find(|b| b.cid == cid && b.did == did)
        .ok_or_else(|| format!("{at}: Could not find blob {cid} in this repo"))?;
    let mime = blob.get("mimeType").and_then(|m| m.as_str());
    let size = blob.get("size").and_then(|s| s.as_u64());
    if mime != Some(stored.mime.as_str()) || size != Some(stored.size as u64) {
        return Err(format!(
            "{at}: mimeType/size do not match the uploaded blob {cid}"
        ));
    }
    Ok(stored)
}

fn check_aspect_ratio(v: &Value, at: &str) -> Result<(), String> {
    if let Some(ar) = v.get("aspectRatio") {
        let w = ar.get("width").and_then(|w| w.as_u64()).unwrap_or(0);
        let h = ar.get("height").and_then(|h| h.as_u64()).unwrap_or(0);
        if w == 0 || h == 0 {
            return Err(format!(
                "{at}/aspectRatio must have a positive width and height"
            ));
        }
    }
    Ok(())
}

fn check_embed(state: &FakeState, did: &str, embed: &Value) -> Result<(), String> {
    let at = "Record/embed";
    match embed.get("$type").and_then(|t| t.as_str()) {
        Some("app.bsky.embed.images") => {
            let images = embed
                .get("images")
                .and_then(|i| i.as_array())
                .ok_or_else(|| format!("{at} must have the property \"images\""))?;
            if images.len() > MAX_IMAGES {
                return Err(format!(
                    "{at}/images must not have more than {MAX_IMAGES} elements"
                ));
            }
            if images.is_empty() {
                return Err(format!("{at}/images must not be empty"));
            }
            for (i, image) in images.iter().enumerate() {
                let at = format!("{at}/images/{i}");
                str_field(image, "alt", &at)?;
                let blob = check_blob(state, did, image.get("image"), &format!("{at}/image"))?;
                if !blob.mime.starts_with("image/") {
                    return Err(format!("{at}/image mimeType must be image/*"));
                }
                if blob.size > MAX_IMAGE_BYTES {
                    return Err(format!("{at}/image file too large: {} bytes", blob.size));
                }
                check_aspect_ratio(image, &at)?;
            }
            Ok(())
        }
        Some("app.bsky.embed.video") => {
            let blob = check_blob(state, did, embed.get("video"), &format!("{at}/video"))?;
            if blob.mime != "video/mp4" {
                return Err(format!("{at}/video mimeType must be video/mp4"));
            }
            if blob.size > MAX_VIDEO_BYTES {
                return Err(format!("{at}/video file too large"));
            }
            if let Some(alt) = embed.get("alt")
                && !alt.is_string()
            {
                return Err(format!("{at}/alt must be a string"));
            }
            check_aspect_ratio(embed, at)
        }
        Some("app.bsky.embed.external") => {
            let external = embed
                .get("external")
                .ok_or_else(|| format!("{at} must have the property \"external\""))?;
            let at = format!("{at}/external");
            let uri = str_field(external, "uri", &at)?;
            if !uri.contains("://") {
                return Err(format!("{at}/uri must be a uri"));
            }
            str_field(external, "title", &at)?;
            str_field(external, "description", &at)?;
            if let Some(thumb) = external.get("thumb") {
                let blob = check_blob(state, did, Some(thumb), &format!("{at}/thumb"))?;
                if !blob.mime.starts_with("image/") || blob.size > MAX_THUMB_BYTES {
                    return Err(format!(
                        "{at}/thumb must be an image of at most {MAX_THUMB_BYTES} bytes"
                    ));
                }
            }
            Ok(())
        }
        Some(other) => Err(format!("{at}: the fake does not take {other} embeds")),
        None => Err(format!("{at} must have the property \"$type\"")),
    }
}

async fn list_records(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let state = shared.lock();
    let (Some(repo), Some(collection)) = (param("repo"), param("collection")) else {
        return invalid("Params must have the properties \"repo\" and \"collection\"");
    };
    let Some(account) = state.account_by_id(repo) else {
        return invalid(&format!("Could not find repo: {repo}"));
    };
    let limit = match param("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("limit must be an integer from 1 to 100"),
    };
    let reverse = param("reverse") == Some("true");
    let cursor = param("cursor");
    let mut records: Vec<&FakeRecord> = if collection == POST_COLLECTION {
        state
            .records
            .iter()
            .filter(|r| r.did == account.did)
            .collect()
    } else {
        Vec::new()
    };
    if !reverse {
        records.reverse();
    }
    let records: Vec<&FakeRecord> = records
        .into_iter()
        .filter(|r| match cursor {
            None => true,
            Some(c) if reverse => r.rkey.as_str() > c,
            Some(c) => r.rkey.as_str() < c,
        })
        .take(limit)
        .collect();
    let cursor = (records.len() == limit).then(|| records.last().map(|r| r.rkey.clone()));
    axum::Json(json!({
        "records": records.iter().map(|r| json!({"uri": r.uri, "cid": r.cid, "value": r.value})).collect::<Vec<_>>(),
        "cursor": cursor.flatten(),
    }))
    .into_response()
}

async fn get_posts(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let state = shared.lock();
    if let Err(r) = state.authed(&headers) {
        return *r;
    }
    let uris: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "uris")
        .map(|(_, v)| v.as_str())
        .collect();
    if uris.len() > 25 {
        return invalid("uris must not have more than 25 elements");
    }
    let posts: Vec<Value> = uris
        .iter()
        .filter_map(|u| state.record(u))
        .map(|r| state.post_view(r))
        .collect();
    axum::Json(json!({ "posts": posts })).into_response()
}

async fn control_records(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().records.clone()).into_response()
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

#[derive(Deserialize)]
struct AccountSpec {
    did: String,
    handle: String,
    password: String,
}

async fn control_add_account(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: AccountSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad account: {e}")).into_response(),
    };
    let fake = FakeBluesky {
        shared,
        base_url: String::new(),
    };
    fake.add_account(&spec.did, &spec.handle, &spec.password);
    StatusCode::NO_CONTENT.into_response()
}

async fn control_expire(State(shared): State<Arc<Shared>>) -> Response {
    let fake = FakeBluesky {
        shared,
        base_url: String::new(),
    };
    fake.expire_access_tokens();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_are_sortable_and_well_formed() {
        let a = tid(1);
        let b = tid(2);
        assert_eq!(a.len(), 13);
        assert!(a < b);
        assert!(a.bytes().all(|c| BASE32_SORTABLE.contains(&c)));
    }

    #[test]
    fn datetimes() {
        assert!(looks_like_datetime("2026-01-01T00:00:00.000Z"));
        assert!(looks_like_datetime("2026-01-01T00:00:00+01:00"));
        assert!(!looks_like_datetime("yesterday"));
    }
}
