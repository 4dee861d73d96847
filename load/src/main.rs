//! The `racebank-load` binary: read `--config`, parse flags, run, print, and exit with the
//! verdict's status (see `--help`). Ctrl-C prints the report of what was sent so far; a second
//! Ctrl-C quits at once.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use racebank_load::{
    Cli, Command, DemoScenario, Render, Swept, Wrote, EXIT_INTERRUPTED, EXIT_USAGE,
};

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let runtime = match command {
        // The demo serves the account in this process, so it gets every core.
        Command::Demo(_) | Command::Sweep(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        // The load runs on its own threads; this runtime only reads the balance and ticks the
        // bar. A burst's few sockets need no more.
        Command::Run(_) | Command::Burst(_) | Command::Bank(_) | Command::Report(_) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("cannot start the runtime")),
    };
    match execute(&runtime, command) {
        Ok((result, json)) => {
            print_out(&if json {
                result.to_json()
            } else {
                result.to_text()
            });
            ExitCode::from(result.exit_code())
        }
        Err(error) => fail(&error),
    }
}

/// `--config` read into the arguments, then the flags parsed; on failure, the exit status.
fn parse() -> Result<Cli, ExitCode> {
    let args = match racebank_load::expand_config(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            print_err(&format!("racebank-load: {message}"));
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    Cli::try_parse_from(args).map_err(|error| usage_error(&error))
}

/// Runs `command`; returns its result and whether `--json` asked for JSON.
fn execute(
    runtime: &tokio::runtime::Runtime,
    command: Command,
) -> anyhow::Result<(Box<dyn Render>, bool)> {
    Ok(match command {
        Command::Run(opts) => {
            let load = opts.to_load()?;
            let report = runtime.block_on(async {
                let interrupt = interrupted()?;
                racebank_load::run_until(load, interrupt).await
            })?;
            (Box::new(report), opts.json)
        }
        Command::Bank(opts) if opts.scenario.is_rounds() => {
            let report = runtime.block_on(racebank_load::bank_rounds(opts.to_rounds()?))?;
            (Box::new(report), opts.json)
        }
        Command::Bank(opts) => {
            let load = opts.to_bank()?;
            let report = runtime.block_on(async {
                let interrupt = interrupted()?;
                racebank_load::bank_until(load, interrupt).await
            })?;
            (Box::new(report), opts.json)
        }
        Command::Burst(opts) => {
            let report = runtime.block_on(racebank_load::burst(opts.to_burst()?))?;
            (Box::new(report), opts.json)
        }
        Command::Demo(opts) if opts.scenario == DemoScenario::Retries => {
            let rows = runtime.block_on(racebank_load::retries_demo(&opts.to_demo()))?;
            (Box::new(rows), opts.json)
        }
        Command::Demo(opts) if opts.scenario == DemoScenario::Bank => {
            let demo = runtime.block_on(racebank_load::bank_demo(&opts.to_demo()))?;
            (Box::new(demo), opts.json)
        }
        Command::Demo(opts) => {
            let rows = runtime.block_on(racebank_load::demo(opts.to_demo()))?;
            (Box::new(rows), opts.json)
        }
        Command::Sweep(opts) => {
            let sweep = opts.to_sweep()?;
            eprintln!("{}", sweep.opening_line());
            // One line per point on stderr as it goes; the files once all are done.
            let (out, name) = (&opts.out, &opts.name());
            let result: Box<dyn Render> = if sweep.is_bank() {
                let points = runtime.block_on(racebank_load::sweep_bank(&sweep, |point| {
                    eprintln!("{}", point.line());
                }))?;
                let files = racebank_load::write_bank_sweep_files(&sweep, &points, out, name)?;
                Box::new(Swept { points, files })
            } else {
                let points = runtime.block_on(racebank_load::sweep(&sweep, |point| {
                    eprintln!("{}", point.line());
                }))?;
                let files = racebank_load::write_sweep_files(&sweep, &points, out, name)?;
                Box::new(Swept { points, files })
            };
            (result, opts.json)
        }
        Command::Report(opts) => {
            let about = if racebank_load::is_bank_history(&opts.history)? {
                racebank_load::write_bank_chart(&opts.history, &opts.output, opts.total)?.summary()
            } else {
                racebank_load::write_timeline(&opts.history, &opts.output, opts.limit)?.summary()
            };
            let wrote = Wrote {
                path: opts.output,
                about,
            };
            (Box::new(wrote), false)
        }
    })
}

/// Completes on the first Ctrl-C (SIGINT); the handler is installed now, so a Ctrl-C at any time
/// from here on is caught. After the first, a second one exits at once.
fn interrupted() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        let _ = signals.recv().await;
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        print_err("racebank-load: interrupted; reading the balance for the report (Ctrl-C again to quit now)");
        tokio::spawn(async move {
            #[cfg(unix)]
            let _ = signals.recv().await;
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        });
    })
}

/// Help and version go to stdout with exit 0; anything else is one line on stderr and exit 2.
fn usage_error(error: &clap::Error) -> ExitCode {
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
    print_err(&format!("racebank-load: {first} (see --help)"));
    ExitCode::from(EXIT_USAGE)
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

/// Writes one line to stderr, ignoring a closed pipe (`2>&1 | head -0`) rather than panicking
/// with exit 101 as `eprintln!` would: the exit status still says what happened.
fn print_err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.write_all(b"\n");
}

fn fail(error: &anyhow::Error) -> ExitCode {
    print_err(&format!("racebank-load: {error:#}"));
    ExitCode::from(EXIT_USAGE)
}
