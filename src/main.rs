//! The `racebank` server: parse flags, bind, serve until Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("racebank=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(racebank::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain on one line, without a backtrace: these are operator errors, not bugs.
            eprintln!("racebank: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: racebank::Cli) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.addr))?;
    racebank::serve(listener, cli.config(), racebank::shutdown_signal()).await?;
    Ok(())
}
