//! `racebank-load demo --scenario retries`: lost acknowledgements, and what retrying does about
//! them, side by side.
//!
//! One server with `--chaos drop-after-apply` ([`CHAOS`]): a share of the deposits are applied and
//! then answered with a dropped connection. The same deposits are sent three times, each to a
//! fresh server:
//!
//! 1. without retrying: every dropped answer is a deposit the client cannot place, so the expected
//!    balance is a range (Jepsen's indeterminate operations), and the client may believe money
//!    lost that was in fact kept;
//! 2. retrying without idempotency keys: every retry of an applied deposit pays it twice, and the
//!    verdict catches the money that appeared;
//! 3. retrying with keys: the retry replays the kept answer, every deposit is placed exactly once
//!    and the expected balance is a single number again.

use anyhow::Context;
use racebank::Mode;

use crate::commands::demo::Demo;
use crate::commands::servers::{demo_account, start_server, ServerSpec};
use crate::output::retries::RetryRow;
use crate::plan::load::{Limit, Load};
use crate::plan::ops::AmountSpec;
use crate::plan::scenario::{CHAOS, RETRIES, RETRY_AMOUNT, RETRY_REQUESTS};

/// Runs the three rows against fresh servers of `opts`' store, in the first of `--modes` (atomic
/// by default).
pub async fn retries_demo(opts: &Demo) -> anyhow::Result<Vec<RetryRow>> {
    let mode = opts
        .modes
        .as_ref()
        .and_then(|modes| modes.first().copied())
        .unwrap_or(Mode::Atomic);
    let spec = ServerSpec {
        store: opts.store.clone(),
        account: demo_account()?,
        replicas: 1,
        mode,
        work: opts.work,
        lease: opts.lease,
        initial_balance: 0,
        chaos: CHAOS,
    };
    let mut rows = Vec::new();
    for (client, retry, keys) in [
        ("no retry", 0, false),
        ("retry without keys", RETRIES, false),
        ("retry with keys", RETRIES, true),
    ] {
        let server = start_server(&spec).await?;
        let mut load = Load::new(server.urls[0].clone());
        load.concurrency = opts.concurrency;
        load.limit = Limit::Count(opts.requests.unwrap_or(RETRY_REQUESTS));
        load.amount = AmountSpec {
            min: RETRY_AMOUNT,
            max: RETRY_AMOUNT,
        };
        load.retries = retry;
        load.idempotency_keys = keys;
        let report = crate::commands::run::run(load).await;
        server.stop().await?;
        let report = report.with_context(|| format!("the `{client}` row failed"))?;
        // The demo's own server never stops mid-run unless something is badly wrong.
        let summary = report.summary;
        if summary.final_balance.is_none() || summary.lost_amount.is_none() {
            anyhow::bail!(
                "the `{client}` row: the server stopped answering: {}",
                summary.server_lost.as_deref().unwrap_or("no reason given")
            );
        }
        rows.push(RetryRow {
            client: client.to_string(),
            retry,
            idempotency_keys: keys && retry > 0,
            summary,
        });
    }
    Ok(rows)
}
