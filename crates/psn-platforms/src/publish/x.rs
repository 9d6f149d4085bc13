//! X (Twitter) API v2 connector.
//!
//! - publish: `POST /2/tweets` `{"text", "reply": {"in_reply_to_tweet_id"}}` with the user's
//!   OAuth 2 bearer token; a thread is a chain of replies to the previous segment;
//! - reconcile: `GET /2/users/{id}/tweets` (the 100 most recent posts) and look for the
//!   segment's text with the same reply target;
//! - refresh: `POST /2/oauth2/token` with `grant_type=refresh_token` (refresh tokens rotate).
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

/// X's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.x.com";
/// Environment variable holding the OAuth 2 client id (public clients send it on refresh).
pub const CLIENT_ID_ENV: &str = "X_CLIENT_ID";
/// How many recent posts [`XPublisher::reconcile`] looks through (the endpoint's maximum).
pub const RECONCILE_WINDOW: u32 = 100;

/// The X API v2 connector. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct XPublisher {
    base_url: String,
    client: reqwest::Client,
    client_id: Option<String>,
}

impl std::fmt::Debug for XPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XPublisher")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
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
        }
    }

    /// Sets the OAuth 2 client id sent on refresh.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
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
        };
        serde_json::to_value(&body).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct CreateTweet<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<Reply<'a>>,
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
        let secrets = [refresh_token.0.as_str(), account.access_token.0.as_str()];
        let client_id = self.client_id.clone().or_else(|| {
            std::env::var(CLIENT_ID_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        });
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.0.as_str()),
        ];
        if let Some(id) = client_id.as_deref() {
            form.push(("client_id", id));
        }
        let request = self
            .client
            .post(format!("{}/2/oauth2/token", self.base_url))
            .form(&form);
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
