//! The wire contract: what racebank and racebank-load both read and write over HTTP.
//!
//! The server (`http::routes`, `http::problem`) and the load generator (`racebank-load`) each
//! own one direction of every message here, so they cannot drift apart: the route paths, the
//! request and answer bodies, the `/stats` document, and the problem types with what each says
//! about the request that got it. The one judgement the load generator cannot make from a status
//! code alone, whether a 503 changed anything, is [`ProblemType::effect`].
//!
//! The bodies derive `ToSchema` too: `/openapi.json` (`http::openapi`) describes them from these
//! same types, so the description cannot drift from them either.

pub mod bank;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The largest request body accepted, in bytes. `{"amount": 9223372036854775807}` needs 31.
pub const BODY_LIMIT: usize = 1024;

/// The largest request head (request line and headers) a connection may send, in bytes: nginx's
/// 8 KiB per header line, twice, and a hundred times the heads the clients of this API send.
/// (hyper's buffer limit, which this is, takes no less than 8 KiB.)
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The route paths of the account.
pub mod paths {
    /// `POST`, body [`AmountBody`](super::AmountBody), answer [`BalanceBody`](super::BalanceBody).
    pub const DEPOSIT: &str = "/deposit";
    /// `POST`, body [`AmountBody`](super::AmountBody), answer [`BalanceBody`](super::BalanceBody).
    pub const WITHDRAW: &str = "/withdraw";
    /// `GET`, answer [`BalanceBody`](super::BalanceBody).
    pub const BALANCE: &str = "/balance";
    /// `GET`, answer [`Stats`](super::Stats).
    pub const STATS: &str = "/stats";
    /// `POST`, optional body [`ResetBody`](super::ResetBody), answer [`Stats`](super::Stats).
    pub const RESET: &str = "/reset";
    /// `GET`, answer `{"status": "ok"}`.
    pub const HEALTHZ: &str = "/healthz";
    /// `GET`, answer `{"status": "ready"}`, or 503 while the store does not answer.
    pub const READYZ: &str = "/readyz";
    /// `GET`, answer Prometheus metrics (OpenMetrics text).
    pub const METRICS: &str = "/metrics";
    /// `GET`, answer the OpenAPI 3.1 description of every route.
    pub const OPENAPI: &str = "/openapi.json";
}

/// The body of a deposit or a withdrawal: `{"amount": N}`, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    /// The amount, in minor units: positive.
    #[schema(schema_with = positive_minor_units)]
    pub amount: i64,
}

/// The body of a reset that names the balance to start from: `{"balance": N}`, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The new balance, in minor units (cents): zero or more, written as an integer.
    #[schema(minimum = 0)]
    pub balance: i64,
}

/// The answer to a deposit, a withdrawal or a balance read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceBody {
    /// The balance, in minor units; never below zero.
    #[schema(minimum = 0)]
    pub balance: i64,
}

/// `amount`'s schema: an `i64` above zero. A function because the attribute's `maximum` takes
/// only a literal, and `i64::MAX` reads better than its digits.
fn positive_minor_units() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .description(Some(
            "The amount, in minor units (cents): a positive integer, written without a decimal \
             point or an exponent (`5`, not `5.0` or `5e0`).",
        ))
        .schema_type(utoipa::openapi::Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(1))
        .maximum(Some(i64::MAX))
        .build()
}

/// The `/stats` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Where the balance lives (`memory`, `postgres`, `redis`).
    // `default` lets the load generator read a server that predates the field; racebank always
    // sends it.
    #[serde(default)]
    #[schema(required = true)]
    pub store: String,
    /// The strategy guarding the account (`unguarded`, `mutex`, ...).
    pub mode: String,
    /// The work done between read and write (`1ms`, `rendezvous:2`, ...).
    pub work: String,
    /// The balance now.
    #[schema(minimum = 0)]
    pub balance: i64,
    /// The balance at start or at the last reset.
    #[schema(minimum = 0)]
    pub initial_balance: i64,
    /// Deposits acknowledged with 200.
    pub deposit_count: u64,
    /// Their total.
    pub deposit_sum: i128,
    /// Withdrawals acknowledged with 200.
    pub withdrawal_count: u64,
    /// Their total.
    pub withdrawal_sum: i128,
    /// Withdrawals refused by the funds check (409).
    pub refused_count: u64,
    /// `initial_balance + deposit_sum - withdrawal_sum`: the balance if nothing had been lost.
    pub expected_balance: i128,
    /// Writes that replaced a balance other than the one they read.
    pub lost_updates: u64,
    /// The signed total of the changes those writes erased.
    pub lost_net: i128,
    /// The erasures that removed money (a write over a higher balance than it read), summed:
    /// erased deposits, mostly. `lost_net = lost_removed - lost_added`, and with mixed deposits
    /// and withdrawals the net can hide both.
    #[serde(default)]
    #[schema(required = true)]
    pub lost_removed: i128,
    /// The erasures that added money (a write over a lower balance than it read), summed as a
    /// positive amount: erased withdrawals, or a write putting back what a staler write erased.
    #[serde(default)]
    #[schema(required = true)]
    pub lost_added: i128,
    /// `balance - expected_balance`; equals `-lost_net` at any quiet moment.
    pub drift: i128,
    /// True when acknowledged withdrawals exceed everything the account ever held.
    pub overdraft: bool,
    /// Optimistic conflicts redone (always 0 in other modes).
    pub retries: u64,
    /// Optimistic requests that gave up after too many conflicts (503).
    pub retries_exhausted: u64,
    /// The bank's accounting, when the server opened a bank (`--accounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<bank::BankStats>,
}

/// The prefix of every racebank problem `type`.
pub const PROBLEM_URN_PREFIX: &str = "urn:racebank:problem:";

/// An RFC 9457 problem document: the body of every error racebank answers, sent as
/// `application/problem+json`.
// [`crate::http::problem::Problem`] writes it; the load generator needs only `type`
// ([`ProblemType::of_document`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDocument {
    /// What kind of problem: `urn:racebank:problem:<slug>`, one of [`ProblemType`]'s.
    #[serde(rename = "type")]
    #[schema(schema_with = problem_urns)]
    pub kind: String,
    /// A short, fixed summary of the kind of problem.
    pub title: String,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What was wrong with this request, in a sentence.
    pub detail: String,
    /// `invalid-field`: the member of the body that is missing or wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// `insufficient-funds`, `balance-overflow`: the balance the request read; `household-limit`:
    /// the household's total it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub balance: Option<i64>,
    /// `insufficient-funds`, `balance-overflow`: the amount the request asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub amount: Option<i64>,
    /// `too-much-contention`: how many times the request redid its work before giving up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retries: Option<u32>,
}

/// The `type` member's schema: one of the URNs of [`ProblemType::ALL`].
fn problem_urns() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .description(Some("What kind of problem: `urn:racebank:problem:<slug>`."))
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(ProblemType::ALL.map(ProblemType::urn)))
        .build()
}

/// What a problem answer says about the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The funds check refused the withdrawal: nothing changed, and the refusal is an expected
    /// answer, not an error.
    Refused,
    /// The request was not carried out: nothing changed.
    NotApplied,
    /// The server cannot tell: the write was sent to its store, which failed before it answered.
    Unknown,
}

/// Every kind of problem racebank answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// The body is not JSON (or there is none).
    MalformedBody,
    /// The content type is missing or not JSON.
    UnsupportedMediaType,
    /// The JSON is well formed but a field is missing or wrong.
    InvalidField,
    /// The body is larger than the limit.
    BodyTooLarge,
    /// The body did not arrive in time.
    BodyTimeout,
    /// An HTTP/1.1 request without exactly one `Host` header.
    BadHost,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferCoding,
    /// The withdrawal is more than the balance this request read.
    InsufficientFunds,
    /// The deposit would overflow the balance.
    BalanceOverflow,
    /// Optimistic mode gave up after too many conflicts.
    TooMuchContention,
    /// No such route.
    NotFound,
    /// The route exists, with another method.
    MethodNotAllowed,
    /// The server is shutting down and stopped the request before it wrote anything.
    ShuttingDown,
    /// The store could not be reached before anything was written.
    StoreUnavailable,
    /// The store failed after the write was sent: it may or may not have been applied.
    OutcomeUnknown,
    /// The request's lease ran out and a newer holder's fencing token refused its write.
    LeaseLost,
    /// The `Idempotency-Key` header is not 1 to 255 printable ASCII characters.
    InvalidIdempotencyKey,
    /// The `Idempotency-Key` was first used for a different request.
    IdempotencyKeyReused,
    /// Another request with the same key was answered at the same moment; this one wrote nothing.
    IdempotencyKeyInUse,
    /// The store lost acknowledged writes under a running server (the account vanished or went
    /// back in time): refused until an operator resets the account; nothing was changed.
    StoreRolledBack,
    /// The store keeps as many live idempotency keys as it can: a new key is refused rather than
    /// another client's live key forgotten; nothing was changed.
    IdempotencyKeysFull,
    /// The `Host` header names a host this server does not serve (a guard against DNS rebinding).
    MisdirectedRequest,
    /// The live page's event streams are all taken.
    TooManyViewers,
    /// The bank holds no account with that id.
    UnknownAccount,
    /// The household rule refused a withdrawal or transfer: the household's total does not cover it.
    HouseholdLimit,
    /// Waiting for an account's lock would have waited for itself (two requests each holding the
    /// lock the other wants): this one gave up its locks, and wrote nothing.
    Deadlock,
}

impl ProblemType {
    /// Every problem type.
    pub const ALL: [ProblemType; 26] = [
        ProblemType::MalformedBody,
        ProblemType::UnsupportedMediaType,
        ProblemType::InvalidField,
        ProblemType::BodyTooLarge,
        ProblemType::BodyTimeout,
        ProblemType::BadHost,
        ProblemType::UnsupportedTransferCoding,
        ProblemType::InsufficientFunds,
        ProblemType::BalanceOverflow,
        ProblemType::TooMuchContention,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::ShuttingDown,
        ProblemType::StoreUnavailable,
        ProblemType::OutcomeUnknown,
        ProblemType::LeaseLost,
        ProblemType::InvalidIdempotencyKey,
        ProblemType::IdempotencyKeyReused,
        ProblemType::IdempotencyKeyInUse,
        ProblemType::StoreRolledBack,
        ProblemType::IdempotencyKeysFull,
        ProblemType::MisdirectedRequest,
        ProblemType::TooManyViewers,
        ProblemType::UnknownAccount,
        ProblemType::HouseholdLimit,
        ProblemType::Deadlock,
    ];

    /// The full `type` member: `urn:racebank:problem:<slug>`.
    pub fn urn(self) -> &'static str {
        match self {
            ProblemType::MalformedBody => "urn:racebank:problem:malformed-body",
            ProblemType::UnsupportedMediaType => "urn:racebank:problem:unsupported-media-type",
            ProblemType::InvalidField => "urn:racebank:problem:invalid-field",
            ProblemType::BodyTooLarge => "urn:racebank:problem:body-too-large",
            ProblemType::BodyTimeout => "urn:racebank:problem:body-timeout",
            ProblemType::BadHost => "urn:racebank:problem:bad-host",
            ProblemType::UnsupportedTransferCoding => {
                "urn:racebank:problem:unsupported-transfer-coding"
            }
            ProblemType::InsufficientFunds => "urn:racebank:problem:insufficient-funds",
            ProblemType::BalanceOverflow => "urn:racebank:problem:balance-overflow",
            ProblemType::TooMuchContention => "urn:racebank:problem:too-much-contention",
            ProblemType::NotFound => "urn:racebank:problem:not-found",
            ProblemType::MethodNotAllowed => "urn:racebank:problem:method-not-allowed",
            ProblemType::ShuttingDown => "urn:racebank:problem:shutting-down",
            ProblemType::StoreUnavailable => "urn:racebank:problem:store-unavailable",
            ProblemType::OutcomeUnknown => "urn:racebank:problem:outcome-unknown",
            ProblemType::LeaseLost => "urn:racebank:problem:lease-lost",
            ProblemType::InvalidIdempotencyKey => "urn:racebank:problem:invalid-idempotency-key",
            ProblemType::IdempotencyKeyReused => "urn:racebank:problem:idempotency-key-reused",
            ProblemType::IdempotencyKeyInUse => "urn:racebank:problem:idempotency-key-in-use",
            ProblemType::StoreRolledBack => "urn:racebank:problem:store-rolled-back",
            ProblemType::IdempotencyKeysFull => "urn:racebank:problem:idempotency-keys-full",
            ProblemType::MisdirectedRequest => "urn:racebank:problem:misdirected-request",
            ProblemType::TooManyViewers => "urn:racebank:problem:too-many-viewers",
            ProblemType::UnknownAccount => "urn:racebank:problem:unknown-account",
            ProblemType::HouseholdLimit => "urn:racebank:problem:household-limit",
            ProblemType::Deadlock => "urn:racebank:problem:deadlock",
        }
    }

    /// The stable last part of the URN (`insufficient-funds`).
    pub fn slug(self) -> &'static str {
        &self.urn()[PROBLEM_URN_PREFIX.len()..]
    }

    /// The problem document's `title`: a short, fixed summary of the kind of problem.
    pub fn title(self) -> &'static str {
        match self {
            ProblemType::MalformedBody => "The body is not valid JSON",
            ProblemType::UnsupportedMediaType => "The body must be sent as application/json",
            ProblemType::InvalidField => "A field of the body is missing or invalid",
            ProblemType::BodyTooLarge => "The body is too large",
            ProblemType::BodyTimeout => "The body took too long to arrive",
            ProblemType::BadHost => "Missing or repeated Host header",
            ProblemType::UnsupportedTransferCoding => "Unsupported transfer coding",
            ProblemType::InsufficientFunds => "Insufficient funds",
            ProblemType::BalanceOverflow => "The balance would overflow",
            ProblemType::TooMuchContention => "Too many conflicting writes",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::ShuttingDown => "Shutting down",
            ProblemType::StoreUnavailable => "The store is unavailable",
            ProblemType::OutcomeUnknown => "The outcome of the write is unknown",
            ProblemType::LeaseLost => "The lease ran out before the write",
            ProblemType::InvalidIdempotencyKey => "Invalid Idempotency-Key",
            ProblemType::IdempotencyKeyReused => "Idempotency-Key reused for another request",
            ProblemType::IdempotencyKeyInUse => "Idempotency-Key in use",
            ProblemType::StoreRolledBack => "The store lost acknowledged writes",
            ProblemType::IdempotencyKeysFull => "Too many live idempotency keys",
            ProblemType::MisdirectedRequest => "This server does not serve that host",
            ProblemType::TooManyViewers => "Too many live viewers",
            ProblemType::UnknownAccount => "No such account",
            ProblemType::HouseholdLimit => "The household's total does not cover it",
            ProblemType::Deadlock => "Deadlock",
        }
    }

    /// The HTTP status answered with it.
    pub fn status(self) -> u16 {
        match self {
            ProblemType::MalformedBody
            | ProblemType::BadHost
            | ProblemType::InvalidIdempotencyKey => 400,
            ProblemType::BodyTimeout => 408,
            ProblemType::UnsupportedTransferCoding => 501,
            ProblemType::UnsupportedMediaType => 415,
            ProblemType::InvalidField
            | ProblemType::BalanceOverflow
            | ProblemType::IdempotencyKeyReused => 422,
            ProblemType::BodyTooLarge => 413,
            ProblemType::InsufficientFunds
            | ProblemType::HouseholdLimit
            | ProblemType::IdempotencyKeyInUse => 409,
            ProblemType::TooMuchContention
            | ProblemType::ShuttingDown
            | ProblemType::StoreUnavailable
            | ProblemType::LeaseLost
            | ProblemType::StoreRolledBack
            | ProblemType::IdempotencyKeysFull
            | ProblemType::TooManyViewers
            | ProblemType::Deadlock => 503,
            ProblemType::MisdirectedRequest => 421,
            ProblemType::OutcomeUnknown => 500,
            ProblemType::NotFound | ProblemType::UnknownAccount => 404,
            ProblemType::MethodNotAllowed => 405,
        }
    }

    /// What the answer says about the request. Every racebank problem but `outcome-unknown` is
    /// answered before the request wrote anything; this is what lets the load generator count a
    /// racebank 503 as not applied where another server's 503 is indeterminate.
    pub fn effect(self) -> Effect {
        match self {
            ProblemType::InsufficientFunds | ProblemType::HouseholdLimit => Effect::Refused,
            ProblemType::MalformedBody
            | ProblemType::UnsupportedMediaType
            | ProblemType::InvalidField
            | ProblemType::BodyTooLarge
            | ProblemType::BodyTimeout
            | ProblemType::BadHost
            | ProblemType::UnsupportedTransferCoding
            | ProblemType::BalanceOverflow
            | ProblemType::TooMuchContention
            | ProblemType::NotFound
            | ProblemType::MethodNotAllowed
            | ProblemType::ShuttingDown
            | ProblemType::StoreUnavailable
            | ProblemType::LeaseLost
            | ProblemType::InvalidIdempotencyKey
            | ProblemType::IdempotencyKeyReused
            | ProblemType::IdempotencyKeyInUse
            | ProblemType::StoreRolledBack
            | ProblemType::IdempotencyKeysFull
            | ProblemType::MisdirectedRequest
            | ProblemType::TooManyViewers
            | ProblemType::UnknownAccount
            | ProblemType::Deadlock => Effect::NotApplied,
            ProblemType::OutcomeUnknown => Effect::Unknown,
        }
    }

    /// The problem type of a full URN, if it is one of racebank's.
    pub fn from_urn(urn: &str) -> Option<ProblemType> {
        ProblemType::ALL.into_iter().find(|kind| kind.urn() == urn)
    }

    /// The problem type named by the `type` member of a problem document, if the body is one of
    /// racebank's problem documents.
    pub fn of_document(body: &[u8]) -> Option<ProblemType> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let document: Document = serde_json::from_slice(body).ok()?;
        ProblemType::from_urn(&document.kind?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_round_trips_through_its_urn() {
        for kind in ProblemType::ALL {
            assert_eq!(ProblemType::from_urn(kind.urn()), Some(kind), "{kind:?}");
            assert!(kind.urn().starts_with(PROBLEM_URN_PREFIX));
            let document = format!(r#"{{"type":"{}","status":{}}}"#, kind.urn(), kind.status());
            assert_eq!(ProblemType::of_document(document.as_bytes()), Some(kind));
        }
        assert_eq!(
            ProblemType::of_document(b"{\"type\":\"about:blank\"}"),
            None
        );
        assert_eq!(ProblemType::of_document(b"not json"), None);
    }

    #[test]
    fn only_the_funds_checks_refuse_and_only_a_failed_store_write_is_unknown() {
        for kind in ProblemType::ALL {
            let expected = match kind {
                ProblemType::InsufficientFunds | ProblemType::HouseholdLimit => Effect::Refused,
                ProblemType::OutcomeUnknown => Effect::Unknown,
                _ => Effect::NotApplied,
            };
            assert_eq!(kind.effect(), expected, "{kind:?}");
        }
    }
}
