//! One round of `bank --scenario write-skew|double-spend`: every withdrawal of the round sent at
//! once (each on its own connection, released together by a barrier; withdrawal `i` to replica
//! `i % n`), and what each answer says. Each withdrawal is the bank API's (`--withdraw`,
//! `--withdraw-body`, racebank's by default), with the user's headers.
//! The engine judges nothing; [`crate::check::bank_rounds`] does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use racebank::wire::{Effect, ProblemType};
use serde::Serialize;
use tokio::sync::Barrier;

use crate::plan::api::{BalancePointer, Header};
use crate::plan::bank_api::BankApi;
use crate::plan::target::Target;

/// What the answer to one withdrawal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// 2xx: applied.
    Applied {
        /// The account's balance after the withdrawal, as the answer gives it; `None` when the
        /// answer has none where `--withdraw-balance-pointer` points.
        #[serde(skip_serializing_if = "Option::is_none")]
        balance: Option<i64>,
    },
    /// Refused (409, `insufficient-funds` or `household-limit`): not applied.
    Refused,
    /// Not applied for another reason (another 4xx, a 503 that wrote nothing, no connection).
    Rejected,
    /// May or may not have been applied (a timeout, a 5xx that does not say it wrote nothing).
    Unknown,
}

/// One withdrawal of a round and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawal {
    /// The account debited.
    pub account: String,
    /// How much.
    pub amount: i64,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// What the answer says.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long the answer took, in microseconds.
    pub latency_us: u64,
}

/// Sends the withdrawals of a round through one client, round robin over the replicas.
#[derive(Debug, Clone)]
pub(crate) struct RoundSender {
    client: reqwest::Client,
    targets: Vec<Target>,
    headers: Vec<Header>,
    api: BankApi,
}

impl RoundSender {
    /// A sender of `api`'s withdrawals with `headers` to `targets` (at least one), giving up on
    /// each request after `timeout`.
    pub(crate) fn new(
        targets: &[Target],
        (headers, api): (&[Header], &BankApi),
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        Ok(RoundSender {
            client,
            targets: targets.to_vec(),
            headers: headers.to_vec(),
            api: api.clone(),
        })
    }

    /// Sends every withdrawal at once and waits for every answer, in the order given.
    pub(crate) async fn round(
        &self,
        withdrawals: &[(String, i64)],
    ) -> anyhow::Result<Vec<Withdrawal>> {
        let barrier = Arc::new(Barrier::new(withdrawals.len()));
        let mut tasks = Vec::with_capacity(withdrawals.len());
        for (i, (account, amount)) in withdrawals.iter().enumerate() {
            let request = self.request(i, account, *amount)?;
            let barrier = barrier.clone();
            let pointer = self.api.withdrawn_balance.clone();
            let (account, amount) = (account.clone(), *amount);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let (status, outcome) = classify(request.send().await, &pointer).await;
                Withdrawal {
                    account,
                    amount,
                    status,
                    outcome,
                    latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                }
            }));
        }
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(
                task.await
                    .context("a withdrawal's task stopped unexpectedly")?,
            );
        }
        Ok(answers)
    }

    /// Withdrawal `i` of a round: `amount` from `account`, to replica `i % n`.
    fn request(
        &self,
        i: usize,
        account: &str,
        amount: i64,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let (path, body) = self.api.withdrawal(account, amount);
        let url = self.targets[i % self.targets.len()].url_of(&path)?;
        let mut request = (self.client)
            .request(self.api.withdraw.method.clone(), url)
            .body(body);
        if !(self.headers.iter()).any(|h| h.name == reqwest::header::CONTENT_TYPE) {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        for header in &self.headers {
            request = request.header(header.name.clone(), header.value.clone());
        }
        Ok(request)
    }
}

/// What one answer says, as `bank`'s engine classifies a transfer; `pointer` finds the balance
/// in a 2xx answer.
async fn classify(
    sent: reqwest::Result<reqwest::Response>,
    pointer: &BalancePointer,
) -> (Option<u16>, Outcome) {
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_connect() => return (None, Outcome::Rejected),
        Err(_) => return (None, Outcome::Unknown),
    };
    let status = response.status();
    let code = Some(status.as_u16());
    let Ok(body) = response.bytes().await else {
        return (code, Outcome::Unknown);
    };
    if status.is_success() {
        // Applied; an answer that does not say the balance leaves it unknown.
        let balance = pointer.read(&body);
        return (code, Outcome::Applied { balance });
    }
    let effect = ProblemType::of_document(&body).map(ProblemType::effect);
    if status.as_u16() == 409 || effect == Some(Effect::Refused) {
        (code, Outcome::Refused)
    } else if status.is_server_error() && effect != Some(Effect::NotApplied) {
        (code, Outcome::Unknown)
    } else {
        (code, Outcome::Rejected)
    }
}
