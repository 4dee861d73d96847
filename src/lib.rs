//! racebank: a bank account over HTTP that loses updates on purpose, and the strategies that stop it.
//!
//! Every request to `/deposit` or `/withdraw` reads the balance, does some work (the slow part of a
//! real handler), and writes the new balance back. Run that unguarded and concurrent requests
//! overwrite each other; guard it and nothing is lost. The server keeps an exact ledger of what it
//! acknowledged and of every write that destroyed another's, so it explains its own drift: at any
//! quiet moment `balance == expected_balance - lost_net`.
//!
//! The map, from the leaves up; each part uses only those above it:
//! - leaves: [`wire`], the HTTP contract shared with `racebank-load`; `duration` and `chaos`
//!   ([`parse_duration`], [`Chaos`]), small parsers every layer uses.
//! - `domain/`, what an account is made of, knowing nothing of stores or HTTP: [`Amount`] and
//!   [`Op`], the [`Mode`]s and which [`StoreKind`] runs which, the [`WorkSpec`], the ledger behind
//!   [`Stats`], idempotency keys, the errors, and the bank's parts ([`BankSpec`], its moves and
//!   ledger).
//! - `config`: plain values made of those parts ([`Config`], [`Config::validate`]).
//! - `store/`: where the balance lives, one folder per store, one file per strategy.
//! - `account/`: [`Account`], a store behind the mode's in-process guard and the work; what the
//!   HTTP layer calls. `bank/`: the same for the bank, with `account-locks` and its deadlock
//!   detector.
//! - `http/`: [`serve`], connections, routes, request bodies, [`Problem`] documents, metrics, the
//!   OpenAPI description and the live page (with each mode's [`lesson`]).
//!
//! The `racebank` binary (`src/bin/racebank/`) only parses flags into a [`Config`], validates it,
//! binds and calls [`serve`].

mod account;
mod bank;
mod chaos;
mod config;
mod domain;
mod duration;
mod http;
mod store;
pub mod wire;

pub use account::Account;
pub use chaos::Chaos;
pub use config::{
    start_redis, AccountConfig, AccountId, Config, ServerConfig, StoreConfig, DEFAULT_DATABASE_URL,
    DEFAULT_POOL_SIZE, DEFAULT_REDIS_URL, START_REDIS,
};
pub use domain::bank::{BankSpec, LockOrder, MAX_ACCOUNTS};
pub use domain::error::{AccountError, OpenError};
pub use domain::idempotency::{IdempotencyKey, KEY_HEADER};
pub use domain::ledger::Stats;
pub use domain::mode::{Mode, StoreKind};
pub use domain::money::{Amount, Op, Refusal};
pub use domain::work::WorkSpec;
pub use duration::{format_duration, parse_duration};
pub use http::live::lesson::lesson;
pub use http::problem::Problem;
pub use http::server::{serve, ServeError};

/// The request-body parsers and the JSON number reader, for the fuzz targets (`fuzz/`) only: not
/// an API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// A JSON number's text, read exactly.
    pub mod number {
        pub use crate::http::body::number::{read, Number};
    }
    pub use crate::http::body::parse::{
        parse_amount, parse_bank_balances, parse_reset_balance, parse_transfer,
    };
}
