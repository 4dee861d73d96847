//! racebank: a bank account over HTTP that loses updates on purpose, and the strategies that stop it.
//!
//! Every request to `/deposit` or `/withdraw` reads the balance, does some work (the slow part of a
//! real handler), and writes the new balance back. Run that unguarded and concurrent requests
//! overwrite each other; guard it and nothing is lost. The server keeps an exact ledger of what it
//! acknowledged and of every write that destroyed another's, so it explains its own drift: at any
//! quiet moment `balance == expected_balance - lost_net`.
//!
//! The map, from the leaves up; each layer uses only those before it:
//! - leaves: [`wire`] (the HTTP contract shared with `racebank-load`), `config` (plain values),
//!   `duration` and `chaos` (small parsers the configuration is made of).
//! - `account`: the account's parts (money, modes and which store runs which, work, guards,
//!   ledger, idempotency, errors), and the [`Account`] that puts a store behind them.
//! - `store`: where the balance lives, one folder per store, one file per strategy.
//! - `http`: the server, connections, routes, request bodies, problem documents, metrics, the
//!   OpenAPI description and the live page.
//!
//! The `racebank` binary (`src/bin/racebank/`) only parses flags into a [`Config`] and calls
//! [`serve`].

mod account;
mod chaos;
mod config;
mod duration;
mod http;
mod store;
pub mod wire;

pub use account::error::{AccountError, OpenError};
pub use account::idempotency::{IdempotencyKey, KEY_HEADER};
pub use account::ledger::Stats;
pub use account::mode::{Mode, StoreKind};
pub use account::money::{Amount, Op, Refusal};
pub use account::work::WorkSpec;
pub use account::Account;
pub use chaos::Chaos;
pub use config::{
    AccountConfig, AccountId, Config, ServerConfig, StoreConfig, DEFAULT_DATABASE_URL,
    DEFAULT_POOL_SIZE, DEFAULT_REDIS_URL, START_REDIS,
};
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
    pub use crate::http::body::parse::{parse_amount, parse_reset_balance};
}
