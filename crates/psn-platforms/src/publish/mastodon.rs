//! Mastodon (and API-compatible servers) connector.
//!
//! - publish: `POST {instance}/api/v1/statuses` with a JSON body
//!   `{"status", "in_reply_to_id"?, "language"?, "visibility": "public"}`, the user's bearer
//!   token and `Idempotency-Key: <segment.idempotency_key>`; a thread is a chain of replies to
//!   the previous segment;
//! - reconcile: `GET {instance}/api/v1/accounts/{id}/statuses?limit=40` (the endpoint's
//!   maximum) and look for a status whose text — Mastodon answers HTML `content`, stripped
//!   here to plain text — equals the segment's, with the same `in_reply_to_id`;
//! - refresh: not supported (Mastodon tokens do not expire by default);
//! - media: see [`super::mastodon_media`] (`POST /api/v2/media`, then polls until processed).
//!
//! The API root is the account's instance ([`AccountContext::service_url`]), unless
//! `PSN_API_BASE_MASTODON` is set (tests point it at a fake; see [`http::api_base`]).
//!
//! Mastodon honors `Idempotency-Key` for an hour: sending the same segment again with the same
//! key returns the status created the first time instead of a second one. That makes a resend
//! after an ambiguous call safe within the hour; the engine still reconciles first.
//!
//! Mastodon's errors are `{"error": "…"}`; 422 (validation, e.g. over-long text) and 404
//! (reply target gone) are permanent. Rate limits answer 429 with `X-RateLimit-Reset` as an
//! ISO 8601 time (not Unix seconds as on X), which [`http::rate_limit_reset`] reads.

use std::time::Duration;

use async_trait::async_trait;

use psn_domain::{MediaKind, Platform};

use serde::{Deserialize, Serialize};

use super::http::{self, CallKind};
use super::sanitize::sanitize_error;
use super::{AccountContext, Capabilities, PublishError, Published, Publisher, SegmentRequest};

/// How many recent statuses [`MastodonPublisher::reconcile`] looks through (the endpoint's
/// maximum `limit`).
pub const RECONCILE_WINDOW: u32 = 40;
/// The visibility psn posts with.
pub const VISIBILITY: &str = "public";

/// The Mastodon connector. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct MastodonPublisher {
    client: reqwest::Client,
}

impl std::fmt::Debug for MastodonPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MastodonPublisher").finish_non_exhaustive()
    }
}

impl Default for MastodonPublisher {
    fn default() -> Self {
        Self::new()
    }
}

impl MastodonPublisher {
    /// A connector with [`http::client`].
    pub fn new() -> Self {
        Self::with_client(http::client())
    }

    /// A connector with a caller-built HTTP client (tests use short timeouts).
    pub fn with_client(client: reqwest::Client) -> Self {
        MastodonPublisher { client }
    }

    /// The API root for `account`: `PSN_API_BASE_MASTODON` when set, else the account's
    /// instance (`https://` added when it has no scheme), without a trailing slash.
    pub fn api_root(account: &AccountContext) -> Result<String, PublishError> {
        let instance = account.service_url.trim();
        let instance = if instance.is_empty() || instance.contains("://") {
            instance.to_owned()
        } else {
            format!("https://{instance}")
        };
        let root = http::api_base(Platform::Mastodon, &instance);
        if root.is_empty() {
            return Err(PublishError::Permanent {
                message: "the Mastodon account has no instance URL (service_url)".into(),
            });
        }
        Ok(root)
    }

    /// The JSON body of `POST /api/v1/statuses` for `segment` (conforms to the API's
    /// `TextStatus` schema).
    pub fn create_body(segment: &SegmentRequest<'_>) -> serde_json::Value {
        let body = CreateStatus {
            status: segment.text,
            in_reply_to_id: segment.reply_to,
            language: segment.language.filter(|l| !l.trim().is_empty()),
            visibility: VISIBILITY,
            media_ids: segment.media_ids,
        };
        serde_json::to_value(&body).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct CreateStatus<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    visibility: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    media_ids: &'a [String],
}

#[derive(Deserialize)]
struct Status {
    id: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    in_reply_to_id: Option<String>,
    #[serde(default)]
    reblog: Option<serde_json::Value>,
}

impl Status {
    fn published(self) -> Published {
        let url = self.url.or(self.uri).filter(|u| !u.is_empty());
        Published {
            external_id: self.id,
            url,
        }
    }
}

/// Mastodon's HTML `content` as plain text: `<br>` → newline, paragraph breaks → blank line,
/// other tags removed (link text kept), entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..start]));
        let Some(len) = rest[start..].find('>') else {
            // An unclosed `<` is text.
            out.push_str(&decode_entities(&rest[start..]));
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + len]
            .trim()
            .trim_end_matches('/')
            .trim()
            .to_ascii_lowercase();
        let name = tag.split_whitespace().next().unwrap_or("");
        match name {
            "br" => out.push('\n'),
            "p" if !out.is_empty() => out.push_str("\n\n"),
            _ => {}
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(&decode_entities(rest));
    out
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &after[..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text reduced so that what psn sent and what Mastodon renders compare equal: whitespace
/// collapsed and trimmed, and remote mentions `@user@domain` reduced to `@user` (Mastodon
/// renders only the user part).
pub fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .map(|word| match word.strip_prefix('@') {
            Some(rest) if rest.contains('@') => {
                let user = rest.split('@').next().unwrap_or("");
                let domain = &rest[user.len() + 1..];
                // Keep what follows the domain ("@a@b.social," → "@a,").
                let end = domain
                    .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
                    .unwrap_or(domain.len());
                let host = &domain[..end];
                let dots = host.len() - host.trim_end_matches('.').len();
                format!("@{user}{}{}", &host[host.len() - dots..], &domain[end..])
            }
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl Publisher for MastodonPublisher {
    fn platform(&self) -> Platform {
        Platform::Mastodon
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            threads: true,
            media_kinds: vec![MediaKind::Image, MediaKind::Gif, MediaKind::Video],
            reconcile: true,
            idempotency_keys: true,
            refresh: false,
            // 300 requests per 5 minutes per account (platforms.md).
            publish_budget: Some((300, Duration::from_secs(5 * 60))),
        }
    }

    async fn publish_segment(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Published, PublishError> {
        let token = account.access_token.0.as_str();
        let secrets = [token];
        let root = Self::api_root(account)?;
        let mut request = self
            .client
            .post(format!("{root}/api/v1/statuses"))
            .bearer_auth(token)
            .json(&Self::create_body(segment));
        if !segment.idempotency_key.trim().is_empty() {
            request = request.header("Idempotency-Key", segment.idempotency_key);
        }
        let response = http::send(request, CallKind::Creating, &secrets).await?;
        match serde_json::from_str::<Status>(&response.body) {
            Ok(status) if !status.id.is_empty() => Ok(status.published()),
            // Mastodon said yes but the answer is unreadable: the status probably exists.
            _ => Err(PublishError::Ambiguous {
                message: format!(
                    "Mastodon answered {} without a status id: {}",
                    response.status.as_u16(),
                    sanitize_error(&response.body, &secrets)
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
        let root = Self::api_root(account)?;
        let request = self
            .client
            .get(format!(
                "{root}/api/v1/accounts/{}/statuses",
                account.external_id
            ))
            .bearer_auth(token)
            .query(&[("limit", RECONCILE_WINDOW.to_string().as_str())]);
        // Reading: a transport failure is transient, never ambiguous.
        let response = http::send(request, CallKind::Reading, &secrets).await?;
        let statuses: Vec<Status> =
            serde_json::from_str(&response.body).map_err(|e| PublishError::Transient {
                message: format!("unreadable statuses from Mastodon: {e}"),
                retry_after: None,
            })?;
        let wanted = normalize_text(segment.text);
        let found = statuses.into_iter().find(|s| {
            s.reblog.as_ref().is_none_or(|r| r.is_null())
                && s.in_reply_to_id.as_deref() == segment.reply_to
                && normalize_text(&html_to_text(&s.content)) == wanted
        });
        Ok(found.map(Status::published))
    }

    async fn identity(
        &self,
        account: &AccountContext,
    ) -> Result<crate::oauth::Identity, PublishError> {
        let root = Self::api_root(account)?;
        crate::oauth::identity_at(
            &self.client,
            Platform::Mastodon,
            &format!("{root}/api/v1/accounts/verify_credentials"),
            &account.access_token.0,
        )
        .await
    }

    async fn upload_media(
        &self,
        account: &AccountContext,
        media: &crate::upload::MediaFile,
        state: crate::upload::UploadState,
        ctx: &crate::upload::UploadContext<'_>,
    ) -> Result<crate::upload::MediaRef, PublishError> {
        let root = Self::api_root(account)?;
        let token = account.access_token.0.as_str();
        super::mastodon_media::upload(&self.client, &root, token, media, state, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use reqwest::header::{HeaderMap, HeaderValue};

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
    fn body_has_reply_and_language_only_when_set() {
        assert_eq!(
            MastodonPublisher::create_body(&segment("hi", None)),
            serde_json::json!({"status": "hi", "visibility": "public"})
        );
        let seg = SegmentRequest {
            language: Some("en"),
            ..segment("hi", Some("12"))
        };
        assert_eq!(
            MastodonPublisher::create_body(&seg),
            serde_json::json!({"status": "hi", "in_reply_to_id": "12", "language": "en",
                "visibility": "public"})
        );
    }

    #[test]
    fn html_content_becomes_the_posted_text() {
        assert_eq!(html_to_text("<p>a &amp; b &lt;3</p>"), "a & b <3");
        assert_eq!(
            html_to_text("<p>one<br />two</p><p>three &#39;q&#39; &quot;d&quot; &#x41;</p>"),
            "one\ntwo\n\nthree 'q' \"d\" A"
        );
        let link = r#"<p>see <a href="https://example.com/page" rel="nofollow noopener" target="_blank"><span class="invisible">https://</span><span class="">example.com/page</span><span class="invisible"></span></a> now</p>"#;
        assert_eq!(html_to_text(link), "see https://example.com/page now");
        assert_eq!(html_to_text("a < b & c"), "a < b & c");
        assert_eq!(
            normalize_text(&html_to_text("<p>one<br />two</p><p>three</p>")),
            normalize_text("one\ntwo\n\nthree")
        );
    }

    #[test]
    fn remote_mentions_compare_by_user() {
        assert_eq!(
            normalize_text("hi @bob@example.social, and @carol"),
            "hi @bob, and @carol"
        );
        assert_eq!(normalize_text("  two\n\nlines "), "two lines");
        assert_eq!(normalize_text("mail a@b.c"), "mail a@b.c");
    }

    #[test]
    fn reset_header_is_iso_8601() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2026-01-01T00:05:00.000000Z"),
        );
        let now = Utc::now();
        assert_eq!(
            http::rate_limit_reset(&h, now),
            Some(
                DateTime::parse_from_rfc3339("2026-01-01T00:05:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(http::rate_limit_reset(&HeaderMap::new(), now), None);
    }

    #[test]
    fn api_root_is_the_instance() {
        let account = |url: &str| AccountContext {
            external_id: "1".into(),
            handle: "@a".into(),
            service_url: url.into(),
            access_token: super::super::AccessToken("t".into()),
        };
        // PSN_API_BASE_MASTODON is never set in unit tests.
        if std::env::var(Platform::Mastodon.api_base_env()).is_err() {
            assert_eq!(
                MastodonPublisher::api_root(&account("https://mastodon.social/")).unwrap(),
                "https://mastodon.social"
            );
            assert_eq!(
                MastodonPublisher::api_root(&account("fosstodon.org")).unwrap(),
                "https://fosstodon.org"
            );
            assert!(matches!(
                MastodonPublisher::api_root(&account("")),
                Err(PublishError::Permanent { .. })
            ));
        }
    }
}
