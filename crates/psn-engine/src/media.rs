//! The media lifecycle (seed 004; seed 000, pitfall 14): library files are transient. Each
//! round deletes the files of media whose posts were all published (or cancelled) more than
//! `media_keep_published` ago, and files no post uses `media_keep_unattached` after they were
//! added; and it reports, once each as an alert, platform containers that a delivery created
//! but never published. The store decides what is due; this module deletes the files.

use std::path::Path;

use chrono::{DateTime, Utc};
use psn_store::{Hub, MediaCleanup, OrphanContainer, StoreError};
use serde::Serialize;

use crate::EngineConfig;

/// What one round did.
#[derive(Debug, Default, Serialize)]
pub struct LifecycleReport {
    pub deleted: Vec<MediaCleanup>,
    pub orphan_containers: Vec<OrphanContainer>,
}

/// One lifecycle round on `hub` at `now`. Only files named like library files
/// (`<sha256>.<ext>`) are ever deleted.
pub async fn run_round(
    hub: &Hub,
    config: &EngineConfig,
    now: DateTime<Utc>,
) -> Result<LifecycleReport, StoreError> {
    let mut report = LifecycleReport::default();
    let due = hub
        .media_due_for_cleanup(
            now,
            config.media_keep_published,
            config.media_keep_unattached,
        )
        .await?;
    for item in due {
        let path = Path::new(&item.path);
        let named_like_library = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(psn_media::library::is_library_name);
        if !named_like_library {
            tracing::warn!(hub = hub.name(), path = %item.path, "not a library file; not deleting it");
            continue;
        }
        match psn_media::library::remove_file(path) {
            Ok(_) => {
                hub.mark_media_deleted(&item.sha256, now).await?;
                tracing::info!(hub = hub.name(), sha256 = %item.sha256, reason = item.reason, "deleted media file");
                report.deleted.push(item);
            }
            Err(e) => {
                tracing::warn!(hub = hub.name(), error = %e, "cannot delete a media file; will try again");
            }
        }
    }
    report.orphan_containers = hub.report_orphan_containers(now).await?;
    for o in &report.orphan_containers {
        tracing::warn!(hub = hub.name(), delivery = %o.delivery_id, platform = %o.platform, "platform container created but never published");
    }
    Ok(report)
}
