//! Logging that never takes the server down.
//!
//! Log lines go to stderr. When nobody reads stderr any more (`racebank 2>&1 | grep -m1 listening`
//! exits after one line), writing fails with a broken pipe. tracing-subscriber then reports the
//! failure with `eprintln!`, to the same broken stderr, and `eprintln!` panics: a SIGTERM that
//! should have drained the server crashed it instead (exit 101). So lines that cannot be written
//! are dropped, and nothing here reports a failure to write.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` or else `default_filter` (`racebank=info`).
pub(crate) fn init(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(|| QuietStderr)
        .with_ansi(io::stderr().is_terminal())
        .log_internal_errors(false)
        .init();
}

/// Prints `message` on stderr, if anyone still reads it; for the binary's last words.
pub(crate) fn last_words(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// stderr, where a failed write is a dropped line rather than an error.
struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}
