//! Liveness and readiness: `/healthz` answers while the process serves, `/readyz` only while the
//! store answers too; and every 503 says when to try again.

use std::net::SocketAddr;
use std::time::Duration;

use racebank::{AccountConfig, Config, StoreConfig};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::spawn_with;
use crate::redis::TestAccount;

/// A TCP relay to `target` that can be paused: while paused it holds every byte it reads, in both
/// directions, so the store behind it looks unreachable (a request to it never completes) without
/// any connection being cut; resumed, it delivers what it held.
struct Gate {
    address: SocketAddr,
    paused: watch::Sender<bool>,
}

impl Gate {
    async fn to(target: &'static str) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (paused, watching) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, watching.clone()));
                tokio::spawn(pump(server_read, client_write, watching.clone()));
            }
        });
        Gate { address, paused }
    }

    fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }
}

/// Copies `from` to `to`, holding what it read while the gate is paused.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut paused: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 || paused.wait_for(|paused| !*paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn readyz_answers_503_with_retry_after_while_the_store_is_unreachable_and_200_when_it_answers(
) {
    let account = TestAccount::new("ready").await;
    let gate = Gate::to("127.0.0.1:6379").await;
    let app = spawn_with(Config {
        account: AccountConfig {
            store: StoreConfig::Redis {
                url: format!("redis://{}", gate.address),
            },
            id: account.id(),
            mode: "atomic".parse().unwrap(),
            work: "none".parse().unwrap(),
            ..AccountConfig::default()
        },
        ..Config::default()
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    gate.pause(true);
    let unready = app.get("/readyz").await;

    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unready.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = unready.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = unready.json().await.unwrap();
    assert_eq!(problem["type"], "urn:racebank:problem:store-unavailable");
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "liveness"
    );

    gate.pause(false);
    // The store answers again: readiness follows. 50 tries of 200 ms (10 s) bound the wait.
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_answers_200_while_the_store_answers() {
    let app = crate::helpers::spawn_app("mutex", "none").await;

    let ready = app.get("/readyz").await;

    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn a_503_answer_carries_retry_after() {
    let app = spawn_with(Config {
        account: AccountConfig {
            mode: racebank::Mode::Optimistic,
            work: "rendezvous:2".parse().unwrap(),
            max_retries: 0,
            ..AccountConfig::default()
        },
        ..Config::default()
    })
    .await;

    // Two deposits at a rendezvous in optimistic mode with no retries: one gives up with 503.
    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    let refused = if first.status() == StatusCode::OK {
        second
    } else {
        first
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
}
