//! The `racebank` binary as an operator runs it: signals, a closed stderr, too few file descriptors.
//!
//! These start the built binary on `127.0.0.1:0` and read the address from its first log line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::raw::PATIENCE;

/// A running `racebank` process, killed if a test fails before it stops.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) address: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `racebank args..` under `sh -c "<setup>; exec racebank args.."`, with stderr piped, and
/// reads its log up to the line that gives its address.
pub(crate) fn start(setup: &str, args: &[&str]) -> (Process, BufReader<ChildStderr>) {
    start_on("127.0.0.1:0", setup, args)
}

/// [`start`], listening on `addr`.
fn start_on(addr: &str, setup: &str, args: &[&str]) -> (Process, BufReader<ChildStderr>) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{setup}\nexec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_racebank"))
        .args(["--addr", addr])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start racebank");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let address = loop {
        let mut line = String::new();
        let read = stderr.read_line(&mut line).expect("read a log line");
        assert!(read > 0, "racebank exited before it logged its address");
        if let Some(address) = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr="))
        {
            break address.to_string();
        }
    };
    (Process { child, address }, stderr)
}

/// Reads log lines on a thread, so a test can wait for one without blocking forever.
fn log_lines(stderr: BufReader<ChildStderr>) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    received
}

/// Waits for a log line containing `text`; returns every line read until then.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(text);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no log line containing {text:?} within {PATIENCE:?}; saw {seen:#?}");
}

fn signal(process: &Process, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &process.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name}");
}

/// Waits for the process to exit, up to `PATIENCE`.
fn wait_for_exit(process: &mut Process) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(status) = process.child.try_wait().expect("wait for racebank") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("racebank still running {PATIENCE:?} after the signal");
}

/// `GET /healthz` on a new connection; the status line.
fn healthz(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or("").to_string()
}

#[test]
fn a_server_listening_beyond_loopback_warns_that_anyone_who_can_reach_it_can_move_money() {
    // Port 0 on every address, for the second it takes to read the log: nothing is sent to it.
    let (process, stderr) = start_on("0.0.0.0:0", "", &[]);
    let lines = log_lines(stderr);

    let warning = wait_for_line(&lines, "no authentication");

    let warning = warning.last().unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("move money"), "{warning}");
    drop(process);
}

#[test]
fn an_address_may_name_a_host_that_resolves_and_loopback_logs_no_warning() {
    let (process, stderr) = start_on("localhost:0", "", &[]);
    let lines = log_lines(stderr);

    assert!(healthz(&process.address).contains("200"));

    let port = process.address.rsplit(':').next().unwrap();
    let seen = {
        // The stop's final line is the mark that every start-up line has been read.
        signal(&process, "TERM");
        wait_for_line(&lines, "racebank stopped")
    };
    assert!(
        !seen.iter().any(|line| line.contains("no authentication")),
        "{seen:#?}"
    );
    assert!(port.parse::<u16>().is_ok(), "{}", process.address);
}

#[test]
fn every_stop_signal_stops_the_server_gracefully_with_the_final_stats() {
    for name in ["TERM", "INT", "HUP", "QUIT"] {
        let (mut process, stderr) = start("", &[]);
        let lines = log_lines(stderr);
        assert!(healthz(&process.address).contains("200"));

        signal(&process, name);

        let status = wait_for_exit(&mut process);
        assert!(status.success(), "SIG{name}: {status:?}");
        wait_for_line(&lines, "racebank stopped");
    }
}

#[test]
fn a_second_signal_during_shutdown_stops_at_once_with_a_failure_status() {
    let (mut process, stderr) = start("", &["--work", "30s", "--shutdown-grace", "60s"]);
    let lines = log_lines(stderr);
    // A deposit inside its 30 s of work keeps the graceful shutdown waiting. The connection is
    // proved open by a first answer; the sleep gives the deposit ample time to enter its work.
    let mut held = TcpStream::connect(&process.address).unwrap();
    held.set_read_timeout(Some(PATIENCE)).unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    held.read_exact(&mut first).unwrap();
    held.write_all(
        b"POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 13\r\n\r\n{\"amount\": 5}",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    signal(&process, "INT");
    wait_for_line(&lines, "shutting down");
    signal(&process, "INT");

    let status = wait_for_exit(&mut process);
    assert!(!status.success(), "{status:?}");
    wait_for_line(&lines, "stopping at once");
}

#[test]
fn a_closed_stderr_does_not_take_the_server_down_on_sigterm() {
    // As in `racebank 2>&1 | grep -m1 listening`: the reader goes away after the first line.
    let (mut process, stderr) = start("", &[]);
    drop(stderr);
    assert!(healthz(&process.address).contains("200"));

    signal(&process, "TERM");

    let status = wait_for_exit(&mut process);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn running_out_of_file_descriptors_is_an_error_in_the_log_and_the_server_recovers() {
    // 64 descriptors, and a connection limit above that, so that accepting runs out of them.
    let (process, stderr) = start(
        "ulimit -n 64",
        &["--max-connections", "1000", "--header-timeout", "60s"],
    );
    let lines = log_lines(stderr);
    let hogs: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&process.address).expect("the backlog takes them"))
        .collect();

    let seen = wait_for_line(&lines, "Too many open files");
    let error = seen.last().unwrap();
    assert!(error.contains("ERROR"), "{error}");

    drop(hogs);
    assert!(
        healthz(&process.address).contains("200"),
        "served again once the descriptors are back"
    );
    // A hot loop would have logged thousands of lines by now; the backoff logs a few.
    let logged = seen.len() + lines.try_iter().count();
    assert!(logged < 100, "{logged} log lines");
}

/// `racebank --mode for-update` on the memory store, told to listen on a port that is taken: the
/// mode is refused before the port is tried, and the hint names the store that runs the mode.
#[test]
fn a_mode_the_store_does_not_run_is_refused_before_the_port_is_bound() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();

    let stderr = refused_start(&["--addr", &addr, "--mode", "for-update"]);
    assert!(
        stderr.contains("mode `for-update` does not run on the memory store"),
        "{stderr}"
    );
    assert!(stderr.contains("--store postgres"), "{stderr}");
    assert!(!stderr.contains("--store redis"), "{stderr}");
    assert!(!stderr.contains("cannot listen"), "{stderr}");
}

/// `racebank --addr` on a port another process holds: the line says so and suggests another port.
#[test]
fn a_port_in_use_is_refused_with_a_line_suggesting_another_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address");
    let next = format!("127.0.0.1:{}", addr.port() + 1);

    let stderr = refused_start(&["--addr", &addr.to_string()]);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("another process already listens there"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("--addr {next}")), "{stderr}");
}

/// What `racebank ARGS` says on stderr when it refuses to start (asserted: it exits non-zero),
/// without `RUST_LOG` or `RACEBANK_STORE` from the test's environment.
fn refused_start(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_racebank"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("RACEBANK_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run racebank");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}

/// A bank that cannot be opened is refused before the port is bound, with what is wrong in it.
#[test]
fn a_bank_that_cannot_be_opened_is_refused_at_start_saying_why() {
    for (args, says) in [
        (
            &["--accounts", "10000"][..],
            "a bank holds 1 to 1000 accounts, not 10000",
        ),
        (&["--accounts", "a=1,a=2"], "account `a` is named twice"),
        (&["--accounts", "a=-1"], "not an opening balance"),
        (&["--accounts", "a b=1"], "is not an account id"),
        (
            &["--accounts", "a=1,b=1", "--households", "a+zed"],
            "household member `zed`",
        ),
        (&["--households", "a+b"], "open a bank with --accounts"),
    ] {
        let stderr = refused_start(args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
