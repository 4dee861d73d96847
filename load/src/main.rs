//! The `racebank-load` binary: read `--config`, parse flags, run, print, and exit with the
//! verdict's status (see `--help`). Ctrl-C prints the report of what was sent so far; a second
//! Ctrl-C quits at once.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use racebank_load::{Cli, Command, DemoScenario, Render, EXIT_INTERRUPTED, EXIT_USAGE};

fn main() -> ExitCode {
    let args = match racebank_load::expand_config(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            print_err(&format!("racebank-load: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let runtime = match command {
        // The demo serves the account in this process, so it gets every core.
        Command::Demo(_) | Command::Sweep(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        // The load runs on its own threads; this runtime only reads the balance and ticks the
        // bar. A burst's few sockets need no more.
        Command::Run(_) | Command::Burst(_) | Command::Report(_) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::Error::new(error).context("cannot start the runtime")),
    };
    match command {
        Command::Demo(opts) if opts.scenario == DemoScenario::Retries => {
            let rows = runtime.block_on(racebank_load::retries_demo(&opts.to_demo()));
            print_rows(rows, opts.json)
        }
        Command::Demo(opts) => {
            let rows = runtime.block_on(racebank_load::demo(opts.to_demo()));
            print_rows(rows, opts.json)
        }
        Command::Sweep(opts) => sweep(&runtime, &opts),
        Command::Report(opts) => {
            match racebank_load::write_timeline(&opts.history, &opts.output, opts.limit) {
                Ok(timeline) => {
                    print_out(&format!(
                        "wrote {}: {}",
                        opts.output.display(),
                        timeline.summary()
                    ));
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            }
        }
        Command::Burst(opts) => {
            let burst = match opts.to_burst() {
                Ok(burst) => burst,
                Err(error) => return fail(error),
            };
            match runtime.block_on(racebank_load::burst(burst)) {
                Ok(report) => {
                    print_out(&if opts.json {
                        report.to_json()
                    } else {
                        report.to_text()
                    });
                    ExitCode::from(report.exit_code())
                }
                Err(error) => fail(error),
            }
        }
        Command::Run(opts) => {
            let load = match opts.to_load() {
                Ok(load) => load,
                Err(error) => return fail(error),
            };
            let outcome = runtime.block_on(async {
                let interrupt = interrupted()?;
                racebank_load::run_until(load, interrupt).await
            });
            match outcome {
                Ok(report) => {
                    print_out(&if opts.json {
                        report.to_json()
                    } else {
                        report.to_text()
                    });
                    ExitCode::from(report.exit_code())
                }
                Err(error) => fail(error),
            }
        }
    }
}

/// Runs a sweep, one line per point on stderr as it goes, then writes its files.
fn sweep(runtime: &tokio::runtime::Runtime, opts: &racebank_load::SweepOpts) -> ExitCode {
    let sweep = match opts.to_sweep() {
        Ok(sweep) => sweep,
        Err(error) => return fail(error),
    };
    let points = match runtime.block_on(racebank_load::sweep(&sweep, |point| {
        eprintln!("{}", point.line());
    })) {
        Ok(points) => points,
        Err(error) => return fail(error),
    };
    match racebank_load::write_sweep_files(&sweep, &points, &opts.out, &opts.name) {
        Ok(files) => {
            let swept = racebank_load::Swept { points, files };
            print_out(&if opts.json {
                swept.to_json()
            } else {
                swept.to_text()
            });
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
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
    print_err(&format!("racebank-load: {first} (see --help)"));
    ExitCode::from(EXIT_USAGE)
}

/// Prints a demo's rows as JSON or as text, and exits 0 whenever the demo ran.
fn print_rows<R>(rows: anyhow::Result<Vec<R>>, json: bool) -> ExitCode
where
    [R]: Render,
{
    match rows {
        Ok(rows) => {
            print_out(&if json { rows.to_json() } else { rows.to_text() });
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
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

fn fail(error: anyhow::Error) -> ExitCode {
    print_err(&format!("racebank-load: {error:#}"));
    ExitCode::from(EXIT_USAGE)
}
