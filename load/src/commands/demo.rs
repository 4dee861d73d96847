//! `racebank-load demo`: the project's point in one command.
//!
//! For each scenario and each mode, a fresh server is started ([`start_server`]), the same load is
//! sent to it, and the verdicts are laid side by side. A fresh server per row means no row inherits
//! another's guard or pool; with a shared store (`--store postgres|redis`) each row also resets the
//! demo's account first. The race is the expected result here, not a failure: the demo exits 0
//! whenever it ran. The conclusion under each table is written from its rows.
//!
//! With a shared store every mode runs twice, on one replica and on `--replicas N` replicas
//! (in-process servers, each with its own account object, guard and connections, sharing one account
//! in the store): that is where `mutex` is seen to be safe with one replica and to lose with three.

use anyhow::Context;
use std::time::Duration;

use racebank::format_duration;
use racebank::Chaos;
use racebank::StoreKind;
use racebank::{AccountId, Mode, StoreConfig, WorkSpec};

use crate::commands::servers::{demo_account, start_server, ServerSpec};
use crate::output::demo::Row;
use crate::output::report::Report;
use crate::plan::load::{Limit, Load};
use crate::plan::ops::AmountSpec;
use crate::plan::scenario::{Scenario, DEPOSITS, WITHDRAWALS};

/// What `demo` compares, as the command line describes it (`demo` and `demo --scenario retries`).
#[derive(Debug, Clone)]
pub struct Demo {
    /// Requests per mode and scenario; each scenario's default when `None`.
    pub requests: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// The servers' work between reading and writing the balance.
    pub work: WorkSpec,
    /// The modes to compare; every mode the store runs when `None`.
    pub modes: Option<Vec<Mode>>,
    /// Which store the servers keep the account in.
    pub store_kind: StoreKind,
    /// The store itself.
    pub store: StoreConfig,
    /// With a shared store, the replicas of the second run of every mode (the bank demo's only
    /// run); 3 when `None`.
    pub replicas: Option<u64>,
    /// The Redis lease.
    pub lease: Duration,
}

/// The replicas of a shared store's demo when `--replicas` is not given.
pub(crate) const DEFAULT_REPLICAS: u64 = 3;

/// The row of one mode under one scenario.
fn row(scenario: &Scenario, spec: &ServerSpec, report: Report) -> anyhow::Result<Row> {
    // The demo's own server never stops mid-run unless something is badly wrong.
    let summary = report.summary;
    if summary.final_balance.is_none() || summary.lost_amount.is_none() {
        anyhow::bail!(
            "the server stopped answering: {}",
            summary.server_lost.as_deref().unwrap_or("no reason given")
        );
    }
    let leased = spec.mode.takes_lease();
    Ok(Row {
        scenario: scenario.name.to_string(),
        store: spec.store.name().to_string(),
        replicas: spec.replicas,
        mode: spec.mode.to_string(),
        work: spec.work.to_string(),
        lease: leased.then(|| format_duration(spec.lease)),
        pool_size: match spec.store {
            StoreConfig::Postgres { pool_size, .. } => Some(pool_size),
            _ => None,
        },
        safe: spec.mode.is_safe(spec.replicas, spec.work, spec.lease),
        summary,
    })
}

/// Runs both scenarios against every row `plan` lays out for `opts`.
pub async fn demo(opts: Demo) -> anyhow::Result<Vec<Row>> {
    let store = opts.store.clone();
    let account = demo_account()?;
    let replicas = opts.replicas()?;
    let mut rows = Vec::new();
    for scenario in [DEPOSITS, WITHDRAWALS] {
        for spec in plan(&opts, &store, &account, replicas) {
            let report = run_against_fresh_server(&scenario, &spec, &opts)
                .await
                .with_context(|| {
                    format!(
                        "the {} scenario in {} mode on {} replica(s) of the {} store failed",
                        scenario.name,
                        spec.mode,
                        spec.replicas,
                        spec.store.name()
                    )
                })?;
            rows.push(row(&scenario, &spec, report)?);
        }
    }
    Ok(rows)
}

impl Demo {
    /// The replicas of a shared store's second run of every mode (of the bank demo's only run):
    /// `--replicas`, 3 unless told; in memory one, and more is refused, since in-memory replicas
    /// would each keep an account and a bank of their own.
    pub(crate) fn replicas(&self) -> anyhow::Result<usize> {
        match (self.store_kind, self.replicas) {
            (StoreKind::Memory, Some(asked)) if asked > 1 => anyhow::bail!(
                "--replicas {asked} needs a shared store: in-memory replicas would each keep an account and a bank of their own; use --store postgres or --store redis"
            ),
            (StoreKind::Memory, _) => Ok(1),
            (_, asked) => {
                Ok(usize::try_from(asked.unwrap_or(DEFAULT_REPLICAS)).unwrap_or(usize::MAX))
            }
        }
    }
}

/// The rows of one scenario: every mode on one replica, and with a shared store on `--replicas`
/// too; the lease modes once more with a lease shorter than the work, where a lease fails.
fn plan(opts: &Demo, store: &StoreConfig, account: &AccountId, replicas: usize) -> Vec<ServerSpec> {
    let modes = opts
        .modes
        .clone()
        .unwrap_or_else(|| opts.store_kind.showcase());
    let replica_counts = match replicas {
        1 => vec![1],
        replicas => vec![1, replicas],
    };
    let mut specs = Vec::new();
    for replicas in replica_counts {
        for &mode in &modes {
            let spec = ServerSpec {
                store: store.clone(),
                account: account.clone(),
                replicas,
                mode,
                work: opts.work,
                lease: opts.lease,
                initial_balance: 0,
                chaos: Chaos::default(),
            };
            let leased = mode.takes_lease();
            if leased && opts.work.longest() < opts.lease {
                // The same mode where the work outlasts the lease: a holder is still working when
                // its lock expires and the next one gets in.
                specs.push(spec.clone());
                specs.push(ServerSpec {
                    work: WorkSpec::Sleep(OUTLASTING_WORK),
                    lease: OUTLASTING_LEASE,
                    ..spec
                });
            } else {
                specs.push(spec);
            }
        }
    }
    specs
}

/// The work and lease of the rows where the work outlasts the lease.
const OUTLASTING_WORK: Duration = Duration::from_millis(10);
const OUTLASTING_LEASE: Duration = Duration::from_millis(2);

/// Starts the row's servers, sends the scenario's load, stops the servers.
async fn run_against_fresh_server(
    scenario: &Scenario,
    spec: &ServerSpec,
    opts: &Demo,
) -> anyhow::Result<Report> {
    let server = start_server(&ServerSpec {
        initial_balance: scenario.initial_balance,
        ..spec.clone()
    })
    .await?;
    let mut load = Load::new(server.urls[0].clone());
    load.targets = server.urls.clone();
    load.concurrency = opts.concurrency;
    load.limit = Limit::Count(opts.requests.unwrap_or(scenario.default_requests));
    load.withdraw_ratio = scenario.withdraw_ratio;
    load.amount = AmountSpec {
        min: scenario.amount,
        max: scenario.amount,
    };
    let report = crate::commands::run::run(load).await;
    server.stop().await?;
    report
}
