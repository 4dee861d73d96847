//! racebank: a bank account over HTTP that loses updates on purpose, and the strategies that stop it.
//!
//! Every request to `/deposit` or `/withdraw` reads the balance, does some [`work`] (the slow part of a
//! real handler: a query, a call to another service), and writes the new balance back. Run that
//! unguarded and concurrent requests overwrite each other; guard it and nothing is lost. The server
//! keeps an exact [`ledger`] of what it acknowledged and of every write that destroyed another's, so
//! it explains its own drift: at any quiet moment `balance == expected_balance - lost_net`.
//!
//! The balance lives in a store: this process's memory (the default), or PostgreSQL or Redis shared
//! by several replicas, where in-process guards stop working and the store's own tools take over.
//!
//! The map, from the leaves up (each module uses only those above it in this list):
//! - [`money`], [`duration`]: amounts as integer minor units with checked arithmetic; human durations.
//! - [`number`]: a JSON number's text read exactly, so a refusal can say precisely what was wrong.
//! - [`wire`]: the contract with the load generator: route paths, bodies, `/stats`, problem types.
//! - [`error`]: why an operation was not applied, why an account could not be opened.
//! - [`work`]: what happens between the read and the write (`none`, `yield`, `2ms`, `0ms..5ms`,
//!   `rendezvous:N`), and where a stopping server cuts requests short.
//! - [`ledger`]: the counters behind `/stats`.
//! - [`idempotency`]: `Idempotency-Key`: the key, the answer a store keeps for it, and the rules.
//! - [`mode`]: the `--mode` names, for every store.
//! - [`config`]: plain values describing an account and a server.
//! - `guard`: the in-process `mutex` and `semaphore:N`, the same for every store.
//! - `store`: where the balance lives, one folder per store and one file per strategy.
//! - [`account`]: a store, the mode's guard and the work: what the HTTP layer calls.
//! - [`problem`]: every client error as an RFC 9457 problem document.
//! - [`lesson`]: what each mode teaches, one paragraph shared by the live page and README.
//! - [`live`]: the live page at `GET /`, fed by a server-sent event stream.
//! - [`metrics`]: Prometheus metrics at `GET /metrics`, a few atomic additions per request.
//! - `openapi`: the OpenAPI 3.1 description at `GET /openapi.json`, built from the wire types and
//!   the problems each route can answer.
//! - [`routes`]: the HTTP API (`app()`), no socket needed.
//! - [`connection`]: one client connection over HTTP/1.1, with the limits that cut off slow,
//!   idle and greedy clients.
//! - [`server`]: `serve(listener, config, shutdown)`: the accept loop, the connection limit and
//!   the graceful shutdown.
//! - [`signal`]: the signals that stop the `racebank` binary.
//! - `log`: logging that never takes the server down.
//! - [`chaos`]: fault injection (`--chaos drop-after-apply=P`), off unless named.
//! - [`cli`]: the `racebank` command line, which only builds a [`Config`].

pub mod account;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod connection;
pub mod duration;
pub mod error;
mod guard;
pub mod idempotency;
pub mod ledger;
pub mod lesson;
pub mod live;
pub mod log;
pub mod metrics;
pub mod mode;
pub mod money;
pub mod number;
mod openapi;
pub mod problem;
pub mod routes;
pub mod server;
pub mod signal;
mod store;
pub mod wire;
pub mod work;

pub use account::{Account, Keyed};
pub use cli::Cli;
pub use config::{AccountConfig, AccountId, Config, ServerConfig, StoreConfig};
pub use error::{AccountError, OpenError};
pub use ledger::Stats;
pub use mode::Mode;
pub use server::{serve, ServeError};
pub use signal::shutdown_signal;
pub use work::WorkSpec;
