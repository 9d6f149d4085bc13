//! `psn queue` (by status) and `psn calendar` (by day, in the workspace time zone).

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use psn_domain::PostStatus;
use psn_store::{Post, PostFilter};
use serde::Serialize;

use crate::cli::{CalendarArgs, Global, QueueArgs};
use crate::error::{CliResult, invalid};
use crate::output::{excerpt, local, print_json, table};
use crate::workspace::Workspace;

const DEFAULT_QUEUE: &[PostStatus] = &[
    PostStatus::PendingApproval,
    PostStatus::Scheduled,
    PostStatus::Publishing,
    PostStatus::NeedsAttention,
];

fn platforms(post: &Post) -> String {
    post.deliveries
        .iter()
        .map(|d| d.platform.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn queue(global: &Global, args: QueueArgs) -> CliResult {
    let statuses = if args.all {
        Vec::new()
    } else if args.status.is_empty() {
        DEFAULT_QUEUE.to_vec()
    } else {
        args.status
            .iter()
            .map(|s| {
                s.trim().parse::<PostStatus>().map_err(|_| {
                    invalid(format!(
                        "unknown status '{s}' (one of: {})",
                        PostStatus::ALL
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect::<CliResult<Vec<_>>>()?
    };
    if args.limit == 0 {
        return Err(invalid("--limit must be at least 1"));
    }
    let ws = Workspace::locate(global)?;
    let hub = ws.open_hub(&global.hub).await?;
    let filter = PostFilter {
        statuses,
        from: None,
        to: args.days.map(|d| Utc::now() + Duration::days(i64::from(d))),
        limit: Some(i64::from(args.limit)),
    };
    let posts = hub.posts(&filter).await?;
    if global.json {
        print_json(&posts);
        return Ok(());
    }
    let alerts = hub.open_alerts().await?;
    if !alerts.is_empty() {
        println!("Needs your attention:");
        for a in &alerts {
            println!("  [{}] {}", a.priority, a.message);
        }
        println!();
    }
    if posts.is_empty() {
        println!("Nothing queued. Create a post with `psn post \"…\" --to x --at +1h`.");
        return Ok(());
    }
    let mut t = table(&["ID", "STATUS", "WHEN", "PLATFORMS", "TEXT"]);
    for p in &posts {
        t.add_row(vec![
            p.id.to_string(),
            p.status.as_str().to_string(),
            p.run_at
                .map(|t| local(t, ws.tz))
                .unwrap_or_else(|| "—".into()),
            platforms(p),
            excerpt(&p.body, 48),
        ]);
    }
    println!("{t}");
    if posts.len() as u32 == args.limit {
        println!(
            "(showing the first {}; use --limit or --days to see more)",
            args.limit
        );
    }
    Ok(())
}

/// One calendar day.
#[derive(Debug, Serialize)]
struct Day {
    date: NaiveDate,
    posts: Vec<Post>,
}

fn local_midnight(date: NaiveDate, tz: Tz) -> chrono::DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // Midnight can fall in a DST gap in a few zones: take the first instant of the day.
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

pub async fn calendar(global: &Global, args: CalendarArgs) -> CliResult {
    if args.days == 0 || args.days > 366 {
        return Err(invalid("--days must be between 1 and 366"));
    }
    let ws = Workspace::locate(global)?;
    let start = match &args.from {
        Some(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| invalid(format!("--from '{s}' is not a date (YYYY-MM-DD)")))?,
        None => Utc::now().with_timezone(&ws.tz).date_naive(),
    };
    let end = start + Duration::days(i64::from(args.days));
    let hub = ws.open_hub(&global.hub).await?;
    let posts = hub
        .posts(&PostFilter {
            statuses: Vec::new(),
            from: Some(local_midnight(start, ws.tz)),
            to: Some(local_midnight(end, ws.tz)),
            limit: Some(10_000),
        })
        .await?;
    let mut days: Vec<Day> = (0..args.days)
        .map(|i| Day {
            date: start + Duration::days(i64::from(i)),
            posts: Vec::new(),
        })
        .collect();
    for post in posts {
        let Some(at) = post.run_at else { continue };
        let date = at.with_timezone(&ws.tz).date_naive();
        if let Some(day) = days.iter_mut().find(|d| d.date == date) {
            day.posts.push(post);
        }
    }
    if global.json {
        print_json(&days);
        return Ok(());
    }
    println!(
        "Calendar {} – {} ({})",
        start,
        end - Duration::days(1),
        ws.tz.name()
    );
    for day in &days {
        println!();
        println!(
            "{}  {}",
            day.date.format("%a %Y-%m-%d"),
            if day.posts.is_empty() {
                "· nothing scheduled"
            } else {
                ""
            }
        );
        if day.posts.is_empty() {
            continue;
        }
        let mut t = table(&["TIME", "STATUS", "PLATFORMS", "TEXT", "ID"]);
        for p in &day.posts {
            t.add_row(vec![
                p.run_at
                    .map(|t| t.with_timezone(&ws.tz).format("%H:%M").to_string())
                    .unwrap_or_default(),
                p.status.as_str().to_string(),
                platforms(p),
                excerpt(&p.body, 40),
                p.id.to_string(),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}
