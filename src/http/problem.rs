//! Every client error as an RFC 9457 problem document (`application/problem+json`).
//!
//! One enum, [`Problem`], says what went wrong; [`IntoResponse`] turns it into the status, the
//! standard members (`type`, `title`, `status`, `detail`) and, where useful, extension members such
//! as the `balance` a refused withdrawal saw. The router's own errors (an unknown route, a wrong
//! method, a body that is too large) use it too, so every error looks alike.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::domain::error::AccountError;
use crate::domain::money::Refusal;
use crate::duration::format_duration;
use crate::wire::{ProblemDocument, ProblemType};

/// The media type of a problem document.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// What every 503 says in `Retry-After`, in seconds: each of them (a store that did not answer, a
/// server stopping, retries exhausted, too many viewers) is worth trying again about that soon.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

/// What was wrong with a request, or why it was not carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The body is not JSON (or there is none).
    #[error("{0}")]
    MalformedBody(String),
    /// The content type is missing or not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The JSON is well formed but a field is missing or wrong.
    #[error("{detail}")]
    InvalidField { field: String, detail: String },
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The body did not arrive in time after the head.
    #[error("the body did not arrive within {} of the request's head", format_duration(*after))]
    BodyTimeout { after: Duration },
    /// An HTTP/1.1 request without exactly one `Host` header.
    #[error("an HTTP/1.1 request must carry exactly one Host header (RFC 9112, section 3.2)")]
    BadHost,
    /// A transfer coding other than `chunked`.
    #[error("the transfer coding `{0}` is not supported: send the body as is, or only `chunked`")]
    UnsupportedTransferCoding(String),
    /// The withdrawal is more than the balance this request read.
    #[error("this withdrawal of {amount} is more than the balance of {balance} it saw")]
    InsufficientFunds { balance: i64, amount: i64 },
    /// The deposit would overflow the balance.
    #[error(
        "a deposit of {amount} onto a balance of {balance} would exceed the largest balance, {}",
        i64::MAX
    )]
    WouldOverflow { balance: i64, amount: i64 },
    /// Optimistic mode gave up after too many conflicts.
    #[error("gave up after redoing the work {retries} times because every attempt met a conflicting write; nothing was changed, try again")]
    Contention { retries: u32 },
    /// No such route.
    #[error("there is no {path}; try /deposit, /withdraw, /balance, /stats, /reset, /healthz or /readyz")]
    NotFound { path: String },
    /// The route exists, with another method.
    #[error("this route does not take that method; the Allow header lists the ones it takes")]
    MethodNotAllowed,
    /// The server is shutting down and stopped this request before it wrote anything.
    #[error("the server is shutting down and stopped this request before it changed anything")]
    ShuttingDown,
    /// The store could not be reached; nothing was changed.
    #[error("{0}; nothing was changed, try again")]
    StoreUnavailable(String),
    /// The store failed after the write was sent.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The request's lease ran out, and a newer holder's fencing token refused its write.
    #[error("{0}; nothing was changed, try again")]
    LeaseLost(String),
    /// The `Idempotency-Key` header is not a valid key.
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    /// The `Idempotency-Key` was first used for a different request; nothing was changed.
    #[error("{0}; nothing was changed")]
    IdempotencyKeyReused(String),
    /// Another request with the same key was answered at the same moment; this one wrote nothing.
    #[error("{0}")]
    IdempotencyKeyInUse(String),
    /// The store lost acknowledged writes under the running server; refused until a reset.
    #[error("{0}; nothing was changed")]
    StoreRolledBack(String),
    /// Every idempotency key the store can keep is live; a new one is refused.
    #[error("{0}; nothing was changed, try again when keys expire")]
    IdempotencyKeysFull(String),
    /// The `Host` header names a host this server does not serve.
    #[error(
        "this server does not serve the host `{0}`: it answers to loopback names and addresses, \
         its own address and the hosts of --allow-host (a guard against DNS rebinding)"
    )]
    MisdirectedRequest(String),
    /// Every live-page stream is taken.
    #[error("{limit} live viewers are watching already (--max-viewers); try again shortly")]
    TooManyViewers { limit: usize },
    /// The bank holds no account with that id.
    #[error("{0}; GET /accounts lists the bank's accounts")]
    UnknownAccount(String),
    /// The household rule refused a withdrawal or transfer.
    #[error("this withdrawal of {amount} is more than the household's total of {total} it saw")]
    HouseholdLimit { total: i64, amount: i64 },
    /// Waiting for a lock would have waited for itself; this request gave up and wrote nothing.
    #[error("{0}; nothing was changed, try again")]
    Deadlock(String),
}

impl Problem {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem_type().status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The kind of problem, as both crates name it ([`crate::wire`]).
    pub fn problem_type(&self) -> ProblemType {
        match self {
            Problem::MalformedBody(_) => ProblemType::MalformedBody,
            Problem::BodyTimeout { .. } => ProblemType::BodyTimeout,
            Problem::BadHost => ProblemType::BadHost,
            Problem::UnsupportedTransferCoding(_) => ProblemType::UnsupportedTransferCoding,
            Problem::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            Problem::InvalidField { .. } => ProblemType::InvalidField,
            Problem::TooLarge { .. } => ProblemType::BodyTooLarge,
            Problem::InsufficientFunds { .. } => ProblemType::InsufficientFunds,
            Problem::WouldOverflow { .. } => ProblemType::BalanceOverflow,
            Problem::Contention { .. } => ProblemType::TooMuchContention,
            Problem::NotFound { .. } => ProblemType::NotFound,
            Problem::MethodNotAllowed => ProblemType::MethodNotAllowed,
            Problem::ShuttingDown => ProblemType::ShuttingDown,
            Problem::StoreUnavailable(_) => ProblemType::StoreUnavailable,
            Problem::OutcomeUnknown(_) => ProblemType::OutcomeUnknown,
            Problem::LeaseLost(_) => ProblemType::LeaseLost,
            Problem::InvalidIdempotencyKey(_) => ProblemType::InvalidIdempotencyKey,
            Problem::IdempotencyKeyReused(_) => ProblemType::IdempotencyKeyReused,
            Problem::IdempotencyKeyInUse(_) => ProblemType::IdempotencyKeyInUse,
            Problem::StoreRolledBack(_) => ProblemType::StoreRolledBack,
            Problem::IdempotencyKeysFull(_) => ProblemType::IdempotencyKeysFull,
            Problem::MisdirectedRequest(_) => ProblemType::MisdirectedRequest,
            Problem::TooManyViewers { .. } => ProblemType::TooManyViewers,
            Problem::UnknownAccount(_) => ProblemType::UnknownAccount,
            Problem::HouseholdLimit { .. } => ProblemType::HouseholdLimit,
            Problem::Deadlock(_) => ProblemType::Deadlock,
        }
    }

    /// A short, fixed summary of the kind of problem.
    pub(crate) fn title(&self) -> &'static str {
        self.problem_type().title()
    }

    /// The problem document: the standard members, and the extension members where they help.
    fn document(&self) -> ProblemDocument {
        let mut document = ProblemDocument {
            kind: self.problem_type().urn().to_string(),
            title: self.title().to_string(),
            status: self.status().as_u16(),
            detail: self.to_string(),
            field: None,
            balance: None,
            amount: None,
            retries: None,
        };
        match self {
            Problem::InvalidField { field, .. } => document.field = Some(field.clone()),
            Problem::InsufficientFunds { balance, amount }
            | Problem::WouldOverflow { balance, amount } => {
                document.balance = Some(*balance);
                document.amount = Some(*amount);
            }
            Problem::HouseholdLimit { total, amount } => {
                document.balance = Some(*total);
                document.amount = Some(*amount);
            }
            Problem::Contention { retries } => document.retries = Some(*retries),
            _ => {}
        }
        document
    }

    /// The problem document as JSON, its members in alphabetical order.
    pub fn to_json(&self) -> Value {
        json!(self.document())
    }

    /// One problem of every kind, for the tests on both sides of the wire contract.
    #[doc(hidden)]
    pub fn one_of_each() -> Vec<Problem> {
        vec![
            Problem::MalformedBody("x".into()),
            Problem::UnsupportedMediaType("x".into()),
            Problem::missing("amount"),
            Problem::TooLarge { limit: 1024 },
            Problem::BodyTimeout {
                after: std::time::Duration::from_secs(1),
            },
            Problem::BadHost,
            Problem::UnsupportedTransferCoding("gzip".into()),
            Problem::InsufficientFunds {
                balance: 1,
                amount: 2,
            },
            Problem::WouldOverflow {
                balance: 1,
                amount: 2,
            },
            Problem::Contention { retries: 3 },
            Problem::NotFound { path: "/x".into() },
            Problem::MethodNotAllowed,
            Problem::ShuttingDown,
            Problem::StoreUnavailable("x".into()),
            Problem::OutcomeUnknown("x".into()),
            Problem::LeaseLost("x".into()),
            Problem::InvalidIdempotencyKey("x".into()),
            Problem::IdempotencyKeyReused("x".into()),
            Problem::IdempotencyKeyInUse("x".into()),
            Problem::StoreRolledBack("x".into()),
            Problem::IdempotencyKeysFull("x".into()),
            Problem::MisdirectedRequest("x".into()),
            Problem::TooManyViewers { limit: 1 },
            Problem::UnknownAccount("x".into()),
            Problem::HouseholdLimit {
                total: 1,
                amount: 2,
            },
            Problem::Deadlock("x".into()),
        ]
    }

    /// A required field that is absent.
    pub(crate) fn missing(field: &str) -> Self {
        Problem::InvalidField {
            field: field.into(),
            detail: format!("`{field}` is required"),
        }
    }

    /// A field with a value it cannot take.
    pub(crate) fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Problem::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.to_json().to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        // Every 503 is a "not now": the request changed nothing and may be sent again. Say when,
        // so that well-behaved clients back off instead of retrying in a loop.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<AccountError> for Problem {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Refused(Refusal::InsufficientFunds { balance, amount }) => {
                Problem::InsufficientFunds { balance, amount }
            }
            AccountError::Refused(Refusal::WouldOverflow { balance, amount }) => {
                Problem::WouldOverflow { balance, amount }
            }
            AccountError::Refused(Refusal::HouseholdShort { total, amount }) => {
                Problem::HouseholdLimit { total, amount }
            }
            error @ AccountError::UnknownAccount(_) => Problem::UnknownAccount(error.to_string()),
            AccountError::Deadlock(detail) => Problem::Deadlock(detail),
            AccountError::Contention { retries } => Problem::Contention { retries },
            AccountError::Stopped => Problem::ShuttingDown,
            error @ AccountError::Unavailable { .. } => {
                Problem::StoreUnavailable(error.to_string())
            }
            error @ AccountError::OutcomeUnknown { .. } => {
                Problem::OutcomeUnknown(error.to_string())
            }
            AccountError::Fenced(detail) => Problem::LeaseLost(detail),
            error @ AccountError::KeyReused { .. } => {
                Problem::IdempotencyKeyReused(error.to_string())
            }
            error @ AccountError::KeyInUse => Problem::IdempotencyKeyInUse(error.to_string()),
            AccountError::RolledBack(detail) => Problem::StoreRolledBack(detail),
            error @ AccountError::KeysFull { .. } => {
                Problem::IdempotencyKeysFull(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_503_tells_the_client_when_to_retry_and_no_other_status_does() {
        for problem in Problem::one_of_each() {
            let status = problem.status();
            let response = problem.clone().into_response();
            let retry_after = response.headers().get(header::RETRY_AFTER);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(
                    retry_after.map(HeaderValue::as_bytes),
                    Some(&b"1"[..]),
                    "{problem:?}"
                );
            } else {
                assert_eq!(retry_after, None, "{problem:?}");
            }
        }
    }

    #[test]
    fn every_problem_document_names_its_wire_type_and_status() {
        let problems = Problem::one_of_each();
        for problem in &problems {
            let document = problem.to_json();
            let kind = problem.problem_type();
            assert_eq!(document["type"], kind.urn(), "{problem:?}");
            assert_eq!(document["status"], kind.status(), "{problem:?}");
            assert_eq!(problem.status().as_u16(), kind.status(), "{problem:?}");
        }
        for kind in ProblemType::ALL {
            assert!(
                problems.iter().any(|p| p.problem_type() == kind),
                "{kind:?} has no Problem"
            );
        }
    }
}
