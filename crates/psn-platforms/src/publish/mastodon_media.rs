//! Mastodon media: `POST /api/v2/media` (multipart `file`, `description` = alt text) answers
//! 200 when the attachment is ready or 202 while the server still processes it; then
//! `GET /api/v1/media/:id` answers 206 (or an attachment without `url`) until it is done.
//! The attachment ids go in `media_ids[]` of the status.
//!
//! Before a new upload the instance's own limits are read (`GET /api/v2/instance`,
//! `configuration.media_attachments`: `image_size_limit`, `video_size_limit`,
//! `supported_mime_types`): a file over them is refused with the instance's numbers instead of
//! being sent.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::PublishError;
use super::http::{self, CallKind};
use crate::upload::form::{self, Form};
use crate::upload::poll::{PollPolicy, Processing};
use crate::upload::{MediaFile, MediaRef, UploadContext, UploadState, single};

/// How often to ask whether an attachment is processed (Mastodon suggests no interval).
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Deserialize)]
struct Attachment {
    id: String,
    #[serde(default)]
    url: Option<String>,
}

fn processing(status: StatusCode, attachment: &Attachment) -> Processing {
    let has_url = attachment.url.as_deref().is_some_and(|u| !u.is_empty());
    if status == StatusCode::OK && has_url {
        Processing::Ready
    } else {
        Processing::Pending { check_after: None }
    }
}

struct MastodonMedia<'a> {
    client: &'a reqwest::Client,
    root: &'a str,
    token: &'a str,
}

impl MastodonMedia<'_> {
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        kind: CallKind,
    ) -> Result<(String, Processing), PublishError> {
        let secrets = [self.token];
        let response = http::send(request.bearer_auth(self.token), kind, &secrets).await?;
        let attachment: Attachment = serde_json::from_str(&response.body)
            .ok()
            .filter(|a: &Attachment| !a.id.is_empty())
            .ok_or_else(|| PublishError::Transient {
                message: format!(
                    "Mastodon answered {} without a media attachment",
                    response.status.as_u16()
                ),
                retry_after: None,
            })?;
        let state = processing(response.status, &attachment);
        Ok((attachment.id, state))
    }
}

#[async_trait]
impl single::SingleApi for MastodonMedia<'_> {
    async fn send(
        &self,
        file: &MediaFile,
        bytes: Vec<u8>,
    ) -> Result<(String, Processing), PublishError> {
        let mut body = Form::new().file("file", &file.file_name(), &file.mime, &bytes);
        if let Some(alt) = file.alt.as_deref() {
            body = body.text("description", alt);
        }
        let request = form::attach(
            self.client.post(format!("{}/api/v2/media", self.root)),
            body,
        );
        self.call(request, CallKind::Creating).await
    }

    async fn status(&self, media_id: &str) -> Result<Processing, PublishError> {
        let request = self
            .client
            .get(format!("{}/api/v1/media/{media_id}", self.root));
        Ok(self.call(request, CallKind::Reading).await?.1)
    }
}

/// The instance's media limits; absent fields are not checked.
#[derive(Debug, Default, Deserialize)]
struct MediaLimits {
    #[serde(default)]
    image_size_limit: Option<u64>,
    #[serde(default)]
    video_size_limit: Option<u64>,
    #[serde(default)]
    supported_mime_types: Option<Vec<String>>,
}

/// Checks `file` against the instance's limits. An unreadable answer checks nothing (the
/// instance itself still refuses what it cannot take).
async fn check_limits(
    client: &reqwest::Client,
    root: &str,
    token: &str,
    file: &MediaFile,
) -> Result<(), PublishError> {
    let request = client
        .get(format!("{root}/api/v2/instance"))
        .bearer_auth(token);
    let response = http::send(request, CallKind::Reading, &[token]).await?;
    let limits: MediaLimits = serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.pointer("/configuration/media_attachments").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let name = file.file_name();
    if let Some(types) = &limits.supported_mime_types
        && !types.is_empty()
        && !types.iter().any(|t| t.eq_ignore_ascii_case(&file.mime))
    {
        return Err(PublishError::Permanent {
            message: format!(
                "this Mastodon instance does not take {} files ({name})",
                file.mime
            ),
        });
    }
    let limit = match file.kind {
        psn_domain::MediaKind::Image => limits.image_size_limit,
        psn_domain::MediaKind::Gif | psn_domain::MediaKind::Video => limits.video_size_limit,
    };
    if let Some(limit) = limit.filter(|&l| l > 0 && file.bytes > l) {
        return Err(PublishError::Permanent {
            message: format!(
                "{name} is {} bytes; this Mastodon instance takes at most {limit} bytes for a {}",
                file.bytes,
                file.kind.as_str()
            ),
        });
    }
    Ok(())
}

/// Uploads `file` to the instance at `root` (or resumes polling an accepted upload).
pub(crate) async fn upload(
    client: &reqwest::Client,
    root: &str,
    token: &str,
    file: &MediaFile,
    state: UploadState,
    ctx: &UploadContext<'_>,
) -> Result<MediaRef, PublishError> {
    if state.media_id.is_none() {
        check_limits(client, root, token, file).await?;
    }
    let api = MastodonMedia {
        client,
        root,
        token,
    };
    let policy = PollPolicy {
        default_interval: POLL_INTERVAL,
        ..PollPolicy::default()
    };
    let (media_id, _) = single::upload(&api, file, state, policy, ctx).await?;
    Ok(MediaRef { media_id })
}
