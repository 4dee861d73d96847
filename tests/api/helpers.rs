//! `spawn_app`: the real server on an ephemeral loopback port, and a client that speaks its API.

use std::time::Duration;

use futures::future::join_all;
use racebank::{AccountConfig, Config, Mode, ServeError, Stats, WorkSpec};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and a client for it.
pub(crate) struct TestApp {
    pub address: String,
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<Stats, ServeError>>>,
}

/// Starts the server with `mode` and `work` and a zero balance. Logs only with `TEST_LOG=1`.
pub(crate) async fn spawn_app(mode: &str, work: &str) -> TestApp {
    spawn_with(Config {
        account: AccountConfig::memory(
            mode.parse::<Mode>().expect("a test names a valid mode"),
            work.parse::<WorkSpec>().expect("a test names valid work"),
        ),
        ..Config::default()
    })
    .await
}

/// Starts the server with a whole config.
pub(crate) async fn spawn_with(config: Config) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("racebank=debug")
            .with_test_writer()
            .try_init();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral loopback port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(racebank::serve(listener, config, async {
        let _ = stop.await;
    }));
    let client = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    /// `POST path` with a raw body and content type (`None` sends no content type).
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("the server answers")
    }

    /// `POST /deposit {"amount": amount}`.
    pub(crate) async fn deposit(&self, amount: i64) -> Response {
        self.post_raw("/deposit", Some("application/json"), &amount_body(amount))
            .await
    }

    /// `POST /withdraw {"amount": amount}`.
    pub(crate) async fn withdraw(&self, amount: i64) -> Response {
        self.post_raw("/withdraw", Some("application/json"), &amount_body(amount))
            .await
    }

    /// `POST /reset {"balance": balance}`.
    pub(crate) async fn reset(&self, balance: i64) -> Stats {
        let response = self
            .post_raw(
                "/reset",
                Some("application/json"),
                &format!(r#"{{"balance": {balance}}}"#),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `GET /balance`, as a number.
    pub(crate) async fn balance(&self) -> i64 {
        let body: Value = self.get("/balance").await.json().await.unwrap();
        body["balance"].as_i64().expect("balance is an integer")
    }

    /// `GET /stats`.
    pub(crate) async fn stats(&self) -> Stats {
        self.get("/stats").await.json().await.unwrap()
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the server answers")
    }

    /// Sends all the deposits (positive) and withdrawals (negative) at once; returns the statuses.
    pub(crate) async fn concurrently(&self, changes: &[i64]) -> Vec<StatusCode> {
        let requests = changes.iter().map(|&change| async move {
            if change >= 0 {
                self.deposit(change).await.status()
            } else {
                self.withdraw(-change).await.status()
            }
        });
        join_all(requests).await
    }

    /// Stops the server gracefully and returns its final stats.
    pub(crate) async fn shutdown(mut self) -> Stats {
        let _ = self.shutdown.take().unwrap().send(());
        let server = self.server.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
            .expect("the server stops cleanly")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// `{"amount": N}`.
pub(crate) fn amount_body(amount: i64) -> String {
    format!(r#"{{"amount": {amount}}}"#)
}

/// Asserts the identity every mode keeps at a quiet moment: `balance == expected - lost_net`.
pub(crate) fn assert_ledger_explains_balance(stats: &Stats) {
    assert_eq!(
        i128::from(stats.balance),
        stats.expected_balance - stats.lost_net,
        "balance must equal expected_balance - lost_net: {stats:?}"
    );
    assert_eq!(stats.drift, -stats.lost_net, "{stats:?}");
}

/// A deterministic mix of `count` deposits and withdrawals with varied amounts.
pub(crate) fn mixed_changes(count: usize) -> Vec<i64> {
    (0..i64::try_from(count).expect("a count that fits an i64"))
        .map(|i| {
            let amount = 1 + (i * 37) % 50;
            if i % 3 == 2 {
                -amount
            } else {
                amount
            }
        })
        .collect()
}
