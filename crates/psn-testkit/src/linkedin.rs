//! A strict, stateful fake of the LinkedIn APIs psn uses (Posts, Images, Videos, social
//! actions, organization share statistics, OpenID userinfo), over real HTTP.
//!
//! Every `/rest/…` request must carry (checked in this order, after faults):
//! - `LinkedIn-Version: YYYYMM` — missing → 400 `VERSION_MISSING`; not a month, or outside the
//!   active range [`MIN_VERSION`]..=[`MAX_VERSION`] (see [`FakeLinkedIn::set_min_version`]) →
//!   426 `NONEXISTENT_VERSION`, as LinkedIn answers an inactive version;
//! - `X-Restli-Protocol-Version: 2.0.0` — else 400 (Rest.li 1.0 syntax is not understood);
//! - a bearer token the fake issued (else 401 `INVALID_ACCESS_TOKEN`; an expired one, see
//!   [`FakeLinkedIn::expire_token`], 401 `EXPIRED_ACCESS_TOKEN`);
//! - for bodies, `Content-Type: application/json` (else 415).
//!
//! Errors are LinkedIn's `{status, serviceErrorCode, code, message}`.
//!
//! Who may do what: a token belongs to a member and has scopes (by default `openid profile
//! w_member_social r_member_social w_organization_social r_organization_social`;
//! [`FakeLinkedIn::set_scopes`]). Posting (and uploading) as `urn:li:person:<id>` needs the
//! token's own member and `w_member_social`; as `urn:li:organization:<id>`,
//! `w_organization_social` and the member must be an administrator of the organization
//! ([`FakeLinkedIn::add_organization`]). Else 403 `ACCESS_DENIED`. Reading posts and their
//! social actions needs `r_member_social` (own posts) or `r_organization_social` (admin).
//!
//! Endpoints:
//! - `POST /rest/posts` — fields outside the Posts schema → 422; `author`, `visibility`
//!   (PUBLIC, CONNECTIONS, LOGGED_IN), `distribution` (`feedDistribution` MAIN_FEED or NONE,
//!   `targetEntities` and `thirdPartyDistributionChannels` arrays), `lifecycleState`
//!   PUBLISHED required (422 otherwise); `commentary` in the "little" format, parsed strictly
//!   (see [`parse_little`]: the reserved characters `| { } @ [ ] ( ) < > # \ * _ ~` must be
//!   backslash-escaped unless they form a mention `@[Name](urn:li:person|organization:…)`, a
//!   hashtag template `{hashtag|#|tag}` or a hashtag `#word`; anything else is refused with 422
//!   naming the character and its position — real LinkedIn silently cuts the post there
//!   instead); at most [`COMMENTARY_LIMIT`] characters of text as a reader sees it; the same
//!   text already posted by the same author → 422 `DUPLICATE_POST` "Content is a duplicate of
//!   urn:li:share:…"; `content.media {id, altText?}` (an image uploaded, or a video finalized
//!   and AVAILABLE, owned by the author) or `content.multiImage {images: [{id, altText?}]}`
//!   (2–20 such images); alt text at most 4086 characters. 201, empty body, the URN in
//!   `x-restli-id` (and `x-linkedin-id`). The stored post keeps the commentary as sent and
//!   the plain text. [`FakeLinkedIn::hold_creates_from`] makes creates wait unanswered (the
//!   shared [`Gate`]: a test can kill a client mid-call), then apply.
//! - `GET /rest/posts?q=author&author=<urn>&count=` — newest first, `count` at most 100.
//! - `POST /rest/images?action=initializeUpload` `{initializeUploadRequest: {owner}}` → 200
//!   `{value: {uploadUrl, image, uploadUrlExpiresAt}}`; `PUT <uploadUrl>` (bearer token of the
//!   owner's member, non-empty body) → 201; `GET /rest/images/<urn>` → `status`
//!   WAITING_UPLOAD, then AVAILABLE.
//! - `POST /rest/videos?action=initializeUpload` `{initializeUploadRequest: {owner,
//!   fileSizeBytes, uploadCaptions, uploadThumbnail}}` (captions and thumbnails are not
//!   supported: `true` → 422) → `{value: {video, uploadToken, uploadUrlsExpireAt,
//!   uploadInstructions: [{uploadUrl, firstByte, lastByte}]}}`, parts of
//!   [`FakeLinkedIn::set_video_part_size`] bytes (4 MiB by default); `PUT` a part
//!   (`application/octet-stream`, exactly its byte range, not after finalizing) → 200 with a
//!   fresh `ETag`; `POST /rest/videos?action=finalizeUpload` `{finalizeUploadRequest: {video,
//!   uploadToken, uploadedPartIds}}` — the token, and the ETag of the last `PUT` of every part
//!   in order, else 400; `GET /rest/videos/<urn>` → WAITING_UPLOAD before finalizing, then
//!   PROCESSING for [`FakeLinkedIn::set_video_processing`] checks, then AVAILABLE (or
//!   PROCESSING_FAILED, see [`FakeLinkedIn::fail_video_processing`]).
//! - `GET /rest/socialActions/<urn>` → `likesSummary`, `commentsSummary` (set with
//!   [`FakeLinkedIn::set_engagement`]).
//! - `GET /rest/organizationalEntityShareStatistics?q=organizationalEntity&organizationalEntity=<org>&shares=List(<urn>,…)`
//!   (or `ugcPosts=List(…)`) → `elements[].totalShareStatistics` (admins with
//!   `r_organization_social`; posts of that organization only).
//! - `GET /v2/userinfo` → `{sub, name}`.
//!
//! Faults are the shared [`Fault`]/[`FaultKind`] with LinkedIn's answers: `ServerError` →
//! 503, `RateLimit` → 429 (with `Retry-After`), `Unauthorized` → 401, `BadRequest` → 400;
//! `Slow`, `TimeoutBeforeWrite`, `DropAfterWrite` as on the other fakes. Upload URLs are under
//! `/dms-uploads/` on the fake, so faults reach them too. [`Fault::on_post_create`] targets
//! `POST /rest/posts`.
//!
//! Control endpoints (never faulted, not recorded): `GET /_fake/posts`, `GET /_fake/requests`,
//! `POST /_fake/faults`, `DELETE /_fake/faults`, `POST /_fake/members`
//! (`{"member_id","name","token"}`), `POST /_fake/organizations` (`{"organization_id",
//! "admin"}`), `POST /_fake/hold` (`{"creates": n}` holds from the n-th create, `{"creates":
//! null}` releases), `GET /_fake/held`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use crate::faults::{Fault, FaultKind};
use crate::faults::{Faults, Gate};
use crate::server::{self, close_connection, serve};

/// The oldest `LinkedIn-Version` the fake accepts by default.
pub const MIN_VERSION: &str = "202511";
/// The newest `LinkedIn-Version` the fake accepts (versions after it do not exist yet).
pub const MAX_VERSION: &str = "202611";
/// LinkedIn's commentary limit (characters a reader sees).
pub const COMMENTARY_LIMIT: usize = 3000;
/// LinkedIn's alt text limit.
pub const ALT_TEXT_LIMIT: usize = 4086;
/// LinkedIn plans video parts of 4 MiB.
pub const DEFAULT_PART_SIZE: u64 = 4 * 1024 * 1024;
/// Characters that are markup in the "little" format.
pub const RESERVED: &[char] = &[
    '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '\\', '*', '_', '~',
];
const DEFAULT_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "w_member_social",
    "r_member_social",
    "w_organization_social",
    "r_organization_social",
];
const POST_FIELDS: &[&str] = &[
    "author",
    "commentary",
    "visibility",
    "distribution",
    "lifecycleState",
    "isReshareDisabledByAuthor",
    "content",
    "contentLandingPage",
    "container",
    "reshareContext",
];
const FIRST_SHARE: u64 = 7_300_000_000_000_000_000;

/// A post the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeLinkedInPost {
    /// `urn:li:share:…`
    pub urn: String,
    pub author: String,
    /// The commentary as sent (little format).
    pub commentary: String,
    /// The text as a reader sees it (escapes removed).
    pub text: String,
    pub visibility: String,
    /// Media URNs, in order, and their alt texts.
    pub media: Vec<String>,
    pub alt_texts: Vec<Option<String>>,
    /// `media` or `multiImage`, when the post has content.
    pub content_kind: Option<String>,
    /// Order of creation, from 1.
    pub created_seq: u64,
}

/// An image upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeImage {
    pub urn: String,
    pub owner: String,
    pub content_type: Option<String>,
    /// The bytes, once uploaded.
    pub bytes: Option<Vec<u8>>,
    /// How many `PUT`s arrived.
    pub puts: u32,
}

/// A video upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeVideo {
    pub urn: String,
    pub owner: String,
    pub size: u64,
    pub upload_token: String,
    /// Planned parts: (first byte, last byte), inclusive.
    pub plan: Vec<(u64, u64)>,
    /// The latest upload of each part: its ETag and bytes.
    pub parts: Vec<Option<(String, Vec<u8>)>>,
    /// Part indices in the order their `PUT`s arrived (a part sent again appears twice).
    pub puts: Vec<usize>,
    pub finalized: bool,
    /// Status checks left before processing ends.
    pub processing_left: u32,
    pub status_checks: u32,
    pub failed: bool,
}

impl FakeVideo {
    /// The uploaded bytes, parts in order.
    pub fn content(&self) -> Vec<u8> {
        self.parts
            .iter()
            .flatten()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

/// A request the fake received (control endpoints excluded). Of the headers only
/// `LinkedIn-Version`, `X-Restli-Protocol-Version`, `Content-Type` and whether a bearer token
/// was present are kept (never the token). Bodies that are not JSON are kept as their length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: String,
    pub body_len: usize,
    pub linkedin_version: Option<String>,
    pub restli_protocol_version: Option<String>,
    pub content_type: Option<String>,
    pub bearer: bool,
}

impl Fault {
    /// `kind` for the next `POST /rest/posts`.
    pub fn on_post_create(kind: FaultKind) -> Self {
        Fault::new(kind).path("/rest/posts").method("POST")
    }
}

#[derive(Debug, Clone)]
struct TokenInfo {
    member: String,
    scopes: Vec<String>,
    expired: bool,
}

#[derive(Debug, Default)]
struct Engagement {
    likes: u64,
    comments: u64,
    shares: u64,
    impressions: u64,
}

#[derive(Debug)]
struct FakeState {
    members: HashMap<String, String>,
    tokens: HashMap<String, TokenInfo>,
    /// Token prefixes of another issuer (a fake authorization server) and their member.
    trusted_prefixes: Vec<(String, String)>,
    org_admins: HashMap<String, HashSet<String>>,
    posts: Vec<FakeLinkedInPost>,
    images: Vec<FakeImage>,
    videos: Vec<FakeVideo>,
    engagement: HashMap<String, Engagement>,
    faults: Faults,
    requests: Vec<RecordedRequest>,
    min_version: String,
    part_size: u64,
    processing_checks: u32,
    fail_processing: bool,
    etag_seq: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<FakeState>,
    base_url: Mutex<String>,
    creates: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running fake LinkedIn. Clone it freely: clones share the server and its state.
#[derive(Debug, Clone)]
pub struct FakeLinkedIn {
    shared: Arc<Shared>,
    base_url: String,
}

impl FakeLinkedIn {
    /// Starts a fake on 127.0.0.1 with a free port.
    pub async fn start() -> FakeLinkedIn {
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState {
                members: HashMap::new(),
                tokens: HashMap::new(),
                trusted_prefixes: Vec::new(),
                org_admins: HashMap::new(),
                posts: Vec::new(),
                images: Vec::new(),
                videos: Vec::new(),
                engagement: HashMap::new(),
                faults: Faults::default(),
                requests: Vec::new(),
                min_version: MIN_VERSION.to_owned(),
                part_size: DEFAULT_PART_SIZE,
                processing_checks: 1,
                fail_processing: false,
                etag_seq: 0,
            }),
            base_url: Mutex::new(String::new()),
            creates: Gate::default(),
        });
        let router = Router::new()
            .route("/rest/posts", post(create_post).get(list_posts))
            .route("/rest/images", post(images_action))
            .route("/rest/images/{urn}", get(image_get))
            .route("/rest/videos", post(videos_action))
            .route("/rest/videos/{urn}", get(video_get))
            .route("/dms-uploads/image/{n}", put(image_put))
            .route("/dms-uploads/video/{n}/{part}", put(video_part_put))
            .route("/rest/socialActions/{urn}", get(social_actions))
            .route(
                "/rest/organizationalEntityShareStatistics",
                get(share_statistics),
            )
            .route("/v2/userinfo", get(userinfo))
            .route("/_fake/posts", get(control_posts))
            .route("/_fake/requests", get(control_requests))
            .route(
                "/_fake/faults",
                post(control_set_faults).delete(control_clear_faults),
            )
            .route("/_fake/members", post(control_add_member))
            .route("/_fake/organizations", post(control_add_organization))
            .route("/_fake/hold", post(control_hold))
            .route("/_fake/held", get(control_held))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                linkedin_layer,
            ))
            .with_state(shared.clone());
        let addr = serve(router)
            .await
            .expect("the fake LinkedIn could not bind 127.0.0.1");
        let base_url = format!("http://{addr}");
        *shared.base_url.lock().unwrap_or_else(|p| p.into_inner()) = base_url.clone();
        FakeLinkedIn { shared, base_url }
    }

    /// Starts a fake on its own thread and runtime, for tests without a tokio runtime. It
    /// runs until the process ends.
    pub fn start_in_thread() -> FakeLinkedIn {
        server::start_in_thread("fake-linkedin", FakeLinkedIn::start)
    }

    /// `http://127.0.0.1:<port>` (`PSN_API_BASE_LINKEDIN`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Registers a member and a valid access token for it, with the default scopes.
    pub fn add_member(&self, member_id: &str, name: &str, token: &str) {
        let mut state = self.shared.lock();
        state.members.insert(member_id.to_owned(), name.to_owned());
        state.tokens.insert(
            token.to_owned(),
            TokenInfo {
                member: member_id.to_owned(),
                scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
                expired: false,
            },
        );
    }

    /// Accepts every token starting with `prefix` as `member_id`'s, with the default scopes:
    /// for tokens a fake authorization server issues (`FakeOAuth`: `linkedin-access-…`).
    pub fn trust_tokens_with_prefix(&self, prefix: &str, member_id: &str) {
        self.shared
            .lock()
            .trusted_prefixes
            .push((prefix.to_owned(), member_id.to_owned()));
    }

    /// Makes `admin` an administrator of `urn:li:organization:<organization_id>`.
    pub fn add_organization(&self, organization_id: &str, admin: &str) {
        self.shared
            .lock()
            .org_admins
            .entry(format!("urn:li:organization:{organization_id}"))
            .or_default()
            .insert(admin.to_owned());
    }

    /// Replaces a token's scopes.
    pub fn set_scopes(&self, token: &str, scopes: &[&str]) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.scopes = scopes.iter().map(|s| s.to_string()).collect();
        }
    }

    /// Expires a token: requests with it get 401 `EXPIRED_ACCESS_TOKEN`.
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.expired = true;
        }
    }

    /// Revokes a token: requests with it get 401 `INVALID_ACCESS_TOKEN`.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().tokens.remove(token);
    }

    /// The oldest `LinkedIn-Version` accepted (default [`MIN_VERSION`]).
    pub fn set_min_version(&self, version: &str) {
        self.shared.lock().min_version = version.to_owned();
    }

    /// The size of planned video parts (default 4 MiB).
    pub fn set_video_part_size(&self, bytes: u64) {
        self.shared.lock().part_size = bytes.max(1);
    }

    /// Finalized videos answer PROCESSING for `checks` status checks (default 1).
    pub fn set_video_processing(&self, checks: u32) {
        self.shared.lock().processing_checks = checks;
    }

    /// Videos finalized from now on fail processing.
    pub fn fail_video_processing(&self, fail: bool) {
        self.shared.lock().fail_processing = fail;
    }

    /// Engagement counts of a post (social actions and share statistics).
    pub fn set_engagement(
        &self,
        urn: &str,
        likes: u64,
        comments: u64,
        shares: u64,
        impressions: u64,
    ) {
        self.shared.lock().engagement.insert(
            urn.to_owned(),
            Engagement {
                likes,
                comments,
                shares,
                impressions,
            },
        );
    }

    /// Holds `POST /rest/posts` from the `n`-th one after this call (0: the next) until
    /// [`FakeLinkedIn::release_creates`]; a held create is written when released, even if its
    /// client is gone. [`FakeLinkedIn::held_creates`] counts the waiting ones.
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

    /// The posts accepted so far, oldest first.
    pub fn posts(&self) -> Vec<FakeLinkedInPost> {
        self.shared.lock().posts.clone()
    }

    pub fn images(&self) -> Vec<FakeImage> {
        self.shared.lock().images.clone()
    }

    pub fn videos(&self) -> Vec<FakeVideo> {
        self.shared.lock().videos.clone()
    }

    /// Queues a fault; queued faults are consumed in order of injection.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The requests received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests arrived (control endpoints excluded).
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

fn li_error(status: StatusCode, code: &str, message: &str) -> Response {
    let service_code = match status.as_u16() {
        401 => 65600,
        403 => 100,
        422 => 422,
        _ => 0,
    };
    (
        status,
        axum::Json(json!({
            "status": status.as_u16(),
            "serviceErrorCode": service_code,
            "code": code,
            "message": message,
        })),
    )
        .into_response()
}

fn unprocessable(message: &str) -> Response {
    li_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "UNPROCESSABLE_ENTITY",
        message,
    )
}

fn bad_request(message: &str) -> Response {
    li_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

fn forbidden(message: &str) -> Response {
    li_error(StatusCode::FORBIDDEN, "ACCESS_DENIED", message)
}

fn not_found(message: &str) -> Response {
    li_error(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Percent-decoding (`+` is not a space in Rest.li).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Text in LinkedIn's "little" format as a reader sees it, or why LinkedIn would not read it
/// as written: a reserved character outside an escape (`\x`), a mention
/// `@[Name](urn:li:person:…|urn:li:organization:…)`, a hashtag template `{hashtag|#|tag}` or a
/// hashtag (`#` followed by a letter or digit) is refused with its position (in characters).
pub fn parse_little(little: &str) -> Result<String, String> {
    let chars: Vec<char> = little.chars().collect();
    let mut out = String::with_capacity(little.len());
    let mut i = 0;
    let refuse = |c: char, i: usize| {
        Err(format!(
            "commentary has an unescaped reserved character '{c}' at position {i}: escape it as '\\{c}' (LinkedIn cuts the text there)"
        ))
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => match chars.get(i + 1) {
                Some(&n) => {
                    out.push(n);
                    i += 2;
                }
                None => return refuse(c, i),
            },
            '@' if chars.get(i + 1) == Some(&'[') => {
                let rest: String = chars[i..].iter().collect();
                let Some(close) = rest.find("](") else {
                    return refuse(c, i);
                };
                let Some(end) = rest[close..].find(')') else {
                    return refuse(c, i);
                };
                let urn = &rest[close + 2..close + end];
                if !(urn.starts_with("urn:li:person:") || urn.starts_with("urn:li:organization:")) {
                    return refuse(c, i);
                }
                out.push_str(&rest[2..close]);
                i += rest[..close + end + 1].chars().count();
            }
            '{' => {
                let rest: String = chars[i..].iter().collect();
                let Some(end) = rest.find('}') else {
                    return refuse(c, i);
                };
                let parts: Vec<&str> = rest[1..end].splitn(3, '|').collect();
                if parts.len() != 3
                    || parts[0] != "hashtag"
                    || !matches!(parts[1], "#" | "＃")
                    || parts[2].is_empty()
                {
                    return refuse(c, i);
                }
                out.push_str(parts[1]);
                out.push_str(parts[2]);
                i += rest[..=end].chars().count();
            }
            '#' if chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) => {
                out.push(c);
                i += 1;
            }
            c if RESERVED.contains(&c) => return refuse(c, i),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The layer: recording, faults, Rest.li headers

async fn linkedin_layer(
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
    let content_type = header_string(&parts.headers, "content-type");
    let json_body = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    let min_version = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query,
            body: if json_body {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                String::new()
            },
            body_len: bytes.len(),
            linkedin_version: header_string(&parts.headers, "linkedin-version"),
            restli_protocol_version: header_string(&parts.headers, "x-restli-protocol-version"),
            content_type: content_type.clone(),
            bearer: header_string(&parts.headers, "authorization")
                .is_some_and(|a| a.to_ascii_lowercase().starts_with("bearer ")),
        });
        let fault = state.faults.take(&method, &path);
        (fault, state.min_version.clone())
    };
    let (fault, min_version) = min_version;
    match fault {
        None => {}
        Some(FaultKind::ServerError) => {
            return li_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service Unavailable",
            );
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let mut r = li_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(FaultKind::Unauthorized) => {
            return li_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_ACCESS_TOKEN",
                "Invalid access token",
            );
        }
        Some(FaultKind::BadRequest) => {
            return bad_request("the request was refused (injected by the fake)");
        }
        Some(FaultKind::Slow { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Some(FaultKind::TimeoutBeforeWrite { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return close_connection();
        }
        Some(FaultKind::DropAfterWrite) => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let _ = run_checked(&path, &min_version, request, next).await;
            return close_connection();
        }
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    run_checked(&path, &min_version, request, next).await
}

/// Checks the Rest.li headers of `/rest` requests, then runs the handler.
async fn run_checked(path: &str, min_version: &str, request: Request, next: Next) -> Response {
    if path.starts_with("/rest/") {
        let headers = request.headers();
        let Some(version) = header_string(headers, "linkedin-version") else {
            return li_error(
                StatusCode::BAD_REQUEST,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
            );
        };
        let month = version.get(4..6).and_then(|m| m.parse::<u32>().ok());
        let well_formed = version.len() == 6
            && version.chars().all(|c| c.is_ascii_digit())
            && month.is_some_and(|m| (1..=12).contains(&m));
        if !well_formed || version.as_str() < min_version || version.as_str() > MAX_VERSION {
            return li_error(
                StatusCode::UPGRADE_REQUIRED,
                "NONEXISTENT_VERSION",
                &format!("Requested version {version} is not active"),
            );
        }
        if header_string(headers, "x-restli-protocol-version").as_deref() != Some("2.0.0") {
            return bad_request(
                "X-Restli-Protocol-Version: 2.0.0 is required (Rest.li 1.0 syntax is not understood)",
            );
        }
    }
    next.run(request).await
}

// ---------------------------------------------------------------------------------------------
// Permissions

impl FakeState {
    /// The token's member and scopes, or the 401 to answer.
    fn token(&self, headers: &HeaderMap) -> Result<TokenInfo, Box<Response>> {
        let invalid = || {
            Box::new(li_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_ACCESS_TOKEN",
                "Invalid access token",
            ))
        };
        let value = header_string(headers, "authorization").ok_or_else(invalid)?;
        let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid());
        }
        let token = token.trim();
        let trusted = self
            .trusted_prefixes
            .iter()
            .find(|(prefix, _)| token.starts_with(prefix.as_str()))
            .map(|(_, member)| TokenInfo {
                member: member.clone(),
                scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
                expired: false,
            });
        let info = self
            .tokens
            .get(token)
            .cloned()
            .or(trusted)
            .ok_or_else(invalid)?;
        if info.expired {
            return Err(Box::new(li_error(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_ACCESS_TOKEN",
                "The token used in the request has expired",
            )));
        }
        Ok(info)
    }

    fn admin_of(&self, member: &str, org: &str) -> bool {
        self.org_admins
            .get(org)
            .is_some_and(|admins| admins.contains(member))
    }

    /// Whether `token` may post (and upload) as `author`.
    fn may_write(&self, token: &TokenInfo, author: &str) -> Result<(), Box<Response>> {
        let has = |s: &str| token.scopes.iter().any(|x| x == s);
        if let Some(person) = author.strip_prefix("urn:li:person:") {
            if person != token.member {
                return Err(Box::new(forbidden(&format!(
                    "Member urn:li:person:{} may not act as {author}",
                    token.member
                ))));
            }
            if !has("w_member_social") {
                return Err(Box::new(forbidden(
                    "Not enough permissions to access: partnerApiPostsExternal.CREATE (w_member_social)",
                )));
            }
            return Ok(());
        }
        if author.starts_with("urn:li:organization:") {
            if !has("w_organization_social") {
                return Err(Box::new(forbidden(
                    "Not enough permissions to access: partnerApiPostsExternal.CREATE (w_organization_social)",
                )));
            }
            if !self.admin_of(&token.member, author) {
                return Err(Box::new(forbidden(&format!(
                    "Member urn:li:person:{} is not an administrator of {author}",
                    token.member
                ))));
            }
            return Ok(());
        }
        Err(Box::new(unprocessable(&format!(
            "/author :: {author} is not a person or organization URN"
        ))))
    }

    /// Whether `token` may read `author`'s posts and their social actions.
    fn may_read(&self, token: &TokenInfo, author: &str) -> Result<(), Box<Response>> {
        let has = |s: &str| token.scopes.iter().any(|x| x == s);
        let allowed = if let Some(person) = author.strip_prefix("urn:li:person:") {
            person == token.member && has("r_member_social")
        } else {
            has("r_organization_social") && self.admin_of(&token.member, author)
        };
        if allowed {
            Ok(())
        } else {
            Err(Box::new(forbidden(&format!(
                "Not enough permissions to read the posts of {author} (r_member_social / r_organization_social)"
            ))))
        }
    }
}

/// The body as a JSON object, or the 415/400 to answer.
fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    let content_type = header_string(headers, "content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(Box::new(li_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            &format!("Content-Type {content_type:?} is not supported; send application/json"),
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Box::new(bad_request(
            "the request body is not a JSON object",
        ))),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return *response,
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Posts

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, Box<Response>> {
    body.get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| Box::new(unprocessable(&format!("/{name} :: field is required"))))
}

async fn create_post(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.creates.pass().await;
    let mut state = shared.lock();
    let token = tri!(state.token(&headers));
    let body = tri!(json_object(&headers, &body));
    if let Some(extra) = body.keys().find(|k| !POST_FIELDS.contains(&k.as_str())) {
        return unprocessable(&format!(
            "Unpermitted fields present in REQUEST_BODY: [/{extra}]"
        ));
    }
    let author = tri!(string_field(&body, "author")).to_owned();
    tri!(state.may_write(&token, &author));
    let visibility = tri!(string_field(&body, "visibility")).to_owned();
    if !matches!(visibility.as_str(), "PUBLIC" | "CONNECTIONS" | "LOGGED_IN") {
        return unprocessable(&format!("/visibility :: {visibility} is not a visibility"));
    }
    let Some(distribution) = body.get("distribution").and_then(|d| d.as_object()) else {
        return unprocessable("/distribution :: field is required");
    };
    match distribution
        .get("feedDistribution")
        .and_then(|f| f.as_str())
    {
        Some("MAIN_FEED" | "NONE") => {}
        other => {
            return unprocessable(&format!(
                "/distribution/feedDistribution :: {other:?} is not MAIN_FEED or NONE"
            ));
        }
    }
    for list in ["targetEntities", "thirdPartyDistributionChannels"] {
        if distribution.get(list).is_some_and(|v| !v.is_array()) {
            return unprocessable(&format!("/distribution/{list} :: must be an array"));
        }
    }
    if body.get("lifecycleState").and_then(|l| l.as_str()) != Some("PUBLISHED") {
        return unprocessable("/lifecycleState :: the fake publishes PUBLISHED posts only");
    }
    if body
        .get("isReshareDisabledByAuthor")
        .is_some_and(|v| !v.is_boolean())
    {
        return unprocessable("/isReshareDisabledByAuthor :: must be a boolean");
    }
    let commentary = match body.get("commentary") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return unprocessable("/commentary :: must be a string"),
    };
    let text = match parse_little(&commentary) {
        Ok(text) => text,
        Err(message) => return unprocessable(&message),
    };
    if text.chars().count() > COMMENTARY_LIMIT {
        return unprocessable(&format!(
            "/commentary :: text is longer than {COMMENTARY_LIMIT} characters"
        ));
    }
    let (media, alt_texts, content_kind) = match body.get("content") {
        None | Some(Value::Null) => (Vec::new(), Vec::new(), None),
        Some(content) => tri!(check_content(&state, &author, content)),
    };
    if text.trim().is_empty() && media.is_empty() {
        return unprocessable("/commentary :: a post needs text or content");
    }
    if !text.trim().is_empty()
        && let Some(dup) = state
            .posts
            .iter()
            .find(|p| p.author == author && p.text == text)
    {
        return li_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "DUPLICATE_POST",
            &format!("Content is a duplicate of {}", dup.urn),
        );
    }
    let seq = state.posts.len() as u64 + 1;
    let urn = format!("urn:li:share:{}", FIRST_SHARE + seq);
    state.posts.push(FakeLinkedInPost {
        urn: urn.clone(),
        author,
        commentary,
        text,
        visibility,
        media,
        alt_texts,
        content_kind,
        created_seq: seq,
    });
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&urn) {
        response.headers_mut().insert("x-restli-id", v.clone());
        response.headers_mut().insert("x-linkedin-id", v);
    }
    response
}

type Content = (Vec<String>, Vec<Option<String>>, Option<String>);

fn check_content(
    state: &FakeState,
    author: &str,
    content: &Value,
) -> Result<Content, Box<Response>> {
    let Some(content) = content.as_object() else {
        return Err(Box::new(unprocessable("/content :: must be an object")));
    };
    if content.len() != 1 {
        return Err(Box::new(unprocessable(
            "/content :: exactly one of media or multiImage",
        )));
    }
    let item = |v: &Value, allow_video: bool| -> Result<(String, Option<String>), Box<Response>> {
        let id = v
            .get("id")
            .and_then(|i| i.as_str())
            .ok_or_else(|| Box::new(unprocessable("/content :: media id is required")))?;
        let alt = match v.get("altText") {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) if a.chars().count() <= ALT_TEXT_LIMIT => Some(a.clone()),
            Some(_) => {
                return Err(Box::new(unprocessable(&format!(
                    "/content :: altText must be a string of at most {ALT_TEXT_LIMIT} characters"
                ))));
            }
        };
        if let Some(image) = state.images.iter().find(|i| i.urn == id) {
            if image.owner != author {
                return Err(Box::new(unprocessable(&format!(
                    "/content :: {id} belongs to {}, not {author}",
                    image.owner
                ))));
            }
            if image.bytes.is_none() {
                return Err(Box::new(unprocessable(&format!(
                    "/content :: {id} was never uploaded"
                ))));
            }
            return Ok((id.to_owned(), alt));
        }
        if allow_video && let Some(video) = state.videos.iter().find(|v| v.urn == id) {
            if video.owner != author {
                return Err(Box::new(unprocessable(&format!(
                    "/content :: {id} belongs to {}, not {author}",
                    video.owner
                ))));
            }
            if !video.finalized || video.failed || video.processing_left > 0 {
                return Err(Box::new(unprocessable(&format!(
                    "/content :: {id} is not AVAILABLE"
                ))));
            }
            return Ok((id.to_owned(), alt));
        }
        Err(Box::new(unprocessable(&format!(
            "/content :: {id} is not a media this fake knows"
        ))))
    };
    if let Some(media) = content.get("media") {
        let (id, alt) = item(media, true)?;
        return Ok((vec![id], vec![alt], Some("media".into())));
    }
    if let Some(multi) = content.get("multiImage") {
        let images = multi
            .get("images")
            .and_then(|i| i.as_array())
            .ok_or_else(|| Box::new(unprocessable("/content/multiImage/images :: required")))?;
        if !(2..=20).contains(&images.len()) {
            return Err(Box::new(unprocessable(
                "/content/multiImage/images :: takes 2 to 20 images",
            )));
        }
        let mut ids = Vec::new();
        let mut alts = Vec::new();
        for image in images {
            let (id, alt) = item(image, false)?;
            ids.push(id);
            alts.push(alt);
        }
        return Ok((ids, alts, Some("multiImage".into())));
    }
    Err(Box::new(unprocessable(
        "/content :: the fake takes media or multiImage",
    )))
}

fn post_json(p: &FakeLinkedInPost) -> Value {
    let mut v = json!({
        "id": p.urn,
        "author": p.author,
        "commentary": p.commentary,
        "visibility": p.visibility,
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
        "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
        "createdAt": 1_767_225_600_000u64 + p.created_seq * 1000,
        "publishedAt": 1_767_225_600_000u64 + p.created_seq * 1000,
        "lastModifiedAt": 1_767_225_600_000u64 + p.created_seq * 1000,
    });
    match p.content_kind.as_deref() {
        Some("media") => {
            v["content"] = json!({ "media": { "id": p.media[0], "altText": p.alt_texts[0] } });
        }
        Some(_) => {
            let images: Vec<Value> = p
                .media
                .iter()
                .zip(&p.alt_texts)
                .map(|(id, alt)| json!({ "id": id, "altText": alt }))
                .collect();
            v["content"] = json!({ "multiImage": { "images": images } });
        }
        None => {}
    }
    v
}

async fn list_posts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let state = shared.lock();
    let token = tri!(state.token(&headers));
    let q = query_pairs(query.as_deref());
    if q.get("q").map(String::as_str) != Some("author") {
        return bad_request("the fake finds posts by author only (q=author)");
    }
    let Some(author) = q.get("author") else {
        return bad_request("author is required");
    };
    tri!(state.may_read(&token, author));
    let count = match q.get("count").map(|c| c.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return bad_request("count must be 1 to 100"),
    };
    let elements: Vec<Value> = state
        .posts
        .iter()
        .rev()
        .filter(|p| &p.author == author)
        .take(count)
        .map(post_json)
        .collect();
    axum::Json(json!({ "elements": elements, "paging": { "start": 0, "count": count } }))
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Images

fn action(query: Option<&str>) -> Option<String> {
    query_pairs(query).get("action").cloned()
}

fn initialize_request(body: &Map<String, Value>) -> Result<&Map<String, Value>, Box<Response>> {
    body.get("initializeUploadRequest")
        .and_then(|r| r.as_object())
        .ok_or_else(|| {
            Box::new(unprocessable(
                "/initializeUploadRequest :: field is required",
            ))
        })
}

async fn images_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let base_url = shared.base_url();
    let mut state = shared.lock();
    let token = tri!(state.token(&headers));
    if action(query.as_deref()).as_deref() != Some("initializeUpload") {
        return bad_request("action=initializeUpload is the only image action");
    }
    let body = tri!(json_object(&headers, &body));
    let request = tri!(initialize_request(&body));
    let Some(owner) = request.get("owner").and_then(|o| o.as_str()) else {
        return unprocessable("/initializeUploadRequest/owner :: field is required");
    };
    tri!(state.may_write(&token, owner));
    let n = state.images.len() + 1;
    let urn = format!("urn:li:image:C4E10AQ{n:08}");
    state.images.push(FakeImage {
        urn: urn.clone(),
        owner: owner.to_owned(),
        content_type: None,
        bytes: None,
        puts: 0,
    });
    axum::Json(json!({ "value": {
        "uploadUrlExpiresAt": now_ms() + 3_600_000,
        "uploadUrl": format!("{base_url}/dms-uploads/image/{n}"),
        "image": urn,
    }}))
    .into_response()
}

async fn image_put(
    State(shared): State<Arc<Shared>>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let token = tri!(state.token(&headers));
    let Some(index) = n.checked_sub(1).filter(|i| *i < state.images.len()) else {
        return not_found("no such upload");
    };
    let owner = state.images[index].owner.clone();
    tri!(state.may_write(&token, &owner));
    if body.is_empty() {
        return bad_request("the upload has no bytes");
    }
    let image = &mut state.images[index];
    image.puts += 1;
    image.content_type = header_string(&headers, "content-type");
    image.bytes = Some(body.to_vec());
    StatusCode::CREATED.into_response()
}

async fn image_get(
    State(shared): State<Arc<Shared>>,
    Path(urn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let state = shared.lock();
    tri!(state.token(&headers));
    let Some(image) = state.images.iter().find(|i| i.urn == urn) else {
        return not_found(&format!("{urn} does not exist"));
    };
    let status = if image.bytes.is_some() {
        "AVAILABLE"
    } else {
        "WAITING_UPLOAD"
    };
    axum::Json(json!({ "id": image.urn, "owner": image.owner, "status": status })).into_response()
}

// ---------------------------------------------------------------------------------------------
// Videos

async fn videos_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    let base_url = shared.base_url();
    let mut state = shared.lock();
    let token = tri!(state.token(&headers));
    let action = action(query.as_deref());
    let body = tri!(json_object(&headers, &body));
    match action.as_deref() {
        Some("initializeUpload") => {
            let request = tri!(initialize_request(&body));
            let Some(owner) = request.get("owner").and_then(|o| o.as_str()) else {
                return unprocessable("/initializeUploadRequest/owner :: field is required");
            };
            tri!(state.may_write(&token, owner));
            let Some(size) = request
                .get("fileSizeBytes")
                .and_then(|s| s.as_u64())
                .filter(|s| *s > 0)
            else {
                return unprocessable(
                    "/initializeUploadRequest/fileSizeBytes :: a positive size is required",
                );
            };
            for flag in ["uploadCaptions", "uploadThumbnail"] {
                match request.get(flag) {
                    None | Some(Value::Bool(false)) => {}
                    Some(Value::Bool(true)) => {
                        return unprocessable(&format!(
                            "/initializeUploadRequest/{flag} :: the fake takes no captions or thumbnails"
                        ));
                    }
                    Some(_) => {
                        return unprocessable(&format!(
                            "/initializeUploadRequest/{flag} :: must be a boolean"
                        ));
                    }
                }
            }
            let n = state.videos.len() + 1;
            let urn = format!("urn:li:video:C5F10AQ{n:08}");
            let part = state.part_size;
            let plan: Vec<(u64, u64)> = (0..size.div_ceil(part))
                .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
                .collect();
            let instructions: Vec<Value> = plan
                .iter()
                .enumerate()
                .map(|(i, (first, last))| {
                    json!({
                        "uploadUrl": format!("{base_url}/dms-uploads/video/{n}/{i}"),
                        "firstByte": first,
                        "lastByte": last,
                    })
                })
                .collect();
            let upload_token = format!("upload-token-{n}");
            state.videos.push(FakeVideo {
                urn: urn.clone(),
                owner: owner.to_owned(),
                size,
                upload_token: upload_token.clone(),
                parts: vec![None; plan.len()],
                plan,
                puts: Vec::new(),
                finalized: false,
                processing_left: 0,
                status_checks: 0,
                failed: false,
            });
            axum::Json(json!({ "value": {
                "uploadUrlsExpireAt": now_ms() + 3_600_000,
                "video": urn,
                "uploadInstructions": instructions,
                "uploadToken": upload_token,
            }}))
            .into_response()
        }
        Some("finalizeUpload") => {
            let Some(request) = body
                .get("finalizeUploadRequest")
                .and_then(|r| r.as_object())
            else {
                return unprocessable("/finalizeUploadRequest :: field is required");
            };
            let urn = request.get("video").and_then(|v| v.as_str()).unwrap_or("");
            let Some(index) = state.videos.iter().position(|v| v.urn == urn) else {
                return not_found(&format!("{urn} does not exist"));
            };
            let owner = state.videos[index].owner.clone();
            tri!(state.may_write(&token, &owner));
            let processing = state.processing_checks;
            let fail = state.fail_processing;
            let video = &mut state.videos[index];
            if video.finalized {
                return bad_request(&format!("{urn} is already finalized"));
            }
            if request.get("uploadToken").and_then(|t| t.as_str()) != Some(&video.upload_token) {
                return bad_request("uploadToken does not match the upload");
            }
            let ids: Vec<String> = request
                .get("uploadedPartIds")
                .and_then(|p| p.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(missing) = video.parts.iter().position(Option::is_none) {
                return bad_request(&format!("part {missing} of {urn} was never uploaded"));
            }
            let expected: Vec<String> = video
                .parts
                .iter()
                .flatten()
                .map(|(etag, _)| etag.clone())
                .collect();
            if ids != expected {
                return bad_request(
                    "uploadedPartIds must be the ETag of every part's last upload, in order",
                );
            }
            video.finalized = true;
            video.processing_left = processing;
            video.failed = fail;
            StatusCode::OK.into_response()
        }
        _ => bad_request("action must be initializeUpload or finalizeUpload"),
    }
}

async fn video_part_put(
    State(shared): State<Arc<Shared>>,
    Path((n, part)): Path<(usize, usize)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    state.etag_seq += 1;
    let seq = state.etag_seq;
    let Some(video) = n.checked_sub(1).and_then(|i| state.videos.get_mut(i)) else {
        return not_found("no such upload");
    };
    let Some(&(first, last)) = video.plan.get(part) else {
        return not_found("no such part");
    };
    if header_string(&headers, "content-type").as_deref() != Some("application/octet-stream") {
        return bad_request("parts are sent as application/octet-stream");
    }
    if video.finalized {
        return bad_request("the upload is already finalized");
    }
    if body.len() as u64 != last - first + 1 {
        return bad_request(&format!(
            "part {part} is bytes {first}-{last} ({} bytes), got {}",
            last - first + 1,
            body.len()
        ));
    }
    let etag = format!("/dms-uploads/video/{n}/{part}/{seq}");
    video.parts[part] = Some((etag.clone(), body.to_vec()));
    video.puts.push(part);
    let mut response = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

async fn video_get(
    State(shared): State<Arc<Shared>>,
    Path(urn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    tri!(state.token(&headers));
    let Some(video) = state.videos.iter_mut().find(|v| v.urn == urn) else {
        return not_found(&format!("{urn} does not exist"));
    };
    video.status_checks += 1;
    let mut body = json!({ "id": video.urn, "owner": video.owner });
    body["status"] = if !video.finalized {
        "WAITING_UPLOAD".into()
    } else if video.failed {
        body["processingFailureReason"] = "Video could not be transcoded".into();
        "PROCESSING_FAILED".into()
    } else if video.processing_left > 0 {
        video.processing_left -= 1;
        "PROCESSING".into()
    } else {
        "AVAILABLE".into()
    };
    axum::Json(body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Metrics and identity

async fn social_actions(
    State(shared): State<Arc<Shared>>,
    Path(urn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let state = shared.lock();
    let token = tri!(state.token(&headers));
    let Some(post) = state.posts.iter().find(|p| p.urn == urn) else {
        return not_found(&format!("{urn} does not exist"));
    };
    tri!(state.may_read(&token, &post.author));
    let e = state.engagement.get(&urn);
    let likes = e.map_or(0, |e| e.likes);
    let comments = e.map_or(0, |e| e.comments);
    axum::Json(json!({
        "target": urn,
        "likesSummary": { "totalLikes": likes, "aggregatedTotalLikes": likes, "likedByCurrentUser": false },
        "commentsSummary": { "totalFirstLevelComments": comments, "aggregatedTotalComments": comments },
    }))
    .into_response()
}

async fn share_statistics(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let state = shared.lock();
    let token = tri!(state.token(&headers));
    let q = query_pairs(query.as_deref());
    if q.get("q").map(String::as_str) != Some("organizationalEntity") {
        return bad_request("q=organizationalEntity is required");
    }
    let Some(org) = q.get("organizationalEntity") else {
        return bad_request("organizationalEntity is required");
    };
    if !org.starts_with("urn:li:organization:") {
        return bad_request("organizationalEntity must be an organization URN");
    }
    tri!(state.may_read(&token, org));
    let list = q.get("shares").or_else(|| q.get("ugcPosts"));
    let urns: Vec<String> = match list {
        None => Vec::new(),
        Some(l) => match l.strip_prefix("List(").and_then(|l| l.strip_suffix(')')) {
            Some(inner) => inner.split(',').map(str::to_owned).collect(),
            None => return bad_request("shares must be List(urn,…)"),
        },
    };
    let mut elements = Vec::new();
    for urn in urns {
        if !state.posts.iter().any(|p| p.urn == urn && &p.author == org) {
            return bad_request(&format!("{urn} is not a post of {org}"));
        }
        let e = state.engagement.get(&urn);
        elements.push(json!({
            "organizationalEntity": org,
            "share": urn,
            "totalShareStatistics": {
                "shareCount": e.map_or(0, |e| e.shares),
                "likeCount": e.map_or(0, |e| e.likes),
                "commentCount": e.map_or(0, |e| e.comments),
                "impressionCount": e.map_or(0, |e| e.impressions),
                "uniqueImpressionsCount": e.map_or(0, |e| e.impressions),
                "clickCount": 0,
                "engagement": 0.0,
            },
        }));
    }
    axum::Json(json!({ "elements": elements, "paging": { "start": 0, "count": 10 } }))
        .into_response()
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let state = shared.lock();
    let token = tri!(state.token(&headers));
    let name = state
        .members
        .get(&token.member)
        .cloned()
        .unwrap_or_default();
    axum::Json(json!({ "sub": token.member, "name": name, "locale": { "country": "US", "language": "en" } }))
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Control

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

#[derive(Deserialize)]
struct MemberSpec {
    member_id: String,
    name: String,
    token: String,
}

async fn control_add_member(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: MemberSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad member: {e}")).into_response(),
    };
    let fake = FakeLinkedIn {
        shared: shared.clone(),
        base_url: shared.base_url(),
    };
    fake.add_member(&spec.member_id, &spec.name, &spec.token);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct OrganizationSpec {
    organization_id: String,
    admin: String,
}

async fn control_add_organization(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: OrganizationSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad organization: {e}")).into_response();
        }
    };
    shared
        .lock()
        .org_admins
        .entry(format!("urn:li:organization:{}", spec.organization_id))
        .or_default()
        .insert(spec.admin);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct HoldSpec {
    /// Hold creates from the n-th one (0: the next); `null` releases them.
    creates: Option<u64>,
}

async fn control_hold(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<HoldSpec>(&body) {
        Ok(HoldSpec { creates: Some(n) }) => {
            shared.creates.hold_from(n);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(HoldSpec { creates: None }) => {
            shared.creates.release();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad hold: {e}")).into_response(),
    }
}

async fn control_held(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "creates": shared.creates.held() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_text_is_parsed_strictly() {
        assert_eq!(
            parse_little("Hello \\(world\\) #tag").unwrap(),
            "Hello (world) #tag"
        );
        assert_eq!(
            parse_little("Hi @[Acme](urn:li:organization:1) {hashtag|#|Tech}").unwrap(),
            "Hi Acme #Tech"
        );
        assert!(
            parse_little("a (b")
                .unwrap_err()
                .contains("'(' at position 2")
        );
        assert!(parse_little("mail a@b.c").is_err());
        assert!(parse_little("@[x](https://evil)").is_err());
        assert!(parse_little("# alone").is_err());
        assert!(parse_little("trailing \\").is_err());
        assert!(parse_little("snake_case").is_err());
    }

    #[test]
    fn queries_decode() {
        let q = query_pairs(Some(
            "q=author&author=urn%3Ali%3Aperson%3Aabc&shares=List(urn%3Ali%3Ashare%3A1,urn%3Ali%3Ashare%3A2)",
        ));
        assert_eq!(q["author"], "urn:li:person:abc");
        assert_eq!(q["shares"], "List(urn:li:share:1,urn:li:share:2)");
    }
}
