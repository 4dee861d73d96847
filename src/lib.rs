//! racebank: a bank account over HTTP that loses updates on purpose, and the strategies that stop it.
//!
//! Every request to `/deposit` or `/withdraw` reads the balance, does some [`work`] (the slow part of a
//! real handler: a query, a call to another service), and writes the new balance back. Run that
//! unguarded and concurrent requests overwrite each other; guard it and nothing is lost. The server
//! keeps an exact [`ledger`] of what it acknowledged and of every write that destroyed another's, so
//! it explains its own drift: at any quiet moment `balance == expected_balance - lost_net`.
//!
//! The map:
//! - [`money`]: amounts and balances as integer minor units, with checked arithmetic.
//! - [`work`]: what happens between the read and the write (`none`, `yield`, `2ms`, `0ms..5ms`,
//!   `rendezvous:N`).
//! - [`strategy`]: how (or whether) the read -> work -> write section is guarded: one file per
//!   strategy behind the [`Mode`] enum.
//! - [`account`]: the balance, its ledger and the chosen strategy.
//! - [`ledger`]: the counters behind `/stats`.
//! - [`problem`]: every client error as an RFC 9457 problem document.
//! - [`routes`]: the HTTP API (`app()`), no socket needed.
//! - [`config`] and [`server`]: flags, and `serve(listener, config, shutdown)`.
//! - [`wire`]: the contract with the load generator: route paths, bodies, `/stats`, problem types.

pub mod account;
pub mod config;
pub mod duration;
pub mod ledger;
pub mod money;
pub mod problem;
pub mod routes;
pub mod server;
pub mod strategy;
pub mod wire;
pub mod work;

pub use account::Account;
pub use config::{Cli, Config};
pub use ledger::Stats;
pub use server::{serve, shutdown_signal};
pub use strategy::Mode;
pub use work::WorkSpec;
