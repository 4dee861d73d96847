//! The reads and writes around a bank run: open the bank (`POST /bank/reset` with the opening
//! balances), read every balance (`GET /accounts`), and the bank's part of `/stats`.
//!
//! Like [`crate::engine::probe`], these use their own client with `--timeout` and say each failure
//! in one line. They read at most [`MAX_BANK_BODY`]: the bank's books list every account, about
//! 200 bytes each, and a bank holds up to 1000.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use racebank::wire::bank::{paths, AccountsBody, BankResetBody, BankStats};

use crate::engine::probe::{error_chain, excerpt, read_capped, root_cause, Unread};
use crate::plan::api::Header;
use crate::plan::target::Target;

/// The largest answer read around a bank run: a bank's books at 1000 accounts, five times over.
pub(crate) const MAX_BANK_BODY: usize = 1024 * 1024;

/// Opens, reads and checks the bank of one server.
#[derive(Debug, Clone)]
pub(crate) struct BankProbe {
    client: reqwest::Client,
    target: Target,
    headers: Vec<Header>,
    timeout: Duration,
}

/// What went wrong with a read of every balance after the run.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// No answer: the server stopped answering.
    Gone(String),
    /// An answer with no balances in it: the server broke the protocol.
    Unreadable(String),
}

impl BankProbe {
    /// A probe of `target`, sending `headers`, giving up on each request after `timeout`.
    pub(crate) fn new(
        target: &Target,
        headers: &[Header],
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        Ok(BankProbe {
            client,
            target: target.clone(),
            headers: headers.to_vec(),
            timeout,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut request = self.client.request(method, self.target.url_of(path)?);
        for header in &self.headers {
            request = request.header(header.name.clone(), header.value.clone());
        }
        Ok(request)
    }

    /// Opens the bank: `POST /bank/reset` naming every opening balance (accounts not named open
    /// at 0). Returns the bank's stats right after, the baseline of the cross-check.
    /// Resets the bank: with `openings` (by `ids`), or, with `None`, to the server's own opening
    /// balances (a reset without a body).
    pub(crate) async fn reset(
        &self,
        ids: &[String],
        openings: Option<&[i64]>,
    ) -> anyhow::Result<Option<BankStats>> {
        let url = self.target.url_of(paths::RESET)?;
        let request = self.request(reqwest::Method::POST, paths::RESET)?;
        let request = match openings {
            Some(openings) => {
                let balances: BTreeMap<String, i64> = ids
                    .iter()
                    .zip(openings)
                    .filter(|(_, &opening)| opening != 0)
                    .map(|(id, &opening)| (id.clone(), opening))
                    .collect();
                request.json(&BankResetBody { balances })
            }
            None => request.header(reqwest::header::CONTENT_TYPE, "application/json"),
        };
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&url, &error))?;
        let status = response.status();
        let body = self.body(&url, response).await?;
        if status.as_u16() == 404 {
            bail!(
                "POST {url} answered 404: this server has no bank; start it with one: `racebank --accounts {}`",
                ids.len()
            );
        }
        if !status.is_success() {
            bail!("POST {url} answered {status}: {}", excerpt(&body));
        }
        Ok(serde_json::from_slice(&body).ok())
    }

    /// Every balance and its id, in the bank's order.
    pub(crate) async fn accounts(&self) -> Result<Vec<(String, i64)>, ReadFailure> {
        let url = self
            .target
            .url_of(paths::ACCOUNTS)
            .map_err(|error| ReadFailure::Gone(error.to_string()))?;
        let request = self
            .request(reqwest::Method::GET, paths::ACCOUNTS)
            .map_err(|error| ReadFailure::Gone(error.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|error| ReadFailure::Gone(format!("{:#}", self.unreachable(&url, &error))))?;
        let status = response.status();
        let body = self
            .body(&url, response)
            .await
            .map_err(|error| ReadFailure::Gone(format!("{error:#}")))?;
        if !status.is_success() {
            return Err(ReadFailure::Unreadable(format!(
                "GET {url} answered {status}: {}",
                excerpt(&body)
            )));
        }
        let read: AccountsBody = serde_json::from_slice(&body).map_err(|_| {
            ReadFailure::Unreadable(format!(
                "GET {url} answered no balances: {}",
                excerpt(&body)
            ))
        })?;
        Ok(read
            .accounts
            .into_iter()
            .map(|account| (account.id, account.balance))
            .collect())
    }

    /// The bank's part of `/stats`, or `None` when there is none (any failure counts as none).
    pub(crate) async fn stats(&self) -> Option<BankStats> {
        let response = self
            .request(reqwest::Method::GET, racebank::wire::paths::STATS)
            .ok()?
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = read_capped(response, MAX_BANK_BODY).await.ok()?;
        let stats: racebank::wire::Stats = serde_json::from_slice(&bytes).ok()?;
        stats.bank
    }

    async fn body(
        &self,
        url: &reqwest::Url,
        response: reqwest::Response,
    ) -> anyhow::Result<Vec<u8>> {
        match read_capped(response, MAX_BANK_BODY).await {
            Ok(body) => Ok(body),
            Err(Unread::TooLarge) => {
                bail!(
                    "{url} answered a body larger than {} KiB",
                    MAX_BANK_BODY / 1024
                )
            }
            Err(Unread::Broken(error)) if error.is_timeout() => {
                bail!("{url}: the answer did not arrive within {:?}", self.timeout)
            }
            Err(Unread::Broken(error)) => {
                bail!("{url}: the answer broke off: {}", error_chain(&error))
            }
        }
    }

    fn unreachable(&self, url: &reqwest::Url, error: &reqwest::Error) -> anyhow::Error {
        let origin = url.origin().ascii_serialization();
        if error.is_connect() {
            anyhow::anyhow!(
                "no server answers at {origin} ({}); start one with a bank: `racebank --accounts 8`",
                root_cause(error)
            )
        } else if error.is_timeout() {
            anyhow::anyhow!("{url} did not answer within {:?}", self.timeout)
        } else {
            anyhow::anyhow!("{url} failed: {}", error_chain(error))
        }
    }
}
