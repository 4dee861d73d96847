//! A real racebank server on an ephemeral loopback port, and a `Load` pointing at it.

use clap::Parser;
use racebank::{AccountConfig, Config, Mode, WorkSpec};
use racebank_load::{Load, Opts};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running on the test's runtime until [`TestServer::stop`].
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<racebank::Stats, racebank::ServeError>>,
}

impl TestServer {
    /// Stops the server and returns its final stats.
    pub async fn stop(self) -> racebank::Stats {
        let _ = self.stop.send(());
        self.handle
            .await
            .expect("the server task panicked")
            .expect("the server failed")
    }
}

/// Starts a server in `mode` with `work` and an opening balance.
pub async fn spawn_server(mode: &str, work: &str, initial_balance: i64) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let config = Config {
        account: AccountConfig {
            initial_balance,
            ..AccountConfig::memory(
                mode.parse::<Mode>().expect("mode"),
                work.parse::<WorkSpec>().expect("work"),
            )
        },
        ..Config::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(racebank::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    TestServer { url, stop, handle }
}

/// The `Load` that `racebank-load --url URL --no-progress ARGS` describes.
pub fn opts(url: &str, args: &[&str]) -> Load {
    let mut argv = vec!["racebank-load", "--url", url, "--no-progress"];
    argv.extend_from_slice(args);
    Opts::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .to_load()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}
