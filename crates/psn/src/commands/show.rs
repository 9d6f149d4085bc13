//! `psn show ID`: one post, its deliveries and every delivery's attempt history.

use chrono_tz::Tz;
use psn_domain::PostId;
use psn_store::{Post, Review};

use crate::cli::{Global, IdArg};
use crate::error::{CliResult, invalid};
use crate::output::{local, print_json};
use crate::workspace::Workspace;

pub fn parse_post_id(raw: &str) -> CliResult<PostId> {
    raw.parse()
        .map_err(|e: psn_domain::ids::BadId| invalid(e.to_string()))
}

pub async fn run(global: &Global, args: IdArg) -> CliResult {
    let id = parse_post_id(&args.id)?;
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let post = hub.post_with_attempts(&id).await?;
    // Company hubs: the approval decisions (the author sees why a post was rejected).
    let reviews = if hub.is_company() {
        hub.post_reviews(&id).await?
    } else {
        Vec::new()
    };
    if global.json {
        print_json(&ShowView {
            post: &post,
            reviews: &reviews,
        });
    } else {
        print_post(&post, ws.tz);
        for r in &reviews {
            println!(
                "  review:   {} by {} at {}{}",
                r.decision,
                r.decided_by,
                local(r.decided_at, ws.tz),
                r.reason
                    .as_deref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ShowView<'a> {
    #[serde(flatten)]
    post: &'a Post,
    #[serde(skip_serializing_if = "<[Review]>::is_empty")]
    reviews: &'a [Review],
}

/// The human view of a post.
pub fn print_post(post: &Post, tz: Tz) {
    println!("Post {}  [{}]", post.id, post.status);
    match post.run_at {
        Some(t) => println!("  when:     {} ({})", local(t, tz), tz.name()),
        None => println!("  when:     not scheduled (draft)"),
    }
    if let Some(lang) = &post.language {
        println!("  language: {lang}");
    }
    println!("  by:       {}", post.created_by);
    for line in post.body.lines().take(6) {
        println!("  │ {line}");
    }
    if post.body.lines().count() > 6 {
        println!("  │ …");
    }
    for d in &post.deliveries {
        println!(
            "  → {:<10} {:<24} {:<16} {}{}",
            d.platform.as_str(),
            d.handle,
            d.status.as_str(),
            local(d.run_at, tz),
            if d.segments.len() > 1 {
                format!("  ({} segments)", d.segments.len())
            } else {
                String::new()
            }
        );
        if d.published.len() > 1 {
            for seg in &d.published {
                println!(
                    "      {}/{}: {}{}",
                    seg.index + 1,
                    d.segments.len(),
                    seg.external_id,
                    seg.url
                        .as_deref()
                        .map(|u| format!("  {u}"))
                        .unwrap_or_default()
                );
            }
        } else if let Some(url) = &d.url {
            println!("      url: {url}");
            if let Some(id) = &d.external_id {
                println!("      id:  {id}");
            }
        } else if let Some(id) = &d.external_id {
            println!("      id: {id}");
        }
        if let Some(err) = &d.last_error {
            println!("      last error: {err}");
        }
        for a in &d.attempts {
            println!(
                "      {} {:<14} {:<10} {}",
                local(a.started_at, tz),
                a.step,
                a.status,
                a.error.as_deref().unwrap_or("")
            );
        }
    }
}
