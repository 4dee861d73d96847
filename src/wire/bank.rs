//! The bank's part of the wire contract: transfers, the read of every balance, and the bank's
//! accounting in `/stats`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The bank's route paths. `{id}` is an account id: 1 to 64 letters, digits, `-` or `_`.
pub mod paths {
    /// `GET`, answer [`AccountsBody`](super::AccountsBody): every balance and their total.
    pub const ACCOUNTS: &str = "/accounts";
    /// `GET`, answer [`AccountBalance`](super::AccountBalance).
    pub const ACCOUNT: &str = "/accounts/{id}";
    /// `POST`, body [`AmountBody`](crate::wire::AmountBody), answer
    /// [`BalanceBody`](crate::wire::BalanceBody).
    pub const DEPOSIT: &str = "/accounts/{id}/deposit";
    /// `POST`, body [`AmountBody`](crate::wire::AmountBody), answer
    /// [`BalanceBody`](crate::wire::BalanceBody).
    pub const WITHDRAW: &str = "/accounts/{id}/withdraw";
    /// `POST`, body [`TransferBody`](super::TransferBody), answer
    /// [`TransferAnswer`](super::TransferAnswer).
    pub const TRANSFERS: &str = "/transfers";
    /// `POST`, optional body [`BankResetBody`](super::BankResetBody), answer
    /// [`BankStats`](super::BankStats).
    pub const RESET: &str = "/bank/reset";

    /// The path of account `id`'s `action` (`deposit` or `withdraw`), or of the account itself
    /// when `action` is empty.
    pub fn account(id: &str, action: &str) -> String {
        if action.is_empty() {
            format!("/accounts/{id}")
        } else {
            format!("/accounts/{id}/{action}")
        }
    }
}

/// The body of a transfer: `{"from": "a", "to": "b", "amount": N}`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The account debited.
    pub from: String,
    /// The account credited: another one.
    pub to: String,
    /// The amount, in minor units: positive.
    #[schema(minimum = 1)]
    pub amount: i64,
}

/// One account's id and balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountBalance {
    /// The account's id.
    pub id: String,
    /// Its balance, in minor units: below zero only in a household.
    pub balance: i64,
}

/// The answer to a transfer: the balance this transfer wrote on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferAnswer {
    /// The debited account, as this transfer left it.
    pub from: AccountBalance,
    /// The credited account, as this transfer left it.
    pub to: AccountBalance,
}

/// Every balance, read by one request, and their total. How consistent the read is depends on the
/// mode: `read` says whether it was one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountsBody {
    /// Every account, in the bank's order.
    pub accounts: Vec<AccountBalance>,
    /// Their sum.
    pub total: i128,
    /// `snapshot` when every balance was read at one moment; `rows` when they were read one at a
    /// time, so a transfer between two of the reads shows half done.
    pub read: String,
}

/// The body of a bank reset that names balances: `{"balances": {"a": 100, "b": 0}}`. Accounts
/// not named open at 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankResetBody {
    /// Opening balances by account id, each zero or more.
    pub balances: std::collections::BTreeMap<String, i64>,
}

/// One account's accounting, in the bank's `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountStats {
    /// The account's id.
    pub id: String,
    /// Its balance now.
    pub balance: i64,
    /// Its balance at opening or at the last reset.
    pub opening_balance: i64,
    /// Opening plus acknowledged credits minus acknowledged debits.
    pub expected_balance: i128,
    /// Writes to it that replaced a balance other than the one they read.
    pub lost_updates: u64,
    /// Money those writes created (they erased a debit).
    pub money_created: i128,
    /// Money those writes destroyed (they erased a credit).
    pub money_destroyed: i128,
    /// `balance - expected_balance`: `money_created - money_destroyed` at any quiet moment.
    pub drift: i128,
}

/// The bank's accounting: what it acknowledged, what its writes erased, and what only a bank can
/// get wrong. At any quiet moment `total == expected_total + money_created - money_destroyed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BankStats {
    /// Every balance, summed, now.
    pub total: i128,
    /// The balances at opening or at the last reset, summed.
    pub opening_total: i128,
    /// `opening_total` plus deposits minus withdrawals: transfers move money and never make it.
    pub expected_total: i128,
    /// Deposits acknowledged.
    pub deposits: u64,
    /// Withdrawals acknowledged.
    pub withdrawals: u64,
    /// Transfers acknowledged.
    pub transfers: u64,
    /// Their total.
    pub transfer_sum: i128,
    /// Withdrawals and transfers refused by the funds check or the household rule.
    pub refused: u64,
    /// Writes that replaced a balance other than the one they read.
    pub lost_updates: u64,
    /// Money those writes created, bank-wide.
    pub money_created: i128,
    /// Money those writes destroyed, bank-wide.
    pub money_destroyed: i128,
    /// `total - expected_total`.
    pub drift: i128,
    /// Deadlocks detected (answered 503, or redone by the store).
    pub deadlocks: u64,
    /// Sections redone after a conflict (serialization failure, deadlock, changed version).
    pub retries: u64,
    /// Requests that gave up after too many redos.
    pub retries_exhausted: u64,
    /// The households (accounts sharing one limit), by id.
    pub households: Vec<Vec<String>>,
    /// Households whose total is below zero now: write skew got through.
    pub households_below_zero: u64,
    /// Every account's own accounting, in the bank's order.
    pub accounts: Vec<AccountStats>,
}
