//! The in-process servers of `demo`, `demo --scenario retries` and `sweep`: `racebank::serve` on
//! `127.0.0.1:0`, once per replica, described by a [`ServerSpec`] and stopped through [`Server`].
//!
//! The one place that knows how to start the server crate in this process, so that every command
//! that needs a fresh server per row or point gets the same one.

use std::time::Duration;

use anyhow::Context;
use racebank::Chaos;
use racebank::{AccountConfig, AccountId, Config, Mode, ServerConfig, StoreConfig, WorkSpec};
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One account for the whole demo, reset before every row: rows never inherit a balance, and a
/// second demo on the same database (a test running beside this one) never meets this one.
pub(crate) fn demo_account() -> anyhow::Result<AccountId> {
    format!("demo-{}-{}", std::process::id(), unique())
        .parse()
        .map_err(anyhow::Error::msg)
}

/// A number that differs between two demos started in the same process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    (u64::from(nanos) << 16) + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How one row's server runs.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Where the balance lives.
    pub store: StoreConfig,
    /// The account in the store (replicas share it).
    pub account: AccountId,
    /// How many servers share the account.
    pub replicas: usize,
    /// The strategy.
    pub mode: Mode,
    /// The work between read and write.
    pub work: WorkSpec,
    /// How long a Redis lease lasts.
    pub lease: Duration,
    /// The balance the row starts from.
    pub initial_balance: i64,
    /// Faults the servers inject (`--chaos`); none but in the retries scenario.
    pub chaos: Chaos,
}

impl ServerSpec {
    /// One in-memory server in `mode` doing `work`, starting from `initial_balance`.
    pub fn memory(mode: Mode, work: WorkSpec, initial_balance: i64) -> Self {
        Self {
            store: StoreConfig::Memory,
            account: AccountId::default(),
            replicas: 1,
            mode,
            work,
            lease: AccountConfig::default().lease,
            initial_balance,
            chaos: Chaos::default(),
        }
    }
}

/// A server started for one row: where it answers, and how to stop it.
pub(crate) struct Server {
    /// Its URLs (one per replica), in the order the load spreads over them.
    pub urls: Vec<Url>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<racebank::Stats, racebank::ServeError>>>,
}

impl Server {
    /// Stops every replica and waits for each to finish.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await
                .context("the server task stopped unexpectedly")?
                .context("the server failed")?;
        }
        Ok(())
    }
}

/// Starts the servers of one row, the one place that knows how: `racebank::serve` in this
/// process on `127.0.0.1:0`, once per replica, each opening its own account object (its own guard,
/// work and connections) on the shared store. A shared account is then reset to the row's opening
/// balance, for every replica at once.
pub(crate) async fn start_server(spec: &ServerSpec) -> anyhow::Result<Server> {
    start_with_bank(spec, None).await
}

/// [`start_server`], with a bank of many accounts beside the account (`racebank --accounts`).
pub(crate) async fn start_with_bank(
    spec: &ServerSpec,
    bank: Option<racebank::BankSpec>,
) -> anyhow::Result<Server> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut urls = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..spec.replicas.max(1) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a loopback port for the server")?;
        let addr = listener
            .local_addr()
            .context("cannot read the server's port")?;
        let config = Config {
            account: AccountConfig {
                store: spec.store.clone(),
                id: spec.account.clone(),
                mode: spec.mode,
                work: spec.work,
                initial_balance: spec.initial_balance,
                lease: spec.lease,
                bank: bank.clone(),
                ..AccountConfig::default()
            },
            server: ServerConfig {
                chaos: spec.chaos,
                ..ServerConfig::default()
            },
        };
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(racebank::serve(
            listener,
            config,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        )));
        urls.push(
            format!("http://{addr}")
                .parse()
                .context("cannot form the server's URL")?,
        );
    }
    let mut server = Server { urls, stop, tasks };
    if spec.store != StoreConfig::Memory {
        // A server that cannot open its store ends at once with the reason (store, URL, cause,
        // what to do): report that, not a timeout waiting for an answer that never comes.
        let url = server.urls[0].clone();
        let outcome = tokio::select! {
            outcome = reset(&url, spec.initial_balance) => outcome,
            error = first_failure(&mut server.tasks) => Err(error),
        };
        if let Err(error) = outcome {
            let _ = server.stop().await;
            return Err(error);
        }
    }
    Ok(server)
}

/// The error of the first server task to end; pending while every one runs (they run until told
/// to stop, so one that ends now could not start).
async fn first_failure(
    tasks: &mut Vec<JoinHandle<Result<racebank::Stats, racebank::ServeError>>>,
) -> anyhow::Error {
    loop {
        // Taken out of the list: a task awaited here must not be awaited again by `stop`.
        if let Some(ended) = tasks.iter().position(JoinHandle::is_finished) {
            return match tasks.swap_remove(ended).await {
                Ok(Err(error)) => {
                    anyhow::Error::new(error).context("the in-process server could not start")
                }
                Ok(Ok(_)) => anyhow::anyhow!("the in-process server stopped before it answered"),
                Err(error) => anyhow::Error::new(error).context("the in-process server panicked"),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST /reset {"balance": N}`, once the server answers.
async fn reset(url: &Url, balance: i64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let reset = url.join(racebank::wire::paths::RESET)?;
    // The servers open their store before they answer; give them a moment.
    let mut last_error = None;
    for _ in 0..100 {
        match client
            .post(reset.clone())
            .json(&racebank::wire::ResetBody { balance })
            .send()
            .await
        {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) => {
                anyhow::bail!(
                    "resetting the demo account failed: {} {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                )
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(anyhow::anyhow!(
        "the demo's server never answered at {url}: {}",
        last_error.map_or_else(String::new, |e| e.to_string())
    ))
}
