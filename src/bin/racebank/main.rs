//! The `racebank` server: parse flags, bind, serve until a stop signal (Ctrl-C, SIGTERM, SIGHUP,
//! SIGQUIT; a second one stops at once).

mod cli;
mod log;
mod signal;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    log::init("racebank=info");
    match run(cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain on one line, without a backtrace: these are operator errors, not bugs.
            log::last_words(format_args!("racebank: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let config = cli.config().map_err(anyhow::Error::msg)?;
    // A configuration that cannot run is refused before the port is taken.
    config.validate()?;
    // A host name is resolved here, and the first of its addresses that binds is taken.
    let listener = match tokio::net::TcpListener::bind(cli.addr.as_str()).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            anyhow::bail!(
                "cannot listen on {}: another process already listens there (a racebank started \
                 earlier?); stop it, or listen on another port: --addr {}",
                cli.addr,
                next_port(&cli.addr)
            );
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot listen on {}", cli.addr));
        }
    };
    racebank::serve(listener, config, signal::shutdown_signal()).await?;
    Ok(())
}

/// The same host with the next port, for the hint when `addr`'s port is taken (`cli` checked its
/// shape: it ends in `:PORT`).
fn next_port(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_or(3001, |port| port.wrapping_add(1).max(1));
            format!("{host}:{port}")
        }
        None => addr.to_string(),
    }
}
