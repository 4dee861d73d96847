//! One round of `bank --scenario write-skew|double-spend`: every withdrawal of the round sent at
//! once (each on its own connection, released together by a barrier; withdrawal `i` to replica
//! `i % n`), and what each answer says.
//! The engine judges nothing; [`crate::check::bank_rounds`] does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use racebank::wire::bank::paths;
use racebank::wire::{AmountBody, BalanceBody, Effect, ProblemType};
use serde::Serialize;
use tokio::sync::Barrier;

use crate::plan::api::Header;
use crate::plan::target::Target;

/// What the answer to one withdrawal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// 2xx with the balance written.
    Applied {
        /// The account's balance after the withdrawal, as the answer gives it.
        balance: i64,
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
}

impl RoundSender {
    /// A sender to `targets` (at least one), giving up on each request after `timeout`.
    pub(crate) fn new(
        targets: &[Target],
        headers: &[Header],
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
            let target = &self.targets[i % self.targets.len()];
            let url = target.url_of(&paths::account(account, "withdraw"))?;
            let mut request = self.client.post(url).json(&AmountBody { amount: *amount });
            for header in &self.headers {
                request = request.header(header.name.clone(), header.value.clone());
            }
            let barrier = barrier.clone();
            let (account, amount) = (account.clone(), *amount);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let (status, outcome) = classify(request.send().await).await;
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
}

/// What one answer says, as `bank`'s engine classifies a transfer.
async fn classify(sent: reqwest::Result<reqwest::Response>) -> (Option<u16>, Outcome) {
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
        return match serde_json::from_slice::<BalanceBody>(&body) {
            Ok(answer) => (
                code,
                Outcome::Applied {
                    balance: answer.balance,
                },
            ),
            // Applied, but the answer does not say the balance: the check cannot use it.
            Err(_) => (code, Outcome::Unknown),
        };
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
