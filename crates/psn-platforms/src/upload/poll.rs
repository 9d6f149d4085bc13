//! Waiting for a platform to finish processing an upload, at the interval it suggests.

use std::time::Duration;

use crate::publish::PublishError;

use super::Sleeper;

/// Where the platform's processing of an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    /// Usable now.
    Ready,
    /// Still processing: ask again after `check_after` (the platform's suggestion, if any).
    Pending { check_after: Option<Duration> },
    /// The platform could not process it; its reason.
    Failed { message: String },
}

/// How long to wait when the platform suggests nothing, the most to wait between two polls,
/// and how many polls before giving up.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub default_interval: Duration,
    pub max_interval: Duration,
    pub max_polls: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            default_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(60),
            max_polls: 120,
        }
    }
}

/// Polls `status` until the upload is ready, sleeping the suggested interval between polls.
/// A failed processing is permanent (the file will not become usable by asking again); running
/// out of polls is transient (the engine retries later and polls again).
pub async fn until_ready<F, Fut>(
    first: Processing,
    policy: PollPolicy,
    sleeper: &dyn Sleeper,
    mut status: F,
) -> Result<(), PublishError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Processing, PublishError>>,
{
    let mut current = first;
    let mut polls = 0;
    loop {
        match current {
            Processing::Ready => return Ok(()),
            Processing::Failed { message } => {
                return Err(PublishError::Permanent {
                    message: format!("the platform could not process the media: {message}"),
                });
            }
            Processing::Pending { check_after } => {
                if polls >= policy.max_polls {
                    return Err(PublishError::Transient {
                        message: format!("the media was still processing after {polls} checks"),
                        retry_after: None,
                    });
                }
                let wait = check_after
                    .unwrap_or(policy.default_interval)
                    .min(policy.max_interval);
                sleeper.sleep(wait).await;
                polls += 1;
                current = status().await?;
            }
        }
    }
}
