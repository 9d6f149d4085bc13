//! LinkedIn connector (Posts, Images and Videos APIs, Rest.li 2.0).
//!
//! Every `/rest/…` call carries `Authorization: Bearer`, `LinkedIn-Version: `[`API_VERSION`]
//! and `X-Restli-Protocol-Version: 2.0.0`; URNs in paths and query parameters are
//! percent-encoded, as Rest.li 2.0 requires.
//!
//! - publish: `POST /rest/posts` `{author, commentary, visibility: PUBLIC, distribution:
//!   {feedDistribution: MAIN_FEED, targetEntities: [], thirdPartyDistributionChannels: []},
//!   lifecycleState: PUBLISHED, isReshareDisabledByAuthor: false, content?}`. LinkedIn answers
//!   201 with an empty body and the post's URN in `x-restli-id`; the post's address is
//!   `https://www.linkedin.com/feed/update/<urn>/`. The author is `urn:li:person:<id>` for a
//!   member, or the account's own URN when its external id is one (`urn:li:organization:<id>`
//!   for a page). LinkedIn has no threads: a post is one segment.
//! - commentary is LinkedIn's "little" text format, in which `| { } @ [ ] ( ) < > # \ * _ ~`
//!   are markup; [`escape_commentary`] escapes each with a backslash, except the `#` of a
//!   hashtag (`#word` stays a hashtag). Unescaped, LinkedIn silently cuts the post at the first
//!   reserved character.
//! - media ([`Publisher::upload_media`]): images — `POST /rest/images?action=initializeUpload`
//!   `{initializeUploadRequest: {owner}}` → `uploadUrl` and the image URN, `PUT` the bytes,
//!   then `GET /rest/images/<urn>` until `AVAILABLE`; videos —
//!   `POST /rest/videos?action=initializeUpload` `{initializeUploadRequest: {owner,
//!   fileSizeBytes, uploadCaptions: false, uploadThumbnail: false}}` → the video URN, an
//!   `uploadToken` and `uploadInstructions` (byte ranges, each with its `uploadUrl`), `PUT`
//!   each part (answering an `ETag`; the shared multipart flow), then
//!   `POST /rest/videos?action=finalizeUpload` `{finalizeUploadRequest: {video, uploadToken,
//!   uploadedPartIds}}` and `GET /rest/videos/<urn>` until `AVAILABLE` (`PROCESSING_FAILED` is
//!   permanent). A post takes one video, one image (`content.media`) or 2–20 images
//!   (`content.multiImage`). Alt text goes in the post, not on the upload: the media id this
//!   connector hands the engine is the URN, followed by `?alt=` and the percent-encoded alt
//!   text when the file has one ([`media_ref`], [`parse_media_ref`]).
//! - reconcile: `GET /rest/posts?q=author&author=<urn>&count=10` and look for the segment's
//!   text. Listing a member's own posts needs `r_member_social`, which LinkedIn grants few
//!   apps: when the listing is refused (403), reconcile answers "not found" and relies on
//!   LinkedIn's duplicate check instead — LinkedIn refuses a post whose commentary repeats a
//!   recent one by the same author with 422 "Content is a duplicate of urn:li:share:…", so a
//!   resend cannot create a second post. A duplicate answer for a segment this connector has
//!   reconciled or seen fail ambiguously (same idempotency key, same process) means the first
//!   attempt landed: it is reported as published with that URN. Any other duplicate is a
//!   permanent refusal.
//! - metrics: `GET /rest/socialActions/<urn>` (likes, comments); for organization posts also
//!   `GET /rest/organizationalEntityShareStatistics?q=organizationalEntity&…&shares=List(<urn>)`
//!   (shares as `reposts`, impressions); comments are `replies`.
//! - identity: `GET /v2/userinfo` (OpenID Connect; the member's `sub` and name).
//! - refresh: not here. LinkedIn tokens are refreshed by the OAuth token keeper
//!   ([`crate::oauth::TokenKeeper`]), which the worker registers beside this publisher.
//!
//! Errors are `{status, serviceErrorCode, code, message}`: 401 → auth; 403 → permanent, naming
//! the permission the account lacks; 400/422 (and 426 for an inactive `LinkedIn-Version`) →
//! permanent with LinkedIn's message; 429 → rate limited; 5xx → transient; a connection lost
//! after the request was sent → ambiguous.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use psn_domain::{MediaKind, Platform};
use serde::Deserialize;

use super::http::{self, CallKind, HttpResponse};
use super::sanitize::sanitize_error;
use super::{
    AccountContext, Capabilities, PostMetrics, PublishError, Published, Publisher, SegmentRequest,
};
use crate::upload::multipart::{self, MultipartApi, MultipartPlan, PartPlan};
use crate::upload::poll::{self, PollPolicy, Processing};
use crate::upload::{MediaFile, MediaRef, Phase, UploadContext, UploadState};

/// LinkedIn's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.linkedin.com";
/// The `LinkedIn-Version` psn speaks (YYYYMM). LinkedIn supports a version for about a year.
pub const API_VERSION: &str = "202605";
/// The Rest.li protocol version every `/rest` call declares.
pub const RESTLI_PROTOCOL_VERSION: &str = "2.0.0";
/// How many recent posts [`LinkedInPublisher::reconcile`] looks through.
pub const RECONCILE_WINDOW: u32 = 10;
/// LinkedIn's commentary limit, in characters.
pub const COMMENTARY_LIMIT: usize = 3000;
/// Characters that are markup in LinkedIn's "little" text format.
pub const RESERVED: &[char] = &[
    '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '\\', '*', '_', '~',
];
/// How many idempotency keys [`LinkedInPublisher`] remembers as possibly landed.
const MAX_SUSPECTS: usize = 10_000;
/// How a media id carries its alt text (see [`media_ref`]).
const ALT_MARK: &str = "?alt=";

/// The LinkedIn connector. Cheap to clone (the HTTP client is shared).
pub struct LinkedInPublisher {
    base_url: String,
    client: reqwest::Client,
    /// Idempotency keys of segments whose earlier attempt may have landed (an ambiguous or
    /// 5xx answer, or a reconcile): a duplicate refusal for one of them is that attempt's post.
    suspect: Mutex<HashSet<String>>,
    image_policy: PollPolicy,
    video_policy: PollPolicy,
}

impl Clone for LinkedInPublisher {
    fn clone(&self) -> Self {
        LinkedInPublisher {
            base_url: self.base_url.clone(),
            client: self.client.clone(),
            suspect: Mutex::new(self.suspects()),
            image_policy: self.image_policy,
            video_policy: self.video_policy,
        }
    }
}

impl std::fmt::Debug for LinkedInPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedInPublisher")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl LinkedInPublisher {
    /// A connector for the API at `base_url` with [`http::client`].
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_client(base_url, http::client())
    }

    /// A connector for `PSN_API_BASE_LINKEDIN` (default `https://api.linkedin.com`).
    pub fn from_env() -> Self {
        Self::new(http::api_base(Platform::Linkedin, DEFAULT_BASE_URL))
    }

    /// A connector with a caller-built HTTP client (tests use short timeouts).
    pub fn with_client(base_url: impl Into<String>, client: reqwest::Client) -> Self {
        LinkedInPublisher {
            base_url: base_url.into().trim().trim_end_matches('/').to_owned(),
            client,
            suspect: Mutex::new(HashSet::new()),
            image_policy: PollPolicy {
                default_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(10),
                max_polls: 60,
            },
            video_policy: PollPolicy {
                default_interval: Duration::from_secs(5),
                max_interval: Duration::from_secs(60),
                max_polls: 180,
            },
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The public address of a post.
    pub fn post_url(urn: &str) -> String {
        format!("https://www.linkedin.com/feed/update/{urn}/")
    }

    /// The author URN of `account`: its external id when that is already a person or
    /// organization URN, else `urn:li:person:<external id>`.
    pub fn author_urn(account: &AccountContext) -> String {
        let id = account.external_id.trim();
        if id.starts_with("urn:li:") {
            id.to_owned()
        } else {
            format!("urn:li:person:{id}")
        }
    }

    /// Whether `author` is an organization (page) URN.
    pub fn is_organization(author: &str) -> bool {
        author.starts_with("urn:li:organization:")
            || author.starts_with("urn:li:organizationBrand:")
    }

    /// The JSON body of `POST /rest/posts` for `segment` by `author`.
    pub fn create_body(
        author: &str,
        segment: &SegmentRequest<'_>,
    ) -> Result<serde_json::Value, PublishError> {
        let mut body = serde_json::json!({
            "author": author,
            "commentary": escape_commentary(segment.text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        if let Some(content) = content(segment.media_ids)? {
            body["content"] = content;
        }
        Ok(body)
    }

    fn suspects(&self) -> HashSet<String> {
        self.suspect
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn mark_suspect(&self, key: &str) {
        let mut set = self.suspect.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a long-running worker forgets old keys (their deliveries settled long ago;
        // a forgotten key only turns a duplicate answer into a permanent refusal).
        if set.len() >= MAX_SUSPECTS {
            set.clear();
        }
        set.insert(key.to_owned());
    }

    fn is_suspect(&self, key: &str) -> bool {
        let set = self.suspect.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(key)
    }

    fn rest(&self, request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        request
            .bearer_auth(token)
            .header("LinkedIn-Version", API_VERSION)
            .header("X-Restli-Protocol-Version", RESTLI_PROTOCOL_VERSION)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Whether a bearer token may go to `url`: LinkedIn's own hosts and the configured API root.
    fn trusted_upload_url(&self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let base_host = reqwest::Url::parse(&self.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        host == "linkedin.com"
            || host.ends_with(".linkedin.com")
            || base_host.is_some_and(|b| b == host)
    }
}

/// `text` in LinkedIn's "little" format: every reserved character escaped with a backslash,
/// except the `#` that starts a hashtag (`#` at the start or after whitespace, followed by a
/// letter or digit), so hashtags stay hashtags.
pub fn escape_commentary(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let hashtag = c == '#'
            && (i == 0 || chars[i - 1].is_whitespace())
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if RESERVED.contains(&c) && !hashtag {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Little text as a reader sees it: escapes removed, `{hashtag|#|tag}` as `#tag`, mentions
/// `@[Name](urn)` as `Name`. Lenient: anything it does not understand is kept as it is.
pub fn plain_commentary(little: &str) -> String {
    let chars: Vec<char> = little.chars().collect();
    let mut out = String::with_capacity(little.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '{' {
            let rest: String = chars[i..].iter().collect();
            if let Some(end) = rest.find('}') {
                let inner = &rest[1..end];
                let parts: Vec<&str> = inner.splitn(3, '|').collect();
                if parts.len() == 3 && parts[0] == "hashtag" {
                    out.push_str(parts[1]);
                    out.push_str(parts[2]);
                    i += rest[..=end].chars().count();
                    continue;
                }
            }
        }
        if c == '@' && chars.get(i + 1) == Some(&'[') {
            let rest: String = chars[i..].iter().collect();
            if let Some(close) = rest.find("](")
                && let Some(end) = rest[close..].find(')')
            {
                out.push_str(&rest[2..close]);
                i += rest[..close + end + 1].chars().count();
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Percent-encodes everything but RFC 3986's unreserved characters (URNs in Rest.li paths and
/// query parameters; alt text in media ids).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

/// The media id handed to the engine for an uploaded file: its URN, with the alt text after
/// `?alt=` (percent-encoded) when there is one. LinkedIn takes alt text in the post.
pub fn media_ref(urn: &str, alt: Option<&str>) -> String {
    match alt.map(str::trim).filter(|a| !a.is_empty()) {
        Some(alt) => format!("{urn}{ALT_MARK}{}", encode(alt)),
        None => urn.to_owned(),
    }
}

/// The URN and alt text of a media id made by [`media_ref`].
pub fn parse_media_ref(id: &str) -> (String, Option<String>) {
    match id.split_once(ALT_MARK) {
        Some((urn, alt)) => (urn.to_owned(), Some(decode(alt)).filter(|a| !a.is_empty())),
        None => (id.to_owned(), None),
    }
}

/// `content` of a post for these media ids: one `media`, or `multiImage` for 2–20 images.
fn content(media_ids: &[String]) -> Result<Option<serde_json::Value>, PublishError> {
    let media: Vec<(String, Option<String>)> =
        media_ids.iter().map(|id| parse_media_ref(id)).collect();
    let item = |(urn, alt): &(String, Option<String>)| {
        let mut v = serde_json::json!({ "id": urn });
        if let Some(alt) = alt {
            v["altText"] = alt.clone().into();
        }
        v
    };
    match media.len() {
        0 => Ok(None),
        1 => Ok(Some(serde_json::json!({ "media": item(&media[0]) }))),
        n => {
            if media
                .iter()
                .any(|(urn, _)| !urn.starts_with("urn:li:image:"))
            {
                return Err(PublishError::Permanent {
                    message: "LinkedIn takes up to 20 images or exactly 1 video per post".into(),
                });
            }
            if n > 20 {
                return Err(PublishError::Permanent {
                    message: format!("LinkedIn takes at most 20 images per post; got {n}"),
                });
            }
            let images: Vec<serde_json::Value> = media.iter().map(item).collect();
            Ok(Some(
                serde_json::json!({ "multiImage": { "images": images } }),
            ))
        }
    }
}

/// The URN a duplicate refusal names ("Content is a duplicate of urn:li:share:…").
pub fn duplicate_of(message: &str) -> Option<String> {
    let at = message.find("duplicate of ")? + "duplicate of ".len();
    let urn: String = message[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | ',' | ';' | ')'))
        .collect();
    let urn = urn.trim_end_matches('.').to_owned();
    urn.starts_with("urn:li:").then_some(urn)
}

/// The status of an image or video (`GET /rest/images|videos/<urn>`), as processing.
fn processing(body: &str) -> Processing {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match v.get("status").and_then(|s| s.as_str()) {
        Some("AVAILABLE") => Processing::Ready,
        Some("PROCESSING_FAILED") => Processing::Failed {
            message: v
                .get("processingFailureReason")
                .and_then(|r| r.as_str())
                .unwrap_or("PROCESSING_FAILED")
                .to_owned(),
        },
        _ => Processing::Pending { check_after: None },
    }
}

impl LinkedInPublisher {
    /// A 403 with the permission the account lacks named.
    fn forbidden(author: &str, message: String) -> PublishError {
        let needs = if Self::is_organization(author) {
            format!(
                "posting as {author} needs the w_organization_social permission (reconnect with `psn accounts connect linkedin --organization`; the app needs the Community Management API) and the member must be an administrator of the page"
            )
        } else {
            "posting as a member needs the w_member_social permission (the app's \"Share on LinkedIn\" product; reconnect the account)".to_owned()
        };
        PublishError::Permanent {
            message: format!("LinkedIn refused: {message}; {needs}"),
        }
    }

    /// Sends a `/rest` request and classifies the answer, naming permissions on a 403.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        kind: CallKind,
        token: &str,
        author: &str,
    ) -> Result<HttpResponse, PublishError> {
        let secrets = [token];
        let response = request
            .send()
            .await
            .map_err(|e| http::classify_transport(&e, kind, &secrets))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) if status.is_success() => {
                return Err(http::classify_transport(&e, kind, &secrets));
            }
            Err(_) => String::new(),
        };
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(Self::forbidden(
                author,
                http::platform_message(status, &body, &secrets),
            ));
        }
        http::classify_status(status, &headers, &body, &secrets)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn list_posts(
        &self,
        token: &str,
        author: &str,
    ) -> Result<Vec<serde_json::Value>, PublishError> {
        let url = self.url(&format!(
            "/rest/posts?author={}&q=author&count={RECONCILE_WINDOW}&sortBy=CREATED",
            encode(author)
        ));
        let response = self
            .call(
                self.rest(self.client.get(url), token),
                CallKind::Reading,
                token,
                author,
            )
            .await?;
        let v: serde_json::Value =
            serde_json::from_str(&response.body).map_err(|e| PublishError::Transient {
                message: format!("unreadable post list from LinkedIn: {e}"),
                retry_after: None,
            })?;
        Ok(v.get("elements")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default())
    }

    async fn upload_image(
        &self,
        token: &str,
        author: &str,
        media: &MediaFile,
        state: UploadState,
        ctx: &UploadContext<'_>,
    ) -> Result<String, PublishError> {
        let mut state = state.for_file(media);
        if state.phase == Phase::Ready
            && let Some(id) = &state.media_id
        {
            return Ok(id.clone());
        }
        if state.media_id.is_none() || state.upload_url.is_none() || state.phase == Phase::New {
            let body = serde_json::json!({ "initializeUploadRequest": { "owner": author } });
            let request = self
                .rest(
                    self.client
                        .post(self.url("/rest/images?action=initializeUpload")),
                    token,
                )
                .json(&body);
            // Opening an upload creates nothing anyone sees: a lost answer only orphans an
            // empty upload slot.
            let response = self.call(request, CallKind::Reading, token, author).await?;
            let v: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
            let value = v.get("value").unwrap_or(&serde_json::Value::Null);
            let urn = value.get("image").and_then(|x| x.as_str());
            let upload_url = value.get("uploadUrl").and_then(|x| x.as_str());
            let (Some(urn), Some(upload_url)) = (urn, upload_url) else {
                return Err(PublishError::Transient {
                    message: "LinkedIn opened an image upload without an image URN or upload URL"
                        .into(),
                    retry_after: None,
                });
            };
            state = UploadState {
                phase: Phase::Transferring,
                media_id: Some(urn.to_owned()),
                upload_url: Some(upload_url.to_owned()),
                total_bytes: media.bytes,
                ..UploadState::default()
            };
            ctx.progress.save(&state).await?;
        }
        let urn = state.media_id.clone().unwrap_or_default();
        if state.phase == Phase::Transferring {
            let upload_url = state.upload_url.clone().unwrap_or_default();
            let bytes = media.read_all().await?;
            let mut request = self
                .client
                .put(&upload_url)
                .header(reqwest::header::CONTENT_TYPE, media.mime.as_str())
                .body(bytes);
            if self.trusted_upload_url(&upload_url) {
                request = request.bearer_auth(token);
            }
            // Sending the bytes again replaces them: never ambiguous.
            http::send(request, CallKind::Reading, &[token]).await?;
            state.phase = Phase::Finalized;
            state.offset = media.bytes;
            ctx.progress.save(&state).await?;
        }
        let status = || self.media_status(token, author, "images", &urn);
        let first = status().await?;
        poll::until_ready(first, self.image_policy, ctx.sleeper, status).await?;
        state.phase = Phase::Ready;
        ctx.progress.save(&state).await?;
        Ok(urn)
    }

    async fn media_status(
        &self,
        token: &str,
        author: &str,
        collection: &str,
        urn: &str,
    ) -> Result<Processing, PublishError> {
        let url = self.url(&format!("/rest/{collection}/{}", encode(urn)));
        let response = self
            .call(
                self.rest(self.client.get(url), token),
                CallKind::Reading,
                token,
                author,
            )
            .await?;
        Ok(processing(&response.body))
    }
}

/// LinkedIn's video endpoints for one account, for the shared multipart flow.
struct LinkedInVideo<'a> {
    publisher: &'a LinkedInPublisher,
    token: &'a str,
    author: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instruction {
    upload_url: String,
    first_byte: u64,
    last_byte: u64,
}

#[async_trait]
impl MultipartApi for LinkedInVideo<'_> {
    async fn start(&self, file: &MediaFile) -> Result<MultipartPlan, PublishError> {
        let p = self.publisher;
        let body = serde_json::json!({
            "initializeUploadRequest": {
                "owner": self.author,
                "fileSizeBytes": file.bytes,
                "uploadCaptions": false,
                "uploadThumbnail": false,
            }
        });
        let request = p
            .rest(
                p.client.post(p.url("/rest/videos?action=initializeUpload")),
                self.token,
            )
            .json(&body);
        let response = p
            .call(request, CallKind::Reading, self.token, self.author)
            .await?;
        let v: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        let value = v.get("value").cloned().unwrap_or_default();
        let video = value
            .get("video")
            .and_then(|x| x.as_str())
            .map(str::to_owned);
        let instructions: Vec<Instruction> = value
            .get("uploadInstructions")
            .cloned()
            .and_then(|i| serde_json::from_value(i).ok())
            .unwrap_or_default();
        let (Some(video), false) = (video, instructions.is_empty()) else {
            return Err(PublishError::Transient {
                message:
                    "LinkedIn opened a video upload without a video URN or upload instructions"
                        .into(),
                retry_after: None,
            });
        };
        let token = value
            .get("uploadToken")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned();
        let mut parts: Vec<PartPlan> = instructions
            .into_iter()
            .map(|i| PartPlan {
                url: i.upload_url,
                first_byte: i.first_byte,
                last_byte: i.last_byte,
            })
            .collect();
        parts.sort_by_key(|p| p.first_byte);
        Ok(MultipartPlan {
            upload_id: token,
            media_id: video,
            parts,
        })
    }

    fn prepare(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
    }

    async fn complete(
        &self,
        upload_id: &str,
        media_id: &str,
        etags: &[String],
    ) -> Result<Processing, PublishError> {
        let p = self.publisher;
        let body = serde_json::json!({
            "finalizeUploadRequest": {
                "video": media_id,
                "uploadToken": upload_id,
                "uploadedPartIds": etags,
            }
        });
        let request = p
            .rest(
                p.client.post(p.url("/rest/videos?action=finalizeUpload")),
                self.token,
            )
            .json(&body);
        p.call(request, CallKind::Reading, self.token, self.author)
            .await?;
        Ok(Processing::Pending { check_after: None })
    }

    async fn status(&self, media_id: &str) -> Result<Processing, PublishError> {
        self.publisher
            .media_status(self.token, self.author, "videos", media_id)
            .await
    }
}

fn count(v: &serde_json::Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(|n| n.as_u64())
}

#[async_trait]
impl Publisher for LinkedInPublisher {
    fn platform(&self) -> Platform {
        Platform::Linkedin
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: false,
            media_kinds: vec![MediaKind::Image, MediaKind::Gif, MediaKind::Video],
            reconcile: true,
            idempotency_keys: false,
            // The OAuth token keeper refreshes LinkedIn tokens.
            refresh: false,
            // About 150 posts a day per member (platforms.md).
            publish_budget: Some((150, Duration::from_secs(24 * 3600))),
        }
    }

    async fn publish_segment(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Published, PublishError> {
        if segment.count > 1 || segment.index > 0 {
            return Err(PublishError::Permanent {
                message: "LinkedIn has no threads: post one text (remove the '---' lines)".into(),
            });
        }
        let token = account.access_token.0.as_str();
        let author = Self::author_urn(account);
        let body = Self::create_body(&author, segment)?;
        let request = self
            .rest(self.client.post(self.url("/rest/posts")), token)
            .json(&body);
        let response = match self.call(request, CallKind::Creating, token, &author).await {
            Ok(r) => r,
            Err(PublishError::Permanent { message }) => {
                if let Some(urn) = duplicate_of(&message)
                    && self.is_suspect(segment.idempotency_key)
                {
                    tracing::info!(%urn, "LinkedIn already has this post from the earlier attempt");
                    return Ok(Published {
                        url: Some(Self::post_url(&urn)),
                        external_id: urn,
                    });
                }
                return Err(PublishError::Permanent { message });
            }
            Err(e @ (PublishError::Ambiguous { .. } | PublishError::Transient { .. })) => {
                self.mark_suspect(segment.idempotency_key);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let urn = response
            .headers
            .get("x-restli-id")
            .or_else(|| response.headers.get("x-linkedin-id"))
            .and_then(|v| v.to_str().ok())
            .map(|v| decode(v.trim()))
            .filter(|v| v.starts_with("urn:li:"));
        match urn {
            Some(urn) => Ok(Published {
                url: Some(Self::post_url(&urn)),
                external_id: urn,
            }),
            None => {
                self.mark_suspect(segment.idempotency_key);
                Err(PublishError::Ambiguous {
                    message: format!(
                        "LinkedIn answered {} without the post's URN (x-restli-id): {}",
                        response.status.as_u16(),
                        sanitize_error(&response.body, &[token])
                    ),
                })
            }
        }
    }

    async fn reconcile(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Option<Published>, PublishError> {
        let token = account.access_token.0.as_str();
        let author = Self::author_urn(account);
        // From here on a duplicate refusal of this segment is the earlier attempt's post.
        self.mark_suspect(segment.idempotency_key);
        let posts = match self.list_posts(token, &author).await {
            Ok(posts) => posts,
            Err(PublishError::Permanent { message }) if message.starts_with("LinkedIn refused") => {
                tracing::info!(
                    %message,
                    "LinkedIn does not let this account list its posts; its duplicate check guards the resend"
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let wanted = normalize(segment.text);
        let found = posts.iter().find(|p| {
            let commentary = p.get("commentary").and_then(|c| c.as_str()).unwrap_or("");
            normalize(&plain_commentary(commentary)) == wanted
        });
        Ok(found
            .and_then(|p| p.get("id").and_then(|i| i.as_str()))
            .map(|urn| Published {
                url: Some(Self::post_url(urn)),
                external_id: urn.to_owned(),
            }))
    }

    async fn identity(
        &self,
        account: &AccountContext,
    ) -> Result<crate::oauth::Identity, PublishError> {
        crate::oauth::identity_at(
            &self.client,
            Platform::Linkedin,
            &self.url("/v2/userinfo"),
            &account.access_token.0,
        )
        .await
    }

    async fn metrics(
        &self,
        account: &AccountContext,
        external_id: &str,
    ) -> Result<PostMetrics, PublishError> {
        let token = account.access_token.0.as_str();
        let author = Self::author_urn(account);
        let url = self.url(&format!("/rest/socialActions/{}", encode(external_id)));
        let response = self
            .call(
                self.rest(self.client.get(url), token),
                CallKind::Reading,
                token,
                &author,
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        let mut metrics = PostMetrics {
            likes: count(&v, "/likesSummary/totalLikes").unwrap_or(0),
            replies: count(&v, "/commentsSummary/aggregatedTotalComments")
                .or_else(|| count(&v, "/commentsSummary/totalFirstLevelComments"))
                .unwrap_or(0),
            ..PostMetrics::default()
        };
        if Self::is_organization(&author) {
            let param = if external_id.starts_with("urn:li:ugcPost:") {
                "ugcPosts"
            } else {
                "shares"
            };
            let url = self.url(&format!(
                "/rest/organizationalEntityShareStatistics?q=organizationalEntity&organizationalEntity={}&{param}=List({})",
                encode(&author),
                encode(external_id)
            ));
            let response = self
                .call(
                    self.rest(self.client.get(url), token),
                    CallKind::Reading,
                    token,
                    &author,
                )
                .await?;
            let v: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
            if let Some(stats) = v
                .get("elements")
                .and_then(|e| e.as_array())
                .and_then(|e| e.first())
                .and_then(|e| e.get("totalShareStatistics"))
            {
                metrics.reposts = count(stats, "/shareCount").unwrap_or(0);
                metrics.impressions = count(stats, "/impressionCount");
            }
        }
        Ok(metrics)
    }

    async fn upload_media(
        &self,
        account: &AccountContext,
        media: &MediaFile,
        state: UploadState,
        ctx: &UploadContext<'_>,
    ) -> Result<MediaRef, PublishError> {
        let token = account.access_token.0.as_str();
        let author = Self::author_urn(account);
        let urn = match media.kind {
            MediaKind::Image | MediaKind::Gif => {
                self.upload_image(token, &author, media, state, ctx).await?
            }
            MediaKind::Video => {
                let api = LinkedInVideo {
                    publisher: self,
                    token,
                    author: &author,
                };
                multipart::upload(&self.client, &api, media, state, self.video_policy, ctx)
                    .await?
                    .0
            }
        };
        Ok(MediaRef {
            media_id: media_ref(&urn, media.alt.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped_and_hashtags_kept() {
        assert_eq!(
            escape_commentary("Hello (world) @you [x] {y} <z> a|b *c* _d_ ~e~ \\ #tag # #1"),
            "Hello \\(world\\) \\@you \\[x\\] \\{y\\} \\<z\\> a\\|b \\*c\\* \\_d\\_ \\~e\\~ \\\\ #tag \\# #1"
        );
        assert_eq!(escape_commentary("a#b"), "a\\#b");
        for text in [
            "Hello (world) #tag @me",
            "a\\b",
            "{hashtag|#|x}",
            "@[A](urn:li:person:1)",
        ] {
            assert_eq!(plain_commentary(&escape_commentary(text)), text);
        }
        assert_eq!(
            plain_commentary("{hashtag|#|Tech} and @[Acme](urn:li:organization:1)"),
            "#Tech and Acme"
        );
    }

    #[test]
    fn media_refs_carry_alt_text() {
        let id = media_ref("urn:li:image:C4D", Some("A chart?alt= 100% (sales)"));
        assert_eq!(
            parse_media_ref(&id),
            (
                "urn:li:image:C4D".to_owned(),
                Some("A chart?alt= 100% (sales)".to_owned())
            )
        );
        assert_eq!(media_ref("urn:li:video:1", None), "urn:li:video:1");
        assert_eq!(
            parse_media_ref("urn:li:video:1"),
            ("urn:li:video:1".to_owned(), None)
        );
        assert_eq!(decode(&encode("é ü/:")), "é ü/:");
    }

    #[test]
    fn duplicates_name_their_post() {
        assert_eq!(
            duplicate_of("Content is a duplicate of urn:li:share:7123456789."),
            Some("urn:li:share:7123456789".to_owned())
        );
        assert_eq!(duplicate_of("Something else"), None);
    }

    #[test]
    fn authors_and_bodies() {
        let account = |id: &str| AccountContext {
            external_id: id.into(),
            handle: "me".into(),
            service_url: String::new(),
            access_token: super::super::AccessToken("t".into()),
        };
        assert_eq!(
            LinkedInPublisher::author_urn(&account("abc")),
            "urn:li:person:abc"
        );
        assert_eq!(
            LinkedInPublisher::author_urn(&account("urn:li:organization:5")),
            "urn:li:organization:5"
        );
        let ids = vec![
            media_ref("urn:li:image:1", Some("one")),
            "urn:li:image:2".to_owned(),
        ];
        let segment = SegmentRequest {
            text: "Hi (there)",
            index: 0,
            count: 1,
            reply_to: None,
            thread_root: None,
            idempotency_key: "k",
            language: None,
            media_ids: &ids,
        };
        let body = LinkedInPublisher::create_body("urn:li:person:abc", &segment).unwrap();
        assert_eq!(body["commentary"], "Hi \\(there\\)");
        assert_eq!(
            body["content"],
            serde_json::json!({"multiImage": {"images": [{"id": "urn:li:image:1", "altText": "one"}, {"id": "urn:li:image:2"}]}})
        );
        assert_eq!(body["distribution"]["feedDistribution"], "MAIN_FEED");
    }
}
