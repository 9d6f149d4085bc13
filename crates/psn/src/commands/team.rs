//! `psn team add | list | remove`: the members of a company hub and their roles.

use psn_store::TeamRole;

use crate::cli::{Global, TeamCommand};
use crate::error::CliResult;
use crate::output::{local, print_json, table};
use crate::workspace::Workspace;

pub async fn run(global: &Global, cmd: TeamCommand) -> CliResult {
    let ws = Workspace::locate(global)?;
    match cmd {
        TeamCommand::Add { user, role } => {
            let role = TeamRole::parse(role.trim())?;
            let hub = ws.open_hub(&global.hub).await?;
            let (member, created) = hub.add_team_member(&user, role, &ws.actor).await?;
            if global.json {
                print_json(&serde_json::json!({
                    "user": member.user, "role": member.role, "created": created,
                }));
            } else if created {
                println!(
                    "Added {} to hub '{}' as {}",
                    member.user,
                    hub.name(),
                    member.role
                );
            } else {
                println!(
                    "{} is now {} on hub '{}'",
                    member.user,
                    member.role,
                    hub.name()
                );
            }
            hub.close().await;
        }
        TeamCommand::List => {
            let hub = ws.open_hub(&global.hub).await?;
            let members = hub.team_members().await?;
            if global.json {
                print_json(&members);
            } else if members.is_empty() {
                println!(
                    "No members visible to {} on hub '{}' (only members see the team).",
                    ws.actor,
                    hub.name()
                );
            } else {
                let mut t = table(&["USER", "ROLE", "ADDED BY", "ADDED"]);
                for m in &members {
                    t.add_row(vec![
                        m.user.clone(),
                        m.role.to_string(),
                        m.added_by.clone(),
                        local(m.added_at, ws.tz),
                    ]);
                }
                println!("{t}");
            }
            hub.close().await;
        }
        TeamCommand::Remove { user } => {
            let hub = ws.open_hub(&global.hub).await?;
            let role = hub.remove_team_member(&user, &ws.actor).await?;
            if global.json {
                print_json(&serde_json::json!({"user": user, "role": role, "removed": true}));
            } else {
                println!("Removed {user} ({role}) from hub '{}'", hub.name());
            }
            hub.close().await;
        }
    }
    Ok(())
}
