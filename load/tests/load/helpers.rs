//! A real racebank server on an ephemeral loopback port, and a `Load` pointing at it.

use clap::Parser;
use racebank::{AccountConfig, Config, Mode, ServerConfig, WorkSpec};
use racebank_load::{Load, Opts};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running on the test's runtime until [`TestServer::stop`].
pub(crate) struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<racebank::Stats, racebank::ServeError>>,
}

impl TestServer {
    /// Stops the server and returns its final stats.
    pub(crate) async fn stop(self) -> racebank::Stats {
        let _ = self.stop.send(());
        self.handle
            .await
            .expect("the server task panicked")
            .expect("the server failed")
    }
}

/// Starts a server with `config` on an ephemeral loopback port.
pub(crate) async fn serve(config: Config) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(racebank::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    TestServer { url, stop, handle }
}

/// Starts a server in `mode` with `work` and an opening balance.
pub(crate) async fn spawn_server(mode: &str, work: &str, initial_balance: i64) -> TestServer {
    spawn_server_with_chaos(mode, work, initial_balance, racebank::Chaos::default()).await
}

/// Starts a server as [`spawn_server`] does, injecting `chaos` (`--chaos`).
pub(crate) async fn spawn_server_with_chaos(
    mode: &str,
    work: &str,
    initial_balance: i64,
    chaos: racebank::Chaos,
) -> TestServer {
    serve(Config {
        account: AccountConfig {
            initial_balance,
            ..AccountConfig::memory(
                mode.parse::<Mode>().expect("mode"),
                work.parse::<WorkSpec>().expect("work"),
            )
        },
        server: ServerConfig {
            chaos,
            ..ServerConfig::default()
        },
    })
    .await
}

/// The `Load` that `racebank-load --url URL --no-progress ARGS` describes.
pub(crate) fn opts(url: &str, args: &[&str]) -> Load {
    let mut argv = vec!["racebank-load", "--url", url, "--no-progress"];
    argv.extend_from_slice(args);
    Opts::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .to_load()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A server on a runtime of its own, so that [`KillableServer::kill`] can take it down the way
/// SIGKILL would: every task dropped, every socket closed, nothing drained.
pub(crate) struct KillableServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    runtime: tokio::runtime::Runtime,
}

impl KillableServer {
    /// Starts a server in `mode` with `work` from a zero balance.
    pub(crate) fn start(mode: &str, work: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the server's runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let config = Config {
            account: AccountConfig::memory(
                mode.parse::<Mode>().expect("mode"),
                work.parse::<WorkSpec>().expect("work"),
            ),
            ..Config::default()
        };
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a tokio listener");
            racebank::serve(listener, config, std::future::pending()).await
        });
        KillableServer { url, runtime }
    }

    /// Drops the runtime, and with it the listener, every connection and every request in
    /// flight; returns once they are all gone.
    pub(crate) async fn kill(self) {
        let runtime = self.runtime;
        tokio::task::spawn_blocking(move || drop(runtime))
            .await
            .expect("the runtime is dropped");
    }
}

/// Waits until the server at `url` has acknowledged at least `count` deposits.
pub(crate) async fn wait_for_deposits(url: &str, count: u64) {
    let stats_url = format!("{url}/stats");
    loop {
        let stats: serde_json::Value = reqwest::get(&stats_url)
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON");
        if stats["deposit_count"].as_u64() >= Some(count) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The `test` database, as the server's PostgreSQL tests use it.
pub(crate) fn test_database_url() -> String {
    std::env::var("RACEBANK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}
