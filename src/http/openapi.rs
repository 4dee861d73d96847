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
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, Object, Schema};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Components, ComponentsBuilder, Content, HeaderBuilder, InfoBuilder, ObjectBuilder, OpenApi,
    OpenApiBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::ToSchema;

use crate::domain::idempotency::{IdempotencyKey, KEY_HEADER, REPLAYED_HEADER};
use crate::http::metrics;
use crate::http::problem::{PROBLEM_JSON, RETRY_AFTER_SECONDS};
use crate::wire::bank::{
    self, AccountBalance, AccountStats, AccountsBody, BankResetBody, BankStats, TransferAnswer,
    TransferBody,
};
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
const BANK: &str = "bank";
const OPERATIONS: &str = "operations";
const LIVE: &str = "live page";

/// What the `bank` tag says: the bank exists only when the server opened one.
const BANK_DESCRIPTION: &str = "Many accounts by id, and transfers between them: the anomalies \
one account cannot show. A server started without `--accounts` has no bank: every route of this \
tag answers 404 `unknown-account`, saying how to open one. The bank's accounting is in `/stats`, \
under `bank`.";

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

/// Every bank route: the server opened no bank, or the bank holds no account with that id.
const NO_SUCH_ACCOUNT: &[ProblemType] = &[ProblemType::UnknownAccount];

/// A bank request that waited and did not get through: the server is stopping, or (under
/// `account-locks`) a lock it waited for would have deadlocked or was held too long.
const BANK_WAIT: &[ProblemType] = &[ProblemType::ShuttingDown, ProblemType::Deadlock];

/// A bank deposit, withdrawal or transfer not carried out: [`BANK_WAIT`], an optimistic mode
/// that gave up, the store failing (before or after the write was sent, or having lost the
/// bank's balances), or an `Idempotency-Key`, which the bank's routes do not keep yet.
const BANK_CHANGE: &[ProblemType] = &[
    ProblemType::TooMuchContention,
    ProblemType::ShuttingDown,
    ProblemType::Deadlock,
    ProblemType::StoreUnavailable,
    ProblemType::OutcomeUnknown,
    ProblemType::StoreRolledBack,
    ProblemType::InvalidIdempotencyKey,
];

/// What refuses a debit: the account's own funds, or its household's total.
const DEBIT: &[ProblemType] = &[ProblemType::InsufficientFunds, ProblemType::HouseholdLimit];

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
before any route sees the request.\n\n\
The `bank` routes (`/accounts`, `/transfers`, `/bank/reset`) act on a bank of many accounts, \
opened with `--accounts`; a server started without it answers 404 `unknown-account` on every one \
of them.";

/// The whole description.
fn document() -> OpenApi {
    let paths = live_paths(operations_paths(bank_paths(account_paths(
        PathsBuilder::new(),
    ))));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("racebank")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION)),
        )
        .tags(Some([TagBuilder::new()
            .name(BANK)
            .description(Some(BANK_DESCRIPTION))
            .build()]))
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
                 `balance == expected_balance - lost_net`. With a bank (`--accounts`), its \
                 accounting too, under `bank`.",
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

/// The bank's routes: every balance, one account's, its changes, transfers and the reset.
fn bank_paths(paths: PathsBuilder) -> PathsBuilder {
    let account = get(
        BANK,
        "bank_account",
        "One account's balance",
        "The balance of the account `id` now, in minor units: below zero only in a household.",
        json_answer::<AccountBalance>("The account and its balance."),
        &[NO_SUCH_ACCOUNT, READ].concat(),
    );
    paths
        .path(
            bank::paths::ACCOUNTS,
            get(
                BANK,
                "bank_accounts",
                "Every balance",
                "Every account's balance, read by one request, and their total. `read` says \
                 how: `snapshot` (every balance at one moment) or `rows` (one at a time, as the \
                 unguarded family reads them: a transfer between two of the reads shows half \
                 done, and the total is off by its amount).",
                json_answer::<AccountsBody>("Every balance and their total."),
                &[NO_SUCH_ACCOUNT, BANK_WAIT, READ].concat(),
            ),
        )
        .path(bank::paths::ACCOUNT, with_account_id(account))
        .path(bank::paths::DEPOSIT, bank_change_item(Change::Deposit))
        .path(bank::paths::WITHDRAW, bank_change_item(Change::Withdraw))
        .path(bank::paths::TRANSFERS, transfer_item())
        .path(bank::paths::RESET, bank_reset_item())
}

/// `POST /accounts/{id}/deposit` or `POST /accounts/{id}/withdraw`.
fn bank_change_item(change: Change) -> PathItem {
    let (id, summary, description, refusals) = match change {
        Change::Deposit => (
            "bank_deposit",
            "Deposit into an account",
            "Adds `amount` to the account `id` and answers the balance this request wrote; \
             refused (422 `balance-overflow`) past the largest `i64`, never wrapped.",
            &[ProblemType::BalanceOverflow][..],
        ),
        Change::Withdraw => (
            "bank_withdraw",
            "Withdraw from an account",
            "Takes `amount` from the account `id` if the balance this request read covers it \
             (409 `insufficient-funds` otherwise), or, for an account in a household, if the \
             household's total does (409 `household-limit`): such an account may go below zero.",
            DEBIT,
        ),
    };
    let body = RequestBodyBuilder::new()
        .description(Some(format!(
            "`{{\"amount\": N}}` and nothing else, as `application/json` (or any \
             `application/*+json`), at most {BODY_LIMIT} bytes."
        )))
        .required(Some(Required::True))
        .content("application/json", json_content::<AmountBody>())
        .build();
    let ok = bank_balance_answer("Applied: the balance this request wrote.");
    let problems = [BODY, NO_SUCH_ACCOUNT, BANK_CHANGE, refusals];
    with_account_id(post([BANK, id, summary, description], body, ok, &problems))
}

/// `POST /transfers`.
fn transfer_item() -> PathItem {
    let body = RequestBodyBuilder::new()
        .description(Some(format!(
            "`{{\"from\": \"a\", \"to\": \"b\", \"amount\": N}}` and nothing else, two \
             different account ids, as `application/json`, at most {BODY_LIMIT} bytes."
        )))
        .required(Some(Required::True))
        .content("application/json", json_content::<TransferBody>())
        .build();
    let problems = [
        BODY,
        NO_SUCH_ACCOUNT,
        BANK_CHANGE,
        DEBIT,
        &[ProblemType::BalanceOverflow],
    ];
    post(
        [
            BANK,
            "transfer",
            "Transfer",
            "Moves `amount` from the account `from` to the account `to` if `from`'s balance \
             (or its household's total) covers it, and answers the balance this transfer wrote \
             on each side. A transfer moves money and never makes it: unless a write erased \
             another, the bank's total does not change. `from` and `to` the same account is \
             422 `invalid-field`; an id the bank does not hold, 404 `unknown-account`.",
        ],
        body,
        json_answer::<TransferAnswer>("Applied: both balances this transfer wrote."),
        &problems,
    )
}

/// `POST /bank/reset`, with or without a body.
fn bank_reset_item() -> PathItem {
    let body = RequestBodyBuilder::new()
        .description(Some(
            "`{\"balances\": {\"id\": N, ...}}` and nothing else, as `application/json`: the \
             named accounts open with those balances, the others with 0. Or an empty body, \
             still sent as `application/json`, for the opening balances; the content type is \
             required either way (415 otherwise), which is why the body is described as \
             required.",
        ))
        .required(Some(Required::True))
        .content("application/json", json_content::<BankResetBody>())
        .build();
    post(
        [
            BANK,
            "bank_reset",
            "Reset the bank",
            "Opens every account again and zeroes the bank's counters, waiting for the \
             requests in flight, and answers the bank's accounting after it. An id the bank \
             does not hold is 404 `unknown-account`, and nothing changes.",
        ],
        body,
        json_answer::<BankStats>("The bank's accounting after the reset."),
        &[BODY, NO_SUCH_ACCOUNT, BANK_WAIT, RESET, READ],
    )
}

/// A `POST` route, its `[tag, id, summary, description]`: `ok`, or one of `problems` or the
/// framing problems.
fn post(
    [tag, id, summary, description]: [&str; 4],
    body: RequestBody,
    ok: Response,
    problems: &[&[ProblemType]],
) -> PathItem {
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary))
        .description(Some(description))
        .request_body(Some(body))
        .response("200", ok);
    for (status, response) in problem_responses(&[&[FRAMING], problems].concat()) {
        operation = operation.response(status.to_string(), response);
    }
    PathItem::new(HttpMethod::Post, operation)
}

/// `item` under a path whose `{id}` names an account of the bank.
fn with_account_id(mut item: PathItem) -> PathItem {
    let id = ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "An account of the bank (`GET /accounts` lists them): 1 to 64 letters, digits, `-` \
             or `_`. Any other id, or one the bank does not hold, is 404 `unknown-account`.",
        ))
        .schema(Some(account_id_schema()))
        .build();
    item.parameters = Some(vec![RefOr::T(id)]);
    item
}

/// An account id: the rule of `AccountId`, which the bank's ids and the bodies' ids follow.
fn account_id_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[A-Za-z0-9_-]{1,64}$"))
        .build()
}

/// The answer of a bank deposit or withdrawal: [`BalanceBody`], whose balance may be below zero
/// here (an account in a household), where the account's never is.
fn bank_balance_answer(description: &str) -> Response {
    let mut schema = <BalanceBody as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        if let Some(RefOr::T(Schema::Object(balance))) = object.properties.get_mut("balance") {
            balance.minimum = None;
            balance.description =
                Some("The balance, in minor units: below zero only in a household.".to_string());
        }
        object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    }
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
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
        let kinds = by_status.entry(kind.status()).or_default();
        // Lists may share a problem (a stopping server ends waits and resets alike): once each.
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
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
fn components() -> Components {
    let mut components = ComponentsBuilder::new()
        .schema_from::<AmountBody>()
        .schema_from::<ResetBody>()
        .schema_from::<BalanceBody>()
        .schema_from::<Stats>()
        .schema_from::<ProblemDocument>()
        .schema_from::<TransferBody>()
        .schema_from::<BankResetBody>()
        .schema_from::<AccountBalance>()
        .schema_from::<TransferAnswer>()
        .schema_from::<AccountsBody>()
        .schema_from::<BankStats>()
        .schema_from::<AccountStats>();
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
    let answers = [
        BalanceBody::name(),
        Stats::name(),
        ProblemDocument::name(),
        AccountBalance::name(),
        TransferAnswer::name(),
        AccountsBody::name(),
        BankStats::name(),
        AccountStats::name(),
    ];
    for answer in answers {
        if let Some(object) = schema_object(&mut components, &answer) {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
    narrow_bank_schemas(&mut components);
    components
}

/// What the bank's wire types hold that serde's derive cannot say: account ids follow
/// [`account_id_schema`], amounts and opening balances fit an `i64` (a transfer's amount is the
/// deposit's), `read` is one of two words, and `/stats` sends `bank` only with a bank, never as
/// `null`.
fn narrow_bank_schemas(components: &mut Components) {
    let amount = schema_object(components, &AmountBody::name())
        .and_then(|body| body.properties.get("amount").cloned());
    if let Some(transfer) = schema_object(components, &TransferBody::name()) {
        for side in ["from", "to"] {
            if let Some(RefOr::T(Schema::Object(id))) = transfer.properties.get_mut(side) {
                id.min_length = Some(1);
                id.max_length = Some(64);
                id.pattern = account_id_schema().pattern;
            }
        }
        if let Some(amount) = amount {
            transfer.properties.insert("amount".to_string(), amount);
        }
    }
    if let Some(reset) = schema_object(components, &BankResetBody::name()) {
        if let Some(RefOr::T(Schema::Object(balances))) = reset.properties.get_mut("balances") {
            balances.property_names = Some(Box::new(account_id_schema().into()));
            let opening = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
                .maximum(Some(i64::MAX));
            balances.additional_properties =
                Some(Box::new(AdditionalProperties::RefOr(opening.into())));
        }
    }
    if let Some(accounts) = schema_object(components, &AccountsBody::name()) {
        if let Some(RefOr::T(Schema::Object(read))) = accounts.properties.get_mut("read") {
            read.enum_values = Some(vec!["snapshot".into(), "rows".into()]);
        }
    }
    if let Some(stats) = schema_object(components, &Stats::name()) {
        let mut bank = Ref::from_schema_name(BankStats::name());
        bank.description =
            "The bank's accounting; present only when the server opened a bank (`--accounts`)."
                .to_string();
        stats.properties.insert("bank".to_string(), bank.into());
    }
}

/// The object schema of `name` in `components`.
fn schema_object<'a>(components: &'a mut Components, name: &str) -> Option<&'a mut Object> {
    match components.schemas.get_mut(name) {
        Some(RefOr::T(Schema::Object(object))) => Some(object),
        _ => None,
    }
}
