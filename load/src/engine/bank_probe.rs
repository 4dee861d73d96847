//! The reads and writes around a bank run: open the bank (`POST /bank/reset` with the opening
//! balances), read every balance (`GET /accounts`), and the bank's part of `/stats`.
//!
//! Like [`crate::engine::probe`], these use their own client with `--timeout`, read at most
//! [`BOOKS_BODY`] (the bank's books list every account, about 200 bytes each, up to 1000), and
//! say each failure in one line.

use std::time::Duration;

use anyhow::{bail, Context};
use racebank::wire::bank::BankStats;

use crate::engine::probe::{error_chain, excerpt, read_capped, root_cause, Unread, BOOKS_BODY};
use crate::plan::api::Header;
use crate::plan::bank_api::BankApi;
use crate::plan::target::Target;

/// Opens, reads and checks the bank of one server.
#[derive(Debug, Clone)]
pub(crate) struct BankProbe {
    client: reqwest::Client,
    target: Target,
    headers: Vec<Header>,
    api: BankApi,
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
        (headers, api): (&[Header], &BankApi),
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
            api: api.clone(),
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

    /// Opens the bank: `POST /bank/reset` naming every opening balance (or the set-up of
    /// `--setup`, once or once per account); with `None`, a reset without a body, to the server's
    /// own opening balances (`--server-openings`). Returns racebank's bank stats right after, the
    /// baseline of the cross-check.
    pub(crate) async fn reset(
        &self,
        ids: &[String],
        openings: Option<&[i64]>,
    ) -> anyhow::Result<Option<BankStats>> {
        let method = self.api.setup.route.method.clone();
        let requests = match openings {
            Some(openings) => self.api.setup_requests(ids, openings),
            None => vec![(
                racebank::wire::bank::paths::RESET.to_string(),
                String::new(),
            )],
        };
        let mut last = Vec::new();
        for (path, body) in requests {
            let url = self.target.url_of(&path)?;
            let mut request = self.request(method.clone(), &path)?;
            let declared = (self.headers.iter()).any(|h| h.name == reqwest::header::CONTENT_TYPE);
            // racebank's reset wants a JSON content type even without a body.
            if !declared && (!body.is_empty() || openings.is_none()) {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
            if !body.is_empty() {
                request = request.body(body);
            }
            let response = request
                .send()
                .await
                .map_err(|error| self.unreachable(&url, &error))?;
            let status = response.status();
            last = self.body(&url, response).await?;
            if status.as_u16() == 404 && self.api.racebank {
                bail!(
                    "{method} {url} answered 404: this server has no bank; start it with one: `racebank --accounts {}`",
                    ids.len()
                );
            }
            if !status.is_success() {
                bail!("{method} {url} answered {status}: {}", excerpt(&last));
            }
        }
        Ok(self
            .api
            .racebank
            .then(|| serde_json::from_slice(&last).ok())
            .flatten())
    }

    /// Every balance and its id, in the bank's order.
    pub(crate) async fn accounts(&self) -> Result<Vec<(String, i64)>, ReadFailure> {
        let path = self.api.read.fixed().unwrap_or_default();
        let url = self
            .target
            .url_of(&path)
            .map_err(|error| ReadFailure::Gone(error.to_string()))?;
        let request = self
            .request(self.api.read.method.clone(), &path)
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
        self.api.read_all(&body).ok_or_else(|| {
            ReadFailure::Unreadable(format!(
                "{} {url} answered no balances where the pointers say: {}",
                self.api.read.method,
                excerpt(&body)
            ))
        })
    }

    /// Every balance and its id right after opening the bank; a failure to read them is one
    /// error line.
    pub(crate) async fn opened(&self) -> anyhow::Result<Vec<(String, i64)>> {
        self.accounts().await.map_err(|failure| match failure {
            ReadFailure::Gone(reason) | ReadFailure::Unreadable(reason) => {
                anyhow::anyhow!("cannot read the bank after opening it: {reason}")
            }
        })
    }

    /// Makes sure every replica of `targets` but the first (this probe's) answers `held`, the
    /// balances this probe just read after the reset: replicas share a bank only through a
    /// store, and ones that keep their own (in memory) would make every read, and the final
    /// balances, a mix of several banks.
    pub(crate) async fn shared_by(
        &self,
        targets: &[Target],
        held: &[(String, i64)],
    ) -> anyhow::Result<()> {
        let mut first = held.to_vec();
        first.sort();
        for (replica, target) in targets.iter().enumerate().skip(1) {
            let probe = BankProbe {
                target: target.clone(),
                ..self.clone()
            };
            let mut theirs = probe.accounts().await.map_err(|failure| match failure {
                ReadFailure::Gone(reason) | ReadFailure::Unreadable(reason) => {
                    anyhow::anyhow!("cannot read the bank of replica {}: {reason}", replica + 1)
                }
            })?;
            theirs.sort();
            anyhow::ensure!(
                theirs == first,
                "replica {} ({}) does not hold the bank {} was just opened with: replicas must share one bank, in a store (`racebank --store postgres` or `redis`, the same --account on each)",
                replica + 1,
                target.url,
                self.target.url,
            );
        }
        Ok(())
    }

    /// The bank's part of `/stats`, or `None` when there is none (any failure counts as none).
    pub(crate) async fn stats(&self) -> Option<BankStats> {
        if !self.api.racebank {
            return None;
        }
        let response = self
            .request(reqwest::Method::GET, racebank::wire::paths::STATS)
            .ok()?
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = read_capped(response, BOOKS_BODY).await.ok()?;
        let stats: racebank::wire::Stats = serde_json::from_slice(&bytes).ok()?;
        stats.bank
    }

    async fn body(
        &self,
        url: &reqwest::Url,
        response: reqwest::Response,
    ) -> anyhow::Result<Vec<u8>> {
        match read_capped(response, BOOKS_BODY).await {
            Ok(body) => Ok(body),
            Err(Unread::TooLarge) => {
                bail!(
                    "{url} answered a body larger than {} KiB",
                    BOOKS_BODY / 1024
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
