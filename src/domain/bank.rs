//! The bank: many accounts, the moves between them, the household rule, and the bank's ledger.
//!
//! One account can lose an update; only two can lose money in a transfer, deadlock, or be read
//! half-way through a transfer. Every request to the bank is one [`Move`]: a deposit credits one
//! account, a withdrawal debits one, a transfer does both. A move names the accounts it writes and
//! the accounts it must read to decide (its own, and the debited account's household), and
//! [`Move::settle`] turns the balances read into the balances to write, or says why not: the same
//! decision in every store and every mode, so the modes differ only in how they guard it.
//!
//! **Households** are the write-skew lesson: accounts grouped so that each may go below zero as
//! long as the group's total stays at or above zero. An account in no household never goes below
//! zero.
//!
//! The [`BankLedger`] counts what the bank acknowledged and what its writes erased, per account,
//! as the single account's ledger does: every write reports the balance it read and the one it
//! overwrote. A write over a higher balance than it read destroyed money (it erased a credit); over
//! a lower one it created money (it erased a debit). Transfers move money and never make it, so at
//! any quiet moment `total == expected_total - lost_net`, bank-wide and per account.

use std::collections::HashMap;
use std::fmt;

use crate::domain::id::AccountId;
use crate::domain::money::{Amount, Refusal};
pub(crate) use crate::wire::bank::{AccountStats, BankStats};

/// The most accounts a bank may open.
pub const MAX_ACCOUNTS: usize = 1000;

/// Which accounts the bank holds, what they open with, and how they are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSpec {
    accounts: Vec<(AccountId, i64)>,
    households: Vec<Vec<usize>>,
    /// For each account, its household's index in `households`.
    household_of: Vec<Option<usize>>,
    index: HashMap<AccountId, usize>,
}

impl BankSpec {
    /// A bank of `accounts` (id, opening balance) with `households` (groups of ids sharing one
    /// limit). Ids must be distinct, balances zero or more, and each account in one household at
    /// most.
    pub fn new(
        accounts: Vec<(AccountId, i64)>,
        households: &[Vec<AccountId>],
    ) -> Result<Self, String> {
        if accounts.is_empty() || accounts.len() > MAX_ACCOUNTS {
            return Err(format!(
                "a bank holds 1 to {MAX_ACCOUNTS} accounts, not {}",
                accounts.len()
            ));
        }
        let mut index = HashMap::with_capacity(accounts.len());
        for (position, (id, opening)) in accounts.iter().enumerate() {
            if *opening < 0 {
                return Err(format!(
                    "account `{id}` opens with {opening}: balances open at 0 or more"
                ));
            }
            if index.insert(id.clone(), position).is_some() {
                return Err(format!("account `{id}` is named twice"));
            }
        }
        let mut household_of = vec![None; accounts.len()];
        let mut groups = Vec::with_capacity(households.len());
        for (group, members) in households.iter().enumerate() {
            if members.len() < 2 {
                return Err("a household groups two accounts or more".to_string());
            }
            let mut positions = Vec::with_capacity(members.len());
            for id in members {
                let &position = index.get(id).ok_or_else(|| {
                    format!("household member `{id}` is not one of the bank's accounts")
                })?;
                if household_of[position].replace(group).is_some() {
                    return Err(format!("account `{id}` is in two households"));
                }
                positions.push(position);
            }
            positions.sort_unstable();
            groups.push(positions);
        }
        Ok(Self {
            accounts,
            households: groups,
            household_of,
            index,
        })
    }

    /// `count` accounts named `0` to `count - 1`, each opening with `opening`: Jepsen's naming.
    pub fn numbered(
        count: usize,
        opening: i64,
        households: &[Vec<AccountId>],
    ) -> Result<Self, String> {
        let accounts = (0..count)
            .map(|n| {
                (
                    n.to_string().parse().expect("a number is an account id"),
                    opening,
                )
            })
            .collect();
        Self::new(accounts, households)
    }

    /// How many accounts the bank holds.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Never: a bank holds one account at least.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The account at `position`'s id.
    pub(crate) fn id(&self, position: usize) -> &AccountId {
        &self.accounts[position].0
    }

    /// Every account's opening balance, in the bank's order.
    pub(crate) fn openings(&self) -> Vec<i64> {
        self.accounts.iter().map(|(_, opening)| *opening).collect()
    }

    /// The account named `id`'s position, if the bank holds it.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Sorts `positions` by their accounts' ids: the one order in which every mode that locks
    /// accounts by id takes them.
    pub(crate) fn sort_by_id(&self, positions: &mut [usize]) {
        positions.sort_by(|a, b| self.id(*a).as_str().cmp(self.id(*b).as_str()));
    }

    /// The households, each as sorted positions.
    pub(crate) fn households(&self) -> &[Vec<usize>] {
        &self.households
    }

    /// The household of the account at `position`, as sorted positions.
    pub(crate) fn household(&self, position: usize) -> Option<&[usize]> {
        self.household_of[position].map(|group| self.households[group].as_slice())
    }

    /// The households given as ids, as `--households` shows them.
    pub(crate) fn household_ids(&self) -> Vec<Vec<String>> {
        self.households
            .iter()
            .map(|group| group.iter().map(|&p| self.id(p).to_string()).collect())
            .collect()
    }
}

/// The order in which a mode that locks accounts one at a time takes their locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LockOrder {
    /// The order the request names them: the debited account first. Two transfers in opposite
    /// directions each hold one lock and wait for the other's: a deadlock.
    Request,
    /// By account id, whatever the request: every request waits in the same order, so none can
    /// wait for another that waits for it.
    #[default]
    Id,
}

impl fmt::Display for LockOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockOrder::Request => "request",
            LockOrder::Id => "id",
        })
    }
}

/// One request to the bank, with accounts as positions in its [`BankSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Add the amount to the account.
    Deposit { to: usize, amount: Amount },
    /// Take the amount from the account, if the rule allows.
    Withdraw { from: usize, amount: Amount },
    /// Take the amount from one account and add it to another.
    Transfer {
        from: usize,
        to: usize,
        amount: Amount,
    },
}

impl Move {
    /// The amount moved.
    pub(crate) fn amount(self) -> Amount {
        match self {
            Move::Deposit { amount, .. }
            | Move::Withdraw { amount, .. }
            | Move::Transfer { amount, .. } => amount,
        }
    }

    /// The accounts it writes, in request order: the debited account first.
    pub(crate) fn writes(self) -> Vec<usize> {
        match self {
            Move::Deposit { to, .. } => vec![to],
            Move::Withdraw { from, .. } => vec![from],
            Move::Transfer { from, to, .. } => vec![from, to],
        }
    }

    /// The accounts it must read to decide, in request order: the ones it writes, then the rest of
    /// the debited account's household (by id).
    pub(crate) fn reads(self, spec: &BankSpec) -> Vec<usize> {
        let mut reads = self.writes();
        if let Some(from) = self.debited() {
            for &member in spec.household(from).unwrap_or_default() {
                if !reads.contains(&member) {
                    reads.push(member);
                }
            }
        }
        reads
    }

    /// The account it debits, if any.
    fn debited(self) -> Option<usize> {
        match self {
            Move::Deposit { .. } => None,
            Move::Withdraw { from, .. } | Move::Transfer { from, .. } => Some(from),
        }
    }

    /// The balances to write (`(position, balance)`, in [`Move::writes`] order), given the
    /// balances read (`(position, balance)` for at least [`Move::reads`]); or why not.
    pub(crate) fn settle(
        self,
        spec: &BankSpec,
        read: &[(usize, i64)],
    ) -> Result<Vec<(usize, i64)>, Refusal> {
        let balance = |position: usize| {
            read.iter()
                .find(|(p, _)| *p == position)
                .map_or(0, |(_, balance)| *balance)
        };
        let amount = self.amount().get();
        let mut written = Vec::with_capacity(2);
        if let Some(from) = self.debited() {
            written.push((from, debit(spec, from, amount, &balance)?));
        }
        if let Move::Deposit { to, .. } | Move::Transfer { to, .. } = self {
            let before = balance(to);
            let after = before.checked_add(amount).ok_or(Refusal::WouldOverflow {
                balance: before,
                amount,
            })?;
            written.push((to, after));
        }
        Ok(written)
    }
}

/// The debited account's balance after taking `amount`, if its rule allows: its own balance must
/// cover it, or, in a household, the household's total.
fn debit(
    spec: &BankSpec,
    from: usize,
    amount: i64,
    balance: &impl Fn(usize) -> i64,
) -> Result<i64, Refusal> {
    let own = balance(from);
    let after = own.checked_sub(amount).ok_or(Refusal::InsufficientFunds {
        balance: own,
        amount,
    })?;
    match spec.household(from) {
        None if own < amount => Err(Refusal::InsufficientFunds {
            balance: own,
            amount,
        }),
        None => Ok(after),
        Some(members) => {
            let total: i128 = members.iter().map(|&p| i128::from(balance(p))).sum();
            if total < i128::from(amount) {
                let total = i64::try_from(total).unwrap_or(i64::MIN);
                Err(Refusal::HouseholdShort { total, amount })
            } else {
                Ok(after)
            }
        }
    }
}

/// One account's running totals since the bank opened or was last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountLedger {
    pub(crate) opening: i64,
    /// Credits acknowledged (deposits and transfers in), summed.
    pub(crate) credits: i128,
    /// Debits acknowledged (withdrawals and transfers out), summed.
    pub(crate) debits: i128,
    pub(crate) lost_updates: u64,
    /// Money this account's erasing writes destroyed (they overwrote a higher balance than read).
    pub(crate) destroyed: i128,
    /// Money they created (they overwrote a lower balance than read).
    pub(crate) created: i128,
}

/// The bank's running totals: per account, and the counts only a bank has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BankLedger {
    pub(crate) accounts: Vec<AccountLedger>,
    pub(crate) deposits: u64,
    pub(crate) withdrawals: u64,
    pub(crate) transfers: u64,
    pub(crate) transfer_sum: i128,
    pub(crate) refused: u64,
    /// Deadlocks detected: a request that would have waited for itself, answered 503 or redone.
    pub(crate) deadlocks: u64,
    /// Sections redone after a conflict (a serialization failure, a changed version).
    pub(crate) retries: u64,
    pub(crate) retries_exhausted: u64,
}

impl BankLedger {
    /// A ledger for accounts opening with `openings`.
    pub(crate) fn new(openings: &[i64]) -> Self {
        Self {
            accounts: openings
                .iter()
                .map(|&opening| AccountLedger {
                    opening,
                    ..AccountLedger::default()
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Records an acknowledged move whose writes each read `read` and overwrote `overwritten`:
    /// `(position, read, overwritten)` in [`Move::writes`] order.
    pub(crate) fn record(&mut self, mv: Move, writes: &[(usize, i64, i64)]) {
        let amount = i128::from(mv.amount().get());
        match mv {
            Move::Deposit { to, .. } => {
                self.deposits += 1;
                self.accounts[to].credits += amount;
            }
            Move::Withdraw { from, .. } => {
                self.withdrawals += 1;
                self.accounts[from].debits += amount;
            }
            Move::Transfer { from, to, .. } => {
                self.transfers += 1;
                self.transfer_sum += amount;
                self.accounts[from].debits += amount;
                self.accounts[to].credits += amount;
            }
        }
        for &(position, read, overwritten) in writes {
            if read == overwritten {
                continue;
            }
            let erased = i128::from(overwritten) - i128::from(read);
            let account = &mut self.accounts[position];
            account.lost_updates += 1;
            if erased > 0 {
                account.destroyed += erased;
            } else {
                account.created -= erased;
            }
            tracing::debug!(
                ?mv,
                position,
                read,
                overwritten,
                "lost update in the bank: this write replaced a balance other than the one it read"
            );
        }
    }

    /// The `/stats` view of this ledger, given the balances now.
    pub(crate) fn stats(&self, spec: &BankSpec, balances: &[i64]) -> BankStats {
        let accounts: Vec<AccountStats> = self
            .accounts
            .iter()
            .zip(balances)
            .enumerate()
            .map(|(position, (ledger, &balance))| {
                let expected = i128::from(ledger.opening) + ledger.credits - ledger.debits;
                AccountStats {
                    id: spec.id(position).to_string(),
                    balance,
                    opening_balance: ledger.opening,
                    expected_balance: expected,
                    lost_updates: ledger.lost_updates,
                    money_created: ledger.created,
                    money_destroyed: ledger.destroyed,
                    drift: i128::from(balance) - expected,
                }
            })
            .collect();
        let sum = |f: fn(&AccountStats) -> i128| accounts.iter().map(f).sum::<i128>();
        let total = sum(|a| i128::from(a.balance));
        let expected_total = sum(|a| a.expected_balance);
        let below_zero = spec
            .households()
            .iter()
            .filter(|group| group.iter().map(|&p| i128::from(balances[p])).sum::<i128>() < 0)
            .count();
        BankStats {
            total,
            opening_total: sum(|a| i128::from(a.opening_balance)),
            expected_total,
            deposits: self.deposits,
            withdrawals: self.withdrawals,
            transfers: self.transfers,
            transfer_sum: self.transfer_sum,
            refused: self.refused,
            lost_updates: accounts.iter().map(|a| a.lost_updates).sum(),
            money_created: sum(|a| a.money_created),
            money_destroyed: sum(|a| a.money_destroyed),
            drift: total - expected_total,
            deadlocks: self.deadlocks,
            retries: self.retries,
            retries_exhausted: self.retries_exhausted,
            households: spec.household_ids(),
            households_below_zero: below_zero as u64,
            accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<AccountId> {
        ids.iter().map(|id| id.parse().unwrap()).collect()
    }

    fn bank(households: &[&[&str]]) -> BankSpec {
        let accounts = ids(&["a", "b", "c"])
            .into_iter()
            .map(|id| (id, 0))
            .collect();
        let households: Vec<Vec<AccountId>> = households.iter().map(|h| ids(h)).collect();
        BankSpec::new(accounts, &households).unwrap()
    }

    fn amount(n: i64) -> Amount {
        Amount::new(n).unwrap()
    }

    #[test]
    fn a_transfer_reads_and_writes_both_sides_debit_first() {
        let spec = bank(&[]);
        let mv = Move::Transfer {
            from: 2,
            to: 0,
            amount: amount(5),
        };
        assert_eq!(mv.writes(), [2, 0]);
        assert_eq!(
            mv.settle(&spec, &[(2, 5), (0, 1)]),
            Ok(vec![(2, 0), (0, 6)])
        );
        assert_eq!(
            mv.settle(&spec, &[(2, 4), (0, 1)]),
            Err(Refusal::InsufficientFunds {
                balance: 4,
                amount: 5
            })
        );
    }

    #[test]
    fn a_household_member_may_go_below_zero_while_the_household_covers_it() {
        let spec = bank(&[&["a", "c"]]);
        let withdraw = Move::Withdraw {
            from: 0,
            amount: amount(80),
        };
        assert_eq!(
            withdraw.reads(&spec),
            [0, 2],
            "the rest of the household is read too"
        );
        assert_eq!(
            withdraw.settle(&spec, &[(0, 50), (2, 50)]),
            Ok(vec![(0, -30)])
        );
        assert_eq!(
            withdraw.settle(&spec, &[(0, 50), (2, 29)]),
            Err(Refusal::HouseholdShort {
                total: 79,
                amount: 80
            })
        );
        let outside = Move::Withdraw {
            from: 1,
            amount: amount(1),
        };
        assert_eq!(outside.reads(&spec), [1], "b has no household");
    }

    #[test]
    fn a_credit_past_the_largest_balance_is_refused_not_wrapped() {
        let spec = bank(&[]);
        let mv = Move::Transfer {
            from: 0,
            to: 1,
            amount: amount(1),
        };
        assert!(matches!(
            mv.settle(&spec, &[(0, 1), (1, i64::MAX)]),
            Err(Refusal::WouldOverflow { .. })
        ));
    }

    #[test]
    fn the_ledger_counts_an_erased_credit_as_money_destroyed_and_an_erased_debit_as_created() {
        let spec = bank(&[]);
        let mut ledger = BankLedger::new(&[100, 100, 100]);
        let mv = Move::Transfer {
            from: 0,
            to: 1,
            amount: amount(10),
        };
        // Both sides overwrote a balance another transfer had written after this one's read.
        ledger.record(mv, &[(0, 100, 90), (1, 100, 110)]);
        let stats = ledger.stats(&spec, &[90, 110, 100]);
        assert_eq!(stats.accounts[0].money_created, 10);
        assert_eq!(stats.accounts[1].money_destroyed, 10);
        assert_eq!(stats.expected_total, 300);
        assert_eq!(
            stats.total,
            stats.expected_total + stats.money_created - stats.money_destroyed
        );
    }

    #[test]
    fn a_bank_refuses_duplicate_ids_shared_members_and_too_many_accounts() {
        let twice = ids(&["a", "a"]).into_iter().map(|id| (id, 0)).collect();
        assert!(BankSpec::new(twice, &[]).is_err());
        let three = || {
            ids(&["a", "b", "c"])
                .into_iter()
                .map(|id| (id, 0))
                .collect()
        };
        assert!(BankSpec::new(three(), &[ids(&["a", "b"]), ids(&["b", "c"])]).is_err());
        assert!(BankSpec::new(three(), &[ids(&["a"])]).is_err());
        assert!(BankSpec::numbered(MAX_ACCOUNTS + 1, 0, &[]).is_err());
        assert_eq!(
            BankSpec::numbered(8, 0, &[]).unwrap().position("7"),
            Some(7)
        );
    }
}
