//! `racebank-load demo --scenario bank`: every mode the bank runs on the store, each on a fresh
//! in-process server, first under Jepsen's transfers (the same engine as `bank`), then under the
//! write-skew rounds (the same as `bank --scenario write-skew`).
//!
//! One server per mode holds both: accounts `0..8` for the transfers and the household pair
//! `alice+bob` beside them (each run resets the bank to what it needs). With a shared store it is
//! `--replicas` in-process servers sharing one bank (3 unless told), the transfers and reads round
//! robin over them and alice's and bob's withdrawals on two of them: that is where a guard that
//! lives in one process (`mutex`, `semaphore:N`, `account-locks`) is seen to cover one replica
//! only, while the store's own tools hold. In memory each server would keep a bank of its own, so
//! more than one replica is refused.

use anyhow::Context;
use racebank::{AccountId, BankSpec, Chaos, Mode, StoreKind};

use crate::commands::bank::bank;
use crate::commands::bank_rounds::bank_rounds;
use crate::commands::demo::Demo;
use crate::commands::servers::{demo_account, start_with_bank, ServerSpec};
use crate::output::demo_bank::{BankDemo, SkewRow, TransfersRow};
use crate::plan::bank::BankLoad;
use crate::plan::bank_rounds::RoundsLoad;
use crate::plan::load::Limit;

/// Transfers per mode when `-n` is not given.
const DEFAULT_REQUESTS: u64 = 300;
/// Write-skew rounds per mode.
const SKEW_ROUNDS: u64 = 10;
/// The household pair, and the money between them.
const MEMBERS: [&str; 2] = ["alice", "bob"];
const HOUSEHOLD_TOTAL: i64 = 100;

/// The modes the bank runs on `store`, in the demo's order: the store's showcase without the
/// modes that keep one account's fencing token (they have no bank), and `account-locks`.
pub fn bank_modes(store: StoreKind) -> Vec<Mode> {
    let mut modes: Vec<Mode> = store
        .showcase()
        .into_iter()
        .filter(|mode| !matches!(mode, Mode::Fenced | Mode::FencedWriteOnly))
        .collect();
    let after_guards = modes
        .iter()
        .position(|mode| !matches!(mode, Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_)))
        .unwrap_or(modes.len());
    modes.insert(after_guards, Mode::AccountLocks);
    modes
}

/// The bank every row's server opens: accounts `0..8`, and `alice+bob`, a household.
fn demo_bank() -> anyhow::Result<BankSpec> {
    let id = |name: &str| name.parse::<AccountId>().map_err(anyhow::Error::msg);
    let mut accounts: Vec<(AccountId, i64)> = (0..8)
        .map(|n| Ok((id(&n.to_string())?, 0)))
        .collect::<anyhow::Result<_>>()?;
    let members = [id(MEMBERS[0])?, id(MEMBERS[1])?];
    accounts.extend(
        members
            .iter()
            .map(|member| (member.clone(), HOUSEHOLD_TOTAL / 2)),
    );
    BankSpec::new(accounts, &[members.to_vec()]).map_err(anyhow::Error::msg)
}

/// Runs both tables against every mode of the store.
pub async fn bank_demo(opts: &Demo) -> anyhow::Result<BankDemo> {
    let replicas = opts.replicas()?;
    let modes = opts
        .modes
        .clone()
        .unwrap_or_else(|| bank_modes(opts.store_kind));
    let mut demo = BankDemo {
        store: opts.store_kind.name().to_string(),
        replicas,
        work: opts.work.to_string(),
        transfers: Vec::new(),
        write_skew: Vec::new(),
    };
    for mode in modes {
        let (transfers, skew) = one_mode(opts, mode, replicas).await.with_context(|| {
            format!(
                "the bank demo in {mode} mode on {replicas} replica(s) of the {} store failed",
                opts.store_kind
            )
        })?;
        demo.transfers.push(transfers);
        demo.write_skew.push(skew);
    }
    Ok(demo)
}

/// Fresh servers in `mode`: the transfers, then the write-skew rounds, each spread over the
/// replicas.
async fn one_mode(
    opts: &Demo,
    mode: Mode,
    replicas: usize,
) -> anyhow::Result<(TransfersRow, SkewRow)> {
    let spec = ServerSpec {
        store: opts.store.clone(),
        account: demo_account()?,
        replicas,
        mode,
        work: opts.work,
        lease: opts.lease,
        initial_balance: 0,
        chaos: Chaos::default(),
    };
    let server = start_with_bank(&spec, Some(demo_bank()?)).await?;
    let url = server.urls[0].clone();
    let mut load = BankLoad::new(url.clone());
    load.targets.clone_from(&server.urls);
    load.concurrency = opts.concurrency;
    load.limit = Limit::Count(opts.requests.unwrap_or(DEFAULT_REQUESTS));
    let transfers = bank(load).await;
    let mut rounds = RoundsLoad::write_skew(url, MEMBERS.map(str::to_string), HOUSEHOLD_TOTAL);
    rounds.rounds = SKEW_ROUNDS;
    rounds.targets.clone_from(&server.urls);
    let skew = match &transfers {
        Ok(_) => Some(bank_rounds(rounds).await),
        Err(_) => None,
    };
    server.stop().await?;
    let name = mode.to_string();
    let transfers = TransfersRow::new(name.clone(), mode.guards_in_process(), &transfers?);
    let skew = SkewRow::new(
        name,
        mode.guards_in_process(),
        &skew.context("no write-skew run")??,
    );
    Ok((transfers, skew))
}
