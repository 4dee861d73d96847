//! `GET /openapi.json`: an OpenAPI 3.1 description of every route, built from the code.
//!
//! So that a client, a code generator or a fuzzer (`.ci/schemathesis`) can learn the API from the
//! server itself, and so that the description cannot say something the server does not do:
//!
//! - The bodies' schemas are the `ToSchema` derives of the wire types ([`crate::wire`]), the very
//!   types the server and the load generator read and write.
//! - Every error answer is generated from [`ProblemType`]: each route lists the problems it can
//!   answer, and the route's error statuses, and each status's `type` URNs, follow from them.
//! - `tests/api/openapi.rs` checks the document against real answers, and that every path of
//!   [`paths`] is in it.
//!
//! The document is built and serialized once, on the first request for it; nothing else on the
//! request path knows it exists.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, Schema};
use utoipa::openapi::{
    ComponentsBuilder, Content, HeaderBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    Ref, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::ToSchema;

use crate::domain::idempotency::{IdempotencyKey, KEY_HEADER, REPLAYED_HEADER};
use crate::http::metrics;
use crate::http::problem::{PROBLEM_JSON, RETRY_AFTER_SECONDS};
use crate::wire::{
    paths, AmountBody, BalanceBody, ProblemDocument, ProblemType, ResetBody, Stats, BODY_LIMIT,
};

/// The document, serialized on first use.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document is plain data and always serializes")
});

/// The `/openapi.json` handler.
pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// The operations' tags.
const ACCOUNT: &str = "account";
const OPERATIONS: &str = "operations";
const LIVE: &str = "live page";

/// What every route can answer: the framing checks run before the router
/// (`crate::http::connection`).
const FRAMING: &[ProblemType] = &[
    ProblemType::BadHost,
    ProblemType::UnsupportedTransferCoding,
    ProblemType::MisdirectedRequest,
];

/// A body that cannot be read or is not the JSON the route takes (`routes::JsonBody`).
const BODY: &[ProblemType] = &[
    ProblemType::MalformedBody,
    ProblemType::UnsupportedMediaType,
    ProblemType::InvalidField,
    ProblemType::BodyTooLarge,
    ProblemType::BodyTimeout,
];

/// A deposit or withdrawal not carried out: a mode that redoes gave up, the server is stopping,
/// the store failed, a Redis lease ran out, or an `Idempotency-Key` was refused.
const CHANGE: &[ProblemType] = &[
    ProblemType::TooMuchContention,
    ProblemType::ShuttingDown,
    ProblemType::StoreUnavailable,
    ProblemType::OutcomeUnknown,
    ProblemType::LeaseLost,
    ProblemType::InvalidIdempotencyKey,
    ProblemType::IdempotencyKeyReused,
    ProblemType::IdempotencyKeyInUse,
    ProblemType::StoreRolledBack,
    ProblemType::IdempotencyKeysFull,
];

/// A read the store could not answer.
const READ: &[ProblemType] = &[ProblemType::StoreUnavailable, ProblemType::StoreRolledBack];

/// A reset not carried out: the server is stopping, or the store failed.
const RESET: &[ProblemType] = &[
    ProblemType::ShuttingDown,
    ProblemType::StoreUnavailable,
    ProblemType::OutcomeUnknown,
];

/// The answers of any path or method the router does not serve, in `components.responses`.
const ELSEWHERE: &[ProblemType] = &[ProblemType::NotFound, ProblemType::MethodNotAllowed];

const DESCRIPTION: &str = "A bank account over HTTP that loses updates on purpose, and the \
strategies that stop it.\n\n\
Money is an integer number of minor units (cents), written without a decimal point or an \
exponent. Every error is an RFC 9457 problem document (`application/problem+json`) whose `type` \
is a `urn:racebank:problem:` URN. Bad input changes nothing in the account, not even a ledger \
counter (`/metrics` counts it as a request), and no error answer moves the balance, except \
perhaps `outcome-unknown` (500): the store failed after the write was sent, so it may or may not \
have been applied.\n\n\
A path not listed here answers 404 `not-found`, and a listed path with another method 405 \
`method-not-allowed` with an `Allow` header (`components.responses`). A request whose `Host` names \
neither a loopback address, `localhost`, the server's own address nor a host of `--allow-host` \
answers 421 `misdirected-request` before any route runs (a guard against DNS rebinding; the port \
in `Host` is ignored). hyper answers a malformed \
request head (400), a too long URI (414) and a head over 16 KiB (431) itself, with an empty body, \
before any route sees the request.";

/// The whole description.
fn document() -> OpenApi {
    let paths = live_paths(operations_paths(account_paths(PathsBuilder::new())));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("racebank")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION)),
        )
        .paths(paths)
        .components(Some(components()))
        .build()
}

/// The account's routes: the balance, its changes, the ledger and the reset.
fn account_paths(paths: PathsBuilder) -> PathsBuilder {
    paths
        .path(paths::DEPOSIT, change_item(Change::Deposit))
        .path(paths::WITHDRAW, change_item(Change::Withdraw))
        .path(
            paths::BALANCE,
            get(
                ACCOUNT,
                "balance",
                "The balance",
                "The balance now, in minor units.",
                json_answer::<BalanceBody>("The balance."),
                READ,
            ),
        )
        .path(
            paths::STATS,
            get(
                ACCOUNT,
                "stats",
                "The ledger",
                "The balance and the counters that explain it: at any quiet moment, \
                 `balance == expected_balance - lost_net`.",
                json_answer::<Stats>("The ledger."),
                READ,
            ),
        )
        .path(paths::RESET, reset_item())
}

/// The routes for operators: liveness, metrics and this description.
fn operations_paths(paths: PathsBuilder) -> PathsBuilder {
    paths
        .path(
            paths::HEALTHZ,
            get(
                OPERATIONS,
                "healthz",
                "Liveness",
                "Answers as soon as the server serves requests; does not touch the store.",
                ResponseBuilder::new()
                    .description("The server is up.")
                    .content("application/json", Content::new(Some(health())))
                    .build(),
                &[],
            ),
        )
        .path(
            paths::READYZ,
            get(
                OPERATIONS,
                "readyz",
                "Readiness",
                "Answers 200 when the store answers a read of the account within 1 s, and 503 \
                 `store-unavailable` with `Retry-After` otherwise: send traffic here only while \
                 it is ready.",
                ResponseBuilder::new()
                    .description("The store answers.")
                    .content("application/json", Content::new(Some(readiness())))
                    .build(),
                READ,
            ),
        )
        .path(
            paths::METRICS,
            get(
                OPERATIONS,
                "metrics",
                "Prometheus metrics",
                "Answers by route and status, deposits and withdrawals by outcome and \
                 duration, and the ledger's counters, in the OpenMetrics text format.",
                text_answer(metrics::CONTENT_TYPE, "The scrape."),
                &[],
            ),
        )
        .path(
            paths::OPENAPI,
            get(
                OPERATIONS,
                "openapi",
                "This description",
                "The OpenAPI 3.1 description of every route.",
                ResponseBuilder::new()
                    .description("The description.")
                    .content(
                        "application/json",
                        Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                    )
                    .build(),
                &[],
            ),
        )
}

/// The live page and what it loads.
fn live_paths(paths: PathsBuilder) -> PathsBuilder {
    paths
        .path(
            "/",
            get(
                LIVE,
                "live_page",
                "The live page",
                "A page that shows the account as it changes, fed by `/live/events`.",
                text_answer("text/html", "The page."),
                &[],
            ),
        )
        .path(
            "/live/page.css",
            get(
                LIVE,
                "live_page_css",
                "The live page's style",
                "Loaded by the live page.",
                text_answer("text/css", "The style sheet."),
                &[],
            ),
        )
        .path(
            "/live/page.js",
            get(
                LIVE,
                "live_page_js",
                "The live page's script",
                "Loaded by the live page.",
                text_answer("text/javascript", "The script."),
                &[],
            ),
        )
        .path(
            "/live/events",
            get(
                LIVE,
                "live_events",
                "The live page's event stream",
                "Server-sent events that never end by themselves (only when the server \
                 shuts down): one `hello` event (the mode, the work, the mode's lesson and \
                 the numbers now), \
                 then a `stats` event four times a second (the `/stats` document and the \
                 requests per second), or a `trouble` event when the store could not be \
                 read.",
                text_answer("text/event-stream", "The stream."),
                &[ProblemType::TooManyViewers],
            ),
        )
}

/// The two routes that change the balance.
#[derive(Clone, Copy)]
enum Change {
    Deposit,
    Withdraw,
}

/// `POST /deposit` or `POST /withdraw`, with its `Idempotency-Key`.
fn change_item(change: Change) -> PathItem {
    let (id, summary, description, refusal) = match change {
        Change::Deposit => (
            "deposit",
            "Deposit",
            "Adds `amount` to the balance and answers the balance this request wrote. A deposit \
             that would take the balance past the largest `i64` is refused (422 \
             `balance-overflow`), never wrapped.",
            ProblemType::BalanceOverflow,
        ),
        Change::Withdraw => (
            "withdraw",
            "Withdraw",
            "Takes `amount` from the balance if the balance this request read covers it, and \
             answers the balance it wrote; otherwise 409 `insufficient-funds` with the balance \
             it saw.",
            ProblemType::InsufficientFunds,
        ),
    };
    let replayable = [200, refusal.status()];
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(ACCOUNT)
        .summary(Some(summary))
        .description(Some(description))
        .parameter(idempotency_key())
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(format!(
                    "`{{\"amount\": N}}` and nothing else, as `application/json` (or any \
                     `application/*+json`), at most {BODY_LIMIT} bytes."
                )))
                .required(Some(Required::True))
                .content("application/json", json_content::<AmountBody>())
                .build(),
        ))
        .response(
            "200",
            replayed(json_answer::<BalanceBody>(
                "Applied: the balance this request wrote.",
            )),
        );
    for (status, response) in problem_responses(&[FRAMING, BODY, CHANGE, &[refusal]]) {
        let response = if replayable.contains(&status) {
            replayed(response)
        } else {
            response
        };
        operation = operation.response(status.to_string(), response);
    }
    PathItem::new(HttpMethod::Post, operation)
}

/// `POST /reset`, with or without a body.
fn reset_item() -> PathItem {
    let mut operation = OperationBuilder::new()
        .operation_id(Some("reset"))
        .tag(ACCOUNT)
        .summary(Some("Reset the account"))
        .description(Some(
            "Sets the balance and zeroes every counter, and answers the ledger after it. Without \
             a body the balance goes back to the one the server started with. The request must \
             carry `Content-Type: application/json` even without a body (415 otherwise): no \
             cross-site HTML form can send that.",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(
                    "`{\"balance\": N}` and nothing else, as `application/json`; or an empty \
                     body, still sent as `application/json`, for the opening balance. The \
                     content type is required either way, which is why the body is described \
                     as required: a request without it gets 415.",
                ))
                .required(Some(Required::True))
                .content("application/json", json_content::<ResetBody>())
                .build(),
        ))
        .response("200", json_answer::<Stats>("The ledger after the reset."));
    for (status, response) in problem_responses(&[FRAMING, BODY, RESET]) {
        operation = operation.response(status.to_string(), response);
    }
    PathItem::new(HttpMethod::Post, operation)
}

/// A `GET` route: `ok`, or one of `problems` or the framing problems.
fn get(
    tag: &str,
    id: &str,
    summary: &str,
    description: &str,
    ok: Response,
    problems: &[ProblemType],
) -> PathItem {
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary))
        .description(Some(description))
        .response("200", ok);
    for (status, response) in problem_responses(&[FRAMING, problems]) {
        operation = operation.response(status.to_string(), response);
    }
    PathItem::new(HttpMethod::Get, operation)
}

/// One response per status among `problems`, each a problem document whose `type` is one of
/// that status's problems.
fn problem_responses(problems: &[&[ProblemType]]) -> BTreeMap<u16, Response> {
    let mut by_status: BTreeMap<u16, Vec<ProblemType>> = BTreeMap::new();
    for &kind in problems.iter().copied().flatten() {
        by_status.entry(kind.status()).or_default().push(kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| (status, problem_response(status, &kinds)))
        .collect()
}

/// A problem document answered with `status`, its `type` one of `kinds`.
fn problem_response(status: u16, kinds: &[ProblemType]) -> Response {
    let narrowed = ObjectBuilder::new()
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(kinds.iter().map(|kind| kind.urn()))),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status])),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(ProblemDocument::name()))
        .item(narrowed);
    let description = kinds
        .iter()
        .map(|kind| format!("`{}`: {}.", kind.slug(), kind.title()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, Content::new(Some(schema)))
        .build();
    if status == 503 {
        let header = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([RETRY_AFTER_SECONDS])),
            ))
            .description(Some("Seconds to wait before trying again."))
            .build();
        response
            .headers
            .insert("retry-after".to_string(), header.into());
    }
    response
}

/// `response`, which may be a replay of the first answer to an `Idempotency-Key`.
fn replayed(mut response: Response) -> Response {
    let header = HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        ))
        .description(Some(
            "Present when this answer is the kept answer to an earlier request with the same \
             `Idempotency-Key`, sent again: this request changed nothing.",
        ))
        .build();
    response
        .headers
        .insert(REPLAYED_HEADER.as_str().to_string(), header.into());
    response
}

/// The optional `Idempotency-Key` request header of `/deposit` and `/withdraw`.
fn idempotency_key() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(KEY_HEADER.as_str())
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the first request with a key is applied (or refused) and its \
             answer kept; the same request sent again with the key gets that answer again, \
             marked `idempotent-replayed: true`, and changes nothing; another request with the \
             key is 422 `idempotency-key-reused`. 1 to 255 printable ASCII characters, sent \
             once, else 400 `invalid-idempotency-key`. Keys are kept for `--idempotency-ttl` \
             (24 h by default).",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(IdempotencyKey::MAX_LEN))
                // The field value: HTTP drops the spaces around it (RFC 9110, section 5.5).
                .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
        ))
        .build()
}

/// A JSON body of type `T`, by reference to its schema in `components`.
fn json_content<T: ToSchema>() -> Content {
    Content::new(Some(Ref::from_schema_name(T::name())))
}

/// A 2xx answer whose body is a `T` as JSON.
fn json_answer<T: ToSchema>(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json_content::<T>())
        .build()
}

/// A 2xx answer whose body is text of `content_type`.
fn text_answer(content_type: &str, description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            content_type,
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

/// `{"status": "ok"}`.
fn readiness() -> Schema {
    ObjectBuilder::new()
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["ready"])),
        )
        .required("status")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .into()
}

fn health() -> Schema {
    ObjectBuilder::new()
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["ok"])),
        )
        .required("status")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .into()
}

/// The wire types' schemas, and the answers of paths and methods the router does not serve.
fn components() -> utoipa::openapi::Components {
    let mut components = ComponentsBuilder::new()
        .schema_from::<AmountBody>()
        .schema_from::<ResetBody>()
        .schema_from::<BalanceBody>()
        .schema_from::<Stats>()
        .schema_from::<ProblemDocument>();
    for kind in ELSEWHERE {
        components = components.response(
            kind.slug(),
            problem_response(kind.status(), std::slice::from_ref(kind)),
        );
    }
    let mut components = components.build();
    // The bodies refuse unknown members (`deny_unknown_fields`, and the same rule for a reset by
    // hand); the answers hold exactly their members. Say so for the answers too, which serde's
    // derive leaves open.
    for answer in [BalanceBody::name(), Stats::name(), ProblemDocument::name()] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(answer.as_ref())
        {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
    components
}
