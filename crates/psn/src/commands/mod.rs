//! One module per command; `run` dispatches.

mod account_health;
mod accounts;
mod approvals;
mod compose;
mod doctor;
mod hub;
pub(crate) mod init;
mod manage;
pub(crate) mod media;
mod oauth_connect;
mod post;
mod queue;
mod show;
mod team;
mod worker;

use crate::cli::{Cli, Command};
use crate::error::CliResult;

pub async fn run(cli: Cli) -> CliResult {
    let g = &cli.global;
    match cli.command {
        Command::Init(args) => init::run(g, args),
        Command::Up(args) => worker::up(g, args).await,
        Command::Worker(args) => worker::worker(g, args).await,
        Command::Doctor => doctor::run(g).await,
        Command::Hub(cmd) => hub::run(g, cmd).await,
        Command::Accounts(cmd) => accounts::run(g, cmd).await,
        Command::Post(args) => post::run(g, args).await,
        Command::Validate(args) => post::validate(g, args),
        Command::Queue(args) => queue::queue(g, args).await,
        Command::Calendar(args) => queue::calendar(g, args).await,
        Command::Show(args) => show::run(g, args).await,
        Command::Reschedule(args) => manage::reschedule(g, args).await,
        Command::Cancel(args) => manage::cancel(g, args).await,
        Command::Retry(args) => manage::retry(g, args).await,
        Command::Edit(args) => manage::edit(g, args).await,
        Command::Team(cmd) => team::run(g, cmd).await,
        Command::Approvals => approvals::list(g).await,
        Command::Approve(args) => approvals::approve(g, args).await,
        Command::Reject(args) => approvals::reject(g, args).await,
        Command::Submit(args) => approvals::submit(g, args).await,
        Command::Media(cmd) => media::run(g, cmd).await,
    }
}
