//! Why an operation was not applied, and why an account could not be opened.
//!
//! A leaf: every store and strategy speaks these, and the HTTP layer turns them into problem
//! documents. Details of a store's failure are logged where they happen; clients get a sentence.

use crate::domain::money::Refusal;

/// Why an operation was not applied. In every case nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The funds check or the overflow check said no.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A strategy that redoes its section on conflict met a conflict on every attempt.
    #[error(
        "gave up after redoing the work {retries} times: every attempt met a conflicting write"
    )]
    Contention { retries: u32 },
    /// The server is stopping and cut the work short.
    #[error("the server is shutting down")]
    Stopped,
    /// The store could not be reached or refused the work before anything was written.
    #[error("the {store} store is unavailable: {detail}")]
    Unavailable { store: &'static str, detail: String },
    /// The store failed after the write was sent: it may or may not have been applied.
    #[error("the {store} store failed while writing, so the write may or may not have been applied: {detail}")]
    OutcomeUnknown { store: &'static str, detail: String },
    /// A lease or fencing token ran out before the write: a newer holder owns the account now.
    #[error("{0}")]
    Fenced(String),
    /// The `Idempotency-Key` was first used for another request (operation or amount).
    #[error("the Idempotency-Key `{key}` was first used for a {first}; a repeat must send the same request, or use a new key")]
    KeyReused { key: String, first: String },
    /// Another request with the same `Idempotency-Key` was answered at the same moment, and its
    /// answer could not be read back (it expired, or the store failed): this request wrote nothing.
    #[error("another request with the same Idempotency-Key was answered at the same moment, and this one wrote nothing; send it again to get that answer")]
    KeyInUse,
    /// The store lost writes it had acknowledged, under this running server: the account vanished
    /// or went back in time. Refused, never served or re-created, until an operator resets it.
    #[error("{0}")]
    RolledBack(String),
    /// Every slot for an idempotency key holds a live one: a new key is refused rather than a live
    /// one forgotten (its retry would be applied twice).
    #[error("the server keeps {capacity} idempotency keys and every one is live (none has expired); a new key is refused rather than another request's key forgotten")]
    KeysFull { capacity: usize },
    /// The bank holds no account with this id.
    #[error("the bank holds no account `{0}`")]
    UnknownAccount(String),
    /// Waiting for an account's lock would have closed a cycle of waits: this request gave up its
    /// locks and wrote nothing.
    #[error("{0}")]
    Deadlock(String),
}

/// Why an account could not be opened: a server that cannot open its account does not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The mode is not one this store runs.
    #[error("mode `{mode}` does not run on the {store} store: {hint}")]
    UnsupportedMode {
        mode: String,
        store: &'static str,
        hint: String,
    },
    /// The store runs the mode, but not on a bank of many accounts.
    #[error("mode `{mode}` runs no bank on the {store} store: {hint}")]
    NoBank {
        mode: String,
        store: &'static str,
        hint: String,
    },
    /// The store could not be reached or prepared.
    #[error("{0}")]
    Store(String),
}
