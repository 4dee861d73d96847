//! The counters behind `/stats`: what the account acknowledged, and what its writes destroyed.
//!
//! Every write reports the balance it read and the balance it overwrote. When they differ, someone
//! else's update landed in between and this write erased it: that is a lost update, and the
//! difference (`overwritten - read`) is exactly the money it erased. Summing those differences gives
//! `lost_net`, and so at any quiet moment, in every mode, `balance == expected_balance - lost_net`.
//!
//! Comparing values cannot see an erased pair of updates that cancel out (`+5` then `-5` between a
//! read and its write): `lost_updates` then undercounts, but `lost_net`, and the identity, stay exact.
//!
//! Sums are `i128` so that no run, however long, can overflow them. The ledger sits behind a std
//! mutex: nothing is awaited while it is held, and each hold is a handful of additions.

use crate::domain::money::Op;
pub use crate::wire::Stats;

/// Running totals since the start or the last reset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    pub(crate) initial_balance: i64,
    pub(crate) deposit_count: u64,
    pub(crate) deposit_sum: i128,
    pub(crate) withdrawal_count: u64,
    pub(crate) withdrawal_sum: i128,
    pub(crate) refused_count: u64,
    pub(crate) lost_updates: u64,
    pub(crate) lost_net: i128,
    pub(crate) lost_removed: i128,
    pub(crate) lost_added: i128,
    pub(crate) retries: u64,
    pub(crate) retries_exhausted: u64,
}

impl Ledger {
    /// A ledger for an account that starts at `initial_balance`.
    pub(crate) fn new(initial_balance: i64) -> Self {
        Self {
            initial_balance,
            ..Self::default()
        }
    }

    /// Records a write: `read` is the balance the request computed from, `overwritten` the balance
    /// its write replaced.
    pub(crate) fn record_write(&mut self, op: Op, read: i64, overwritten: i64) {
        match op {
            Op::Deposit(amount) => {
                self.deposit_count += 1;
                self.deposit_sum += i128::from(amount.get());
            }
            Op::Withdraw(amount) => {
                self.withdrawal_count += 1;
                self.withdrawal_sum += i128::from(amount.get());
            }
        }
        if overwritten != read {
            let erased = i128::from(overwritten) - i128::from(read);
            self.lost_updates += 1;
            self.lost_net += erased;
            if erased > 0 {
                self.lost_removed += erased;
            } else {
                self.lost_added -= erased;
            }
            tracing::debug!(
                ?op,
                read,
                overwritten,
                erased = %erased,
                "lost update: this write replaced a balance other than the one it read"
            );
        }
    }

    /// Records a withdrawal refused by the funds check.
    pub(crate) fn record_refusal(&mut self) {
        self.refused_count += 1;
    }

    /// Records optimistic conflicts that were redone, and whether the request finally gave up.
    pub(crate) fn record_retries(&mut self, retries: u64, exhausted: bool) {
        self.retries += retries;
        self.retries_exhausted += u64::from(exhausted);
    }

    /// A snapshot of the counters next to the current balance.
    pub(crate) fn stats(&self, balance: i64, mode: String, work: String, store: &str) -> Stats {
        let expected_balance =
            i128::from(self.initial_balance) + self.deposit_sum - self.withdrawal_sum;
        Stats {
            store: store.to_string(),
            mode,
            work,
            balance,
            initial_balance: self.initial_balance,
            deposit_count: self.deposit_count,
            deposit_sum: self.deposit_sum,
            withdrawal_count: self.withdrawal_count,
            withdrawal_sum: self.withdrawal_sum,
            refused_count: self.refused_count,
            expected_balance,
            lost_updates: self.lost_updates,
            lost_net: self.lost_net,
            lost_removed: self.lost_removed,
            lost_added: self.lost_added,
            drift: i128::from(balance) - expected_balance,
            overdraft: expected_balance < 0,
            retries: self.retries,
            retries_exhausted: self.retries_exhausted,
            bank: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Amount;

    fn deposit(value: i64) -> Op {
        Op::Deposit(Amount::new(value).unwrap())
    }

    #[test]
    fn a_write_over_another_write_is_counted_with_the_money_it_erased() {
        // Two deposits of 5 both read 0; the second overwrites the first's 5.
        let mut ledger = Ledger::new(0);
        ledger.record_write(deposit(5), 0, 0);
        ledger.record_write(deposit(5), 0, 5);
        let stats = ledger.stats(5, "unguarded".into(), "none".into(), "memory");
        assert_eq!(stats.expected_balance, 10);
        assert_eq!(stats.lost_updates, 1);
        assert_eq!(stats.lost_net, 5);
        assert_eq!(stats.drift, -5);
        assert_eq!(
            i128::from(stats.balance),
            stats.expected_balance - stats.lost_net
        );
    }

    #[test]
    fn withdrawals_beyond_everything_held_are_an_overdraft() {
        let withdraw = Op::Withdraw(Amount::new(10).unwrap());
        let mut ledger = Ledger::new(10);
        ledger.record_write(withdraw, 10, 10);
        ledger.record_write(withdraw, 10, 0);
        let stats = ledger.stats(0, "unguarded".into(), "none".into(), "memory");
        assert_eq!(stats.expected_balance, -10);
        assert!(stats.overdraft);
        assert_eq!(stats.lost_net, -10);
        assert_eq!((stats.lost_removed, stats.lost_added), (0, 10));
    }

    #[test]
    fn erasures_that_remove_and_add_money_are_summed_apart_where_the_net_cancels() {
        // A deposit of 5 erased (read 0, overwrote 5) and a withdrawal of 5 erased (read 5,
        // overwrote 0): the net is 0, the gross is not.
        let mut ledger = Ledger::new(0);
        ledger.record_write(deposit(5), 0, 5);
        ledger.record_write(Op::Withdraw(Amount::new(5).unwrap()), 5, 0);
        let stats = ledger.stats(0, "unguarded".into(), "none".into(), "memory");
        assert_eq!(stats.lost_net, 0);
        assert_eq!((stats.lost_removed, stats.lost_added), (5, 5));
    }
}
