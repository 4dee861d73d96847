//! Idempotency keys: a client that did not get an answer sends the same request again with the
//! same `Idempotency-Key`, and the account applies it at most once.
//!
//! A lost acknowledgement is the twin of a lost update: the deposit was applied, the answer never
//! arrived, the client retries, and without a key the retry pays twice (docs/retries.md). The key, after Stripe's header and the IETF httpapi draft, makes the retry safe:
//!
//! - The first request with a key that is applied or refused stores its answer, in its store, in
//!   the same step as the balance change: memory under the key table's lock around the write,
//!   PostgreSQL in the write's own statement, Redis in the write's script. So no crash, dropped
//!   connection or lost answer can separate the change from the answer it keeps.
//! - A repeat with the same key and the same request (operation and amount, not the body's bytes)
//!   gets the stored answer again, marked `Idempotent-Replayed: true`, and changes nothing.
//! - The same key with another request is 422 `idempotency-key-reused`.
//! - Duplicates in flight at once: whichever reaches its write first stores its answer; the other
//!   finds the key answered at its own write, writes nothing, and replays that answer (in
//!   PostgreSQL it waits on the first's uncommitted key row). So concurrent duplicates apply once
//!   and get the same answer: the draft's "wait for the first" rather than its 409.
//! - Only final answers are kept: the balance written (200) and the refusals (409 insufficient
//!   funds, 422 overflow). A 503 or a 500 `outcome-unknown` keeps nothing, so a retry can still
//!   apply (if the write had in fact landed, its key landed with it and the retry replays it).
//!
//! Keys are per account and expire (`--idempotency-ttl`, 24 h by default); the memory store keeps
//! at most [`MEMORY_CAPACITY`] live keys and refuses a new key when all are live (503
//! `idempotency-keys-full`) rather than forget one early. A request without a key costs nothing more
//! than before.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;

use crate::domain::money::{Amount, Op, Refusal};

/// The request header carrying the key. A `HeaderName` rather than a string, so that looking it
/// up in every request's headers does not parse the name first.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The answer header marking a replayed answer.
pub(crate) const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a key's answer is kept by default: a day, as Stripe keeps them.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How many live keys the memory store keeps at most; past it a new key is refused (503).
pub(crate) const MEMORY_CAPACITY: usize = 100_000;

/// A valid `Idempotency-Key`: 1 to 255 printable ASCII characters (the draft's recommendation,
/// and safe in a log line, a Redis key and a SQL parameter).
///
/// Shared rather than owned: the memory store keeps each key twice (its table and its expiry
/// queue), and a clone is then a reference count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Arc<str>);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Checks a header value. Surrounding quotes are part of the key: the draft's
    /// structured-header form `"abc"` and the bare `abc` are different keys, as clients send one form
    /// consistently.
    pub(crate) fn parse(value: &[u8]) -> Result<Self, String> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(format!(
                "an Idempotency-Key holds 1 to {} characters, this one {}",
                Self::MAX_LEN,
                value.len()
            ));
        }
        if let Some(bad) = value.iter().find(|b| !(b' '..=b'~').contains(*b)) {
            return Err(format!(
                "an Idempotency-Key holds printable ASCII only, not byte 0x{bad:02x}"
            ));
        }
        // Every byte is printable ASCII, so this is valid UTF-8 and nothing is replaced.
        Ok(Self(Arc::from(String::from_utf8_lossy(value).as_ref())))
    }

    /// The key as sent.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a store keeps for a key: the request it identified and the answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remembered {
    /// The operation and amount: a repeat must ask for the same.
    pub op: Op,
    /// The balance written, or the refusal.
    pub outcome: Result<i64, Refusal>,
}

impl Remembered {
    /// The HTTP status of the answer: 200, 409 or 422.
    pub(crate) fn status(&self) -> i16 {
        match self.outcome {
            Ok(_) => 200,
            // A single account has no household; the bank keeps no keys.
            Err(Refusal::InsufficientFunds { .. } | Refusal::HouseholdShort { .. }) => 409,
            Err(Refusal::WouldOverflow { .. }) => 422,
        }
    }

    /// The balance the answer carries (the one written, or the one that refused).
    pub(crate) fn balance(&self) -> i64 {
        match self.outcome {
            Ok(balance)
            | Err(
                Refusal::InsufficientFunds { balance, .. }
                | Refusal::WouldOverflow { balance, .. }
                | Refusal::HouseholdShort { total: balance, .. },
            ) => balance,
        }
    }

    /// Rebuilds the answer from what a shared store keeps: the operation's kind and amount, the
    /// status and the balance. `None` if they do not describe an answer a key keeps.
    pub(crate) fn from_parts(kind: &str, amount: i64, status: i64, balance: i64) -> Option<Self> {
        let op = match kind {
            "deposit" => Op::Deposit(Amount::new(amount)?),
            "withdrawal" => Op::Withdraw(Amount::new(amount)?),
            _ => return None,
        };
        let outcome = match status {
            200 => Ok(balance),
            409 => Err(Refusal::InsufficientFunds { balance, amount }),
            422 => Err(Refusal::WouldOverflow { balance, amount }),
            _ => return None,
        };
        Some(Self { op, outcome })
    }
}

/// A keyed request, as a store records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim<'a> {
    /// The key.
    pub(crate) key: &'a IdempotencyKey,
    /// What the request asks for.
    pub(crate) op: Op,
    /// How long the answer is kept.
    pub(crate) ttl: Duration,
}

impl Claim<'_> {
    /// The answer to keep for `outcome`.
    pub(crate) fn answer(&self, outcome: Result<i64, Refusal>) -> Remembered {
        Remembered {
            op: self.op,
            outcome,
        }
    }

    /// The time to live in whole milliseconds, at least one.
    pub(crate) fn ttl_millis(&self) -> i64 {
        i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"rb-42-7 with spaces~").is_ok());
        assert!(IdempotencyKey::parse("x".repeat(255).as_bytes()).is_ok());
        for bad in [
            &b""[..],
            "x".repeat(256).as_bytes(),
            b"tab\there",
            b"\x7f",
            "é".as_bytes(),
        ] {
            assert!(
                IdempotencyKey::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn a_kept_answer_rebuilds_from_its_status_and_balance() {
        let op = Op::Withdraw(Amount::new(7).unwrap());
        for outcome in [
            Ok(3),
            Err(Refusal::InsufficientFunds {
                balance: 2,
                amount: 7,
            }),
        ] {
            let kept = Remembered { op, outcome };
            let rebuilt =
                Remembered::from_parts(kept.op.kind(), 7, kept.status().into(), kept.balance());
            assert_eq!(rebuilt, Some(kept));
        }
        assert_eq!(Remembered::from_parts("withdrawal", 7, 503, 0), None);
        assert_eq!(Remembered::from_parts("transfer", 7, 200, 0), None);
    }
}
