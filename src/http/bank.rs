//! The bank's routes, beside the account's ([`crate::http::routes`]).
//!
//! | route                          | body                             | answer                                   |
//! |--------------------------------|----------------------------------|------------------------------------------|
//! | `GET /accounts`                |                                  | 200 every balance and the total          |
//! | `GET /accounts/{id}`           |                                  | 200 `{"id", "balance"}`, 404 unknown id  |
//! | `POST /accounts/{id}/deposit`  | `{"amount": N}`                  | 200 `{"balance": B}`                     |
//! | `POST /accounts/{id}/withdraw` | `{"amount": N}`                  | 200 `{"balance": B}`, 409 not covered    |
//! | `POST /transfers`              | `{"from", "to", "amount"}`       | 200 both balances written, 409, 404, 422 |
//! | `POST /bank/reset`             | optional `{"balances": {...}}`   | 200 the bank's stats after the reset     |
//!
//! A server started without `--accounts` has no bank: these routes answer 404 `unknown-account`
//! saying how to open one. The bank's accounting is in `/stats`, under `bank`.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::bank::Bank;
use crate::domain::bank::{BankStats, Move};
use crate::domain::error::AccountError;
use crate::domain::money::Amount;
use crate::http::body::parse::{parse_bank_balances, parse_transfer};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::wire::bank::{paths, AccountBalance, AccountsBody, TransferAnswer};
use crate::wire::BalanceBody;

/// The bank, if the server opened one.
pub(crate) type MaybeBank = Option<Arc<Bank>>;

/// The bank's routes, for `routes::app` to merge.
pub(crate) fn routes<S>() -> Router<S>
where
    MaybeBank: axum::extract::FromRef<S>,
    crate::http::body::BodyTimeout: axum::extract::FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(paths::ACCOUNTS, get(accounts))
        .route(paths::ACCOUNT, get(account))
        .route(paths::DEPOSIT, post(deposit))
        .route(paths::WITHDRAW, post(withdraw))
        .route(paths::TRANSFERS, post(transfer))
        .route(paths::RESET, post(reset))
}

/// The bank, or the answer of a server that has none.
fn open(bank: MaybeBank) -> Result<Arc<Bank>, Problem> {
    bank.ok_or_else(|| {
        Problem::UnknownAccount(
            "this server opened no bank: start it with --accounts (e.g. --accounts 8, or \
             --accounts alice=100,bob=100)"
                .to_string(),
        )
    })
}

/// The position of the account `id` names.
fn position(bank: &Bank, id: &str) -> Result<usize, Problem> {
    bank.spec()
        .position(id)
        .ok_or_else(|| AccountError::UnknownAccount(id.to_string()).into())
}

/// The `{id}` of the path; a segment that is not text is no account.
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    id.map(|Path(id)| id).map_err(|rejection| {
        Problem::UnknownAccount(format!(
            "the account id in the path is unreadable: {rejection}"
        ))
    })
}

async fn accounts(State(bank): State<MaybeBank>) -> Result<Json<AccountsBody>, Problem> {
    let bank = open(bank)?;
    let read = bank.read_all().await?;
    let total = read.balances.iter().map(|&b| i128::from(b)).sum();
    let accounts = read
        .balances
        .iter()
        .enumerate()
        .map(|(position, &balance)| AccountBalance {
            id: bank.spec().id(position).to_string(),
            balance,
        })
        .collect();
    Ok(Json(AccountsBody {
        accounts,
        total,
        read: if read.snapshot { "snapshot" } else { "rows" }.to_string(),
    }))
}

async fn account(
    State(bank): State<MaybeBank>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountBalance>, Problem> {
    let bank = open(bank)?;
    let id = path_id(id)?;
    let position = position(&bank, &id)?;
    let balance = bank.balance(position).await?;
    Ok(Json(AccountBalance { id, balance }))
}

async fn deposit(
    State(bank): State<MaybeBank>,
    id: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> Result<Json<BalanceBody>, Problem> {
    change(bank, id, body, |to, amount| Move::Deposit { to, amount }).await
}

async fn withdraw(
    State(bank): State<MaybeBank>,
    id: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> Result<Json<BalanceBody>, Problem> {
    change(bank, id, body, |from, amount| Move::Withdraw {
        from,
        amount,
    })
    .await
}

/// A deposit or withdrawal on one of the bank's accounts. The body is checked before the account,
/// as on the account's own routes.
async fn change(
    bank: MaybeBank,
    id: Result<Path<String>, PathRejection>,
    body: JsonBody,
    mv: fn(usize, Amount) -> Move,
) -> Result<Json<BalanceBody>, Problem> {
    let bank = open(bank)?;
    let amount = body.amount()?;
    refuse_keys(&body)?;
    let position = position(&bank, &path_id(id)?)?;
    let [balance] = written::<1>(bank.apply(mv(position, amount)).await?)?;
    Ok(Json(BalanceBody { balance }))
}

async fn transfer(State(bank): State<MaybeBank>, body: JsonBody) -> Response {
    let answer = async {
        let bank = open(bank)?;
        let (from, to, amount) = parse_transfer(body.bytes(), body.is_json())?;
        refuse_keys(&body)?;
        let mv = Move::Transfer {
            from: position(&bank, &from)?,
            to: position(&bank, &to)?,
            amount,
        };
        let [debited, credited] = written::<2>(bank.apply(mv).await?)?;
        Ok::<_, Problem>(Json(TransferAnswer {
            from: AccountBalance {
                id: from,
                balance: debited,
            },
            to: AccountBalance {
                id: to,
                balance: credited,
            },
        }))
    };
    answer.await.into_response()
}

/// The balances a move wrote, one per account it writes. A store answering another count has
/// written something it cannot describe: the client is told the outcome is unknown.
fn written<const N: usize>(balances: Vec<i64>) -> Result<[i64; N], Problem> {
    let count = balances.len();
    <[i64; N]>::try_from(balances).map_err(|_| {
        tracing::error!(count, expected = N, "a bank store answered the wrong number of balances");
        Problem::OutcomeUnknown(format!(
            "the store answered {count} balances for a move that writes {N}: the move may or may not have been applied"
        ))
    })
}

/// The bank's routes keep no idempotency keys yet: a key is refused rather than ignored, since a
/// client that sends one counts on a retry not being applied twice.
fn refuse_keys(body: &JsonBody) -> Result<(), Problem> {
    match &body.key {
        None => Ok(()),
        Some(Err(problem)) => Err(problem.clone()),
        Some(Ok(_)) => Err(Problem::InvalidIdempotencyKey(
            "the bank's routes do not keep Idempotency-Keys (only /deposit and /withdraw do): \
             send the request without one, knowing a retry may be applied twice"
                .to_string(),
        )),
    }
}

/// Without a body, every account back to its opening balance; with `{"balances": {...}}`, the
/// named accounts to those balances and the others to 0.
async fn reset(State(bank): State<MaybeBank>, body: JsonBody) -> Result<Json<BankStats>, Problem> {
    let bank = open(bank)?;
    body.require_json("balances")?;
    let balances = if body.is_empty() {
        bank.spec().openings()
    } else {
        let mut balances = vec![0; bank.spec().len()];
        for (id, balance) in parse_bank_balances(body.bytes(), body.is_json())? {
            balances[position(&bank, &id)?] = balance;
        }
        balances
    };
    Ok(Json(bank.reset(&balances).await?))
}
