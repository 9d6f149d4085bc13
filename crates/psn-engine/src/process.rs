//! Publishing one claimed delivery, step by step.
//!
//! Order of writes for every creating call: (1) an attempt row `sending` is committed; (2) the
//! platform is called; (3) the result and the step's progress are committed together. A crash
//! between (1) and (3) leaves an open attempt; the lease expires, recovery makes the delivery
//! `unconfirmed`, and the next claim reconciles that attempt against the platform before
//! anything is sent again. So a segment is never sent twice unless the platform proved it
//! does not have it.
//!
//! A post's media is uploaded before its first segment, each file as its own step
//! (`media:N`) with its own attempt row. The upload flow hands its state (session, offset,
//! segment index, part ETags) to the engine after every finished chunk, and the engine saves
//! it in the delivery's progress (`media:N:upload`); a worker that dies mid-upload leaves that
//! state behind and the next claim resumes the same upload from it. An upload is not a post:
//! an interrupted one is resumed, never reconciled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use psn_platforms::publish::sanitize::sanitize_error;
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Published, Publisher, SegmentRequest,
};
use psn_platforms::upload::{
    MediaFile, Phase, TokioSleeper, UploadContext, UploadProgress, UploadState,
};
use psn_store::{
    AttemptOutcome, BudgetUse, ClaimedDelivery, DeliveryOutcome, Secret, StepRecord, StoreError,
};
use tracing::Instrument;

use crate::HubContext;
use crate::backoff::{delay, unit_random};
use crate::refresh::{self, AfterUnauthorized};

/// Why processing stopped without an outcome to record.
enum Stop {
    /// Another worker recovered the delivery (our lease expired): write nothing more.
    LeaseLost,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Stop::LeaseLost,
            other => Stop::Store(other),
        }
    }
}

pub(crate) async fn run(ctx: &HubContext, delivery: ClaimedDelivery) {
    let span = tracing::info_span!(
        "delivery",
        hub = ctx.hub.name(),
        post = %delivery.post_id,
        delivery = %delivery.id,
        platform = %delivery.platform,
        attempt = delivery.attempt_count,
    );
    async {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(ctx.hub.clone(), delivery.id.clone(), ctx.config.worker_id.clone(), ctx.config.lease, lost.clone()));
        let result = publish(ctx, &delivery, &lost).await;
        heartbeat.abort();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(Stop::LeaseLost) => {
                tracing::warn!("lost the lease; recovery owns this delivery now");
                return;
            }
            Err(Stop::Store(e)) => {
                // The database is unreachable or failed: leave the claim to expire; recovery
                // will reconcile whatever was in flight.
                tracing::error!(error = %e, "store error while publishing; the lease will expire and recovery will resume");
                return;
            }
        };
        record_metrics(ctx, &outcome);
        match ctx.hub.finish_delivery(&delivery.id, &ctx.config.worker_id, &outcome, Utc::now()).await {
            Ok(status) => tracing::info!(status = %status, "delivery finished"),
            Err(StoreError::Conflict(reason)) => tracing::warn!(%reason, "could not record the outcome: lease lost"),
            Err(e) => tracing::error!(error = %e, "could not record the outcome; recovery will resume"),
        }
    }
    .instrument(span)
    .await;
}

fn record_metrics(ctx: &HubContext, outcome: &DeliveryOutcome) {
    let m = &ctx.metrics;
    match outcome {
        DeliveryOutcome::Published { .. } => m.add(&m.published, 1),
        DeliveryOutcome::RetryAt { error: Some(_), .. } => m.add(&m.retried, 1),
        DeliveryOutcome::RetryAt { error: None, .. } => {}
        DeliveryOutcome::Unconfirmed { .. } => m.add(&m.unconfirmed, 1),
        DeliveryOutcome::NeedsAttention { .. } => m.add(&m.needs_attention, 1),
        DeliveryOutcome::Failed { .. } => m.add(&m.failed, 1),
    }
}

/// Extends the lease every third of its length until aborted; flags `lost` if it cannot.
async fn heartbeat(
    hub: psn_store::Hub,
    id: psn_domain::DeliveryId,
    worker: String,
    lease: Duration,
    lost: Arc<AtomicBool>,
) {
    let every = (lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        match hub.heartbeat(&id, &worker, until).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
        }
    }
}

fn step_name(index: usize) -> String {
    format!("segment:{index}")
}

fn media_step(index: usize) -> String {
    format!("media:{index}")
}

/// Where an upload in progress keeps its resumable state.
fn upload_key(index: usize) -> String {
    format!("media:{index}:upload")
}

/// One step of a delivery.
#[derive(Debug, Clone, Copy)]
enum Step {
    Media(usize),
    Segment(usize),
}

impl Step {
    fn name(self) -> String {
        match self {
            Step::Media(i) => media_step(i),
            Step::Segment(i) => step_name(i),
        }
    }
}

/// Saves an upload's state in the delivery's progress after every finished step of the flow.
struct SaveUpload<'a> {
    hub: &'a psn_store::Hub,
    id: &'a psn_domain::DeliveryId,
    worker: &'a str,
    key: String,
    lost: &'a AtomicBool,
}

#[async_trait::async_trait]
impl UploadProgress for SaveUpload<'_> {
    async fn save(&self, state: &UploadState) -> Result<(), PublishError> {
        let record = StepRecord {
            external_id: state.media_id.clone().unwrap_or_default(),
            url: None,
            state: serde_json::to_value(state).ok(),
        };
        match self
            .hub
            .save_step_progress(self.id, self.worker, &self.key, &record, Utc::now())
            .await
        {
            Ok(()) => {
                tracing::debug!(step = %self.key, offset = state.offset, phase = ?state.phase, "upload progress saved");
                Ok(())
            }
            Err(StoreError::Conflict(reason)) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(PublishError::Transient {
                    message: format!("upload stopped: {reason}"),
                    retry_after: None,
                })
            }
            Err(e) => Err(PublishError::Transient {
                message: format!("could not save the upload's progress: {e}"),
                retry_after: None,
            }),
        }
    }
}

fn step_index(step: &str) -> Option<usize> {
    step.strip_prefix("segment:")?.parse().ok()
}

/// The stable idempotency key of one step of one delivery: the same on every retry.
fn idempotency_key(d: &ClaimedDelivery, step: &str) -> String {
    format!("psn:{}:{}:{step}", d.post_id, d.account_id)
}

fn segment_request<'a>(
    d: &'a ClaimedDelivery,
    progress: &'a BTreeMap<String, StepRecord>,
    index: usize,
    key: &'a str,
    media_ids: &'a [String],
) -> SegmentRequest<'a> {
    SegmentRequest {
        text: &d.segments[index],
        index,
        count: d.segments.len(),
        reply_to: if index == 0 {
            None
        } else {
            progress
                .get(&step_name(index - 1))
                .map(|r| r.external_id.as_str())
        },
        thread_root: if index == 0 {
            None
        } else {
            progress.get(&step_name(0)).map(|r| r.external_id.as_str())
        },
        idempotency_key: key,
        language: d.language.as_deref(),
        media_ids: if index == 0 { media_ids } else { &[] },
    }
}

fn chrono_after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::hours(1))
}

async fn publish(
    ctx: &HubContext,
    d: &ClaimedDelivery,
    lost: &AtomicBool,
) -> Result<DeliveryOutcome, Stop> {
    let hub = &ctx.hub;
    let worker = ctx.config.worker_id.as_str();
    let Some(publisher) = ctx.registry.get(d.platform) else {
        return Ok(DeliveryOutcome::Failed {
            error: format!("psn has no connector for {} in this version", d.platform),
        });
    };
    let publisher: &dyn Publisher = publisher.as_ref();
    let caps = publisher.capabilities();
    let account = hub.account(&d.account_id).await?;
    let tokens = match hub.account_tokens(&d.account_id, &ctx.cipher).await {
        Ok(t) => t,
        Err(e @ StoreError::Crypto(_)) => {
            return Ok(DeliveryOutcome::Failed {
                error: e.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut refresh_token = tokens.refresh_token.clone();
    let mut secret = tokens.access_token.clone();
    let mut actx = AccountContext {
        external_id: account.external_id.clone(),
        handle: account.handle.clone(),
        service_url: account.service_url.clone(),
        access_token: AccessToken(secret.expose().to_string()),
    };
    let clean = |message: &str, secret: &Secret| sanitize_error(message, &[secret.expose()]);
    let deadline = d
        .deadline_at
        .unwrap_or_else(|| chrono_after(d.run_at, ctx.config.deadline));
    let breaker_scopes = [
        format!("platform:{}", d.platform),
        format!("account:{}", d.account_id),
    ];
    let mut progress = d.progress.clone();

    // Recovery: settle every attempt whose outcome was never recorded before sending anything.
    for open in hub.open_attempts(&d.id).await? {
        if progress.contains_key(&open.step) {
            hub.finish_attempt(
                &d.id,
                open.id,
                AttemptOutcome::Reconciled,
                None,
                Some("already recorded"),
                None,
                Utc::now(),
            )
            .await?;
            continue;
        }
        if open.step.starts_with("media:") {
            // An interrupted upload creates no post: resume it from its saved state.
            hub.finish_attempt(
                &d.id,
                open.id,
                AttemptOutcome::NotFound,
                None,
                Some("resuming the upload from its saved state"),
                None,
                Utc::now(),
            )
            .await?;
            continue;
        }
        let Some(index) = step_index(&open.step).filter(|i| *i < d.segments.len()) else {
            hub.finish_attempt(
                &d.id,
                open.id,
                AttemptOutcome::Failed,
                Some("internal"),
                Some("unknown step"),
                None,
                Utc::now(),
            )
            .await?;
            continue;
        };
        let media_ids = uploaded_media_ids(&progress);
        let request = segment_request(d, &progress, index, &open.idempotency_key, &media_ids);
        match publisher.reconcile(&actx, &request).await {
            Ok(Some(found)) => {
                tracing::info!(step = %open.step, external_id = %found.external_id, "reconciled: the platform has it");
                let record = StepRecord {
                    external_id: found.external_id,
                    url: found.url,
                    state: None,
                };
                hub.finish_attempt(
                    &d.id,
                    open.id,
                    AttemptOutcome::Reconciled,
                    None,
                    None,
                    Some((&open.step, &record)),
                    Utc::now(),
                )
                .await?;
                progress.insert(open.step.clone(), record);
                ctx.metrics.add(&ctx.metrics.reconciled_found, 1);
            }
            Ok(None) => {
                tracing::info!(step = %open.step, "reconciled: the platform does not have it; safe to send");
                hub.finish_attempt(
                    &d.id,
                    open.id,
                    AttemptOutcome::NotFound,
                    None,
                    None,
                    None,
                    Utc::now(),
                )
                .await?;
                ctx.metrics.add(&ctx.metrics.reconciled_not_found, 1);
            }
            Err(PublishError::NotSupported { .. }) if caps.idempotency_keys => {
                // The platform deduplicates by key: resending with the same key is safe.
                hub.finish_attempt(
                    &d.id,
                    open.id,
                    AttemptOutcome::NotFound,
                    None,
                    Some("resending with the same idempotency key"),
                    None,
                    Utc::now(),
                )
                .await?;
            }
            Err(PublishError::NotSupported { .. }) => {
                return Ok(DeliveryOutcome::NeedsAttention {
                    error: format!(
                        "{} offers no way to check whether segment {} was published",
                        d.platform.display_name(),
                        index + 1
                    ),
                });
            }
            Err(e) if Utc::now() > deadline => {
                // Past the deadline and still unable to check: stop holding the account and
                // hand it to a human rather than risk a second post.
                return Ok(DeliveryOutcome::NeedsAttention {
                    error: format!(
                        "could not check {} whether segment {} was published before the deadline: {}",
                        d.platform.display_name(),
                        index + 1,
                        clean(&e.to_string(), &secret)
                    ),
                });
            }
            Err(e) => {
                let wait = delay(
                    d.attempt_count as u32,
                    ctx.config.retry_base,
                    ctx.config.retry_cap,
                    None,
                    unit_random(),
                )
                .max(ctx.config.reconcile_delay);
                return Ok(DeliveryOutcome::Unconfirmed {
                    run_at: chrono_after(Utc::now(), wait),
                    error: format!(
                        "could not check the platform yet: {}",
                        clean(&e.to_string(), &secret)
                    ),
                });
            }
        }
    }

    // Media goes with the first segment: upload it first, unless that segment is out.
    let media = if progress.contains_key(&step_name(0)) {
        Vec::new()
    } else {
        match MediaFile::from_post_media(&d.media) {
            Ok(media) => media,
            Err(e) => {
                return Ok(DeliveryOutcome::Failed {
                    error: format!("{e}; fix the post's media, then `psn retry {}`", d.post_id),
                });
            }
        }
    };
    let steps: Vec<Step> = (0..media.len())
        .map(Step::Media)
        .chain((0..d.segments.len()).map(Step::Segment))
        .collect();

    let mut refreshed = false;
    let mut position = 0;
    while position < steps.len() {
        let current = steps[position];
        let step = current.name();
        if progress.contains_key(&step) {
            position += 1;
            continue;
        }
        if lost.load(Ordering::SeqCst) {
            return Err(Stop::LeaseLost);
        }
        if *ctx.shutdown.borrow() {
            // Stopping: nothing is in flight between steps, so release it to be resumed.
            return Ok(DeliveryOutcome::RetryAt {
                run_at: Utc::now(),
                error: None,
            });
        }
        let budget = ctx.config.publish_budget.unwrap_or(caps.publish_budget);
        // Uploads are not posts: they do not spend the publishing budget.
        let budget = budget.filter(|_| matches!(current, Step::Segment(_)));
        if let Some((calls, window)) = budget
            && let Some(until) = hub
                .consume_budget(&d.account_id, BudgetUse::Publish, calls, window, Utc::now())
                .await?
        {
            // Not a failure: the account's publishing budget is spent until `until`.
            tracing::info!(%until, "publishing budget spent; waiting");
            return Ok(DeliveryOutcome::RetryAt {
                run_at: until,
                error: Some(format!(
                    "waiting for the account's publishing budget ({calls} per {}s)",
                    window.as_secs()
                )),
            });
        }
        let key = idempotency_key(d, &step);
        let attempt = hub
            .begin_attempt(&d.id, worker, &step, &key, Utc::now())
            .await?;
        let result = match current {
            Step::Media(i) => {
                let result = upload(ctx, d, publisher, &actx, &media[i], i, &progress, lost).await;
                if lost.load(Ordering::SeqCst) {
                    return Err(Stop::LeaseLost);
                }
                result
            }
            Step::Segment(index) => {
                let media_ids = uploaded_media_ids(&progress);
                let request = segment_request(d, &progress, index, &key, &media_ids);
                publisher.publish_segment(&actx, &request).await
            }
        };
        let now = Utc::now();
        match result {
            Ok(published) => {
                let record = StepRecord {
                    external_id: published.external_id,
                    url: published.url,
                    state: None,
                };
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Succeeded,
                    None,
                    None,
                    Some((&step, &record)),
                    now,
                )
                .await?;
                progress.insert(step, record);
                match current {
                    Step::Segment(_) => ctx.metrics.add(&ctx.metrics.segments_published, 1),
                    Step::Media(i) => tracing::info!(media = i + 1, "media uploaded"),
                }
                position += 1;
            }
            Err(PublishError::Ambiguous { message }) => {
                let message = clean(&message, &secret);
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Unknown,
                    Some("ambiguous"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                return Ok(DeliveryOutcome::Unconfirmed {
                    run_at: chrono_after(now, ctx.config.reconcile_delay),
                    error: format!(
                        "outcome unknown, will check the platform before retrying: {message}"
                    ),
                });
            }
            Err(PublishError::Transient {
                message,
                retry_after,
            }) => {
                let message = clean(&message, &secret);
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Failed,
                    Some("transient"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                hub.record_breaker(
                    &breaker_scopes,
                    false,
                    ctx.config.breaker_threshold,
                    ctx.config.breaker_open,
                    now,
                )
                .await?;
                return Ok(retry_or_fail(ctx, d, deadline, now, retry_after, message));
            }
            Err(PublishError::RateLimited { message, reset_at }) => {
                let message = clean(&message, &secret);
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Failed,
                    Some("rate_limited"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                let until = reset_at
                    .filter(|t| *t > now)
                    .unwrap_or_else(|| chrono_after(now, Duration::from_secs(60)));
                hub.block_budget(&d.account_id, until, now).await?;
                ctx.metrics.add(&ctx.metrics.rate_limited, 1);
                let wait = (until - now).to_std().unwrap_or_default();
                return Ok(retry_or_fail(
                    ctx,
                    d,
                    deadline,
                    now,
                    Some(wait),
                    format!("rate limited: {message}"),
                ));
            }
            Err(PublishError::Auth { message }) => {
                let message = clean(&message, &secret);
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Failed,
                    Some("auth"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                // The platform's token keeper when it has one (LinkedIn), else its publisher.
                let refresher: &dyn Publisher = ctx
                    .registry
                    .keeper(d.platform)
                    .map_or(publisher, |k| k.as_ref());
                let can_refresh = !refreshed
                    && refresher.capabilities().refresh
                    && refresh_token.as_ref().is_some_and(|t| !t.is_empty());
                if can_refresh {
                    refreshed = true;
                    match refresh::after_unauthorized(ctx, &d.account_id, refresher, &actx, &secret)
                        .await?
                    {
                        AfterUnauthorized::Fresh { access, refresh } => {
                            if let Some(r) = refresh.filter(|r| !r.is_empty()) {
                                refresh_token = Some(r);
                            }
                            actx.access_token = AccessToken(access.expose().to_string());
                            secret = access;
                            tracing::info!(
                                "refreshed the access token after a 401; retrying the step"
                            );
                            continue;
                        }
                        AfterUnauthorized::Busy => {
                            // Another worker is spending the refresh token: take its result.
                            return Ok(DeliveryOutcome::RetryAt {
                                run_at: chrono_after(now, ctx.config.reconcile_delay),
                                error: Some(
                                    "waiting for the account's token to be refreshed".to_string(),
                                ),
                            });
                        }
                        AfterUnauthorized::Transient(reason) => {
                            return Ok(retry_or_fail(ctx, d, deadline, now, None, reason));
                        }
                        AfterUnauthorized::Dead(reason) => {
                            tracing::warn!(%reason, "the account needs re-authorization");
                        }
                    }
                } else {
                    hub.mark_needs_reauth(&d.account_id, &message, now).await?;
                }
                // The claim skips accounts that need re-authorization: once the account is
                // reconnected, this delivery publishes (if still before its deadline).
                return Ok(DeliveryOutcome::RetryAt {
                    run_at: now,
                    error: Some(format!("the account needs re-authorization: {message}")),
                });
            }
            Err(PublishError::Permanent { message }) => {
                let message = clean(&message, &secret);
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Failed,
                    Some("permanent"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                hub.record_breaker(
                    &breaker_scopes,
                    true,
                    ctx.config.breaker_threshold,
                    ctx.config.breaker_open,
                    now,
                )
                .await?;
                return Ok(DeliveryOutcome::Failed { error: message });
            }
            Err(e @ PublishError::NotSupported { .. }) => {
                let message = e.to_string();
                hub.finish_attempt(
                    &d.id,
                    attempt,
                    AttemptOutcome::Failed,
                    Some("unsupported"),
                    Some(&message),
                    None,
                    now,
                )
                .await?;
                return Ok(DeliveryOutcome::Failed { error: message });
            }
        }
    }
    hub.record_breaker(
        &breaker_scopes,
        true,
        ctx.config.breaker_threshold,
        ctx.config.breaker_open,
        Utc::now(),
    )
    .await?;
    let first = progress.get(&step_name(0)).cloned().unwrap_or_default();
    Ok(DeliveryOutcome::Published {
        external_id: first.external_id,
        url: first.url,
    })
}

/// The media ids of the uploads finished so far, in order.
fn uploaded_media_ids(progress: &BTreeMap<String, StepRecord>) -> Vec<String> {
    (0..)
        .map_while(|i| progress.get(&media_step(i)))
        .map(|r| r.external_id.clone())
        .collect()
}

/// Uploads (or resumes) media file `index`, saving its state after every finished step. An
/// upload creates no post, so an unknown outcome is only a reason to resume: it is reported
/// as transient.
#[allow(clippy::too_many_arguments)]
async fn upload(
    ctx: &HubContext,
    d: &ClaimedDelivery,
    publisher: &dyn Publisher,
    actx: &AccountContext,
    file: &MediaFile,
    index: usize,
    progress: &BTreeMap<String, StepRecord>,
    lost: &AtomicBool,
) -> Result<Published, PublishError> {
    let saved: UploadState = progress
        .get(&upload_key(index))
        .and_then(|r| r.state.clone())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    tracing::info!(
        media = index + 1,
        file = %file.path.display(),
        bytes = file.bytes,
        resumed = saved.phase != Phase::New,
        offset = saved.offset,
        "uploading media"
    );
    let sink = SaveUpload {
        hub: &ctx.hub,
        id: &d.id,
        worker: ctx.config.worker_id.as_str(),
        key: upload_key(index),
        lost,
    };
    let upload_ctx = UploadContext {
        progress: &sink,
        sleeper: &TokioSleeper,
    };
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match publisher.upload_media(actx, file, saved, &upload_ctx).await {
        Ok(media) => Ok(Published {
            external_id: media.media_id,
            url: None,
        }),
        Err(PublishError::Ambiguous { message }) => Err(PublishError::Transient {
            message: format!("uploading {name}: {message}"),
            retry_after: None,
        }),
        Err(PublishError::Permanent { message }) => Err(PublishError::Permanent {
            message: format!("uploading {name}: {message}"),
        }),
        Err(e) => Err(e),
    }
}

fn retry_or_fail(
    ctx: &HubContext,
    d: &ClaimedDelivery,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
    floor: Option<Duration>,
    message: String,
) -> DeliveryOutcome {
    let wait = delay(
        d.attempt_count.max(1) as u32,
        ctx.config.retry_base,
        ctx.config.retry_cap,
        floor,
        unit_random(),
    );
    let run_at = chrono_after(now, wait);
    if run_at > deadline {
        DeliveryOutcome::Failed {
            error: format!(
                "gave up after {} attempt(s), past the deadline: {message}",
                d.attempt_count
            ),
        }
    } else {
        DeliveryOutcome::RetryAt {
            run_at,
            error: Some(message),
        }
    }
}
