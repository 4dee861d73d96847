//! The HTTP layer: everything between a socket and an [`Account`](crate::Account).
//!
//! - [`server`]: `serve(listener, config, shutdown)`: the accept loop, the connection limit and
//!   the graceful shutdown.
//! - [`connection`]: one client connection over HTTP/1.1, with the limits that cut off slow,
//!   idle and greedy clients.
//! - [`host`]: the `Host` check against DNS rebinding.
//! - [`progress`]: a connection's started and finished requests, and whether it retires.
//! - [`registry`]: the open connections, oldest first, for the accept loop to retire when full.
//! - [`routes`]: the API's router (`app()`), no socket needed; [`bank`]: the bank's routes in it.
//! - [`body`]: request bodies, read within limits and parsed into amounts.
//! - [`problem`]: every client error as an RFC 9457 problem document.
//! - [`metrics`]: Prometheus metrics at `GET /metrics`, a few atomic additions per request.
//! - [`openapi`]: the OpenAPI 3.1 description at `GET /openapi.json`, built from the wire types and
//!   the problems each route can answer.
//! - [`live`]: the live page at `GET /`, fed by a server-sent event stream.

pub(crate) mod bank;
pub(crate) mod body;
pub(crate) mod connection;
pub(crate) mod host;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod problem;
pub(crate) mod progress;
pub(crate) mod registry;
pub(crate) mod routes;
pub(crate) mod server;
