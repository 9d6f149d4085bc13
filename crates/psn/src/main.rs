//! The `psn` binary: parses the command line and hands each command to its module. Every
//! interface (this CLI, and later the dashboard, REST API and MCP server) calls the same
//! operations in the store and the rules; this binary only adds presentation.

mod cli;
mod commands;
mod error;
mod output;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let long_running = matches!(cli.command, cli::Command::Up(_) | cli::Command::Worker(_));
    init_logging(long_running);
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => err.report(json),
    }
}

/// Logs go to stderr only (stdout is for results and `--json`). `PSN_LOG` sets the filter
/// (default `warn`, `info` for the worker); `PSN_LOG_FORMAT=json` writes one JSON object per
/// line, with the post, delivery, platform and attempt of the span it happened in.
fn init_logging(long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PSN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let json = std::env::var("PSN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
