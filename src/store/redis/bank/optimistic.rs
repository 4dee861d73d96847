//! Optimistic: `WATCH` every balance the move reads; `MGET` them; work; `MULTI`; the write script;
//! `EXEC`. If another client wrote any of them after the `WATCH`, `EXEC` answers nil, nothing is
//! written, and the section is redone from a fresh read, up to `--max-retries` times, then 503.
//!
//! Watching the whole read set, not only the balances written, is what stops write skew: two
//! withdrawals from one household each watch the other's balance, so the second `EXEC` fails and
//! its redo sees the household's new total.
//!
//! As for the single account: a dedicated connection per request ([`Dedicated`]), and the script
//! sent with `EVAL` and its source inside `MULTI`, where a missing script could not be loaded.

use redis::aio::MultiplexedConnection;

use super::{scripts, Section};
use crate::domain::error::AccountError;
use crate::store::redis::dedicated::Dedicated;
use crate::store::redis::{after_write, unavailable};

pub(super) async fn apply(
    section: &Section<'_>,
    connections: &Dedicated,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    let mut taken = connections.take(section.work).await?;
    let mut retries = 0;
    let outcome = loop {
        match attempt(section, taken.connection()).await {
            Ok(Some(written)) => break Ok(written),
            Ok(None) if retries == max_retries => break Err(AccountError::Contention { retries }),
            Ok(None) => retries += 1,
            Err(error) => break Err(error),
        }
    };
    match &outcome {
        // `EXEC` (or `UNWATCH` after a refusal) left the connection watching nothing.
        Ok(_) | Err(AccountError::Refused(_) | AccountError::Contention { .. }) => {
            taken.give_back();
        }
        // Stopped mid-section or failed: the connection may still watch; let it close.
        Err(_) => drop(taken),
    }
    if retries > 0 {
        section.bank.count("retries", u64::from(retries)).await;
    }
    if matches!(outcome, Err(AccountError::Contention { .. })) {
        section.bank.count("retries_exhausted", 1).await;
    }
    outcome
}

/// One try: the balances written, or `None` when `EXEC` found a watched balance changed.
async fn attempt(
    section: &Section<'_>,
    connection: &mut MultiplexedConnection,
) -> Result<Option<Vec<i64>>, AccountError> {
    let reads = section.mv.reads(section.spec);
    let keys = section.keys(&reads);
    let ((), balances): ((), Vec<Option<i64>>) = redis::pipe()
        .cmd("WATCH")
        .arg(&keys)
        .cmd("MGET")
        .arg(&keys)
        .query_async(connection)
        .await
        .map_err(unavailable)?;
    let read = section.pair(&reads, balances)?;
    let written = match section.settle(&read).await {
        Ok(written) => written,
        Err(error) => {
            let _: () = redis::cmd("UNWATCH")
                .query_async(connection)
                .await
                .map_err(unavailable)?;
            return Err(error);
        }
    };
    section.work.run().await?;
    let (keys, args) = section.write_args(&read, &written);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("EVAL")
        .arg(scripts::WRITE_SOURCE.as_str())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    // nil from EXEC: a watched balance changed, and nothing was written.
    let replaced: Option<(Vec<i64>,)> = pipe.query_async(connection).await.map_err(after_write)?;
    Ok(replaced.map(|_| written.iter().map(|&(_, balance)| balance).collect()))
}
