//! `psn post` and `psn validate`. A post is checked against every target platform's rules
//! and every target must resolve to a connected account before anything is written.

use chrono::Utc;
use psn_domain::{PostStatus, parse_schedule};
use psn_store::{Account, AccountStatus, CreateOutcome, NewDelivery, NewPost, Post};
use serde::Serialize;

use psn_media::Library;

use super::compose::{Composed, Target, check, compose, media_error, platforms_of, print_reports};
use super::show::print_post;
use crate::cli::{Global, PostArgs, ValidateArgs};
use crate::error::{CliError, CliResult, invalid};
use crate::output::print_json;
use crate::workspace::{Workspace, actor};

pub fn validate(global: &Global, args: ValidateArgs) -> CliResult {
    let composed = compose(&args.compose, true)?;
    let reports = check(&composed, &platforms_of(&composed.targets));
    if global.json {
        print_json(&reports);
    } else {
        print_reports(&reports);
    }
    let broken = reports.iter().filter(|r| !r.valid).count();
    if broken > 0 {
        return Err(CliError::Reported(format!(
            "{broken} platform(s) would refuse this post"
        )));
    }
    Ok(())
}

/// What `--dry-run` prints.
#[derive(Debug, Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    status: PostStatus,
    run_at: Option<chrono::DateTime<Utc>>,
    deliveries: Vec<DryDelivery<'a>>,
}

#[derive(Debug, Serialize)]
struct DryDelivery<'a> {
    platform: psn_domain::Platform,
    account: &'a psn_domain::AccountId,
    handle: &'a str,
    segments: &'a [String],
}

pub async fn run(global: &Global, args: PostArgs) -> CliResult {
    let ws = Workspace::locate(global)?;
    let mut composed = compose(&args.compose, true)?;
    let now = Utc::now();
    let at_input = args.at.clone().or_else(|| composed.at.clone());
    let (phase, run_at) = match (args.now, at_input, args.draft) {
        (true, _, true) => return Err(invalid("--now and --draft contradict each other")),
        (true, _, false) => (PostStatus::Scheduled, Some(now)),
        (false, Some(at), draft) => {
            let t = parse_schedule(&at, now, ws.tz).map_err(|e| invalid(e.to_string()))?;
            (
                if draft {
                    PostStatus::Draft
                } else {
                    PostStatus::Scheduled
                },
                Some(t),
            )
        }
        (false, None, true) => (PostStatus::Draft, None),
        (false, None, false) => {
            return Err(invalid(
                "say when: --at TIME (\"2026-12-01 09:30\", +2h, RFC 3339), --now, or --draft",
            ));
        }
    };
    let reports = check(&composed, &platforms_of(&composed.targets));
    if reports.iter().any(|r| !r.valid) {
        if global.json {
            print_json(&reports);
        } else {
            print_reports(&reports);
        }
        let broken = reports.iter().filter(|r| !r.valid).count();
        return Err(CliError::Reported(format!(
            "{broken} platform(s) would refuse this post; nothing was queued"
        )));
    }
    let hub = ws.open_hub(&global.hub).await?;
    let accounts = hub.accounts().await?;
    let mut resolved = Vec::new();
    for target in &composed.targets {
        let account = resolve(&accounts, target)?;
        super::account_health::enforce_platform_status(account)?;
        if !resolved
            .iter()
            .any(|(a, _): &(&Account, _)| a.id == account.id)
        {
            let report = reports
                .iter()
                .find(|r| r.platform == target.platform)
                .expect("checked");
            resolved.push((account, report.segments.clone()));
        }
    }
    // The X API plan's daily caps, counting what is already queued (drafts wait).
    if let (PostStatus::Scheduled, Some(at)) = (phase, run_at) {
        let x_posts: Vec<(psn_domain::AccountId, usize)> = resolved
            .iter()
            .filter(|(a, _)| a.platform == psn_domain::Platform::X)
            .map(|(a, segments)| (a.id.clone(), segments.len().max(1)))
            .collect();
        let x_accounts: Vec<&Account> = resolved.iter().map(|(a, _)| *a).collect();
        super::account_health::enforce_x_tier(&ws, &hub, &x_accounts, &x_posts, at, None).await?;
    }
    if args.dry_run {
        let dry = DryRun {
            dry_run: true,
            status: phase,
            run_at,
            deliveries: resolved
                .iter()
                .map(|(a, segs)| DryDelivery {
                    platform: a.platform,
                    account: &a.id,
                    handle: &a.handle,
                    segments: segs,
                })
                .collect(),
        };
        if global.json {
            print_json(&dry);
        } else {
            println!("Dry run: nothing was written. psn would create a {phase} post:");
            for d in &dry.deliveries {
                println!(
                    "  {} {} — {} segment(s)",
                    d.platform,
                    d.handle,
                    d.segments.len()
                );
            }
        }
        return Ok(());
    }
    // Valid and resolved: store the cleaned files in the library and record them.
    let library = Library::new(ws.root.join("content/media"));
    let created_by = actor(global);
    let mut shas = Vec::new();
    for (file, prepared) in composed.media.iter_mut().zip(&composed.prepared) {
        let stored = library.store(prepared).map_err(media_error)?;
        hub.record_media(&super::media::new_media(&stored, &created_by), Utc::now())
            .await?;
        file.original = Some(file.path.clone());
        file.path = stored.path.clone();
        file.sha256 = Some(stored.sha256.clone());
        shas.push(stored.sha256);
    }
    let new = NewPost {
        created_by: created_by.clone(),
        idempotency_key: args.idempotency_key.clone(),
        phase,
        body: composed.text.clone(),
        language: composed.language.clone(),
        media: serde_json::to_value(&composed.media).map_err(anyhow::Error::from)?,
        options: options_json(&composed),
        run_at,
        deliveries: resolved
            .into_iter()
            .map(|(a, segments)| NewDelivery {
                account_id: a.id.clone(),
                platform: a.platform,
                segments,
            })
            .collect(),
    };
    let outcome = hub.create_post(&new).await?;
    let existed = matches!(outcome, CreateOutcome::Existing(_));
    let post: Post = outcome.into_post();
    if !shas.is_empty() {
        hub.attach_media(post.id.as_str(), &shas, &created_by)
            .await?;
    }
    if global.json {
        print_json(&post);
    } else {
        if existed {
            println!("A post with this idempotency key already exists; nothing new was created.");
        }
        print_post(&post, ws.tz);
        if post.status == PostStatus::PendingApproval {
            println!(
                "It awaits approval: an editor or admin runs `psn --hub {} approve {}`.",
                hub.name(),
                post.id
            );
        }
    }
    Ok(())
}

/// The composer options stored with a post, so `edit` can validate the new text the same way.
pub fn options_json(c: &Composed) -> serde_json::Value {
    serde_json::json!({
        "thread": c.thread,
        "numbering": c.numbering,
        "title": c.title,
        "board": c.board,
    })
}

/// Finds the connected account a target means, or says how to connect one.
fn resolve<'a>(accounts: &'a [Account], target: &Target) -> CliResult<&'a Account> {
    let platform = target.platform;
    let candidates: Vec<&Account> = accounts.iter().filter(|a| a.platform == platform).collect();
    let usable: Vec<&Account> = candidates
        .iter()
        .copied()
        .filter(|a| a.status == AccountStatus::Active)
        .collect();
    match &target.account {
        Some(wanted) => {
            let found = candidates.iter().copied().find(|a| {
                a.id.as_str() == wanted
                    || a.handle.eq_ignore_ascii_case(wanted)
                    || a.external_id == *wanted
            });
            match found {
                Some(a) if a.status == AccountStatus::Active => Ok(a),
                Some(a) => Err(invalid(format!(
                    "the {} account {} is {}; reconnect it with `psn accounts connect {platform}`",
                    platform.display_name(),
                    a.handle,
                    a.status.as_str()
                ))),
                None => Err(invalid(format!(
                    "no {} account '{wanted}' is connected (connected: {}); connect it with `psn accounts connect {platform}`",
                    platform.display_name(),
                    if candidates.is_empty() {
                        "none".to_string()
                    } else {
                        candidates
                            .iter()
                            .map(|a| a.handle.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))),
            }
        }
        None => match usable.as_slice() {
            [one] => Ok(one),
            [] => Err(invalid(format!(
                "no {} account is connected; connect one with `psn accounts connect {platform}`",
                platform.display_name()
            ))),
            many => Err(invalid(format!(
                "{} {} accounts are connected; say which with --to {platform}:HANDLE ({})",
                many.len(),
                platform.display_name(),
                many.iter()
                    .map(|a| a.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}
