//! `psn reschedule | cancel | retry | edit`: changes to a post that has not been published.
//! The store applies the domain's state machines; a refused change exits 2 with the reason.

use chrono::Utc;
use psn_domain::{Language, MediaSummary, parse_schedule};
use psn_platforms::{ValidationRequest, validate};
use psn_store::{Post, PostEdit};

use super::compose::{MediaFile, print_reports};
use super::show::{parse_post_id, print_post};
use crate::cli::{EditArgs, Global, IdArg, RescheduleArgs};
use crate::error::{CliError, CliResult, invalid};
use crate::output::print_json;
use crate::workspace::{Workspace, actor};

fn print(global: &Global, ws: &Workspace, post: &Post, verb: &str) {
    if global.json {
        print_json(post);
    } else {
        println!("{verb}.");
        print_post(post, ws.tz);
    }
}

pub async fn reschedule(global: &Global, args: RescheduleArgs) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let at = parse_schedule(&args.time, Utc::now(), ws.tz).map_err(|e| invalid(e.to_string()))?;
    let hub = ws.open_hub(&global.hub).await?;
    enforce_x_tier_at(&ws, &hub, &id, at).await?;
    let post = hub.reschedule_post(&id, at, &actor(global)).await?;
    print(global, &ws, &post, "Rescheduled");
    Ok(())
}

/// The X API plan's daily caps at the post's new time: its X deliveries still to publish
/// count there (and no longer where they were).
async fn enforce_x_tier_at(
    ws: &Workspace,
    hub: &psn_store::Hub,
    id: &psn_domain::PostId,
    at: chrono::DateTime<Utc>,
) -> CliResult {
    let post = hub.post(id).await?;
    let mut accounts = Vec::new();
    let mut posts = Vec::new();
    for d in &post.deliveries {
        let pending = !matches!(
            d.status,
            psn_domain::DeliveryStatus::Published
                | psn_domain::DeliveryStatus::Cancelled
                | psn_domain::DeliveryStatus::Failed
        );
        if d.platform == psn_domain::Platform::X && pending {
            accounts.push(hub.account(&d.account).await?);
            posts.push((d.account.clone(), d.segments.len().max(1)));
        }
    }
    let accounts: Vec<&psn_store::Account> = accounts.iter().collect();
    super::account_health::enforce_x_tier(ws, hub, &accounts, &posts, at, Some(id)).await
}

pub async fn cancel(global: &Global, args: IdArg) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.cancel_post(&id, &actor(global)).await?;
    print(global, &ws, &post, "Cancelled");
    Ok(())
}

pub async fn retry(global: &Global, args: IdArg) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.retry_post(&id, &actor(global)).await?;
    print(global, &ws, &post, "Re-queued what failed");
    Ok(())
}

pub async fn edit(global: &Global, args: EditArgs) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let text = match (&args.text, &args.file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give the new text either as an argument or with --file, not both",
            ));
        }
        (Some(t), None) => t.clone(),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            super::compose::split_front_matter(&raw)
                .1
                .trim()
                .to_string()
        }
        (None, None) => {
            return Err(invalid(
                "give the new text (psn edit ID \"text\" or --file PATH)",
            ));
        }
    };
    let language = args
        .lang
        .as_deref()
        .map(|l| l.parse::<Language>().map_err(|e| invalid(e.to_string())))
        .transpose()?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.post(&id).await?;
    // Validate the new text exactly as the post was composed.
    let opt = &post.options;
    let media: Vec<MediaFile> = serde_json::from_value(post.media.clone()).unwrap_or_default();
    let summaries: Vec<MediaSummary> = media.into_iter().map(|m| m.summary).collect();
    let mut platforms = Vec::new();
    for d in &post.deliveries {
        if !platforms.contains(&d.platform) {
            platforms.push(d.platform);
        }
    }
    let reports: Vec<_> = platforms
        .iter()
        .map(|&platform| {
            validate(&ValidationRequest {
                platform,
                text: &text,
                thread: opt["thread"].as_bool().unwrap_or(false),
                numbering: opt["numbering"].as_bool().unwrap_or(true),
                media: &summaries,
                title: opt["title"].as_str(),
                board: opt["board"].as_str(),
                char_limit_override: None,
            })
        })
        .collect();
    if reports.iter().any(|r| !r.valid) {
        if global.json {
            print_json(&reports);
        } else {
            print_reports(&reports);
        }
        return Err(CliError::Reported(
            "the new text breaks a platform rule; nothing was changed".into(),
        ));
    }
    let edit = PostEdit {
        body: text,
        language: language.or_else(|| post.language.as_deref().and_then(|l| l.parse().ok())),
        segments: reports
            .into_iter()
            .map(|r| (r.platform, r.segments))
            .collect(),
    };
    let post = hub.edit_post(&id, &edit, &actor(global)).await?;
    print(global, &ws, &post, "Edited");
    Ok(())
}
