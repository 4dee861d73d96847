//! The HTTP API. [`app`] builds the router without a socket, so tests can call it directly.
//!
//! | route            | body                  | answer                                   |
//! |------------------|-----------------------|------------------------------------------|
//! | `POST /deposit`  | `{"amount": N}`       | 200 `{"balance": B}`, B the balance written |
//! | `POST /withdraw` | `{"amount": N}`       | 200 `{"balance": B}`, or 409 with the balance seen |
//!
//! `/deposit` and `/withdraw` take an optional `Idempotency-Key` header ([`crate::idempotency`]).
//! | `GET /balance`   |                       | 200 `{"balance": B}`                     |
//! | `GET /stats`     |                       | 200 [`Stats`]                            |
//! | `POST /reset`    | optional `{"balance": N}` | 200 [`Stats`] after the reset        |
//! | `GET /healthz`   |                       | 200 `{"status": "ok"}`                   |
//! | `GET /metrics`   |                       | 200 Prometheus metrics ([`crate::metrics`]) |
//! | `GET /openapi.json` |                    | 200 the OpenAPI 3.1 description of all of these (`openapi`) |
//!
//! Plus the live page at `GET /` and its stream ([`crate::live`]).
//!
//! A well-formed `{"amount": N}` is parsed into a struct without allocating. Only when that fails is
//! the body taken apart by hand, so that each way of getting an amount wrong (a string, a fraction,
//! `1e30`, a missing field) gets its own sentence.
//!
//! There is no middleware on the request path. Nothing a client sends can reach a panic (the bad-input
//! tests try each kind), tokio confines a panicking connection to its own task, and the locks shrug
//! off poisoning; a panic-catching layer would add nothing but its cost, which measured 5 % of the
//! server's throughput (BENCHMARKS.md).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::account::Account;
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::Stats;
use crate::live;
use crate::metrics::{self, Metrics};
use crate::money::{Amount, Op};
use crate::number;
use crate::openapi;
use crate::problem::Problem;
use crate::wire::{paths, AmountBody, BODY_LIMIT};

pub use crate::wire::BalanceBody;

/// The router for one account: a body must arrive within `body_timeout` of its head, `metrics`
/// is what `/metrics` shows, and `closing` ends the live page's streams when shutdown begins.
pub fn app(
    account: Arc<Account>,
    metrics: Arc<Metrics>,
    body_timeout: Duration,
    closing: live::Closing,
) -> Router {
    Router::new()
        .route(paths::DEPOSIT, post(deposit))
        .route(paths::WITHDRAW, post(withdraw))
        .route(paths::BALANCE, get(balance))
        .route(paths::STATS, get(stats))
        .route(paths::RESET, post(reset))
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::METRICS, get(scrape))
        .route(paths::OPENAPI, get(openapi::serve))
        .merge(live::routes(closing))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState {
            account,
            metrics,
            body_timeout: BodyTimeout(body_timeout),
        })
}

/// What the handlers share. Handlers take `State<Arc<Account>>` as before, through [`FromRef`].
#[derive(Clone)]
struct AppState {
    account: Arc<Account>,
    metrics: Arc<Metrics>,
    body_timeout: BodyTimeout,
}

impl FromRef<AppState> for Arc<Account> {
    fn from_ref(state: &AppState) -> Self {
        state.account.clone()
    }
}

/// How long a body may take to arrive once its head has.
#[derive(Debug, Clone, Copy)]
struct BodyTimeout(Duration);

impl FromRef<AppState> for BodyTimeout {
    fn from_ref(state: &AppState) -> Self {
        state.body_timeout
    }
}

async fn deposit(State(account): State<Arc<Account>>, body: JsonBody) -> Response {
    change(&account, body, Op::Deposit).await
}

async fn withdraw(State(account): State<Arc<Account>>, body: JsonBody) -> Response {
    change(&account, body, Op::Withdraw).await
}

/// A deposit or a withdrawal, once per `Idempotency-Key` when the request carries one. The key is
/// checked after the body: a request wrong in both is told about its body first, as without a key.
async fn change(account: &Account, body: JsonBody, op: fn(Amount) -> Op) -> Response {
    let op = match amount(&body) {
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

async fn stats(State(account): State<Arc<Account>>) -> Result<Json<Stats>, Problem> {
    Ok(Json(account.stats().await?))
}

/// Without a body, back to the balance the server started with; with one, to `balance`.
async fn reset(
    State(account): State<Arc<Account>>,
    body: JsonBody,
) -> Result<Json<Stats>, Problem> {
    let balance = if body.bytes.is_empty() {
        account.opening_balance()
    } else {
        reset_balance(&body)?
    };
    Ok(Json(account.reset(balance).await?))
}

/// The request counts, and the ledger's when the store answers: a scrape still shows the
/// requests while the store is down.
async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.account.stats().await.ok();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(stats.as_ref()),
    )
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::NotFound {
        path: uri.path().to_string(),
    }
}

/// A request body, whether it was sent as JSON, and its `Idempotency-Key`, if any.
///
/// Handlers take this instead of `HeaderMap` + `Bytes`, which would copy every header of every
/// request just to look at two.
struct JsonBody {
    bytes: Bytes,
    is_json: bool,
    key: Option<Result<IdempotencyKey, Problem>>,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody
where
    BodyTimeout: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let is_json = is_json(request.headers());
        let key = idempotency_key(request.headers());
        // A declared length over the limit is refused before the body is polled: polling is what
        // makes hyper send `100 Continue`, inviting a client to send a body that will be refused.
        if request.body().size_hint().lower() > BODY_LIMIT as u64 {
            return Err(Problem::TooLarge { limit: BODY_LIMIT });
        }
        // The limit is applied here rather than with `DefaultBodyLimit`, whose layer adds an
        // extension (a map allocation) to every request.
        let read = axum::body::to_bytes(request.into_body(), BODY_LIMIT);
        let bytes = within(BodyTimeout::from_ref(state).0, read)
            .await?
            .map_err(|error| body_error(&error))?;
        Ok(JsonBody {
            bytes,
            is_json,
            key,
        })
    }
}

/// The `Idempotency-Key` header, checked: absent, valid, or a problem (sent twice, or not 1 to 255
/// printable ASCII characters).
fn idempotency_key(headers: &HeaderMap) -> Option<Result<IdempotencyKey, Problem>> {
    let mut values = headers.get_all(&idempotency::KEY_HEADER).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(Problem::InvalidIdempotencyKey(
            "send one Idempotency-Key header, not several".to_string(),
        )));
    }
    Some(IdempotencyKey::parse(first.as_bytes()).map_err(Problem::InvalidIdempotencyKey))
}

/// Runs `future` for at most `timeout`. A body usually arrives with its head, so the future is
/// polled once before any timer is set: the common case never touches the timer wheel.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T, Problem> {
    let mut future = pin!(future);
    let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(timeout, future)
            .await
            .map_err(|_| Problem::BodyTimeout { after: timeout }),
    }
}

/// A body that could not be read: too large, or cut off by the client.
fn body_error(error: &axum::Error) -> Problem {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return Problem::TooLarge { limit: BODY_LIMIT };
        }
        source = cause.source();
    }
    Problem::MalformedBody(format!("the body could not be read: {error}"))
}

/// Reads `{"amount": N}`: a positive whole number of minor units.
fn amount(body: &JsonBody) -> Result<Amount, Problem> {
    parse_amount(&body.bytes, body.is_json)
}

/// The parsing behind `/deposit` and `/withdraw`, apart from HTTP: `body` as sent, and whether it
/// was sent as JSON. Public for the fuzz targets (`fuzz/`) only.
#[doc(hidden)]
pub fn parse_amount(body: &[u8], is_json: bool) -> Result<Amount, Problem> {
    if !is_json {
        return Err(unsupported_media_type("amount"));
    }
    // The only body a deposit or withdrawal takes; parsing it allocates nothing.
    let parsed = serde_json::from_slice::<AmountBody>(body);
    // Serde would also take `[5]` for the struct; only an object is an amount body.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if let (Ok(AmountBody { amount }), true) = (&parsed, is_object) {
        if let Some(amount) = Amount::new(*amount) {
            return Ok(amount);
        }
    }
    // Something is wrong: find out what, slowly, to say it precisely.
    let text = json_object(body, "amount")?;
    minor_units(text, "amount", 1)?;
    Err(Problem::invalid(
        "amount",
        match parsed {
            Err(error) => format!("the body is not a valid `{{\"amount\": N}}`: {error}"),
            Ok(_) => "`amount` must be positive".to_string(),
        },
    ))
}

/// Reads `{"balance": N}` for a reset: a whole number of minor units, zero or more.
fn reset_balance(body: &JsonBody) -> Result<i64, Problem> {
    parse_reset_balance(&body.bytes, body.is_json)
}

/// The parsing behind a `/reset` with a body, apart from HTTP. Public for the fuzz targets
/// (`fuzz/`) only.
#[doc(hidden)]
pub fn parse_reset_balance(body: &[u8], is_json: bool) -> Result<i64, Problem> {
    if !is_json {
        return Err(unsupported_media_type("balance"));
    }
    let text = json_object(body, "balance")?;
    minor_units(text, "balance", 0)
}

fn example(field: &str) -> String {
    format!(r#"{{"{field}": 5}}"#)
}

fn unsupported_media_type(field: &str) -> Problem {
    Problem::UnsupportedMediaType(format!(
        "send the body as JSON with `Content-Type: application/json`, e.g. {}",
        example(field)
    ))
}

/// Parses a JSON object that holds only `field`, once, and returns the field's text.
fn json_object<'a>(body: &'a [u8], field: &str) -> Result<&'a str, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::MalformedBody(format!(
            "the body is empty; send {}",
            example(field)
        )));
    }
    // A raw value checks the syntax without reading numbers as floats, so `1e400` is still JSON.
    let value: &RawValue = serde_json::from_slice(body)
        .map_err(|e| Problem::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    if !value.get().starts_with('{') {
        return Err(Problem::MalformedBody(format!(
            "the body must be a JSON object such as {}, not {}",
            example(field),
            kind_of(value.get())
        )));
    }
    let Fields(fields) = serde_json::from_str(value.get()).map_err(|e| {
        let detail = e.to_string();
        match detail.split_once(" appears twice") {
            Some((key, _)) => Problem::invalid(
                key.trim_matches('`'),
                format!("{key} appears twice; send it once, e.g. {}", example(field)),
            ),
            None => Problem::MalformedBody(format!("the body is not valid JSON: {detail}")),
        }
    })?;
    if let Some((unknown, _)) = fields.iter().find(|(key, _)| key != field) {
        return Err(Problem::invalid(
            unknown,
            format!(
                "unknown field `{unknown}`: the body takes only `{field}`, e.g. {}",
                example(field)
            ),
        ));
    }
    match fields.first() {
        Some((_, value)) => Ok(value.get()),
        None => Err(Problem::missing(field)),
    }
}

/// The members of a JSON object as written, in order; a key written twice is an error, where
/// serde_json's own maps would silently keep the last.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if fields.iter().any(|(seen, _)| *seen == key) {
                        return Err(serde::de::Error::custom(format!("`{key}` appears twice")));
                    }
                    fields.push((key, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

/// `application/json`, with or without parameters, or any `application/*+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > "application/+json".len()
            && essence[.."application/".len()].eq_ignore_ascii_case("application/")
            && essence.to_ascii_lowercase().ends_with("+json"))
}

/// Reads `text`, the JSON value of `field`, as a whole number of minor units no smaller than `min`.
/// A refusal quotes the number as it was sent.
fn minor_units(text: &str, field: &str, min: i64) -> Result<i64, Problem> {
    let Some(number) = number::read(text) else {
        return Err(Problem::invalid(
            field,
            format!(
                "`{field}` must be a whole number of minor units (cents), not {}",
                kind_of(text)
            ),
        ));
    };
    let refusal = if number.negative || number.value.is_some_and(|value| value < min) {
        match min {
            1 => format!("`{field}` must be positive, got {text}"),
            _ => format!("`{field}` must be at least {min}, got {text}"),
        }
    } else if !number.whole {
        format!("`{field}` must be a whole number of minor units (cents), got {text}")
    } else if number.value.is_none() {
        format!(
            "`{field}` is {text}, beyond the largest the account holds ({})",
            i64::MAX
        )
    } else if !number.integer_syntax {
        format!(
            "`{field}` must be written as an integer, without a decimal point or exponent, got {text}"
        )
    } else {
        return Ok(number.value.unwrap_or_default());
    };
    Err(Problem::invalid(field, refusal))
}

/// What kind of JSON value `text` is, from its first character.
fn kind_of(text: &str) -> &'static str {
    match text.trim_start().bytes().next() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

async fn method_not_allowed() -> Problem {
    Problem::MethodNotAllowed
}
