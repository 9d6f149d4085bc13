//! X (Twitter) API v2 connector.
//!
//! - publish: `POST /2/tweets` `{"text", "reply": {"in_reply_to_tweet_id"}}` with the user's
//!   OAuth 2 bearer token; a thread is a chain of replies to the previous segment;
//! - reconcile: `GET /2/users/{id}/tweets` (the 100 most recent posts) and look for the
//!   segment's text with the same reply target;
//! - refresh: `POST /2/oauth2/token` with `grant_type=refresh_token` (refresh tokens rotate);
//! - media: images up to 5 MB in one `POST /2/media/upload` (multipart `media`,
//!   `media_category`); larger images, GIFs and videos chunked — `POST /2/media/upload/initialize` (JSON `media_type`,
//!   `total_bytes`, `media_category`), `POST /2/media/upload/{id}/append` (multipart
//!   `segment_index`, `media`), `POST /2/media/upload/{id}/finalize`, then
//!   `GET /2/media/upload?command=STATUS&media_id=…` at the `check_after_secs` X suggests; alt
//!   text through `POST /2/media/metadata`; the ids go in `media.media_ids` of the first post.
//!
//! X does not deduplicate by idempotency key, so an ambiguous `POST /2/tweets` must be
//! reconciled before it is sent again. (X refuses an identical text from the same account
//! with 403 "duplicate content", which is a second line of defence, not a guarantee.)
//! A 5xx from `POST /2/tweets` is taken to mean the Tweet was not created (see
//! [`super::http::classify_status`]).

use std::time::Duration;

use async_trait::async_trait;
use psn_domain::{MediaKind, Platform};
use serde::{Deserialize, Serialize};
use twitter_text::ParserBackend;
use twitter_text::extractor::{Extract, Extractor};

use super::http::{self, CallKind};
use super::{
    AccessToken, AccountContext, Capabilities, PublishError, Published, Publisher, RefreshedTokens,
    SegmentRequest,
};
use crate::upload::poll::{PollPolicy, Processing};
use crate::upload::{
    self, MediaFile, MediaRef, UploadContext, UploadState, chunked, form::Form, single,
};

/// X's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.x.com";
/// Environment variable holding the OAuth 2 client id (public clients send it on refresh).
pub const CLIENT_ID_ENV: &str = "X_CLIENT_ID";
/// Environment variable holding the OAuth 2 client secret of a confidential client.
pub const CLIENT_SECRET_ENV: &str = "X_CLIENT_SECRET";
/// How many recent posts [`XPublisher::reconcile`] looks through (the endpoint's maximum).
pub const RECONCILE_WINDOW: u32 = 100;
/// The size of an APPEND segment (X takes up to 5 MB per segment), unless
/// `PSN_UPLOAD_CHUNK_BYTES` says otherwise.
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The largest image sent in one request; larger ones go through the chunked upload.
pub const SINGLE_UPLOAD_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// The X API v2 connector. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct XPublisher {
    base_url: String,
    client: reqwest::Client,
    client_id: Option<String>,
    /// Set for a confidential client: refreshes then authenticate with HTTP Basic.
    client_secret: Option<String>,
    chunk_size: usize,
}

impl std::fmt::Debug for XPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XPublisher")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl XPublisher {
    /// A connector for the API at `base_url` with [`http::client`]; the client id comes from
    /// `X_CLIENT_ID` when set.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_client(base_url, http::client())
    }

    /// A connector for `PSN_API_BASE_X` (default `https://api.x.com`).
    pub fn from_env() -> Self {
        Self::new(http::api_base(Platform::X, DEFAULT_BASE_URL))
    }

    /// A connector with a caller-built HTTP client (tests use short timeouts).
    pub fn with_client(base_url: impl Into<String>, client: reqwest::Client) -> Self {
        let base_url = base_url.into().trim().trim_end_matches('/').to_owned();
        let client_id = std::env::var(CLIENT_ID_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        XPublisher {
            base_url,
            client,
            client_id,
            client_secret: std::env::var(CLIENT_SECRET_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty()),
            chunk_size: upload::chunk_bytes_from_env().unwrap_or(CHUNK_BYTES),
        }
    }

    /// Sets the size of APPEND segments.
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Sets the OAuth 2 client id sent on refresh.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the app credentials used on refresh (the workspace's `config/keys.env` or the
    /// environment): a public client sends its id in the form, a confidential client (with a
    /// secret) authenticates with HTTP Basic. `None` keeps what the environment gave.
    pub fn with_credentials(
        mut self,
        credentials: Option<crate::oauth::ClientCredentials>,
    ) -> Self {
        if let Some(c) = credentials {
            self.client_id = Some(c.id);
            self.client_secret = c.secret.filter(|s| !s.trim().is_empty());
        }
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The public URL of a post.
    pub fn post_url(handle: &str, id: &str) -> String {
        format!(
            "https://x.com/{}/status/{id}",
            handle.trim().trim_start_matches('@')
        )
    }

    /// The JSON body of `POST /2/tweets` for `segment` (conforms to the API's
    /// `CreatePostsRequest` schema).
    pub fn create_body(segment: &SegmentRequest<'_>) -> serde_json::Value {
        let body = CreateTweet {
            text: segment.text,
            reply: segment.reply_to.map(|id| Reply {
                in_reply_to_tweet_id: id,
            }),
            media: (!segment.media_ids.is_empty()).then_some(Media {
                media_ids: segment.media_ids,
            }),
        };
        serde_json::to_value(&body).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct CreateTweet<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<Reply<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<Media<'a>>,
}

#[derive(Serialize)]
struct Media<'a> {
    media_ids: &'a [String],
}

#[derive(Serialize)]
struct Reply<'a> {
    in_reply_to_tweet_id: &'a str,
}

#[derive(Deserialize)]
struct CreateResponse {
    data: Option<CreatedTweet>,
}

#[derive(Deserialize)]
struct CreatedTweet {
    id: String,
}

#[derive(Deserialize)]
struct TimelineResponse {
    #[serde(default)]
    data: Option<Vec<TimelineTweet>>,
    #[serde(default)]
    errors: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct TimelineTweet {
    id: String,
    text: String,
    /// `referenced_posts` in the newer OpenAPI description of the same endpoint.
    #[serde(default, alias = "referenced_posts")]
    referenced_tweets: Option<Vec<ReferencedTweet>>,
}

#[derive(Deserialize)]
struct ReferencedTweet {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// Text as X hands it back, reduced so that what psn sent and what X stored compare equal:
/// HTML entities that X escapes (`&amp;`, `&lt;`, `&gt;`) decoded, every URL replaced by a
/// placeholder (X rewrites links to t.co), whitespace collapsed and trimmed.
pub fn normalize_text(text: &str) -> String {
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let extractor = Extractor::with_parser_backend(ParserBackend::External);
    let urls = extractor.extract_urls_with_indices(&decoded);
    let mut out = decoded.clone();
    for url in &urls {
        out = out.replacen(url.get_value(), "\u{1}url\u{1}", 1);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The X category of a media kind.
pub fn media_category(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "tweet_image",
        MediaKind::Gif => "tweet_gif",
        MediaKind::Video => "tweet_video",
    }
}

#[derive(Deserialize)]
struct MediaResponse {
    data: Option<MediaData>,
}

#[derive(Deserialize)]
struct MediaData {
    id: String,
    #[serde(default)]
    processing_info: Option<ProcessingInfo>,
}

#[derive(Deserialize)]
struct ProcessingInfo {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    check_after_secs: Option<u64>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

fn processing(info: Option<ProcessingInfo>) -> Processing {
    let Some(info) = info else {
        return Processing::Ready;
    };
    match info.state.as_deref() {
        Some("pending") | Some("in_progress") => Processing::Pending {
            check_after: info.check_after_secs.map(Duration::from_secs),
        },
        Some("failed") => Processing::Failed {
            message: info
                .error
                .as_ref()
                .and_then(|e| e.get("message").or_else(|| e.get("name")))
                .and_then(|m| m.as_str())
                .unwrap_or("processing failed")
                .to_owned(),
        },
        _ => Processing::Ready,
    }
}

/// X's media endpoints for one account.
struct XMedia<'a> {
    publisher: &'a XPublisher,
    token: &'a str,
}

impl XMedia<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.publisher.base_url)
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        kind: CallKind,
    ) -> Result<MediaData, PublishError> {
        let secrets = [self.token];
        let response = http::send(request.bearer_auth(self.token), kind, &secrets).await?;
        serde_json::from_str::<MediaResponse>(&response.body)
            .ok()
            .and_then(|r| r.data)
            .filter(|d| !d.id.is_empty())
            .ok_or_else(|| PublishError::Transient {
                message: format!("X answered {} without a media id", response.status.as_u16()),
                retry_after: None,
            })
    }
}

#[async_trait]
impl single::SingleApi for XMedia<'_> {
    async fn send(
        &self,
        file: &MediaFile,
        bytes: Vec<u8>,
    ) -> Result<(String, Processing), PublishError> {
        let form = Form::new()
            .text("media_category", media_category(file.kind))
            .file("media", &file.file_name(), &file.mime, &bytes);
        let request = upload::form::attach(
            self.publisher.client.post(self.url("/2/media/upload")),
            form,
        );
        let data = self.call(request, CallKind::Creating).await?;
        Ok((data.id, processing(data.processing_info)))
    }

    async fn status(&self, media_id: &str) -> Result<Processing, PublishError> {
        chunked::ChunkedApi::status(self, media_id).await
    }
}

#[async_trait]
impl chunked::ChunkedApi for XMedia<'_> {
    async fn init(&self, file: &MediaFile) -> Result<String, PublishError> {
        let body = serde_json::json!({
            "media_type": file.mime,
            "total_bytes": file.bytes,
            "media_category": media_category(file.kind),
        });
        let request = self
            .publisher
            .client
            .post(self.url("/2/media/upload/initialize"))
            .json(&body);
        Ok(self.call(request, CallKind::Creating).await?.id)
    }

    async fn append(&self, media_id: &str, index: u32, chunk: Vec<u8>) -> Result<(), PublishError> {
        let form = Form::new().text("segment_index", &index.to_string()).file(
            "media",
            "chunk",
            "application/octet-stream",
            &chunk,
        );
        let request = upload::form::attach(
            self.publisher
                .client
                .post(self.url(&format!("/2/media/upload/{media_id}/append"))),
            form,
        );
        let secrets = [self.token];
        // Sending a segment again replaces it: never ambiguous.
        http::send(request.bearer_auth(self.token), CallKind::Reading, &secrets).await?;
        Ok(())
    }

    async fn finalize(&self, media_id: &str) -> Result<Processing, PublishError> {
        let request = self
            .publisher
            .client
            .post(self.url(&format!("/2/media/upload/{media_id}/finalize")));
        let data = self.call(request, CallKind::Reading).await?;
        Ok(processing(data.processing_info))
    }

    async fn status(&self, media_id: &str) -> Result<Processing, PublishError> {
        let request = self
            .publisher
            .client
            .get(self.url("/2/media/upload"))
            .query(&[("command", "STATUS"), ("media_id", media_id)]);
        let data = self.call(request, CallKind::Reading).await?;
        Ok(processing(data.processing_info))
    }
}

impl XPublisher {
    /// The JSON body of `POST /2/media/metadata` setting `alt` on `media_id`.
    pub fn alt_text_body(media_id: &str, alt: &str) -> serde_json::Value {
        let alt: String = alt.chars().take(1000).collect();
        serde_json::json!({ "id": media_id, "metadata": { "alt_text": { "text": alt } } })
    }
}

#[async_trait]
impl Publisher for XPublisher {
    fn platform(&self) -> Platform {
        Platform::X
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: true,
            media_kinds: vec![MediaKind::Image, MediaKind::Gif, MediaKind::Video],
            reconcile: true,
            idempotency_keys: false,
            refresh: true,
            // 100 posts per 15 minutes per user (platforms.md).
            publish_budget: Some((100, Duration::from_secs(15 * 60))),
        }
    }

    async fn publish_segment(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Published, PublishError> {
        let token = account.access_token.0.as_str();
        let secrets = [token];
        let request = self
            .client
            .post(format!("{}/2/tweets", self.base_url))
            .bearer_auth(token)
            .json(&Self::create_body(segment));
        let response = http::send(request, CallKind::Creating, &secrets).await?;
        let id = serde_json::from_str::<CreateResponse>(&response.body)
            .ok()
            .and_then(|r| r.data)
            .map(|d| d.id)
            .filter(|id| !id.is_empty());
        match id {
            Some(id) => Ok(Published {
                url: Some(Self::post_url(&account.handle, &id)),
                external_id: id,
            }),
            // X said yes but the answer is unreadable: the post probably exists.
            None => Err(PublishError::Ambiguous {
                message: format!(
                    "X answered {} without a post id: {}",
                    response.status.as_u16(),
                    super::sanitize::sanitize_error(&response.body, &secrets)
                ),
            }),
        }
    }

    async fn reconcile(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Option<Published>, PublishError> {
        let token = account.access_token.0.as_str();
        let secrets = [token];
        let request = self
            .client
            .get(format!(
                "{}/2/users/{}/tweets",
                self.base_url, account.external_id
            ))
            .bearer_auth(token)
            .query(&[
                ("max_results", RECONCILE_WINDOW.to_string().as_str()),
                ("tweet.fields", "referenced_tweets,created_at"),
            ]);
        // Reading: a transport failure is transient, never ambiguous.
        let response = http::send(request, CallKind::Reading, &secrets).await?;
        let timeline: TimelineResponse =
            serde_json::from_str(&response.body).map_err(|e| PublishError::Transient {
                message: format!("unreadable timeline from X: {e}"),
                retry_after: None,
            })?;
        let tweets = match (timeline.data, timeline.errors) {
            (Some(tweets), _) => tweets,
            (None, Some(errors)) if !errors.is_empty() => {
                let body = serde_json::json!({ "errors": errors }).to_string();
                return Err(PublishError::Transient {
                    message: http::platform_message(response.status, &body, &secrets),
                    retry_after: None,
                });
            }
            (None, _) => Vec::new(),
        };
        let wanted = normalize_text(segment.text);
        let found = tweets.into_iter().find(|t| {
            if normalize_text(&t.text) != wanted {
                return false;
            }
            let replied_to = t
                .referenced_tweets
                .iter()
                .flatten()
                .find(|r| r.kind == "replied_to")
                .map(|r| r.id.as_str());
            replied_to == segment.reply_to
        });
        Ok(found.map(|t| Published {
            url: Some(Self::post_url(&account.handle, &t.id)),
            external_id: t.id,
        }))
    }

    async fn refresh(
        &self,
        account: &AccountContext,
        refresh_token: &AccessToken,
    ) -> Result<RefreshedTokens, PublishError> {
        let client_id = self.client_id.clone().or_else(|| {
            std::env::var(CLIENT_ID_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        });
        let secret = self.client_secret.as_deref();
        let mut secrets = vec![refresh_token.0.as_str(), account.access_token.0.as_str()];
        secrets.extend(secret);
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.0.as_str()),
        ];
        let mut request = self
            .client
            .post(format!("{}/2/oauth2/token", self.base_url));
        match (client_id.as_deref(), secret) {
            // A confidential client authenticates with HTTP Basic (X's token endpoint).
            (Some(id), Some(secret)) => request = request.basic_auth(id, Some(secret)),
            (Some(id), None) => form.push(("client_id", id)),
            (None, _) => {}
        }
        let request = request.form(&form);
        let response = match http::send(request, CallKind::Reading, &secrets).await {
            Ok(r) => r,
            // X answers a spent or revoked refresh token with 400 invalid_request/invalid_grant.
            Err(PublishError::Permanent { message }) => return Err(PublishError::Auth { message }),
            Err(e) => return Err(e),
        };
        let tokens: TokenResponse =
            serde_json::from_str(&response.body).map_err(|_| PublishError::Transient {
                message: "unreadable token response from X".into(),
                retry_after: None,
            })?;
        Ok(RefreshedTokens {
            access_token: AccessToken(tokens.access_token),
            refresh_token: tokens.refresh_token.map(AccessToken),
            expires_in: tokens.expires_in.map(std::time::Duration::from_secs),
        })
    }

    async fn identity(
        &self,
        account: &AccountContext,
    ) -> Result<crate::oauth::Identity, PublishError> {
        crate::oauth::identity_at(
            &self.client,
            Platform::X,
            &format!("{}/2/users/me", self.base_url),
            &account.access_token.0,
        )
        .await
    }

    async fn upload_media(
        &self,
        account: &AccountContext,
        media: &MediaFile,
        state: UploadState,
        ctx: &UploadContext<'_>,
    ) -> Result<MediaRef, PublishError> {
        let token = account.access_token.0.as_str();
        let api = XMedia {
            publisher: self,
            token,
        };
        let policy = PollPolicy::default();
        let (media_id, mut state) = match media.kind {
            MediaKind::Image if media.bytes <= SINGLE_UPLOAD_MAX_BYTES => {
                single::upload(&api, media, state, policy, ctx).await?
            }
            MediaKind::Image | MediaKind::Gif | MediaKind::Video => {
                chunked::upload(&api, media, state, self.chunk_size, policy, ctx).await?
            }
        };
        if let Some(alt) = media.alt.as_deref().filter(|_| !state.alt_done) {
            let request = self
                .client
                .post(format!("{}/2/media/metadata", self.base_url))
                .bearer_auth(token)
                .json(&Self::alt_text_body(&media_id, alt));
            http::send(request, CallKind::Reading, &[token]).await?;
            state.alt_done = true;
            ctx.progress.save(&state).await?;
        }
        Ok(MediaRef { media_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment<'a>(text: &'a str, reply_to: Option<&'a str>) -> SegmentRequest<'a> {
        SegmentRequest {
            text,
            index: 0,
            count: 1,
            reply_to,
            thread_root: reply_to,
            idempotency_key: "k",
            language: None,
            media_ids: &[],
        }
    }

    #[test]
    fn body_has_reply_only_for_replies() {
        assert_eq!(
            XPublisher::create_body(&segment("hi", None)),
            serde_json::json!({"text": "hi"})
        );
        assert_eq!(
            XPublisher::create_body(&segment("hi", Some("12"))),
            serde_json::json!({"text": "hi", "reply": {"in_reply_to_tweet_id": "12"}})
        );
    }

    #[test]
    fn normalization_matches_what_x_returns() {
        assert_eq!(
            normalize_text("a &amp; b &lt;3"),
            normalize_text("a & b <3")
        );
        assert_eq!(
            normalize_text("read https://t.co/AbC123 now"),
            normalize_text("read https://example.com/a/long/path?x=1 now")
        );
        assert_eq!(
            normalize_text("  two\n\nlines "),
            normalize_text("two lines")
        );
        assert_ne!(normalize_text("one"), normalize_text("two"));
    }

    #[test]
    fn debug_shows_no_token_and_urls_drop_the_at() {
        let p = XPublisher::new("http://127.0.0.1:1/");
        assert_eq!(p.base_url(), "http://127.0.0.1:1");
        assert_eq!(
            XPublisher::post_url("@psn", "5"),
            "https://x.com/psn/status/5"
        );
    }
}
