//! The `racebank-load` binary: parse flags, run, print, exit 0 (consistent), 1 (updates lost) or
//! 2 (bad flags or an unreachable server).

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use racebank_load::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let runtime = match command {
        // The demo serves the account in this process, so it gets every core.
        Command::Demo(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        // The load runs on its own threads; this runtime only reads the balance and ticks the bar.
        Command::Run(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::Error::new(error).context("cannot start the runtime")),
    };
    match command {
        Command::Demo(opts) => match runtime.block_on(racebank_load::demo(opts.clone())) {
            Ok(rows) if opts.json => {
                print_out(&racebank_load::demo::rows_to_json(&rows));
                ExitCode::SUCCESS
            }
            Ok(rows) => {
                print_out(&racebank_load::demo::rows_to_text(&rows));
                ExitCode::SUCCESS
            }
            Err(error) => fail(error),
        },
        Command::Run(opts) => match runtime.block_on(racebank_load::run(opts.clone())) {
            Ok(report) => {
                if opts.json {
                    print_out(&report.to_json());
                } else {
                    print_out(&report.to_text());
                }
                if report.consistent {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(error) => fail(error),
        },
    }
}

/// Help and version go to stdout with exit 0; anything else is one line on stderr and exit 2.
fn usage_error(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("racebank-load: {first} (see --help)");
    ExitCode::from(2)
}

/// Writes to stdout, ignoring a closed pipe (`| head`) rather than panicking as `println!` would.
fn print_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("racebank-load: {error:#}");
    ExitCode::from(2)
}
