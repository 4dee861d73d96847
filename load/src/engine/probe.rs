//! Reading the account around a run: the balance (required) and racebank's `/stats` (optional).
//!
//! These reads use their own client, with `--timeout` like every request: a server that hangs is
//! given up on as soon as the load's requests would be. Their answers are read up to
//! [`MAX_BODY`], like the load's, so a server cannot exhaust the client's memory. Their failures
//! are what a new user meets first (no server, wrong credentials, wrong route), so each is said in
//! one line.

use std::time::Duration;

use anyhow::{bail, Context};
use racebank::wire::paths;

use crate::engine::connection::MAX_BODY;
use crate::plan::api::Api;
use crate::plan::target::Target;

/// Reads the balance and `/stats` of one replica.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    client: reqwest::Client,
    target: Target,
    api: Api,
    timeout: Duration,
}

impl Probe {
    /// A probe of `target`, sending `api`'s headers, giving up on each read after `timeout`.
    pub(crate) fn new(target: &Target, api: &Api, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .timeout(timeout)
            .redirect(redirects(api.follow_redirects))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Probe {
            client,
            target: target.clone(),
            api: api.clone(),
            timeout,
        })
    }

    fn get(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url);
        for header in &self.api.headers {
            request = request.header(header.name.clone(), header.value.clone());
        }
        request
    }

    /// The balance, read with `--balance` at `--balance-pointer`. When no server answers, the
    /// error says how to start one.
    pub(crate) async fn balance(&self) -> anyhow::Result<i64> {
        self.read_balance(true).await
    }

    /// The balance after a run: the same read, but a server that stopped answering is no
    /// beginner's mistake, so the error gives no hint about starting one.
    pub(crate) async fn balance_after(&self) -> anyhow::Result<i64> {
        self.read_balance(false).await
    }

    async fn read_balance(&self, hint: bool) -> anyhow::Result<i64> {
        let route = &self.api.balance;
        let url = self.target.url_of(&route.path)?;
        let response = self
            .get(route.method.clone(), url.clone())
            .send()
            .await
            .map_err(|error| self.unreachable(&url, &error, hint))?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => {}
            401 if self.sends_credentials() => bail!(
                "{} {url} answered 401 Unauthorized: the server refused the credentials given with -H",
                route.method
            ),
            401 => bail!(
                "{} {url} answered 401 Unauthorized: the server wants credentials; pass them with -H 'Authorization: Bearer TOKEN'",
                route.method
            ),
            403 => bail!(
                "{} {url} answered 403 Forbidden: the server refused the credentials given with -H",
                route.method
            ),
            404 => bail!(
                "{} {url} answered 404 Not Found: is the balance route right (--balance, --account)?",
                route.method
            ),
            300..=399 => bail!(
                "{} {url} answered {status}{}",
                route.method,
                self.not_followed(&response)
            ),
            _ => bail!(
                "{} {url} answered {status}, not 2xx with the balance",
                route.method
            ),
        }
        let bytes = match read_capped(response, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(Unread::TooLarge) => {
                return Err(Unreadable(format!(
                    "{} {url} answered a body larger than {} KiB; a balance is a few bytes",
                    route.method,
                    MAX_BODY / 1024
                ))
                .into())
            }
            Err(Unread::Broken(error)) if error.is_timeout() => {
                bail!("{url}: the answer did not arrive within {:?}", self.timeout)
            }
            Err(Unread::Broken(error)) => {
                bail!("{url}: the answer broke off: {}", error_chain(&error))
            }
        };
        match self.api.pointer.read(&bytes) {
            Some(balance) => Ok(balance),
            None => Err(Unreadable(format!(
                "{} {url} answered no whole-number balance at {}: {}; set --balance-pointer",
                route.method,
                self.api.pointer,
                excerpt(&bytes)
            ))
            .into()),
        }
    }

    /// Where a redirect that was not followed leads, and why it was not.
    fn not_followed(&self, response: &reqwest::Response) -> String {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|location| String::from_utf8_lossy(location.as_bytes()).to_string());
        let to = location.map_or_else(String::new, |location| format!(" to {location}"));
        if self.api.follow_redirects {
            format!(
                "{to}: a redirect to another origin is never followed (the -H headers would go there)"
            )
        } else {
            format!(
                "{to}: redirects are not followed; --follow-redirects follows those to the same origin"
            )
        }
    }

    fn sends_credentials(&self) -> bool {
        self.api
            .headers
            .iter()
            .any(|header| header.name == reqwest::header::AUTHORIZATION)
    }

    /// racebank's `/stats` (read up to [`BOOKS_BODY`]: a server with a bank lists every account
    /// there), or `None` when the API is not racebank's or the server has none
    /// (any failure counts as none).
    pub(crate) async fn stats(&self) -> Option<ServerStats> {
        if !self.api.is_racebank() {
            return None;
        }
        let url = self.target.url_of(paths::STATS).ok()?;
        let response = self.get(reqwest::Method::GET, url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = read_capped(response, BOOKS_BODY).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The one line that says why `url` could not be reached.
    fn unreachable(&self, url: &reqwest::Url, error: &reqwest::Error, hint: bool) -> anyhow::Error {
        let origin = url.origin().ascii_serialization();
        if error.is_connect() && hint {
            anyhow::anyhow!(
                "no server answers at {origin} ({}); start one with `racebank` (cargo run --release), or see the race without one: `racebank-load demo`",
                root_cause(error)
            )
        } else if error.is_connect() {
            anyhow::anyhow!("no server answers at {origin} ({})", root_cause(error))
        } else if error.is_timeout() {
            anyhow::anyhow!("{url} did not answer within {:?}", self.timeout)
        } else {
            anyhow::anyhow!("{url} failed: {}", error_chain(error))
        }
    }
}

/// The balance read was answered, 2xx, with something that is no balance (not a whole number,
/// past any 64-bit balance, or a body far too long): the server broke the protocol, it did not
/// stop answering.
#[derive(Debug)]
pub(crate) struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

/// The probe's redirect policy: none followed, or (`--follow-redirects`) those to the origin of
/// the first request, at most 10.
pub(crate) fn redirects(follow: bool) -> reqwest::redirect::Policy {
    if !follow {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(reqwest::Url::origin);
        if attempt.previous().len() > 10 || first != Some(attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Why an answer's body was not read.
pub(crate) enum Unread {
    /// Longer than [`MAX_BODY`]: the rest was not read, and the connection is dropped with the
    /// response.
    TooLarge,
    /// It broke off or timed out.
    Broken(reqwest::Error),
}

/// The largest answer that can carry a bank's books (`/stats`, a bank reset): they list every
/// account, about 200 bytes each, up to 1000; this is five times that.
pub(crate) const BOOKS_BODY: usize = 1024 * 1024;

/// The whole body of `response`, read chunk by chunk so that no more than [`MAX_BODY`] bytes are
/// ever held, whatever `Content-Length` claims.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, Unread> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(Unread::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Unread::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(Unread::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The innermost cause, which for a refused connection is the OS's "Connection refused".
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    // "Connection refused (os error 111)" reads better without the number.
    match text.split_once(" (os error") {
        Some((message, _)) => message.to_lowercase(),
        None => text,
    }
}

/// The first bytes of a body, on one line.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    let text = text.replace(['\n', '\r'], " ");
    if bytes.len() > 120 {
        format!("{text}...")
    } else if text.is_empty() {
        "an empty body".to_string()
    } else {
        text
    }
}

/// An error with its causes on one line (reqwest's own message is often just "error sending
/// request").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

/// The subset of the server's `/stats` ([`racebank::wire::Stats`]) that the cross-check reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ServerStats {
    /// The balance now.
    pub balance: i64,
    /// Sum of acknowledged deposits since start or reset.
    pub deposit_sum: i128,
    /// Sum of acknowledged withdrawals since start or reset.
    pub withdrawal_sum: i128,
    /// The balance if nothing had been lost.
    pub expected_balance: i128,
    /// Writes that replaced a balance other than the one they read.
    pub lost_updates: u64,
    /// The signed total of the changes those writes erased.
    pub lost_net: i128,
    /// Erasures that removed money, summed.
    #[serde(default)]
    pub lost_removed: i128,
    /// Erasures that added money, summed.
    #[serde(default)]
    pub lost_added: i128,
    /// Optimistic conflicts redone.
    #[serde(default)]
    pub retries: u64,
}
