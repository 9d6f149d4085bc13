//! Bluesky (AT Protocol) connector, over XRPC on the account's PDS.
//!
//! - session: the stored "access token" of a Bluesky account is its **app password**.
//!   `com.atproto.server.createSession` (identifier = the account's DID, else its handle)
//!   answers an access JWT, a refresh JWT, the DID and the handle; the session is kept in
//!   memory per (PDS, identifier), so a worker logs in once, not once per post (createSession
//!   is rate-limited hard: 30 per 5 minutes). An expired access JWT (`400 ExpiredToken`) is
//!   renewed with `com.atproto.server.refreshSession`, and when that fails too a new session is
//!   created; a wrong app password (`401 AuthenticationRequired`) is [`PublishError::Auth`];
//! - publish: `com.atproto.repo.createRecord`, collection `app.bsky.feed.post`, with `text`,
//!   `createdAt`, `langs`, rich-text facets (links, mentions resolved to DIDs with
//!   `com.atproto.identity.resolveHandle` — one that does not resolve stays plain text —,
//!   hashtags; UTF-8 byte offsets, see [`super::bluesky_richtext`]), `reply.{root,parent}` as
//!   strong refs, and an embed: the uploaded images or video, else a link card for the first
//!   link (best effort: a card that cannot be fetched never fails the post);
//! - ids: a post's platform id is `at://<did>/app.bsky.feed.post/<rkey>|<cid>` — both parts
//!   are needed to reply to it ([`StrongRef`]); its URL `https://bsky.app/profile/<handle>/post/<rkey>`;
//! - media: `com.atproto.repo.uploadBlob` (raw bytes); the media id is the blob ref as JSON
//!   ([`BlobMedia`]) so that the post can embed it. Images ≤ 2,000,000 bytes, at most 4 per
//!   post, with alt text and aspect ratio; video (MP4 ≤ 300,000,000 bytes) as
//!   `app.bsky.embed.video`;
//! - reconcile: `com.atproto.repo.listRecords` on the account's repo, matching text and reply
//!   parent; identity: `com.atproto.server.getSession`; metrics: `app.bsky.feed.getPosts`.
//!
//! The API root is `PSN_API_BASE_BLUESKY` when set (tests), else the account's PDS
//! ([`AccountContext::service_url`], default `https://bsky.social`).
//!
//! XRPC errors are `{"error": "<Name>", "message": "…"}`: 400 → permanent (the message is
//! kept), 401 → auth, 429 → rate limited until `ratelimit-reset` (Unix seconds), 5xx →
//! transient, a connection lost after a creating call was sent → ambiguous.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use psn_domain::{MediaKind, Platform};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::bluesky_richtext::{self, FacetKind};
use super::http::{self, CallKind, HttpResponse};
use super::sanitize::sanitize_error;
use super::{
    AccountContext, Capabilities, PostMetrics, PublishError, Published, Publisher, SegmentRequest,
};
use crate::oauth::Identity;
use crate::upload::{MediaFile, MediaRef, Phase, UploadContext, UploadState};

/// The PDS of accounts that name none.
pub const DEFAULT_SERVICE: &str = "https://bsky.social";
/// The collection of posts.
pub const POST_COLLECTION: &str = "app.bsky.feed.post";
/// Images per post.
pub const MAX_IMAGES: usize = 4;
/// The largest image blob (`app.bsky.embed.images`).
pub const MAX_IMAGE_BYTES: u64 = 2_000_000;
/// The largest video blob (`app.bsky.embed.video`).
pub const MAX_VIDEO_BYTES: u64 = 300_000_000;
/// The largest link-card thumbnail (`app.bsky.embed.external`).
pub const MAX_THUMB_BYTES: usize = 1_000_000;
/// How much of a linked page is read for its card.
pub const MAX_CARD_PAGE_BYTES: usize = 512 * 1024;
/// How long fetching a link card (page or image) may take.
pub const CARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How many recent records [`BlueskyPublisher::reconcile`] looks through (the maximum).
pub const RECONCILE_WINDOW: u32 = 100;
/// Between the AT URI and the CID in a post's platform id.
pub const ID_SEPARATOR: char = '|';

/// A reference to one record version: what a reply points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrongRef {
    pub uri: String,
    pub cid: String,
}

impl StrongRef {
    /// Reads a platform id `at://…|cid`.
    pub fn parse(id: &str) -> Option<StrongRef> {
        let (uri, cid) = id.rsplit_once(ID_SEPARATOR)?;
        (uri.starts_with("at://") && !cid.trim().is_empty()).then(|| StrongRef {
            uri: uri.to_owned(),
            cid: cid.trim().to_owned(),
        })
    }

    /// The platform id psn stores: `at://…|cid`.
    pub fn to_id(&self) -> String {
        format!("{}{ID_SEPARATOR}{}", self.uri, self.cid)
    }

    /// The record key: the last segment of the AT URI.
    pub fn rkey(&self) -> &str {
        self.uri.rsplit('/').next().unwrap_or("")
    }
}

/// The web address of the post `uri` by `handle`.
pub fn post_url(handle: &str, uri: &str) -> String {
    let rkey = uri.rsplit('/').next().unwrap_or("");
    format!("https://bsky.app/profile/{handle}/post/{rkey}")
}

/// An uploaded blob as a media id carries it: the blob ref, and what the embed needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMedia {
    /// `image` or `video`.
    pub kind: String,
    /// The blob ref as `uploadBlob` answered it (`{"$type":"blob","ref":{"$link"},"mimeType","size"}`).
    pub blob: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
    /// Width and height, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<(u64, u64)>,
}

#[derive(Clone)]
struct Session {
    /// SHA-256 of the app password the session was created with: a new password, a new
    /// session.
    fingerprint: [u8; 32],
    access: String,
    refresh: String,
    did: String,
    handle: String,
}

type SessionKey = (String, String);

/// The Bluesky connector. Cheap to clone (the HTTP clients and the session cache are shared).
#[derive(Clone)]
pub struct BlueskyPublisher {
    client: reqwest::Client,
    card_client: reqwest::Client,
    sessions: Arc<Mutex<HashMap<SessionKey, Session>>>,
}

impl std::fmt::Debug for BlueskyPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueskyPublisher").finish_non_exhaustive()
    }
}

impl Default for BlueskyPublisher {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an XRPC call failed: an expired access token (renew the session), or anything else.
enum CallError {
    Expired,
    Publish(PublishError),
}

impl From<PublishError> for CallError {
    fn from(e: PublishError) -> Self {
        CallError::Publish(e)
    }
}

impl CallError {
    fn into_publish(self) -> PublishError {
        match self {
            CallError::Expired => PublishError::Auth {
                message: "ExpiredToken: the session expired".into(),
            },
            CallError::Publish(e) => e,
        }
    }
}

fn fingerprint(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

/// When a Bluesky rate limit lifts: `ratelimit-reset` (Unix seconds), else the generic headers.
fn reset_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let own = headers
        .get("ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|s| Utc.timestamp_opt(s, 0).single());
    own.into_iter()
        .chain(http::rate_limit_reset(headers, now))
        .max()
}

/// Classifies an XRPC error response.
fn xrpc_error(status: StatusCode, headers: &HeaderMap, body: &str, secrets: &[&str]) -> CallError {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = field("error");
    let raw = match (&name, field("message")) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (Some(n), None) => n.clone(),
        (None, Some(m)) => m,
        (None, None) if parsed.is_some() => String::new(),
        (None, None) => body.to_owned(),
    };
    let mut message = sanitize_error(&raw, secrets);
    if message.is_empty() {
        message = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_owned();
    }
    if name.as_deref() == Some("ExpiredToken") && matches!(status.as_u16(), 400 | 401) {
        return CallError::Expired;
    }
    let now = Utc::now();
    CallError::Publish(match status.as_u16() {
        429 => PublishError::RateLimited {
            message,
            reset_at: reset_at(headers, now),
        },
        401 => PublishError::Auth { message },
        408 | 500..=599 => PublishError::Transient {
            message,
            retry_after: http::retry_after(headers, now),
        },
        _ => PublishError::Permanent { message },
    })
}

/// Sends an XRPC request and reads the answer whole, classifying every failure.
async fn send(
    request: reqwest::RequestBuilder,
    kind: CallKind,
    secrets: &[&str],
) -> Result<HttpResponse, CallError> {
    let response = request
        .send()
        .await
        .map_err(|e| http::classify_transport(&e, kind, secrets))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.text().await {
        Ok(body) => body,
        Err(e) if status.is_success() => {
            return Err(http::classify_transport(&e, kind, secrets).into());
        }
        Err(_) => String::new(),
    };
    if status.is_success() {
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    } else {
        Err(xrpc_error(status, &headers, &body, secrets))
    }
}

fn unreadable(what: &str, e: impl std::fmt::Display) -> PublishError {
    PublishError::Transient {
        message: format!("unreadable {what} from Bluesky: {e}"),
        retry_after: None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    access_jwt: String,
    refresh_jwt: String,
    did: String,
    handle: String,
}

#[derive(Deserialize)]
struct CreatedRecord {
    uri: String,
    cid: String,
}

/// A request builder given the current access JWT.
type Build<'a> = dyn Fn(&str) -> reqwest::RequestBuilder + Send + Sync + 'a;

impl BlueskyPublisher {
    /// A connector with [`http::client`].
    pub fn new() -> Self {
        Self::with_client(http::client())
    }

    /// A connector with a caller-built HTTP client for the API (tests use short timeouts).
    pub fn with_client(client: reqwest::Client) -> Self {
        let card_client = reqwest::Client::builder()
            .connect_timeout(CARD_TIMEOUT)
            .timeout(CARD_TIMEOUT)
            .user_agent(http::user_agent())
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        BlueskyPublisher {
            client,
            card_client,
            sessions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<SessionKey, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The API root for `account`: `PSN_API_BASE_BLUESKY` when set, else its PDS
    /// (`https://bsky.social` when it names none), without a trailing slash.
    pub fn api_root(account: &AccountContext) -> String {
        let service = account.service_url.trim();
        let service = if service.is_empty() {
            DEFAULT_SERVICE.to_owned()
        } else if service.contains("://") {
            service.to_owned()
        } else {
            format!("https://{service}")
        };
        http::api_base(Platform::Bluesky, &service)
    }

    /// What the account logs in with: its DID when psn knows it, else its handle.
    pub fn identifier(account: &AccountContext) -> &str {
        if account.external_id.starts_with("did:") || account.handle.trim().is_empty() {
            account.external_id.trim()
        } else {
            account.handle.trim().trim_start_matches('@')
        }
    }

    /// Logs in with an app password (`psn accounts connect bluesky`): the account's DID and
    /// current handle. A wrong password is [`PublishError::Auth`].
    pub async fn login(
        &self,
        service_url: &str,
        identifier: &str,
        app_password: &str,
    ) -> Result<Identity, PublishError> {
        let account = AccountContext {
            external_id: identifier.to_owned(),
            handle: identifier.to_owned(),
            service_url: service_url.to_owned(),
            access_token: super::AccessToken(app_password.to_owned()),
        };
        let root = Self::api_root(&account);
        let session = self.create_session(&root, &account).await?;
        Ok(Identity {
            id: session.did,
            handle: session.handle,
        })
    }

    async fn session(&self, root: &str, account: &AccountContext) -> Result<Session, PublishError> {
        let key = (root.to_owned(), Self::identifier(account).to_owned());
        let fp = fingerprint(&account.access_token.0);
        let cached = self
            .cache()
            .get(&key)
            .filter(|s| s.fingerprint == fp)
            .cloned();
        match cached {
            Some(s) => Ok(s),
            None => self.create_session(root, account).await,
        }
    }

    async fn create_session(
        &self,
        root: &str,
        account: &AccountContext,
    ) -> Result<Session, PublishError> {
        let password = account.access_token.0.as_str();
        if password.trim().is_empty() {
            return Err(PublishError::Auth {
                message: "the Bluesky account has no app password".into(),
            });
        }
        let identifier = Self::identifier(account);
        let request = self
            .client
            .post(format!("{root}/xrpc/com.atproto.server.createSession"))
            .json(&json!({ "identifier": identifier, "password": password }));
        let response = send(request, CallKind::Reading, &[password])
            .await
            .map_err(CallError::into_publish)?;
        let answer: SessionAnswer =
            serde_json::from_str(&response.body).map_err(|e| unreadable("session", e))?;
        let session = Session {
            fingerprint: fingerprint(password),
            access: answer.access_jwt,
            refresh: answer.refresh_jwt,
            did: answer.did,
            handle: answer.handle,
        };
        self.cache()
            .insert((root.to_owned(), identifier.to_owned()), session.clone());
        Ok(session)
    }

    /// Renews an expired session with its refresh JWT, or logs in again when that fails.
    async fn refresh_session(
        &self,
        root: &str,
        account: &AccountContext,
        old: &Session,
    ) -> Result<Session, PublishError> {
        let secrets = [account.access_token.0.as_str(), &old.access, &old.refresh];
        let request = self
            .client
            .post(format!("{root}/xrpc/com.atproto.server.refreshSession"))
            .bearer_auth(&old.refresh);
        let answer = match send(request, CallKind::Reading, &secrets).await {
            Ok(response) => serde_json::from_str::<SessionAnswer>(&response.body)
                .map_err(|e| unreadable("session", e))?,
            Err(CallError::Publish(e @ PublishError::Transient { .. }))
            | Err(CallError::Publish(e @ PublishError::RateLimited { .. })) => return Err(e),
            // Expired or revoked refresh token: log in again.
            Err(_) => {
                tracing::debug!("the Bluesky refresh token was refused; creating a new session");
                return self.create_session(root, account).await;
            }
        };
        let session = Session {
            fingerprint: old.fingerprint,
            access: answer.access_jwt,
            refresh: answer.refresh_jwt,
            did: answer.did,
            handle: answer.handle,
        };
        self.cache().insert(
            (root.to_owned(), Self::identifier(account).to_owned()),
            session.clone(),
        );
        Ok(session)
    }

    /// Makes an authenticated call: renews the session once when the access JWT expired or
    /// was refused, and tries again.
    async fn call(
        &self,
        root: &str,
        account: &AccountContext,
        build: &Build<'_>,
        kind: CallKind,
    ) -> Result<(HttpResponse, Session), PublishError> {
        let mut session = self.session(root, account).await?;
        let mut renewed = false;
        loop {
            let secrets = [
                account.access_token.0.as_str(),
                session.access.as_str(),
                session.refresh.as_str(),
            ];
            match send(build(&session.access), kind, &secrets).await {
                Ok(response) => return Ok((response, session)),
                Err(CallError::Expired) if !renewed => {
                    renewed = true;
                    session = self.refresh_session(root, account, &session).await?;
                }
                Err(CallError::Publish(PublishError::Auth { .. })) if !renewed => {
                    // The session was revoked: log in again with the app password (a wrong
                    // password is refused there).
                    renewed = true;
                    session = self.create_session(root, account).await?;
                }
                Err(e) => return Err(e.into_publish()),
            }
        }
    }

    /// The facets of `text`, mentions resolved to DIDs (unresolvable ones dropped).
    async fn facets(
        &self,
        root: &str,
        account: &AccountContext,
        text: &str,
    ) -> Result<(Vec<Value>, Option<String>), PublishError> {
        let mut facets = Vec::new();
        let mut first_link = None;
        let mut resolved: HashMap<String, Option<String>> = HashMap::new();
        for facet in bluesky_richtext::detect(text) {
            let feature = match &facet.kind {
                FacetKind::Link(uri) => {
                    first_link.get_or_insert_with(|| uri.clone());
                    json!({"$type": "app.bsky.richtext.facet#link", "uri": uri})
                }
                FacetKind::Tag(tag) => json!({"$type": "app.bsky.richtext.facet#tag", "tag": tag}),
                FacetKind::Mention(handle) => {
                    let did = match resolved.get(handle) {
                        Some(did) => did.clone(),
                        None => {
                            let did = self.resolve_handle(root, account, handle).await?;
                            resolved.insert(handle.clone(), did.clone());
                            did
                        }
                    };
                    match did {
                        Some(did) => {
                            json!({"$type": "app.bsky.richtext.facet#mention", "did": did})
                        }
                        None => continue,
                    }
                }
            };
            facets.push(json!({
                "$type": "app.bsky.richtext.facet",
                "index": {"byteStart": facet.start, "byteEnd": facet.end},
                "features": [feature],
            }));
        }
        Ok((facets, first_link))
    }

    /// The DID of `handle`; `None` when it does not resolve.
    async fn resolve_handle(
        &self,
        root: &str,
        account: &AccountContext,
        handle: &str,
    ) -> Result<Option<String>, PublishError> {
        let url = format!("{root}/xrpc/com.atproto.identity.resolveHandle");
        let build = |access: &str| {
            self.client
                .get(&url)
                .bearer_auth(access)
                .query(&[("handle", handle)])
        };
        match self.call(root, account, &build, CallKind::Reading).await {
            Ok((response, _)) => Ok(serde_json::from_str::<Value>(&response.body)
                .ok()
                .and_then(|v| v.get("did")?.as_str().map(str::to_owned))
                .filter(|d| d.starts_with("did:"))),
            Err(PublishError::Permanent { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Uploads bytes as a blob; returns the blob ref.
    async fn upload_blob(
        &self,
        root: &str,
        account: &AccountContext,
        bytes: bytes::Bytes,
        mime: &str,
    ) -> Result<Value, PublishError> {
        let url = format!("{root}/xrpc/com.atproto.repo.uploadBlob");
        let build = |access: &str| {
            self.client
                .post(&url)
                .bearer_auth(access)
                .header(reqwest::header::CONTENT_TYPE, mime)
                .body(bytes.clone())
        };
        // An upload whose answer was lost created nothing anyone can see (an unreferenced
        // blob is deleted by the PDS, and the same bytes give the same CID): transient.
        let (response, _) = self.call(root, account, &build, CallKind::Reading).await?;
        serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("blob").cloned())
            .filter(|b| b.get("ref").is_some())
            .ok_or_else(|| unreadable("blob", "no blob ref in the answer"))
    }

    /// The `app.bsky.embed.external` card of `uri`, or `None` when it cannot be made.
    async fn link_card(&self, root: &str, account: &AccountContext, uri: &str) -> Option<Value> {
        let page = match fetch_limited(
            &self.card_client,
            uri,
            MAX_CARD_PAGE_BYTES,
            "text/html",
            true,
        )
        .await
        {
            Ok((page, _)) => String::from_utf8_lossy(&page).into_owned(),
            Err(e) => {
                tracing::info!(link = uri, error = %e, "no link card: the page could not be read");
                return None;
            }
        };
        let meta = PageMeta::parse(&page);
        let title = meta.title.clone().unwrap_or_default();
        let description = meta.description.clone().unwrap_or_default();
        if title.is_empty() && description.is_empty() && meta.image.is_none() {
            return None;
        }
        let mut external = json!({ "uri": uri, "title": title, "description": description });
        let image = meta
            .image
            .as_deref()
            .and_then(|img| reqwest::Url::parse(uri).ok()?.join(img).ok());
        if let Some(image) = image {
            match fetch_limited(
                &self.card_client,
                image.as_str(),
                MAX_THUMB_BYTES,
                "image/",
                false,
            )
            .await
            {
                Ok((bytes, mime)) => {
                    match self.upload_blob(root, account, bytes.into(), &mime).await {
                        Ok(blob) => external["thumb"] = blob,
                        Err(e) => {
                            tracing::info!(link = uri, error = %e, "link card without a thumbnail")
                        }
                    }
                }
                Err(e) => tracing::info!(link = uri, error = %e, "link card without a thumbnail"),
            }
        }
        Some(json!({ "$type": "app.bsky.embed.external", "external": external }))
    }

    /// The JSON body of `createRecord` for `segment`.
    pub fn create_body(
        did: &str,
        segment: &SegmentRequest<'_>,
        facets: Vec<Value>,
        embed: Option<Value>,
        created_at: DateTime<Utc>,
    ) -> Result<Value, PublishError> {
        let mut record = json!({
            "$type": POST_COLLECTION,
            "text": segment.text,
            "createdAt": created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(lang) = segment.language.map(str::trim).filter(|l| !l.is_empty()) {
            record["langs"] = json!([lang]);
        }
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some(reply) = reply_refs(segment)? {
            record["reply"] = reply;
        }
        if let Some(embed) = embed {
            record["embed"] = embed;
        }
        Ok(json!({ "repo": did, "collection": POST_COLLECTION, "record": record }))
    }
}

/// `reply.{root,parent}` for a segment replying to another.
fn reply_refs(segment: &SegmentRequest<'_>) -> Result<Option<Value>, PublishError> {
    let Some(parent) = segment.reply_to else {
        return Ok(None);
    };
    let bad = |id: &str| PublishError::Permanent {
        message: format!(
            "cannot reply on Bluesky to {id:?}: a post id must be an AT URI and a CID (at://…|cid)"
        ),
    };
    let parent_ref = StrongRef::parse(parent).ok_or_else(|| bad(parent))?;
    let root_ref = match segment.thread_root {
        Some(root) => StrongRef::parse(root).ok_or_else(|| bad(root))?,
        None => parent_ref.clone(),
    };
    Ok(Some(json!({ "root": root_ref, "parent": parent_ref })))
}

/// The embed for uploaded media ids: images (at most 4) or one video.
pub fn media_embed(media_ids: &[String]) -> Result<Option<Value>, PublishError> {
    if media_ids.is_empty() {
        return Ok(None);
    }
    let media: Vec<BlobMedia> = media_ids
        .iter()
        .map(|id| {
            serde_json::from_str::<BlobMedia>(id).map_err(|_| PublishError::Permanent {
                message: "a media id is not a Bluesky blob ref (upload the media again)".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    let videos = media.iter().filter(|m| m.kind == "video").count();
    if videos > 0 {
        if media.len() > 1 {
            return Err(PublishError::Permanent {
                message: "a Bluesky post takes one video and nothing else".into(),
            });
        }
        let m = &media[0];
        let mut embed = json!({ "$type": "app.bsky.embed.video", "video": m.blob });
        if let Some(alt) = &m.alt {
            embed["alt"] = json!(alt);
        }
        if let Some((w, h)) = m.aspect_ratio {
            embed["aspectRatio"] = json!({ "width": w, "height": h });
        }
        return Ok(Some(embed));
    }
    if media.len() > MAX_IMAGES {
        return Err(PublishError::Permanent {
            message: format!(
                "a Bluesky post takes at most {MAX_IMAGES} images, not {}",
                media.len()
            ),
        });
    }
    let images: Vec<Value> = media
        .iter()
        .map(|m| {
            let mut image = json!({ "image": m.blob, "alt": m.alt.clone().unwrap_or_default() });
            if let Some((w, h)) = m.aspect_ratio {
                image["aspectRatio"] = json!({ "width": w, "height": h });
            }
            image
        })
        .collect();
    Ok(Some(
        json!({ "$type": "app.bsky.embed.images", "images": images }),
    ))
}

/// GETs `url` without credentials and reads at most `max` bytes of a body whose content type
/// starts with `type_prefix`: `truncate` keeps the first `max` bytes of a longer body, else
/// a longer body is an error. Returns the bytes and the content type.
async fn fetch_limited(
    client: &reqwest::Client,
    url: &str,
    max: usize,
    type_prefix: &str,
    truncate: bool,
) -> Result<(Vec<u8>, String), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an http(s) link".into());
    }
    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !mime.starts_with(type_prefix) {
        return Err(format!("content type {mime:?} is not {type_prefix}"));
    }
    if !truncate && response.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            if truncate {
                body.truncate(max);
                break;
            }
            return Err(format!("larger than {max} bytes"));
        }
    }
    Ok((body, mime))
}

/// What a page says about itself: Open Graph (`og:*`), then Twitter card tags, then `<title>`
/// and `<meta name="description">`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageMeta {
    pub title: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
}

impl PageMeta {
    /// Reads the `<meta>` tags and `<title>` of an HTML page.
    pub fn parse(html: &str) -> PageMeta {
        let mut tags: HashMap<String, String> = HashMap::new();
        let lower = html.to_ascii_lowercase();
        let mut pos = 0;
        while let Some(found) = lower[pos..].find("<meta") {
            let start = pos + found + 5;
            let Some(len) = lower[start..].find('>') else {
                break;
            };
            let attrs = attributes(&html[start..start + len]);
            let key = attrs
                .get("property")
                .or_else(|| attrs.get("name"))
                .map(|k| k.to_ascii_lowercase());
            if let (Some(key), Some(content)) = (key, attrs.get("content")) {
                let content = content.trim();
                if !content.is_empty() {
                    tags.entry(key).or_insert_with(|| content.to_owned());
                }
            }
            pos = start + len;
        }
        let title_tag = lower.find("<title").and_then(|s| {
            let open_end = s + lower[s..].find('>')? + 1;
            let close = open_end + lower[open_end..].find("</title")?;
            Some(decode_entities(html[open_end..close].trim()))
        });
        let pick = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| tags.get(*k))
                .map(|v| collapse(&decode_entities(v)))
                .filter(|v| !v.is_empty())
        };
        PageMeta {
            title: pick(&["og:title", "twitter:title"])
                .or(title_tag.map(|t| collapse(&t)).filter(|t| !t.is_empty())),
            description: pick(&["og:description", "twitter:description", "description"]),
            image: pick(&["og:image", "og:image:url", "twitter:image"]),
        }
    }
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The attributes of a tag's inside (`name="v" name='v' name=v`), names lowercased.
fn attributes(inside: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let chars: Vec<char> = inside.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let name_start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        let name: String = chars[name_start..i]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let value = if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                let s = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                let v: String = chars[s..i].iter().collect();
                i += 1;
                v
            } else {
                let s = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                chars[s..i].iter().collect()
            };
            if !name.is_empty() {
                out.entry(name).or_insert(value);
            }
        } else if name.is_empty() {
            i += 1;
        }
    }
    out
}

fn decode_entities(text: &str) -> String {
    super::mastodon::html_to_text(&text.replace('<', "&lt;"))
}

#[derive(Deserialize)]
struct ListedRecord {
    uri: String,
    cid: String,
    #[serde(default)]
    value: Value,
}

#[async_trait]
impl Publisher for BlueskyPublisher {
    fn platform(&self) -> Platform {
        Platform::Bluesky
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: true,
            media_kinds: vec![MediaKind::Image, MediaKind::Video],
            reconcile: true,
            idempotency_keys: false,
            // The session renews itself; the stored app password does not expire.
            refresh: false,
            // 5,000 points an hour per account, a created record costs 3.
            publish_budget: Some((1_666, Duration::from_secs(3600))),
        }
    }

    async fn publish_segment(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Published, PublishError> {
        let root = Self::api_root(account);
        let session = self.session(&root, account).await?;
        let (facets, first_link) = self.facets(&root, account, segment.text).await?;
        let embed = match media_embed(segment.media_ids)? {
            Some(embed) => Some(embed),
            None => match &first_link {
                Some(uri) => self.link_card(&root, account, uri).await,
                None => None,
            },
        };
        let body = Self::create_body(&session.did, segment, facets, embed, Utc::now())?;
        let url = format!("{root}/xrpc/com.atproto.repo.createRecord");
        let build = |access: &str| self.client.post(&url).bearer_auth(access).json(&body);
        let (response, session) = self
            .call(&root, account, &build, CallKind::Creating)
            .await?;
        match serde_json::from_str::<CreatedRecord>(&response.body) {
            Ok(created) if created.uri.starts_with("at://") && !created.cid.is_empty() => {
                Ok(Published {
                    url: Some(post_url(&session.handle, &created.uri)),
                    external_id: StrongRef {
                        uri: created.uri,
                        cid: created.cid,
                    }
                    .to_id(),
                })
            }
            // The PDS said yes but the answer is unreadable: the post probably exists.
            _ => Err(PublishError::Ambiguous {
                message: format!(
                    "Bluesky answered {} without a record uri and cid",
                    response.status.as_u16()
                ),
            }),
        }
    }

    async fn reconcile(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Option<Published>, PublishError> {
        let root = Self::api_root(account);
        let session = self.session(&root, account).await?;
        let parent = match segment.reply_to {
            Some(id) => Some(
                StrongRef::parse(id)
                    .ok_or_else(|| PublishError::Permanent {
                        message: format!("{id:?} is not a Bluesky post id (at://…|cid)"),
                    })?
                    .uri,
            ),
            None => None,
        };
        let url = format!("{root}/xrpc/com.atproto.repo.listRecords");
        let limit = RECONCILE_WINDOW.to_string();
        let did = session.did.clone();
        let build = |access: &str| {
            self.client.get(&url).bearer_auth(access).query(&[
                ("repo", did.as_str()),
                ("collection", POST_COLLECTION),
                ("limit", limit.as_str()),
            ])
        };
        let (response, session) = self.call(&root, account, &build, CallKind::Reading).await?;
        let records: Vec<ListedRecord> = serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("records").cloned())
            .and_then(|r| serde_json::from_value(r).ok())
            .ok_or_else(|| unreadable("records", "no records list"))?;
        let found = records.into_iter().find(|r| {
            let text = r.value.get("text").and_then(|t| t.as_str());
            let reply_parent = r
                .value
                .pointer("/reply/parent/uri")
                .and_then(|u| u.as_str());
            text == Some(segment.text) && reply_parent == parent.as_deref()
        });
        Ok(found.map(|r| Published {
            url: Some(post_url(&session.handle, &r.uri)),
            external_id: StrongRef {
                uri: r.uri,
                cid: r.cid,
            }
            .to_id(),
        }))
    }

    async fn identity(&self, account: &AccountContext) -> Result<Identity, PublishError> {
        let root = Self::api_root(account);
        let url = format!("{root}/xrpc/com.atproto.server.getSession");
        let build = |access: &str| self.client.get(&url).bearer_auth(access);
        let (response, _) = self.call(&root, account, &build, CallKind::Reading).await?;
        let answer: Value =
            serde_json::from_str(&response.body).map_err(|e| unreadable("session", e))?;
        let field = |k: &str| answer.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        match (field("did"), field("handle")) {
            (Some(id), Some(handle)) => Ok(Identity { id, handle }),
            _ => Err(unreadable("session", "no did and handle")),
        }
    }

    async fn upload_media(
        &self,
        account: &AccountContext,
        media: &MediaFile,
        state: UploadState,
        ctx: &UploadContext<'_>,
    ) -> Result<MediaRef, PublishError> {
        let mut state = state.for_file(media);
        if let (Phase::Ready, Some(id)) = (state.phase, &state.media_id) {
            return Ok(MediaRef {
                media_id: id.clone(),
            });
        }
        let name = media.file_name();
        let kind = match media.kind {
            MediaKind::Image => {
                if media.bytes > MAX_IMAGE_BYTES {
                    return Err(PublishError::Permanent {
                        message: format!(
                            "{name} is {} bytes; Bluesky takes images of at most {MAX_IMAGE_BYTES} bytes",
                            media.bytes
                        ),
                    });
                }
                "image"
            }
            MediaKind::Video => {
                if media.bytes > MAX_VIDEO_BYTES {
                    return Err(PublishError::Permanent {
                        message: format!(
                            "{name} is {} bytes; Bluesky takes videos of at most {MAX_VIDEO_BYTES} bytes",
                            media.bytes
                        ),
                    });
                }
                if media.mime != "video/mp4" {
                    return Err(PublishError::Permanent {
                        message: format!(
                            "Bluesky takes MP4 videos only, not {} ({name})",
                            media.mime
                        ),
                    });
                }
                "video"
            }
            MediaKind::Gif => {
                return Err(PublishError::Permanent {
                    message: format!(
                        "Bluesky does not take GIF files ({name}); convert it to an MP4 video"
                    ),
                });
            }
        };
        let bytes = media.read_all().await?;
        let aspect_ratio = (kind == "image")
            .then(|| imagesize::blob_size(&bytes).ok())
            .flatten()
            .filter(|s| s.width > 0 && s.height > 0)
            .map(|s| (s.width as u64, s.height as u64));
        let root = Self::api_root(account);
        let blob = self
            .upload_blob(&root, account, bytes.into(), &media.mime)
            .await?;
        crate::upload::log_progress(media, 0, media.bytes);
        let id = serde_json::to_string(&BlobMedia {
            kind: kind.to_owned(),
            blob,
            alt: media.alt.clone(),
            aspect_ratio,
        })
        .map_err(|e| unreadable("blob", e))?;
        state.phase = Phase::Ready;
        state.media_id = Some(id.clone());
        state.offset = media.bytes;
        ctx.progress.save(&state).await?;
        Ok(MediaRef { media_id: id })
    }

    async fn metrics(
        &self,
        account: &AccountContext,
        external_id: &str,
    ) -> Result<PostMetrics, PublishError> {
        let post = StrongRef::parse(external_id).ok_or_else(|| PublishError::Permanent {
            message: format!("{external_id:?} is not a Bluesky post id (at://…|cid)"),
        })?;
        let root = Self::api_root(account);
        let url = format!("{root}/xrpc/app.bsky.feed.getPosts");
        let build = |access: &str| {
            self.client
                .get(&url)
                .bearer_auth(access)
                .query(&[("uris", post.uri.as_str())])
        };
        let (response, _) = self.call(&root, account, &build, CallKind::Reading).await?;
        let answer: Value =
            serde_json::from_str(&response.body).map_err(|e| unreadable("posts", e))?;
        let view = answer
            .get("posts")
            .and_then(|p| p.as_array())
            .and_then(|p| {
                p.iter()
                    .find(|v| v.get("uri").and_then(|u| u.as_str()) == Some(post.uri.as_str()))
            })
            .ok_or_else(|| PublishError::Permanent {
                message: format!("Bluesky does not know the post {} (deleted?)", post.uri),
            })?;
        let count = |k: &str| view.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(PostMetrics {
            likes: count("likeCount"),
            reposts: count("repostCount"),
            replies: count("replyCount"),
            quotes: count("quoteCount"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_uri_and_cid() {
        let r = StrongRef::parse("at://did:plc:abc/app.bsky.feed.post/3kabc|bafyrei1").unwrap();
        assert_eq!(r.uri, "at://did:plc:abc/app.bsky.feed.post/3kabc");
        assert_eq!(r.cid, "bafyrei1");
        assert_eq!(r.rkey(), "3kabc");
        assert_eq!(
            r.to_id(),
            "at://did:plc:abc/app.bsky.feed.post/3kabc|bafyrei1"
        );
        assert!(StrongRef::parse("12345").is_none());
        assert!(StrongRef::parse("at://x|").is_none());
        assert_eq!(
            post_url("me.bsky.social", &r.uri),
            "https://bsky.app/profile/me.bsky.social/post/3kabc"
        );
    }

    #[test]
    fn xrpc_errors_are_classified() {
        let h = HeaderMap::new();
        let body = r#"{"error":"InvalidRequest","message":"Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"}"#;
        match xrpc_error(StatusCode::BAD_REQUEST, &h, body, &[]) {
            CallError::Publish(PublishError::Permanent { message }) => {
                assert!(message.starts_with("InvalidRequest: Invalid app.bsky.feed.post"))
            }
            _ => panic!("400 is permanent"),
        }
        assert!(matches!(
            xrpc_error(
                StatusCode::BAD_REQUEST,
                &h,
                r#"{"error":"ExpiredToken","message":"Token has expired"}"#,
                &[]
            ),
            CallError::Expired
        ));
        assert!(matches!(
            xrpc_error(StatusCode::UNAUTHORIZED, &h, "{}", &[]),
            CallError::Publish(PublishError::Auth { .. })
        ));
        assert!(matches!(
            xrpc_error(StatusCode::BAD_GATEWAY, &h, "<html>bad</html>", &[]),
            CallError::Publish(PublishError::Transient { .. })
        ));
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", "1767225600".parse().unwrap());
        match xrpc_error(StatusCode::TOO_MANY_REQUESTS, &h, "", &[]) {
            CallError::Publish(PublishError::RateLimited { reset_at, .. }) => {
                assert_eq!(reset_at, Utc.timestamp_opt(1_767_225_600, 0).single())
            }
            _ => panic!("429 is a rate limit"),
        }
    }

    #[test]
    fn page_meta_prefers_open_graph() {
        let html = r#"<html><head><title>Plain &amp; title</title>
            <meta name="description" content="plain description">
            <meta property="og:title" content="OG &quot;title&quot;" />
            <meta content='OG description' property='og:description'>
            <meta property=og:image content=/img/card.png>
            </head><body>x</body></html>"#;
        let meta = PageMeta::parse(html);
        assert_eq!(meta.title.as_deref(), Some("OG \"title\""));
        assert_eq!(meta.description.as_deref(), Some("OG description"));
        assert_eq!(meta.image.as_deref(), Some("/img/card.png"));
        let meta = PageMeta::parse("<title> Only\n a title </title>");
        assert_eq!(meta.title.as_deref(), Some("Only a title"));
        assert_eq!(meta.description, None);
    }

    #[test]
    fn media_embeds_images_or_one_video() {
        let image = |alt: &str| {
            serde_json::to_string(&BlobMedia {
                kind: "image".into(),
                blob: json!({"$type":"blob","ref":{"$link":"bafk1"},"mimeType":"image/png","size":3}),
                alt: Some(alt.into()),
                aspect_ratio: Some((4, 3)),
            })
            .unwrap()
        };
        let embed = media_embed(&[image("a"), image("b")]).unwrap().unwrap();
        assert_eq!(embed["$type"], "app.bsky.embed.images");
        assert_eq!(embed["images"][1]["alt"], "b");
        assert_eq!(
            embed["images"][0]["aspectRatio"],
            json!({"width":4,"height":3})
        );
        let five: Vec<String> = (0..5).map(|_| image("x")).collect();
        assert!(matches!(
            media_embed(&five),
            Err(PublishError::Permanent { .. })
        ));
        assert!(media_embed(&["12".into()]).is_err());
    }
}
