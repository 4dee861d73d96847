//! The HTTP API. [`app`] builds the router without a socket, so tests can call it directly.
//!
//! | route               | body                      | answer                                               |
//! |---------------------|---------------------------|------------------------------------------------------|
//! | `POST /deposit`     | `{"amount": N}`           | 200 `{"balance": B}`, B the balance written          |
//! | `POST /withdraw`    | `{"amount": N}`           | 200 `{"balance": B}`, or 409 with the balance seen   |
//! | `GET /balance`      |                           | 200 `{"balance": B}`                                 |
//! | `GET /stats`        |                           | 200 [`Stats`]                                        |
//! | `POST /reset`       | optional `{"balance": N}` | 200 [`Stats`] after the reset                        |
//! | `GET /healthz`      |                           | 200 `{"status": "ok"}`                               |
//! | `GET /readyz`       |                           | 200 `{"status": "ready"}`, 503 while the store does not answer |
//! | `GET /metrics`      |                           | 200 Prometheus metrics ([`metrics`])                 |
//! | `GET /openapi.json` |                           | 200 the OpenAPI 3.1 description of all of these ([`openapi`]) |
//!
//! `/deposit` and `/withdraw` take an optional `Idempotency-Key` header ([`idempotency`]).
//!
//! Plus the live page at `GET /` and its stream ([`live`]).
//!
//! The bodies are read and parsed in [`crate::http::body`].
//!
//! There is no middleware on the request path. Nothing a client sends can reach a panic (the bad-input
//! tests try each kind), tokio confines a panicking connection to its own task, and the locks shrug
//! off poisoning; a panic-catching layer would add nothing but its cost, which measured 5 % of the
//! server's throughput (BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::account::Account;
use crate::domain::error::AccountError;
use crate::domain::idempotency;
use crate::domain::ledger::Stats;
use crate::domain::money::{Amount, Op};
use crate::http::bank::{self, MaybeBank};
use crate::http::body::{BodyTimeout, JsonBody};
use crate::http::live;
use crate::http::metrics::{self, Metrics};
use crate::http::openapi;
use crate::http::problem::Problem;
use crate::wire::paths;

pub(crate) use crate::wire::BalanceBody;

/// The router for one account: a body must arrive within `body_timeout` of its head, `metrics`
/// is what `/metrics` shows, `closing` ends the live page's streams when shutdown begins, and
/// each stream sends a keep-alive comment every `keep_alive`.
pub(crate) fn app(
    account: Arc<Account>,
    bank: MaybeBank,
    metrics: Arc<Metrics>,
    body_timeout: Duration,
    (closing, keep_alive): (live::Closing, Duration),
) -> Router {
    Router::new()
        .route(paths::DEPOSIT, post(deposit))
        .route(paths::WITHDRAW, post(withdraw))
        .route(paths::BALANCE, get(balance))
        .route(paths::STATS, get(stats))
        .route(paths::RESET, post(reset))
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(scrape))
        .route(paths::OPENAPI, get(openapi::serve))
        .merge(live::routes(closing, keep_alive))
        .merge(bank::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState(Arc::new(Shared {
            account,
            bank,
            metrics,
            body_timeout: BodyTimeout(body_timeout),
        })))
}

/// What the handlers share, behind one `Arc`: axum clones the state for every request, and each
/// clone is an atomic addition on a cache line every worker thread shares, so one of them rather
/// than one per field (BENCHMARKS.md). The other handlers take `State<Arc<Account>>` through
/// [`FromRef`]; deposits and withdrawals borrow the account from the state instead.
#[derive(Clone)]
struct AppState(Arc<Shared>);

struct Shared {
    account: Arc<Account>,
    bank: MaybeBank,
    metrics: Arc<Metrics>,
    body_timeout: BodyTimeout,
}

impl FromRef<AppState> for Arc<Account> {
    fn from_ref(state: &AppState) -> Self {
        state.0.account.clone()
    }
}

impl FromRef<AppState> for MaybeBank {
    fn from_ref(state: &AppState) -> Self {
        state.0.bank.clone()
    }
}

impl FromRef<AppState> for BodyTimeout {
    fn from_ref(state: &AppState) -> Self {
        state.0.body_timeout
    }
}

async fn deposit(State(state): State<AppState>, body: JsonBody) -> Response {
    change(&state.0.account, body, Op::Deposit).await
}

async fn withdraw(State(state): State<AppState>, body: JsonBody) -> Response {
    change(&state.0.account, body, Op::Withdraw).await
}

/// A deposit or a withdrawal, once per `Idempotency-Key` when the request carries one. The key is
/// checked after the body: a request wrong in both is told about its body first, as without a key.
async fn change(account: &Account, body: JsonBody, op: fn(Amount) -> Op) -> Response {
    let op = match body.amount() {
        Ok(amount) => op(amount),
        Err(problem) => return problem.into_response(),
    };
    let (outcome, replayed) = match body.key {
        None => (account.apply(op).await, false),
        Some(Err(problem)) => return problem.into_response(),
        Some(Ok(key)) => {
            let keyed = account.apply_keyed(op, &key).await;
            (keyed.outcome, keyed.replayed)
        }
    };
    let mut response = match outcome {
        Ok(balance) => Json(BalanceBody { balance }).into_response(),
        Err(error) => Problem::from(error).into_response(),
    };
    if replayed {
        response.headers_mut().insert(
            idempotency::REPLAYED_HEADER,
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

async fn balance(State(account): State<Arc<Account>>) -> Result<Json<BalanceBody>, Problem> {
    let balance = account.balance().await?;
    Ok(Json(BalanceBody { balance }))
}

async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, Problem> {
    Ok(Json(full_stats(&state).await?))
}

/// The account's stats, with the bank's when the server opened one.
async fn full_stats(state: &AppState) -> Result<Stats, AccountError> {
    let mut stats = state.0.account.stats().await?;
    if let Some(bank) = &state.0.bank {
        stats.bank = Some(bank.stats().await?);
    }
    Ok(stats)
}

/// Without a body, back to the balance the server started with; with one, to `balance`. Either
/// way the request must say it is JSON: an HTML form on another site can post an empty body too.
async fn reset(
    State(account): State<Arc<Account>>,
    body: JsonBody,
) -> Result<Json<Stats>, Problem> {
    body.require_json("balance")?;
    let balance = if body.is_empty() {
        account.opening_balance()
    } else {
        body.reset_balance()?
    };
    Ok(Json(account.reset(balance).await?))
}

/// The request counts, and the ledger's when the store answers: a scrape still shows the
/// requests while the store is down.
async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let stats = full_stats(&state).await.ok();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.0.metrics.render(stats.as_ref()),
    )
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// How long readiness waits for the store: an orchestrator asks often, and a store slower than
/// this is as good as unreachable to the clients it would be sent.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when the account's stats can be read within [`READINESS_TIMEOUT`]; otherwise 503
/// `store-unavailable`, with `Retry-After`. Liveness (`/healthz`) never touches the store.
async fn readyz(State(account): State<Arc<Account>>) -> Result<Json<Value>, Problem> {
    match tokio::time::timeout(READINESS_TIMEOUT, account.stats()).await {
        Ok(Ok(_)) => Ok(Json(serde_json::json!({ "status": "ready" }))),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(Problem::StoreUnavailable(format!(
            "the store did not answer within {}",
            crate::duration::format_duration(READINESS_TIMEOUT)
        ))),
    }
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::NotFound {
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed() -> Problem {
    Problem::MethodNotAllowed
}
