//! The publisher contract between the engine and each platform connector.
//!
//! A connector turns one *step* of a delivery into HTTP calls to its platform and reports what
//! happened; the engine decides what that means for the delivery and persists it. Publishers
//! never touch the database and never retry on their own: they classify each failure
//! ([`PublishError`]) so that the engine can retry what is transient, wait out rate limits,
//! refresh tokens, stop on permanent refusals, and — for a call whose outcome is unknown —
//! reconcile against the platform before anything is sent again.

pub mod bluesky;
pub mod bluesky_richtext;
pub mod http;
pub mod mastodon;
pub mod mastodon_media;
pub mod sanitize;
pub mod x;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psn_domain::{MediaKind, Platform};

/// A token, redacted in `Debug`. Connectors receive it for the length of one call.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(pub String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// The account a step publishes as.
#[derive(Debug, Clone)]
pub struct AccountContext {
    /// The platform's id for the account (X user id, Mastodon account id, Bluesky DID…).
    pub external_id: String,
    pub handle: String,
    /// Bluesky PDS or Mastodon instance; empty for single-API platforms.
    pub service_url: String,
    pub access_token: AccessToken,
}

/// One thread segment (or the single post) to publish.
#[derive(Debug, Clone)]
pub struct SegmentRequest<'a> {
    pub text: &'a str,
    /// Zero-based position in the thread, and the thread's length.
    pub index: usize,
    pub count: usize,
    /// The platform id of the previous segment (the reply target), and of the first one.
    pub reply_to: Option<&'a str>,
    pub thread_root: Option<&'a str>,
    /// Stable for this (post, account, step): sent where the platform honors one.
    pub idempotency_key: &'a str,
    pub language: Option<&'a str>,
    /// Uploaded media to attach (platform media ids, in order); empty after the first segment.
    pub media_ids: &'a [String],
}

/// Something the platform now has.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub external_id: String,
    pub url: Option<String>,
}

/// Why a step did not publish, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Nothing was created (network failure before sending, 5xx, 408); retry later.
    #[error("transient: {message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The platform's rate limit; retry after the reset.
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        reset_at: Option<DateTime<Utc>>,
    },
    /// The token was refused; refresh it once, then the account needs re-authorization.
    #[error("authorization refused: {message}")]
    Auth { message: String },
    /// The platform refused the content; retrying will not help. `message` is the platform's
    /// own reason.
    #[error("refused by the platform: {message}")]
    Permanent { message: String },
    /// The request was sent and the outcome is unknown (connection dropped, timeout after
    /// sending): reconcile before sending again.
    #[error("outcome unknown: {message}")]
    Ambiguous { message: String },
    /// The connector cannot do this (for example, reconcile on a platform without a way to
    /// list recent posts).
    #[error("{operation} is not supported on {platform}")]
    NotSupported {
        operation: &'static str,
        platform: Platform,
    },
}

/// What a connector can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub threads: bool,
    pub media_kinds: Vec<MediaKind>,
    /// Whether [`Publisher::reconcile`] can find a post after an ambiguous call.
    pub reconcile: bool,
    /// Whether the platform deduplicates by [`SegmentRequest::idempotency_key`].
    pub idempotency_keys: bool,
    pub refresh: bool,
    /// The platform's publishing limit per account: so many creating calls per window.
    /// The engine keeps each account's rate budget within it.
    pub publish_budget: Option<(i64, Duration)>,
}

/// New tokens after a refresh. `refresh_token` is `None` when the platform did not rotate it.
#[derive(Debug, Clone)]
pub struct RefreshedTokens {
    pub access_token: AccessToken,
    pub refresh_token: Option<AccessToken>,
    pub expires_in: Option<Duration>,
}

/// Engagement counters of one published post, as the platform reports them now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PostMetrics {
    pub likes: u64,
    pub reposts: u64,
    pub replies: u64,
    pub quotes: u64,
}

/// One platform's connector.
#[async_trait]
pub trait Publisher: Send + Sync + std::fmt::Debug {
    fn platform(&self) -> Platform;

    fn capabilities(&self) -> Capabilities;

    /// The pre-flight check for this platform: the same rules `psn post` runs before anything
    /// is queued, so an invalid post never reaches the platform.
    fn validate(
        &self,
        request: &crate::rules::ValidationRequest<'_>,
    ) -> crate::rules::ValidationReport {
        debug_assert_eq!(request.platform, self.platform());
        crate::rules::validate(request)
    }

    /// Publishes one segment. Must make at most one creating call.
    async fn publish_segment(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Published, PublishError>;

    /// Looks for `segment` among the account's recent posts (same text, same reply target).
    /// `Ok(None)` means it is certainly not there, so it is safe to publish it.
    async fn reconcile(
        &self,
        account: &AccountContext,
        segment: &SegmentRequest<'_>,
    ) -> Result<Option<Published>, PublishError> {
        let _ = (account, segment);
        Err(PublishError::NotSupported {
            operation: "reconcile",
            platform: self.platform(),
        })
    }

    /// Exchanges a refresh token for new tokens.
    async fn refresh(
        &self,
        account: &AccountContext,
        refresh_token: &AccessToken,
    ) -> Result<RefreshedTokens, PublishError> {
        let _ = (account, refresh_token);
        Err(PublishError::NotSupported {
            operation: "token refresh",
            platform: self.platform(),
        })
    }

    /// A lightweight call that proves the token works and says whose it is (health checks).
    async fn identity(
        &self,
        account: &AccountContext,
    ) -> Result<crate::oauth::Identity, PublishError> {
        let _ = account;
        Err(PublishError::NotSupported {
            operation: "identity check",
            platform: self.platform(),
        })
    }

    /// Uploads one media file (or resumes its upload from `state`), handing the upload's
    /// state to `ctx.progress` after every finished step. Returns the platform's media id once
    /// the file is usable in a post. Alt text is attached here where the platform takes it
    /// separately.
    async fn upload_media(
        &self,
        account: &AccountContext,
        media: &crate::upload::MediaFile,
        state: crate::upload::UploadState,
        ctx: &crate::upload::UploadContext<'_>,
    ) -> Result<crate::upload::MediaRef, PublishError> {
        let _ = (account, media, state, ctx);
        Err(PublishError::NotSupported {
            operation: "media upload",
            platform: self.platform(),
        })
    }

    /// The engagement counters of a published post (`external_id` as [`Published`] gave it).
    async fn metrics(
        &self,
        account: &AccountContext,
        external_id: &str,
    ) -> Result<PostMetrics, PublishError> {
        let _ = (account, external_id);
        Err(PublishError::NotSupported {
            operation: "post metrics",
            platform: self.platform(),
        })
    }
}
