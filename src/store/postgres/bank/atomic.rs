//! Atomic: do the work first, then one statement that moves the money with relative updates
//! (`balance = balance - $amount`, `balance = balance + $amount`) and the funds check inside it.
//!
//! The debit's check is on its own row (`balance >= $amount`): PostgreSQL re-evaluates it on the
//! newest version of the row after waiting for any writer ahead, so no two debits can both pass
//! on one balance. A transfer is applied whole or not at all, its ledger entry in the same
//! statement (in the first row it writes, [`entry!`]), and it writes its two rows and nothing else.
//!
//! The two rows are locked in id order, so two transfers in opposite directions never deadlock,
//! and no lock is taken but the writes' own: there are two statements (each in two forms, for an
//! account outside any household and for a member of one), and a transfer runs the one whose
//! first write is the account that sorts first. [`DEBIT_FIRST`] debits with the funds
//! check, then credits with the overflow check; [`CREDIT_FIRST`] credits, then debits. The second
//! write happens only if the first did, and when its own check refuses it, the statement calls
//! `racebank.bank_move_refused` (migration 0006), whose error rolls the whole statement back, the
//! first write with it. A deposit is a credit alone, a withdrawal a debit alone.
//!
//! A household's check is a subquery summing the household (in the statements for a member of
//! one: the others check the account's own balance), and that is NOT safe at READ
//! COMMITTED: the subquery reads the statement's snapshot, not the rows as they are when the lock
//! is granted, and two withdrawals from two members each see the other's account as it was. Both
//! pass and the household ends below zero: write skew, in one statement. Kept as the lesson; a test
//! shows it by holding one member's row while the other withdraws (`tests/api/postgres/bank.rs`).
//!
//! When the statement moves nothing, a read of the balances says why, and the request is refused
//! with them, as the memory store refuses. The read runs only then, after the statement: if it
//! would have allowed the move (the balances moved in between), the statement runs again.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::ledger::{entry, Count, Redos};
use super::section::{self, redone, Attempt};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;
use crate::store::postgres::failure;

/// Whether the debited account's own balance covers `$8` the amount: a debit outside any household.
macro_rules! funded {
    () => {
        "balance >= $8::int8"
    };
}

/// Whether the debited member's household, `$11` its ids, sums to at least `$8` the amount: the
/// subquery of the lesson, run only for a member of a household. An account outside any household
/// takes the statement without it ([`funded!`]): PostgreSQL builds every subquery of a statement
/// each time it runs it, asked for or not.
macro_rules! household_covers {
    () => {
        "(SELECT sum(h.balance) FROM racebank.bank_accounts h
          WHERE h.bank = $1 AND h.id = ANY($11::text[])) >= $8::int8"
    };
}

/// The debit, then the credit only if the debit happened: withdrawals (`$10` NULL) and transfers
/// whose debited id sorts first. `$8` the amount, `$9` the debited id, `$10` the credited id or
/// NULL; the debit's check `$covered` ([`funded!`], or [`household_covers!`] with `$11` the
/// household); the entry ([`entry!`]) in the debited row. Answers the balance debited and the
/// balance credited, NULL where nothing was written; a credit refused after its debit (the balance
/// would overflow, or the row is gone) fails the statement (SQLSTATE [`REFUSED_AFTER_FIRST_WRITE`]),
/// which undoes the debit.
macro_rules! debit_first {
    ($covered:expr) => {
        concat!(
            "WITH debited AS (
                UPDATE racebank.bank_accounts
                SET balance = balance - $8::int8, replaced = balance, version = version + 1,
                    debits = debits + $8::int8, ",
            entry!(),
            "
                WHERE bank = $1 AND id = $9::text AND ",
            $covered,
            "
                RETURNING balance
            ), credited AS (
                UPDATE racebank.bank_accounts
                SET balance = balance + $8::int8, replaced = balance, version = version + 1,
                    credits = credits + $8::int8
                WHERE bank = $1 AND id = $10::text AND EXISTS (SELECT FROM debited)
                  AND balance <= 9223372036854775807 - $8::int8
                RETURNING balance
            )
            SELECT (SELECT balance FROM debited), (SELECT balance FROM credited),
                CASE WHEN $10::text IS NOT NULL AND EXISTS (SELECT FROM debited)
                          AND NOT EXISTS (SELECT FROM credited)
                    THEN racebank.bank_move_refused($10::text) END"
        )
    };
}

/// The credit, then the debit only if the credit happened: deposits (`$9` NULL) and transfers
/// whose credited id sorts first; the parameters, the check and the answer of [`debit_first!`],
/// the entry in the credited row. A debit refused after its credit fails the statement, which
/// undoes the credit.
macro_rules! credit_first {
    ($covered:expr) => {
        concat!(
            "WITH credited AS (
                UPDATE racebank.bank_accounts
                SET balance = balance + $8::int8, replaced = balance, version = version + 1,
                    credits = credits + $8::int8, ",
            entry!(),
            "
                WHERE bank = $1 AND id = $10::text AND balance <= 9223372036854775807 - $8::int8
                RETURNING balance
            ), debited AS (
                UPDATE racebank.bank_accounts
                SET balance = balance - $8::int8, replaced = balance, version = version + 1,
                    debits = debits + $8::int8
                WHERE bank = $1 AND id = $9::text AND EXISTS (SELECT FROM credited) AND ",
            $covered,
            "
                RETURNING balance
            )
            SELECT (SELECT balance FROM debited), (SELECT balance FROM credited),
                CASE WHEN $9::text IS NOT NULL AND EXISTS (SELECT FROM credited)
                          AND NOT EXISTS (SELECT FROM debited)
                    THEN racebank.bank_move_refused($9::text) END"
        )
    };
}

/// [`debit_first!`] from an account outside any household (`$1` to `$10`).
const DEBIT_FIRST: &str = debit_first!(funded!());
/// [`credit_first!`] to an account that sorts first, debiting one outside any household.
const CREDIT_FIRST: &str = credit_first!(funded!());
/// [`debit_first!`] from a member of a household (`$1` to `$11`).
const HOUSEHOLD_DEBIT_FIRST: &str = debit_first!(household_covers!());
/// [`credit_first!`] debiting a member of a household.
const HOUSEHOLD_CREDIT_FIRST: &str = credit_first!(household_covers!());

/// The SQLSTATE of `racebank.bank_move_refused`: nothing was written, the move was refused.
const REFUSED_AFTER_FIRST_WRITE: &str = "RB409";

/// The statement's own parameters for one move.
struct Params<'a> {
    from: Option<&'a str>,
    to: Option<&'a str>,
    amount: i64,
    household: Vec<&'a str>,
    reads: Vec<usize>,
}

impl<'a> Params<'a> {
    fn of(database: &'a BankDatabase, spec: &BankSpec, mv: Move) -> Self {
        let (from, to) = match mv {
            Move::Deposit { to, .. } => (None, Some(to)),
            Move::Withdraw { from, .. } => (Some(from), None),
            Move::Transfer { from, to, .. } => (Some(from), Some(to)),
        };
        let household = from
            .and_then(|from| spec.household(from))
            .unwrap_or_default()
            .iter()
            .map(|&p| database.id(p))
            .collect();
        Self {
            from: from.map(|p| database.id(p)),
            to: to.map(|p| database.id(p)),
            amount: mv.amount().get(),
            household,
            reads: mv.reads(spec),
        }
    }

    /// The statement that writes the account whose id sorts first first, with the household's
    /// check if the debited account is in one.
    fn statement(&self) -> &'static str {
        let credit_first = match (self.from, self.to) {
            (Some(from), Some(to)) => to < from,
            (Some(_), None) => false,
            (None, _) => true,
        };
        match (credit_first, self.household.is_empty()) {
            (false, true) => DEBIT_FIRST,
            (true, true) => CREDIT_FIRST,
            (false, false) => HOUSEHOLD_DEBIT_FIRST,
            (true, false) => HOUSEHOLD_CREDIT_FIRST,
        }
    }
}

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    work.run().await?;
    let client = database.client().await?;
    let params = Params::of(database, spec, mv);
    let statement = client
        .prepare_cached(params.statement())
        .await
        .map_err(|e| failure::before_write("preparing the move", &e))?;
    redone!(database, max_retries, |redos| attempt(
        &client, &statement, database, spec, mv, &params, redos
    ))
}

/// The statement, once: the balances written, or the refusal a read of the balances explains, or
/// a conflict when that read would have allowed the move.
async fn attempt(
    client: &deadpool_postgres::Object,
    statement: &tokio_postgres::Statement,
    database: &BankDatabase,
    spec: &BankSpec,
    mv: Move,
    params: &Params<'_>,
    redos: Redos,
) -> Result<Vec<i64>, Attempt> {
    failure::still_open(client, "moving the money").map_err(Attempt::Failed)?;
    let count = Count::of(mv, redos);
    let own: [&(dyn ToSql + Sync); 4] =
        [&params.amount, &params.from, &params.to, &params.household];
    let all: Vec<&(dyn ToSql + Sync)> = count.params(database).into_iter().chain(own).collect();
    // The household's ids, `$11`, only to the statement that checks a household.
    let answer = client
        .query_one(statement, &all[..statement.params().len()])
        .await;
    match answer {
        Ok(row) => {
            if let Some(written) = written(mv, &row)? {
                return Ok(written);
            }
        }
        Err(error) if error.code().map(SqlState::code) == Some(REFUSED_AFTER_FIRST_WRITE) => {}
        Err(error) => return Err(section::during("moving the money")(error)),
    }
    let seen = section::read(client, database, &params.reads).await?;
    match mv.settle(spec, &section::balances(&seen)) {
        Err(refusal) => Err(Attempt::Failed(refusal.into())),
        // The balances moved since the statement judged them: run it again.
        Ok(_) => Err(Attempt::Conflict { deadlock: false }),
    }
}

/// The balances the statement wrote, in [`Move::writes`] order, or `None` when it moved nothing.
fn written(mv: Move, row: &tokio_postgres::Row) -> Result<Option<Vec<i64>>, Attempt> {
    let undecodable = |e: tokio_postgres::Error| {
        Attempt::Failed(failure::undecodable("the move's answer", &e.to_string()))
    };
    let debited: Option<i64> = row.try_get(0).map_err(undecodable)?;
    let credited: Option<i64> = row.try_get(1).map_err(undecodable)?;
    match (mv, debited, credited) {
        (Move::Deposit { .. }, None, Some(balance))
        | (Move::Withdraw { .. }, Some(balance), None) => Ok(Some(vec![balance])),
        (Move::Transfer { .. }, Some(from), Some(to)) => Ok(Some(vec![from, to])),
        (_, None, None) => Ok(None),
        // Each statement writes both sides or fails: anything else is a fault of the statement.
        _ => Err(Attempt::Failed(failure::undecodable(
            "the move's answer",
            "one side of the move written without the other",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{CREDIT_FIRST, DEBIT_FIRST};

    /// The statement as `load/bench/bench.py` runs it through pgbench: its variables for the
    /// parameters, a transfer's entry as constants, the bank's key as a placeholder.
    fn as_pgbench(statement: &str) -> String {
        let mut sql = statement.to_string();
        for (parameter, pgbench) in [
            ("$10::text", ":to::text"),
            ("$2::int8", "0"),
            ("$3::int8", "0"),
            ("$4::int8", "1"),
            ("$5::int8", ":amount::int8"),
            ("$6::int8", "0"),
            ("$7::int8", "0"),
            ("$8::int8", ":amount::int8"),
            ("$9::text", ":from::text"),
            ("$1", "'{bank}'"),
        ] {
            sql = sql.replace(parameter, pgbench);
        }
        normalized(&sql)
    }

    /// `sql` with its white space collapsed, none inside parentheses, and no final `;`.
    fn normalized(sql: &str) -> String {
        let words = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        words.replace("( ", "(").replace(" )", ")").replace(';', "")
    }

    /// The text between `start` and the next `end` in `text`.
    fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
        let from = text.find(start).expect("the start marker") + start.len();
        let to = from + text[from..].find(end).expect("the end marker");
        &text[from..to]
    }

    #[test]
    fn the_benchmarks_copy_of_the_transfer_statements_is_what_the_server_sends() {
        let bench = include_str!("../../../../load/bench/bench.py");
        let copy = between(bench, "BANK_RACEBANK_SQL = \"\"\"", "\"\"\"");

        let debit_first = between(copy, "\\\\if :from < :to", "\\\\else");
        let credit_first = between(copy, "\\\\else", "\\\\endif");

        assert_eq!(normalized(debit_first), as_pgbench(DEBIT_FIRST));
        assert_eq!(normalized(credit_first), as_pgbench(CREDIT_FIRST));
    }
}
