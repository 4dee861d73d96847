//! Reading the account around a run: the balance (required) and `/stats` (optional).
//!
//! These reads use their own client with a generous timeout, so that a tiny `--timeout` meant to
//! provoke timeouts in the load does not make the run itself fail.

use std::time::Duration;

use anyhow::{bail, Context};
use racebank::routes::BalanceBody;
use reqwest::{StatusCode, Url};

use crate::verdict::ServerStats;
use crate::workers::endpoint;

/// The shortest timeout for the balance and stats reads.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for the reads around the run.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(timeout.max(CONTROL_TIMEOUT))
        .build()
        .context("cannot build the HTTP client")
}

/// `GET /balance`.
pub async fn balance(client: &reqwest::Client, base: &Url) -> anyhow::Result<i64> {
    let url = endpoint(base, "balance")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", error_chain(&e)))?;
    let status = response.status();
    if status != StatusCode::OK {
        bail!("GET {url} answered {status}, not 200 with the balance");
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: the answer broke off: {}", error_chain(&e)))?;
    let body: BalanceBody = serde_json::from_slice(&bytes)
        .with_context(|| format!("GET {url} did not answer {{\"balance\": N}}"))?;
    Ok(body.balance)
}

/// `GET /stats`, or `None` when the server has none (any failure counts as none).
pub async fn stats(client: &reqwest::Client, base: &Url) -> Option<ServerStats> {
    let url = endpoint(base, "stats").ok()?;
    let response = client.get(url).send().await.ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let bytes = response.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An error with its causes on one line (reqwest's own message is often just "error sending
/// request").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}
