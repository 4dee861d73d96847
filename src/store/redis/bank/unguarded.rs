//! Unguarded: `MGET` what the move reads; work; the blind writes. The race, across every replica.
//!
//! Two transfers that share an account both read its balance and both write a balance computed
//! from it: the second erases the first, and the bank's total moves by the amount erased. The
//! write script's `SET ... GET` is how each write learns what it replaced, so the ledger says
//! exactly how much money that created or destroyed. `mutex`, `semaphore:N` and `account-locks`
//! run this same section inside their in-process guard, which sees only its own replica; `lease`
//! runs it under its leases.

use redis::AsyncCommands;

use super::Section;
use crate::domain::error::AccountError;
use crate::store::redis::unavailable;

pub(super) async fn apply(section: &Section<'_>) -> Result<Vec<i64>, AccountError> {
    let reads = section.mv.reads(section.spec);
    let balances: Vec<Option<i64>> = section
        .bank
        .connection
        .clone()
        .mget(section.keys(&reads))
        .await
        .map_err(unavailable)?;
    let read = section.pair(&reads, balances)?;
    let written = section.settle(&read).await?;
    section.work.run().await?;
    section.write(&read, &written).await
}
