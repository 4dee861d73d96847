//! The yardstick for the server benchmark: a bare axum handler that only adds to one atomic.
//!
//! It parses the same `{"amount": N}` body and answers the same `{"balance": B}`, with no ledger, no
//! strategy and no middleware: what racebank's server costs is measured against it.
//!
//! `cargo run --release --example yardstick -- 127.0.0.1:3100`

use std::sync::atomic::{AtomicI64, Ordering};

use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

static BALANCE: AtomicI64 = AtomicI64::new(0);

#[derive(Deserialize)]
struct Change {
    amount: i64,
}

#[derive(Serialize)]
struct Balance {
    balance: i64,
}

async fn deposit(Json(change): Json<Change>) -> Json<Balance> {
    let balance = BALANCE.fetch_add(change.amount, Ordering::Relaxed) + change.amount;
    Json(Balance { balance })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".to_string());
    // Same socket setting as racebank's server, so the comparison is of the handlers alone.
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new().route("/deposit", post(deposit));
    axum::serve(listener, app).await
}
