//! The request bodies of `/deposit`, `/withdraw` and `/reset`: read within the body timeout and
//! under [`BODY_LIMIT`], then parsed into an amount or a balance.
//!
//! Its own module because it is the one place where a client's bytes become a value: the handlers
//! in [`crate::http::routes`] see only [`JsonBody`], and the fuzz targets (`fuzz/`) reach the two
//! parsers without HTTP.
//!
//! A well-formed `{"amount": N}` is parsed into a struct without allocating. Only when that fails is
//! the body taken apart by hand, so that each way of getting an amount wrong (a string, a fraction,
//! `1e30`, a missing field) gets its own sentence.

#[cfg_attr(
    not(feature = "fuzzing"),
    allow(
        unreachable_pub,
        reason = "public for the fuzz targets only (feature `fuzzing`)"
    )
)]
pub(crate) mod number;
#[cfg_attr(
    not(feature = "fuzzing"),
    allow(
        unreachable_pub,
        reason = "public for the fuzz targets only (feature `fuzzing`)"
    )
)]
pub(crate) mod parse;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderMap};

use crate::domain::idempotency::{self, IdempotencyKey};
use crate::domain::money::Amount;
use crate::http::body::parse::{parse_amount, parse_reset_balance, unsupported_media_type};
use crate::http::problem::Problem;
use crate::wire::BODY_LIMIT;

/// A request body, whether it was sent as JSON, and its `Idempotency-Key`, if any.
///
/// Handlers take this instead of `HeaderMap` + `Bytes`, which would copy every header of every
/// request just to look at two.
pub(crate) struct JsonBody {
    bytes: Bytes,
    is_json: bool,
    /// The `Idempotency-Key` header: absent, valid, or the problem with it.
    pub(crate) key: Option<Result<IdempotencyKey, Problem>>,
}

impl JsonBody {
    /// The body as sent.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the request declared a JSON content type.
    pub(crate) fn is_json(&self) -> bool {
        self.is_json
    }

    /// Whether the request came without a body.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Reads `{"amount": N}`: a positive whole number of minor units.
    pub(crate) fn amount(&self) -> Result<Amount, Problem> {
        parse_amount(&self.bytes, self.is_json)
    }

    /// Whether the request declared a JSON content type: required of every request that changes
    /// state, even one without a body, since that is what no cross-site form post can send.
    pub(crate) fn require_json(&self, field: &str) -> Result<(), Problem> {
        if self.is_json {
            Ok(())
        } else {
            Err(unsupported_media_type(field))
        }
    }

    /// Reads `{"balance": N}` for a reset: a whole number of minor units, zero or more.
    pub(crate) fn reset_balance(&self) -> Result<i64, Problem> {
        parse_reset_balance(&self.bytes, self.is_json)
    }
}

/// How long a body may take to arrive once its head has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub(crate) Duration);

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
        if request.body().size_hint().lower() > u64::try_from(BODY_LIMIT).unwrap_or(u64::MAX) {
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

/// `application/json`, with or without parameters, or any `application/*+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    // What nearly every client sends, compared as bytes before the general reading below.
    if value.as_bytes() == b"application/json" {
        return true;
    }
    let Ok(content_type) = value.to_str() else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > "application/+json".len()
            && essence[.."application/".len()].eq_ignore_ascii_case("application/")
            && essence.to_ascii_lowercase().ends_with("+json"))
}
