//! `psn approvals`, `psn approve ID`, `psn reject ID --reason TEXT`: the approval workflow of
//! company hubs. What each member may see and decide is enforced by the hub's database.

use psn_domain::PostStatus;
use psn_store::PostFilter;

use crate::cli::{Global, IdArg, RejectArgs};
use crate::commands::show::{parse_post_id, print_post};
use crate::error::CliResult;
use crate::output::{excerpt, local, print_json, table};
use crate::workspace::Workspace;

pub async fn list(global: &Global) -> CliResult {
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    // Refused with a clear message on hubs without a team.
    hub.team_role(&ws.actor).await?;
    let posts = hub
        .posts(&PostFilter {
            statuses: vec![PostStatus::PendingApproval],
            ..PostFilter::default()
        })
        .await?;
    if global.json {
        print_json(&posts);
    } else if posts.is_empty() {
        println!("Nothing awaits approval on hub '{}'.", hub.name());
    } else {
        let mut t = table(&["ID", "BY", "WHEN", "TO", "TEXT"]);
        for p in &posts {
            t.add_row(vec![
                p.id.to_string(),
                p.created_by.clone(),
                p.run_at.map(|at| local(at, ws.tz)).unwrap_or_default(),
                p.deliveries
                    .iter()
                    .map(|d| d.platform.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                excerpt(&p.body, 48),
            ]);
        }
        println!("{t}");
        println!("Approve with `psn approve ID`, reject with `psn reject ID --reason \"…\"`.");
    }
    hub.close().await;
    Ok(())
}

pub async fn approve(global: &Global, args: IdArg) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.approve_post(&id, &ws.actor).await?;
    if global.json {
        print_json(&post);
    } else {
        println!("Approved by {}: the worker publishes it on time.", ws.actor);
        print_post(&post, ws.tz);
    }
    hub.close().await;
    Ok(())
}

pub async fn reject(global: &Global, args: RejectArgs) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.reject_post(&id, &ws.actor, &args.reason).await?;
    if global.json {
        print_json(&post);
    } else {
        println!(
            "Rejected by {}; {} sees the reason in `psn show {id}`.",
            ws.actor, post.created_by
        );
    }
    hub.close().await;
    Ok(())
}

pub async fn submit(global: &Global, args: IdArg) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.submit_post(&id, &ws.actor).await?;
    if global.json {
        print_json(&post);
    } else {
        println!("Submitted for approval: an editor or admin runs `psn approve {id}`.");
        print_post(&post, ws.tz);
    }
    hub.close().await;
    Ok(())
}
