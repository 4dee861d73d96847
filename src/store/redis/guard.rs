//! The guard against a Redis that lost acknowledged writes: restarted without persistence (the
//! account vanished) or restored from an older snapshot (the account went back in time).
//!
//! Redis keeps, per account, `writes` (bumped by every write and reset) and `generation` (moved by
//! every reset, never to a value handed out before). Each replica remembers the highest pair it
//! has seen, a [`Watermark`], and sends it with every script that reads or writes the balance; the
//! script ([`super::scripts`]' `GUARD`) refuses before writing anything if the account is missing
//! or below the watermark, and marks it `halted` so that every replica refuses it. Nothing is
//! re-created and nothing is served from the older state: a fencing token handed out again or an
//! idempotency key's lost answer can never be used, because no script runs past the guard. An
//! operator's `/reset` clears the mark and starts a generation no replica has seen.

use std::sync::Mutex;

use redis::{from_redis_value, FromRedisValue, ParsingError, Value};

use super::Keys;
use crate::domain::error::AccountError;

/// What an operator should do about a halted account, for the problem document and the log.
const WHAT_TO_DO: &str = "the writes it had acknowledged since are lost, so this server refuses \
    the account rather than serve or re-create it; check the Redis persistence (appendonly yes; \
    see docs/redis.md), then reset the account (POST /reset) to start again from a balance you \
    choose";

/// The highest (generation, writes) this replica has seen of its account.
#[derive(Debug, Default)]
pub(super) struct Watermark(Mutex<Mark>);

/// An account's place in its history: compared as (generation, writes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Mark {
    pub(super) generation: u64,
    pub(super) writes: u64,
}

impl Watermark {
    /// The highest mark seen so far, for the next script.
    pub(super) fn get(&self) -> Mark {
        *self.lock()
    }

    /// Raises the watermark to `mark` if it is higher. Answers arrive out of order; only the
    /// highest counts.
    pub(super) fn observe(&self, mark: Mark) {
        let mut highest = self.lock();
        *highest = (*highest).max(mark);
    }

    /// Starts again from `mark`: after a reset, which may move the account to a lower write count
    /// in a new generation.
    pub(super) fn restart_at(&self, mark: Mark) {
        *self.lock() = mark;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mark> {
        // Only copies happen under the lock: a poisoned lock still holds a valid mark.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The answer of a guarded script: its own answer and the account's mark, or why it was refused.
#[derive(Debug)]
pub(super) enum Guarded<T> {
    Ok(T, Mark),
    Refused(String),
}

impl<T> Guarded<T> {
    /// The script's answer, having raised `watermark`; or the refusal, logged.
    pub(super) fn open(self, watermark: &Watermark, keys: &Keys) -> Result<T, AccountError> {
        match self {
            Guarded::Ok(answer, mark) => {
                watermark.observe(mark);
                Ok(answer)
            }
            Guarded::Refused(why) => Err(refused(keys, &why)),
        }
    }
}

/// The refusal of an account that lost writes: logged, and the problem's detail.
pub(super) fn refused(keys: &Keys, why: &str) -> AccountError {
    tracing::error!(account = %keys.balance, why, "redis: the account lost acknowledged writes; refusing it until it is reset");
    AccountError::RolledBack(format!("the account {why}; {WHAT_TO_DO}"))
}

impl<T: FromRedisValue> FromRedisValue for Guarded<T> {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut parts: Vec<Value> = from_redis_value(v)?;
        if parts.len() < 2 {
            return Err(ParsingError::from(format!(
                "a guarded script answered {} values",
                parts.len()
            )));
        }
        let mut rest = parts.split_off(1);
        let outcome: String = from_redis_value(parts.remove(0))?;
        if outcome == "refused" {
            return Ok(Guarded::Refused(from_redis_value(rest.remove(0))?));
        }
        if rest.len() != 3 {
            return Err(ParsingError::from(format!(
                "a guarded script answered `{outcome}` with {} values",
                rest.len()
            )));
        }
        let writes: u64 = from_redis_value(rest.pop().unwrap_or(Value::Nil))?;
        let generation: u64 = from_redis_value(rest.pop().unwrap_or(Value::Nil))?;
        let answer: T = from_redis_value(rest.pop().unwrap_or(Value::Nil))?;
        Ok(Guarded::Ok(answer, Mark { generation, writes }))
    }
}
