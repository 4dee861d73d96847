//! Optimistic: `WATCH balance`; `GET`; work; `MULTI`; the write; `EXEC`. If another client wrote
//! the balance after the `WATCH`, `EXEC` answers nil, nothing is written, and the section is redone
//! from a fresh read, up to `--max-retries` times, then 503.
//!
//! `WATCH` needs a connection of its own ([`super::dedicated`]). The write inside `MULTI` is the
//! same overwrite script as the unguarded one, sent with `EVAL` and its source rather than
//! `EVALSHA`: inside `MULTI` a missing script (Redis restarted, `SCRIPT FLUSH`) could not be loaded
//! and retried. Since `EXEC` only runs when the balance is untouched, the script always finds the
//! balance it read, and the ledger records no loss; it is asked anyway, so a bug would show there.

use redis::aio::MultiplexedConnection;

use super::dedicated::Dedicated;
use super::guard::Guarded;
use super::{after_write, kind_and_amount, scripts, unavailable, Section};
use crate::domain::error::AccountError;

pub(super) async fn apply(
    section: Section<'_>,
    connections: &Dedicated,
    max_retries: u32,
) -> Result<i64, AccountError> {
    let mut taken = connections.take(section.work).await?;
    let mut retries = 0;
    let outcome = loop {
        match attempt(&section, taken.connection()).await {
            Ok(Attempt::Written(balance)) => break Ok(balance),
            Ok(Attempt::Conflict) if retries == max_retries => {
                break Err(AccountError::Contention { retries })
            }
            Ok(Attempt::Conflict) => retries += 1,
            Err(error) => break Err(error),
        }
    };
    match &outcome {
        // `EXEC` (or `UNWATCH` after a refusal) left the connection watching nothing.
        Ok(_)
        | Err(
            AccountError::Refused(_) | AccountError::Contention { .. } | AccountError::KeyInUse,
        ) => taken.give_back(),
        // Stopped mid-section or failed: the connection may still watch; let it close.
        Err(_) => drop(taken),
    }
    let gave_up = matches!(outcome, Err(AccountError::Contention { .. }));
    if retries > 0 || gave_up {
        let mut ledger = redis::pipe();
        ledger
            .hincr(&section.keys.ledger, "retries", retries)
            .hincr(
                &section.keys.ledger,
                "retries_exhausted",
                u32::from(gave_up),
            );
        let counted: Result<(), _> = ledger.query_async(&mut section.connection.clone()).await;
        if let Err(error) = counted {
            tracing::warn!(%error, "could not count retries in the Redis ledger");
        }
    }
    outcome
}

enum Attempt {
    Written(i64),
    Conflict,
}

async fn attempt(
    section: &Section<'_>,
    connection: &mut MultiplexedConnection,
) -> Result<Attempt, AccountError> {
    let keys = section.keys;
    let ((), read): ((), Option<i64>) = redis::pipe()
        .cmd("WATCH")
        .arg(&keys.balance)
        .get(&keys.balance)
        .query_async(connection)
        .await
        .map_err(unavailable)?;
    let read = read.ok_or_else(|| super::missing(keys))?;
    let new_balance = match section.op.apply_to(read) {
        Ok(balance) => balance,
        Err(refusal) => {
            let _: () = redis::cmd("UNWATCH")
                .query_async(connection)
                .await
                .map_err(unavailable)?;
            return Err(refusal.into());
        }
    };
    section.work.run().await?;
    let (kind, amount) = kind_and_amount(section.op);
    let mut pipe = redis::pipe();
    let eval = pipe
        .atomic()
        .cmd("EVAL")
        .arg(scripts::OVERWRITE_SOURCE.as_str());
    // The guard's three keys first ([`super::guard`]), then the script's own.
    match &section.claim {
        None => eval.arg(5),
        Some(_) => eval.arg(7),
    };
    eval.arg(&keys.writes)
        .arg(&keys.generation)
        .arg(&keys.halted);
    match &section.claim {
        None => eval.arg(&keys.balance).arg(&keys.ledger),
        Some((key, _)) => eval
            .arg(&keys.balance)
            .arg(&keys.ledger)
            .arg(key)
            .arg(&keys.generation),
    };
    let mark = section.watermark.get();
    eval.arg(mark.generation)
        .arg(mark.writes)
        .arg(new_balance)
        .arg(read)
        .arg(-read)
        .arg(kind)
        .arg(amount);
    if let Some((_, ttl)) = &section.claim {
        eval.arg(ttl);
    }
    // nil from EXEC: a conflict; nil from the script: the idempotency key was answered meanwhile.
    let written: Option<(Guarded<Option<i64>>,)> =
        pipe.query_async(connection).await.map_err(after_write)?;
    let Some((written,)) = written else {
        return Ok(Attempt::Conflict);
    };
    match written.open(section.watermark, keys)? {
        Some(_) => Ok(Attempt::Written(new_balance)),
        None => Err(AccountError::KeyInUse),
    }
}
