//! A strict, stateful fake of the X API v2 parts psn uses.
//!
//! X endpoints:
//! - `POST /2/tweets` — bearer token of a known, unexpired account (else 401);
//!   `Content-Type: application/json` (else 415); a JSON object with only the
//!   `CreatePostsRequest` fields, a non-empty `text` (the fake has no media), weighted length
//!   ≤ 280 (else 403 "Forbidden", as X says), `reply.in_reply_to_tweet_id` a known post (else
//!   400), not the same text as another post of the author (else 403 duplicate content).
//!   201 `{"data":{"id","text","edit_history_tweet_ids"}}` with increasing numeric ids.
//! - `GET /2/users/{id}/tweets` — auth; newest first; `max_results` 5..=100 (default 10);
//!   unknown query parameters → 400. Each post has `id`, `text` (with `&`, `<`, `>`
//!   HTML-escaped, as X returns it) and `edit_history_tweet_ids`; `author_id`, `created_at`
//!   and `referenced_tweets` only when asked for in `tweet.fields` (as on X; `post.fields`
//!   is accepted too and answers `referenced_posts`). No posts → `{"meta":{"result_count":0}}`.
//! - `GET /2/users/me` — auth; `{"data":{"id","name","username"}}`.
//! - Media (`/2/media/upload…`, see [`FakeMedia`]): one-shot `POST /2/media/upload`
//!   (multipart `media` + `media_category`, images only, ≤ 5 MB); chunked
//!   `POST /2/media/upload/initialize` (JSON `media_type`, `total_bytes`, `media_category`,
//!   no other field), `POST /2/media/upload/{id}/append` (multipart `segment_index`, `media`;
//!   an index may be sent again — it replaces the segment — but never skip one; no APPEND
//!   after FINALIZE; never more bytes than announced), `POST /2/media/upload/{id}/finalize`
//!   (every byte received; GIFs and videos then process for
//!   [`FakeX::set_media_processing`] status checks, suggesting `check_after_secs`),
//!   `GET /2/media/upload?command=STATUS&media_id=…`, `POST /2/media/metadata` (alt text ≤
//!   1000 characters). Media belongs to the account that uploaded it; a post's
//!   `media.media_ids` (1 to 4) must be the author's, finalized and processed.
//! - `POST /2/oauth2/token` — form `grant_type=refresh_token&refresh_token=…[&client_id=…]`;
//!   rotates both tokens (the old access token stays valid until expired); a spent or
//!   unknown refresh token → 400 `invalid_grant`.
//!
//! Every X response carries `x-rate-limit-limit/-remaining/-reset` (15-minute windows per
//! endpoint and account; `POST /2/tweets` allows 100 per window by default, see
//! [`FakeX::set_post_rate_limit`]); an exhausted window answers 429.
//!
//! Control endpoints (never faulted, not counted): `GET /_fake/posts`, `GET /_fake/requests`,
//! `POST /_fake/faults` (a [`Fault`] object, `{"faults":[…]}`, or
//! `{"random":{"probability","kinds":[…],"seed","path_prefix"?}}`), `DELETE /_fake/faults`,
//! `POST /_fake/accounts` (`{"user_id","username","token","refresh_token"?}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use psn_domain::Platform;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use crate::faults::{Fault, FaultKind, Faults, Gate};
use crate::server::{self, close_connection, serve};

/// The first post id; ids grow by 1000 (19 digits, like real ids).
const FIRST_ID: u64 = 1_900_000_000_000_000_000;
/// Rate-limit window.
const WINDOW_SECS: u64 = 15 * 60;
/// Fields `POST /2/tweets` accepts (OpenAPI `CreatePostsRequest`).
const CREATE_FIELDS: &[&str] = &[
    "card_uri",
    "community_id",
    "direct_message_deep_link",
    "edit_options",
    "for_super_followers_only",
    "geo",
    "made_with_ai",
    "media",
    "nullcast",
    "paid_partnership",
    "poll",
    "quote_tweet_id",
    "reply",
    "reply_settings",
    "share_with_followers",
    "text",
];
/// Query parameters `GET /2/users/{id}/tweets` accepts.
const TIMELINE_PARAMS: &[&str] = &[
    "max_results",
    "pagination_token",
    "start_time",
    "end_time",
    "since_id",
    "until_id",
    "exclude",
    "tweet.fields",
    "post.fields",
    "expansions",
    "user.fields",
    "media.fields",
    "poll.fields",
    "place.fields",
];

/// A post the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakePost {
    pub id: String,
    pub author_id: String,
    pub text: String,
    pub reply_to: Option<String>,
    /// Order of creation, from 1.
    pub created_seq: u64,
    /// Attached media ids (`media.media_ids`).
    #[serde(default)]
    pub media_ids: Vec<String>,
}

/// A media upload the fake holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeMedia {
    pub id: String,
    pub owner: String,
    pub category: String,
    pub media_type: String,
    pub total_bytes: u64,
    /// Whether it came through initialize/append/finalize.
    pub chunked: bool,
    /// Every APPEND accepted, in order of arrival: `(segment_index, bytes)`.
    pub appends: Vec<(u32, usize)>,
    pub finalized: bool,
    /// Processed and usable in a post.
    pub ready: bool,
    /// Status checks left before processing ends.
    pub polls_left: u32,
    /// How many status checks were answered.
    pub status_checks: u32,
    pub alt: Option<String>,
    /// The bytes received, segment by segment.
    #[serde(skip)]
    pub segments: Vec<Vec<u8>>,
}

impl FakeMedia {
    /// The file as the fake assembled it.
    pub fn content(&self) -> Vec<u8> {
        self.segments.concat()
    }
}

/// A request the fake received (control endpoints excluded). Headers are not kept (tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
}

impl Fault {
    /// `kind` for the next `POST /2/tweets`.
    pub fn on_create(kind: FaultKind) -> Self {
        Fault::new(kind).path("/2/tweets").method("POST")
    }
}

#[derive(Debug, Deserialize)]
struct AccountSpec {
    user_id: String,
    username: String,
    token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Debug)]
struct Window {
    start: u64,
    used: u32,
}

#[derive(Debug, Default)]
struct FakeState {
    /// user id → username
    accounts: HashMap<String, String>,
    /// access token → (user id, expired)
    tokens: HashMap<String, (String, bool)>,
    /// refresh token → (user id, spent)
    refresh_tokens: HashMap<String, (String, bool)>,
    posts: Vec<FakePost>,
    faults: Faults,
    request_count: usize,
    requests: Vec<RecordedRequest>,
    windows: HashMap<(String, String), Window>,
    post_limit: Option<u32>,
    issued: u64,
    media: Vec<FakeMedia>,
    /// (status checks before processing ends, suggested `check_after_secs`).
    media_processing: Option<(u32, u64)>,
}

impl FakeState {
    fn user_for(&self, headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers)?;
        match self.tokens.get(token) {
            Some((user, false)) => Some(user.clone()),
            _ => None,
        }
    }

    fn limit_for(&self, key: &str) -> u32 {
        match key {
            "POST /2/tweets" => self.post_limit.unwrap_or(100),
            "GET /2/users/:id/tweets" => 900,
            "GET /2/users/me" => 75,
            _ => 1000,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The rate-limit bucket of a request: endpoint with ids folded.
fn endpoint_key(method: &Method, path: &str) -> String {
    let folded: Vec<&str> = path
        .split('/')
        .enumerate()
        // Segment 1 is the API version ("2").
        .map(|(i, seg)| {
            if i > 1 && !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                ":id"
            } else {
                seg
            }
        })
        .collect();
    format!("{} {}", method, folded.join("/"))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<FakeState>,
    /// APPENDs with a segment index at or above this wait until it changes.
    hold: tokio::sync::watch::Sender<Option<u32>>,
    /// How many APPENDs are waiting.
    held: std::sync::atomic::AtomicUsize,
    /// Holds `POST /2/tweets` on command.
    creates: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake X. Clone it freely: clones share the server and its state. The server runs
/// on the runtime that called [`FakeX::start`] until that runtime shuts down.
#[derive(Debug, Clone)]
pub struct FakeX {
    shared: Arc<Shared>,
    base_url: String,
}

impl FakeX {
    /// Starts a fake on 127.0.0.1 with a free port.
    pub async fn start() -> FakeX {
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState::default()),
            hold: tokio::sync::watch::channel(None).0,
            held: std::sync::atomic::AtomicUsize::new(0),
            creates: Gate::default(),
        });
        let router = Router::new()
            .route("/2/tweets", post(create_tweet))
            .route("/2/users/me", get(users_me))
            .route("/2/users/{id}/tweets", get(user_tweets))
            .route("/2/oauth2/token", post(oauth_token))
            .route("/2/media/upload", post(media_upload).get(media_status))
            .route("/2/media/upload/initialize", post(media_initialize))
            .route("/2/media/upload/{id}/append", post(media_append))
            .route("/2/media/upload/{id}/finalize", post(media_finalize))
            .route("/2/media/metadata", post(media_metadata))
            .route("/_fake/posts", get(control_posts))
            .route("/_fake/requests", get(control_requests))
            .route(
                "/_fake/faults",
                post(control_set_faults).delete(control_clear_faults),
            )
            .route("/_fake/accounts", post(control_add_account))
            // Media uploads: bodies up to 64 MB (axum's default limit is 2 MB).
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .layer(middleware::from_fn_with_state(shared.clone(), x_layer))
            .with_state(shared.clone());
        let addr = serve(router)
            .await
            .expect("the fake X could not bind 127.0.0.1");
        FakeX {
            shared,
            base_url: format!("http://{addr}"),
        }
    }

    /// Starts a fake on its own thread and runtime, for tests without a tokio runtime (for
    /// example ones that run the `psn` binary). It runs until the process ends.
    pub fn start_in_thread() -> FakeX {
        server::start_in_thread("fake-x", FakeX::start)
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash (set `PSN_API_BASE_X` to it).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Registers an account and a valid access token for it (more tokens: call again).
    pub fn add_account(&self, user_id: &str, username: &str, token: &str) {
        let mut state = self.shared.lock();
        state
            .accounts
            .insert(user_id.to_owned(), username.to_owned());
        state
            .tokens
            .insert(token.to_owned(), (user_id.to_owned(), false));
    }

    /// Registers a refresh token for an account (see `POST /2/oauth2/token`).
    pub fn add_refresh_token(&self, user_id: &str, refresh_token: &str) {
        let mut state = self.shared.lock();
        state
            .refresh_tokens
            .insert(refresh_token.to_owned(), (user_id.to_owned(), false));
    }

    /// Makes an access token expired: requests with it get 401.
    pub fn expire_token(&self, token: &str) {
        let mut state = self.shared.lock();
        if let Some(entry) = state.tokens.get_mut(token) {
            entry.1 = true;
        }
    }

    /// Whether `token` is a known, unexpired access token.
    pub fn token_valid(&self, token: &str) -> bool {
        matches!(self.shared.lock().tokens.get(token), Some((_, false)))
    }

    /// The posts accepted so far, oldest first.
    pub fn posts(&self) -> Vec<FakePost> {
        self.shared.lock().posts.clone()
    }

    /// Queues a fault; queued faults are consumed in order of injection.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// After queued faults, each X request gets one of `kinds` with `probability`, drawn
    /// from a generator seeded with `seed` (same seed and requests, same faults).
    pub fn set_random_faults(&self, probability: f64, kinds: Vec<FaultKind>, seed: u64) {
        self.set_random_faults_on(None, probability, kinds, seed);
    }

    /// [`FakeX::set_random_faults`] only for paths starting with `path_prefix`.
    pub fn set_random_faults_on(
        &self,
        path_prefix: Option<&str>,
        probability: f64,
        kinds: Vec<FaultKind>,
        seed: u64,
    ) {
        self.shared
            .lock()
            .faults
            .set_random(path_prefix, probability, kinds, seed);
    }

    /// Removes queued and random faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How many X requests arrived (control endpoints excluded).
    pub fn request_count(&self) -> usize {
        self.shared.lock().request_count
    }

    /// The X requests received, in order (bodies included, headers not).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The media uploads so far, in order of creation.
    pub fn media(&self) -> Vec<FakeMedia> {
        self.shared.lock().media.clone()
    }

    /// From now on, an APPEND with a segment index of `index` or more waits (its request
    /// unanswered) until [`FakeX::release_media_appends`]; then it is applied, even if the
    /// client is gone. [`FakeX::held_media_appends`] counts the waiting ones: a test knows an
    /// upload reached `index` without racing it.
    pub fn hold_media_appends_from(&self, index: u32) {
        self.shared.hold.send_replace(Some(index));
    }

    /// Holds `POST /2/tweets` from the `n`-th one after this call (0: the next) until
    /// [`FakeX::release_creates`]; a held create is written when released, even if its client
    /// is gone. [`FakeX::held_creates`] counts the waiting ones.
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

    /// Lets held APPENDs through.
    pub fn release_media_appends(&self) {
        self.shared.hold.send_replace(None);
    }

    /// How many APPENDs are waiting.
    pub fn held_media_appends(&self) -> usize {
        self.shared.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// GIFs and videos process for `checks` status checks after FINALIZE, each answer
    /// suggesting `check_after_secs` (default: 1 check, 1 second).
    pub fn set_media_processing(&self, checks: u32, check_after_secs: u64) {
        self.shared.lock().media_processing = Some((checks, check_after_secs));
    }

    /// Sets how many `POST /2/tweets` an account may make per 15 minutes (default 100).
    pub fn set_post_rate_limit(&self, limit: u32) {
        self.shared.lock().post_limit = Some(limit);
    }
}

fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> Response {
    let body = json!({
        "title": title,
        "type": kind,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        "about:blank",
    )
}

fn invalid_request(detail: &str) -> Response {
    let body = json!({
        "errors": [{ "message": detail }],
        "title": "Invalid Request",
        "detail": detail,
        "type": "https://api.twitter.com/2/problems/invalid-request",
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn forbidden(detail: &str) -> Response {
    problem(StatusCode::FORBIDDEN, "Forbidden", detail, "about:blank")
}

fn set_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, v);
    }
}

/// Records, rate-limits and faults every X request.
async fn x_layer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
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
    let key = endpoint_key(&method, &path);
    let now = now_secs();
    let (fault, limit, remaining, reset, exhausted) = {
        let mut state = shared.lock();
        state.request_count += 1;
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
        let fault = state.faults.take(&method, &path);
        let who = state
            .user_for(&parts.headers)
            .unwrap_or_else(|| "app".into());
        let limit = state.limit_for(&key);
        let window = state.windows.entry((key.clone(), who)).or_insert(Window {
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
        let exhausted = window.used >= limit;
        if fault.is_none() && !exhausted {
            window.used += 1;
        }
        (
            fault,
            limit,
            limit.saturating_sub(window.used),
            window.start + WINDOW_SECS,
            exhausted,
        )
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut response = match fault {
        None if exhausted => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
                "about:blank",
            );
            set_header(&mut r, "retry-after", reset.saturating_sub(now).to_string());
            r
        }
        None => next.run(request).await,
        Some(FaultKind::ServerError) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "Service Unavailable",
            "about:blank",
        ),
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
                "about:blank",
            );
            set_header(&mut r, "retry-after", retry_after_secs.to_string());
            set_header(&mut r, "x-rate-limit-limit", limit.to_string());
            set_header(&mut r, "x-rate-limit-remaining", "0".into());
            set_header(
                &mut r,
                "x-rate-limit-reset",
                (now + retry_after_secs).to_string(),
            );
            return r;
        }
        Some(FaultKind::Unauthorized) => unauthorized(),
        Some(FaultKind::BadRequest) => invalid_request(
            "One or more parameters to your request was invalid (injected by the fake).",
        ),
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
    set_header(&mut response, "x-rate-limit-limit", limit.to_string());
    set_header(
        &mut response,
        "x-rate-limit-remaining",
        remaining.to_string(),
    );
    set_header(&mut response, "x-rate-limit-reset", reset.to_string());
    response
}

async fn create_tweet(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.creates.pass().await;
    let mut state = shared.lock();
    let Some(author) = state.user_for(&headers) else {
        return unauthorized();
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "Content-Type must be application/json.",
            "about:blank",
        );
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid_request("The request body is not a JSON object.");
    };
    if let Some(field) = request
        .keys()
        .find(|k| !CREATE_FIELDS.contains(&k.as_str()))
    {
        return invalid_request(&format!(
            "The `{field}` field is not allowed in this request."
        ));
    }
    let media_ids = match request.get("media") {
        None => Vec::new(),
        Some(media) => match attached_media(&state, &author, media) {
            Ok(ids) => ids,
            Err(response) => return *response,
        },
    };
    let text = match request.get("text") {
        Some(Value::String(text)) => text.clone(),
        Some(_) => return invalid_request("The `text` field must be a string."),
        None => String::new(),
    };
    if text.trim().is_empty() && media_ids.is_empty() {
        return invalid_request("Tweet text is required when no media is attached.");
    }
    let reply_to = match request.get("reply") {
        None => None,
        Some(Value::Object(reply)) => {
            if let Some(field) = reply.keys().find(|k| {
                ![
                    "in_reply_to_tweet_id",
                    "exclude_reply_user_ids",
                    "auto_populate_reply_metadata",
                ]
                .contains(&k.as_str())
            }) {
                return invalid_request(&format!("The `reply.{field}` field is not allowed."));
            }
            let Some(Value::String(id)) = reply.get("in_reply_to_tweet_id") else {
                return invalid_request("`reply.in_reply_to_tweet_id` is required.");
            };
            let well_formed =
                !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit());
            if !well_formed {
                return invalid_request(&format!("`{id}` is not a valid Tweet id."));
            }
            if !state.posts.iter().any(|p| &p.id == id) {
                return invalid_request(&format!(
                    "You attempted to reply to a Tweet that is deleted or not visible to you ({id})."
                ));
            }
            Some(id.clone())
        }
        Some(_) => return invalid_request("`reply` must be an object."),
    };
    if !psn_platforms::measure(Platform::X, &text).fits() {
        // X says only this for an over-long post.
        return forbidden("Forbidden");
    }
    if !text.is_empty()
        && state
            .posts
            .iter()
            .any(|p| p.author_id == author && p.text == text)
    {
        return forbidden("You are not allowed to create a Tweet with duplicate content.");
    }
    let seq = state.posts.len() as u64 + 1;
    let id = (FIRST_ID + seq * 1000).to_string();
    state.posts.push(FakePost {
        id: id.clone(),
        author_id: author,
        text: text.clone(),
        reply_to,
        created_seq: seq,
        media_ids,
    });
    let body = json!({ "data": { "id": id, "text": text, "edit_history_tweet_ids": [id] } });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// The `media` object of a new post: `{"media_ids": [1..=4 ids]}` of the author's processed
/// uploads.
fn attached_media(
    state: &FakeState,
    author: &str,
    media: &Value,
) -> Result<Vec<String>, Box<Response>> {
    let bad = |detail: String| Box::new(invalid_request(&detail));
    let Value::Object(media) = media else {
        return Err(bad("`media` must be an object.".into()));
    };
    if let Some(field) = media
        .keys()
        .find(|k| !["media_ids", "tagged_user_ids"].contains(&k.as_str()))
    {
        return Err(bad(format!("The `media.{field}` field is not allowed.")));
    }
    let Some(Value::Array(ids)) = media.get("media_ids") else {
        return Err(bad("`media.media_ids` is required.".into()));
    };
    if ids.is_empty() || ids.len() > 4 {
        return Err(bad(format!(
            "`media.media_ids` must hold 1 to 4 ids, not {}.",
            ids.len()
        )));
    }
    let mut out = Vec::new();
    for id in ids {
        let Value::String(id) = id else {
            return Err(bad("media ids must be strings.".into()));
        };
        match state
            .media
            .iter()
            .find(|m| &m.id == id && m.owner == author)
        {
            None => {
                return Err(bad(format!(
                    "Your media IDs are invalid: {id} is not a media id of this account."
                )));
            }
            Some(m) if !m.ready => {
                return Err(bad(format!(
                    "Your media ID {id} is not ready: finalize it and wait for processing."
                )));
            }
            Some(_) => out.push(id.clone()),
        }
    }
    Ok(out)
}

/// Categories X accepts for posts.
const MEDIA_CATEGORIES: &[&str] = &["tweet_image", "tweet_gif", "tweet_video", "amplify_video"];
/// `media_type`s `initialize` accepts (OpenAPI `InitializeMediaUploadRequest`).
const MEDIA_TYPES: &[&str] = &[
    "video/mp4",
    "video/webm",
    "video/mp2t",
    "video/quicktime",
    "text/srt",
    "text/vtt",
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/png",
    "image/webp",
    "image/pjpeg",
    "image/tiff",
    "model/gltf-binary",
    "model/vnd.usdz+zip",
];
/// The most a one-shot image upload takes.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

fn media_key(id: &str) -> String {
    format!("3_{id}")
}

fn next_media_id(state: &FakeState) -> String {
    (FIRST_ID + 7 + (state.media.len() as u64 + 1) * 1000).to_string()
}

/// `processing_info` of a media, `None` once no processing was ever needed.
fn processing_info(media: &FakeMedia, check_after: u64) -> Option<Value> {
    if !media.finalized
        || (media.ready
            && media.status_checks == 0
            && media.polls_left == 0
            && !needs_processing(media))
    {
        return None;
    }
    if media.ready {
        return Some(json!({ "state": "succeeded", "progress_percent": 100 }));
    }
    let state = if media.status_checks == 0 {
        "pending"
    } else {
        "in_progress"
    };
    Some(json!({ "state": state, "check_after_secs": check_after, "progress_percent": 50 }))
}

fn needs_processing(media: &FakeMedia) -> bool {
    media.category != "tweet_image"
}

fn media_json(media: &FakeMedia, check_after: u64) -> Value {
    let mut data = json!({
        "id": media.id,
        "media_key": media_key(&media.id),
        "size": media.total_bytes,
        "expires_after_secs": 86_400,
    });
    if let Some(info) = processing_info(media, check_after) {
        data["processing_info"] = info;
    }
    json!({ "data": data })
}

async fn media_upload(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let Some(owner) = state.user_for(&headers) else {
        return unauthorized();
    };
    let form = match crate::form::parse(&headers, &body) {
        Ok(form) => form,
        Err(e) => return invalid_request(&e),
    };
    if let Some(field) = form
        .keys()
        .find(|k| !["media", "media_category", "additional_owners"].contains(&k.as_str()))
    {
        return invalid_request(&format!(
            "The `{field}` field is not allowed in this request."
        ));
    }
    let Some(media) = form.get("media") else {
        return invalid_request("The `media` field is required.");
    };
    let category = form
        .get("media_category")
        .and_then(|f| f.text())
        .unwrap_or("");
    if category != "tweet_image" {
        return invalid_request(&format!(
            "media_category {category:?}: one-shot uploads take tweet_image; use the chunked upload for GIFs and videos."
        ));
    }
    if media.data.is_empty() || media.data.len() > MAX_IMAGE_BYTES {
        return invalid_request(&format!(
            "Image size {} is not between 1 byte and 5 MB.",
            media.data.len()
        ));
    }
    let id = next_media_id(&state);
    let record = FakeMedia {
        id: id.clone(),
        owner,
        category: category.into(),
        media_type: media.content_type.clone().unwrap_or_default(),
        total_bytes: media.data.len() as u64,
        chunked: false,
        appends: Vec::new(),
        finalized: true,
        ready: true,
        polls_left: 0,
        status_checks: 0,
        alt: None,
        segments: vec![media.data.clone()],
    };
    let body = media_json(&record, 0);
    state.media.push(record);
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn media_initialize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let Some(owner) = state.user_for(&headers) else {
        return unauthorized();
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "Content-Type must be application/json.",
            "about:blank",
        );
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid_request("The request body is not a JSON object.");
    };
    if let Some(field) = request.keys().find(|k| {
        ![
            "additional_owners",
            "media_category",
            "media_type",
            "shared",
            "total_bytes",
        ]
        .contains(&k.as_str())
    }) {
        return invalid_request(&format!(
            "The `{field}` field is not allowed in this request."
        ));
    }
    let media_type = request
        .get("media_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !MEDIA_TYPES.contains(&media_type) {
        return invalid_request(&format!("media_type {media_type:?} is not supported."));
    }
    let category = request
        .get("media_category")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !MEDIA_CATEGORIES.contains(&category) {
        return invalid_request(&format!("media_category {category:?} is not supported."));
    }
    let Some(total) = request
        .get("total_bytes")
        .and_then(|v| v.as_u64())
        .filter(|&t| t > 0)
    else {
        return invalid_request("total_bytes must be a positive integer.");
    };
    let id = next_media_id(&state);
    let (checks, _) = state.media_processing.unwrap_or((1, 1));
    state.media.push(FakeMedia {
        id: id.clone(),
        owner,
        category: category.into(),
        media_type: media_type.into(),
        total_bytes: total,
        chunked: true,
        appends: Vec::new(),
        finalized: false,
        ready: false,
        polls_left: checks,
        status_checks: 0,
        alt: None,
        segments: Vec::new(),
    });
    let body =
        json!({ "data": { "id": id, "media_key": media_key(&id), "expires_after_secs": 86_400 } });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The author's upload `id`, or the error response.
fn own_media<'a>(
    state: &'a mut FakeState,
    headers: &HeaderMap,
    id: &str,
) -> Result<&'a mut FakeMedia, Box<Response>> {
    let Some(owner) = state.user_for(headers) else {
        return Err(Box::new(unauthorized()));
    };
    state
        .media
        .iter_mut()
        .find(|m| m.id == id && m.owner == owner)
        .ok_or_else(|| Box::new(invalid_request(&format!("Unknown media id {id}."))))
}

async fn media_append(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold_append(&shared, &headers, &body).await;
    let mut state = shared.lock();
    let media = match own_media(&mut state, &headers, &id) {
        Ok(m) => m,
        Err(response) => return *response,
    };
    let form = match crate::form::parse(&headers, &body) {
        Ok(form) => form,
        Err(e) => return invalid_request(&e),
    };
    if let Some(field) = form
        .keys()
        .find(|k| !["media", "segment_index"].contains(&k.as_str()))
    {
        return invalid_request(&format!(
            "The `{field}` field is not allowed in this request."
        ));
    }
    if !media.chunked {
        return invalid_request("APPEND is only for uploads started with initialize.");
    }
    if media.finalized {
        return invalid_request("The upload was already finalized: APPEND after FINALIZE.");
    }
    let Some(index) = form
        .get("segment_index")
        .and_then(|f| f.text())
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|&i| i <= 999)
    else {
        return invalid_request("segment_index must be an integer from 0 to 999.");
    };
    let Some(chunk) = form.get("media").map(|f| f.data.clone()) else {
        return invalid_request("The `media` field is required.");
    };
    let index_usize = index as usize;
    if index_usize > media.segments.len() {
        return invalid_request(&format!(
            "Segment {index} arrived before segment {}: segments must be consecutive.",
            media.segments.len()
        ));
    }
    let mut sizes: u64 = media.segments.iter().map(|s| s.len() as u64).sum();
    if index_usize < media.segments.len() {
        sizes -= media.segments[index_usize].len() as u64;
    }
    if sizes + chunk.len() as u64 > media.total_bytes {
        return invalid_request("The upload is larger than total_bytes.");
    }
    media.appends.push((index, chunk.len()));
    if index_usize < media.segments.len() {
        media.segments[index_usize] = chunk;
    } else {
        media.segments.push(chunk);
    }
    let body = json!({ "data": { "expires_at": now_secs() + 86_400 } });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Waits while APPENDs of this segment index are held.
async fn hold_append(shared: &Shared, headers: &HeaderMap, body: &[u8]) {
    let index = crate::form::parse(headers, body)
        .ok()
        .and_then(|f| f.get("segment_index")?.text()?.trim().parse::<u32>().ok());
    let Some(index) = index else { return };
    let mut rx = shared.hold.subscribe();
    let held = |h: &Option<u32>| h.is_some_and(|from| index >= from);
    if !held(&rx.borrow_and_update()) {
        return;
    }
    shared
        .held
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    while held(&rx.borrow_and_update()) {
        if rx.changed().await.is_err() {
            break;
        }
    }
    shared
        .held
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

async fn media_finalize(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    let (_, check_after) = state.media_processing.unwrap_or((1, 1));
    let media = match own_media(&mut state, &headers, &id) {
        Ok(m) => m,
        Err(response) => return *response,
    };
    if !media.chunked {
        return invalid_request("FINALIZE is only for uploads started with initialize.");
    }
    let received: u64 = media.segments.iter().map(|s| s.len() as u64).sum();
    if received != media.total_bytes {
        return invalid_request(&format!(
            "Received {received} of {} bytes: append the rest before FINALIZE.",
            media.total_bytes
        ));
    }
    if !media.finalized {
        media.finalized = true;
        if !needs_processing(media) || media.polls_left == 0 {
            media.ready = true;
        }
    }
    let body = media_json(media, check_after);
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn media_status(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    if let Some((name, _)) = params
        .iter()
        .find(|(k, _)| k != "media_id" && k != "command")
    {
        return invalid_request(&format!(
            "The query parameter [{name}] is not one of [media_id,command]"
        ));
    }
    if params.iter().any(|(k, v)| k == "command" && v != "STATUS") {
        return invalid_request("command must be STATUS.");
    }
    let Some((_, id)) = params.iter().find(|(k, _)| k == "media_id").cloned() else {
        return invalid_request("media_id is required.");
    };
    let (_, check_after) = state.media_processing.unwrap_or((1, 1));
    let media = match own_media(&mut state, &headers, &id) {
        Ok(m) => m,
        Err(response) => return *response,
    };
    if !media.finalized {
        return invalid_request("The upload is not finalized.");
    }
    if !media.ready {
        media.status_checks += 1;
        media.polls_left = media.polls_left.saturating_sub(1);
        if media.polls_left == 0 {
            media.ready = true;
        }
    }
    let body = media_json(media, check_after);
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn media_metadata(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid_request("The request body is not a JSON object.");
    };
    let id = request
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let media = match own_media(&mut state, &headers, &id) {
        Ok(m) => m,
        Err(response) => return *response,
    };
    let Some(text) = request
        .get("metadata")
        .and_then(|m| m.get("alt_text"))
        .and_then(|a| a.get("text"))
        .and_then(|t| t.as_str())
    else {
        return invalid_request("metadata.alt_text.text is required.");
    };
    if text.chars().count() > 1000 {
        return invalid_request("Alt text is longer than 1000 characters.");
    }
    media.alt = Some(text.to_owned());
    let body =
        json!({ "data": { "id": id, "associated_metadata": { "alt_text": { "text": text } } } });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn escape_like_x(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn created_at(seq: u64) -> String {
    // 2026-01-01T00:00:00Z plus one second per post: only the order matters.
    let secs = 1_767_225_600 + seq;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days from 2026-01-01 (valid for the fake's lifetime of a test: under 31 days).
    let day = days - 1_767_225_600 / 86_400 + 1;
    format!(
        "2026-01-{:02}T{:02}:{:02}:{:02}.000Z",
        day.min(31),
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

async fn user_tweets(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let state = shared.lock();
    if state.user_for(&headers).is_none() {
        return unauthorized();
    }
    if let Some((name, _)) = params
        .iter()
        .find(|(k, _)| !TIMELINE_PARAMS.contains(&k.as_str()))
    {
        return invalid_request(&format!(
            "The query parameters [{name}] is not one of [{}]",
            TIMELINE_PARAMS.join(",")
        ));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let max_results = match param("max_results") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return invalid_request(&format!(
                    "The `max_results` query parameter value [{v}] is not between 5 and 100"
                ));
            }
        },
    };
    let (fields, references_key) = match (param("tweet.fields"), param("post.fields")) {
        (Some(f), _) => (f, "referenced_tweets"),
        (None, Some(f)) => (f, "referenced_posts"),
        (None, None) => ("", "referenced_tweets"),
    };
    let fields: Vec<&str> = fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let known = [
        "attachments",
        "author_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "edit_controls",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "possibly_sensitive",
        "public_metrics",
        "referenced_tweets",
        "referenced_posts",
        "reply_settings",
        "source",
        "text",
        "withheld",
        "note_tweet",
        "edit_history_tweet_ids",
    ];
    if let Some(f) = fields.iter().find(|f| !known.contains(f)) {
        return invalid_request(&format!(
            "The `tweet.fields` value [{f}] is not one of the allowed values."
        ));
    }
    if !state.accounts.contains_key(&user_id) {
        let body = json!({ "errors": [{
            "value": user_id, "detail": format!("Could not find user with id: [{user_id}]."),
            "title": "Not Found Error", "resource_type": "user", "parameter": "id",
            "resource_id": user_id, "type": "https://api.twitter.com/2/problems/resource-not-found",
        }]});
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let data: Vec<Value> = state
        .posts
        .iter()
        .rev()
        .filter(|p| p.author_id == user_id)
        .take(max_results)
        .map(|p| {
            let mut t = json!({
                "id": p.id,
                "text": escape_like_x(&p.text),
                "edit_history_tweet_ids": [p.id],
            });
            if fields.contains(&"author_id") {
                t["author_id"] = json!(p.author_id);
            }
            if fields.contains(&"created_at") {
                t["created_at"] = json!(created_at(p.created_seq));
            }
            if fields.contains(&"conversation_id") {
                t["conversation_id"] = json!(conversation_root(&state.posts, p));
            }
            if let Some(reply_to) = &p.reply_to {
                if fields.contains(&"referenced_tweets") || fields.contains(&"referenced_posts") {
                    t[references_key] = json!([{ "type": "replied_to", "id": reply_to }]);
                }
                if fields.contains(&"in_reply_to_user_id")
                    && let Some(parent) = state.posts.iter().find(|q| &q.id == reply_to)
                {
                    t["in_reply_to_user_id"] = json!(parent.author_id);
                }
            }
            t
        })
        .collect();
    if data.is_empty() {
        return axum::Json(json!({ "meta": { "result_count": 0 } })).into_response();
    }
    let meta = json!({
        "result_count": data.len(),
        "newest_id": data.first().map(|t| t["id"].clone()),
        "oldest_id": data.last().map(|t| t["id"].clone()),
    });
    axum::Json(json!({ "data": data, "meta": meta })).into_response()
}

fn conversation_root(posts: &[FakePost], post: &FakePost) -> String {
    let mut current = post;
    while let Some(parent) = current
        .reply_to
        .as_ref()
        .and_then(|id| posts.iter().find(|p| &p.id == id))
    {
        current = parent;
    }
    current.id.clone()
}

async fn users_me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let state = shared.lock();
    let Some(user) = state.user_for(&headers) else {
        return unauthorized();
    };
    let username = state.accounts.get(&user).cloned().unwrap_or_default();
    axum::Json(json!({ "data": { "id": user, "name": username, "username": username } }))
        .into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn oauth_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return oauth_error(
            "invalid_request",
            "Missing required parameter [grant_type].",
        );
    }
    let form: Vec<(String, String)> = match serde_urlencoded_parse(&body) {
        Some(form) => form,
        None => return oauth_error("invalid_request", "Malformed form body."),
    };
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("grant_type") {
        Some("refresh_token") => {}
        Some(_) => return oauth_error("unsupported_grant_type", "Unsupported grant type."),
        None => {
            return oauth_error(
                "invalid_request",
                "Missing required parameter [grant_type].",
            );
        }
    }
    let Some(refresh) = get("refresh_token") else {
        return oauth_error(
            "invalid_request",
            "Missing required parameter [refresh_token].",
        );
    };
    let mut state = shared.lock();
    let user = match state.refresh_tokens.get_mut(refresh) {
        Some((user, spent)) if !*spent => {
            *spent = true;
            user.clone()
        }
        _ => return oauth_error("invalid_grant", "Value passed for the token was invalid."),
    };
    state.issued += 1;
    let n = state.issued;
    let access = format!("fake-x-access-{user}-{n}");
    let refresh = format!("fake-x-refresh-{user}-{n}");
    state.tokens.insert(access.clone(), (user.clone(), false));
    state.refresh_tokens.insert(refresh.clone(), (user, false));
    axum::Json(json!({
        "token_type": "bearer",
        "expires_in": 7200,
        "access_token": access,
        "scope": "tweet.read tweet.write users.read offline.access media.write",
        "refresh_token": refresh,
    }))
    .into_response()
}

fn serde_urlencoded_parse(body: &[u8]) -> Option<Vec<(String, String)>> {
    // axum's Form extractor would answer its own rejection; parse like it, answer like X.
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{}", std::str::from_utf8(body).ok()?)
            .parse()
            .ok()?,
    )
    .ok()?;
    Some(pairs)
}

async fn control_posts(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().posts.clone()).into_response()
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
    state.accounts.insert(spec.user_id.clone(), spec.username);
    state
        .tokens
        .insert(spec.token, (spec.user_id.clone(), false));
    if let Some(refresh) = spec.refresh_token {
        state.refresh_tokens.insert(refresh, (spec.user_id, false));
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_serialize_flat() {
        let f = Fault::on_create(FaultKind::RateLimit {
            retry_after_secs: 3,
        })
        .times(2);
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            json!({"kind":"rate_limit","retry_after_secs":3,"times":2,"path_prefix":"/2/tweets","method":"POST"})
        );
    }

    #[test]
    fn endpoint_keys_fold_ids() {
        assert_eq!(
            endpoint_key(&Method::GET, "/2/users/123/tweets"),
            "GET /2/users/:id/tweets"
        );
        assert_eq!(endpoint_key(&Method::POST, "/2/tweets"), "POST /2/tweets");
    }

    #[test]
    fn created_at_is_rfc3339() {
        assert_eq!(created_at(1), "2026-01-01T00:00:01.000Z");
    }
}
