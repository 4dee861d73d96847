//! Atomic: do the work first, then one statement that moves the money with relative updates
//! (`balance = balance - $amount`, `balance = balance + $amount`) and the funds check inside it.
//!
//! The debit's check is on its own row (`balance >= $amount`): PostgreSQL re-evaluates it on the
//! newest version of the row after waiting for any writer ahead, so no two debits can both pass
//! on one balance. The credit happens only if the debit did (it reads the debit's RETURNING), so
//! a transfer is applied whole or not at all, and its ledger entry is in the same statement. The
//! row that sorts first by id is locked first, so two transfers in opposite directions take their
//! locks in the same order and never deadlock.
//!
//! A household's check is a subquery summing the household, and that is NOT safe at READ
//! COMMITTED: the subquery reads the statement's snapshot, not the rows as they are when the lock
//! is granted, and two withdrawals from two members each see the other's account as it was. Both
//! pass and the household ends below zero: write skew, in one statement. Kept as the lesson.
//!
//! When the statement moves nothing, the same statement's snapshot says what the balances were,
//! and the request is refused with them, as the memory store refuses. The snapshot can be older
//! than the row the check judged; if it would have allowed the move, the statement runs again.

use super::ledger::{counted, Count, Redos};
use super::section::{self, Attempt, Redo};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;
use crate::store::postgres::failure;

/// The move and its entry: `$7` the debited id or NULL, `$8` the credited id or NULL, `$9` the
/// debited account's household (empty when none), `$10` the ids read to decide. Answers the
/// balance debited, the balance credited (NULL where nothing was written), and the balances of
/// `$10` in the statement's snapshot.
const MOVE: &str = counted!(
    "first AS (
        SELECT FROM racebank.bank_accounts
        WHERE bank = $1 AND id = least($7::text, $8::text)
        FOR UPDATE
    ), debited AS (
        UPDATE racebank.bank_accounts
        SET balance = balance - $4::int8, replaced = balance, version = version + 1,
            debits = debits + $4::int8
        WHERE bank = $1 AND id = $7::text AND EXISTS (SELECT FROM first)
          AND CASE WHEN cardinality($9::text[]) = 0 THEN balance >= $4::int8
              ELSE (SELECT sum(h.balance) FROM racebank.bank_accounts h
                    WHERE h.bank = $1 AND h.id = ANY($9::text[])) >= $4::int8 END
          AND ($8::text IS NULL OR (SELECT c.balance FROM racebank.bank_accounts c
              WHERE c.bank = $1 AND c.id = $8::text) <= 9223372036854775807 - $4::int8)
        RETURNING balance
    ), credited AS (
        UPDATE racebank.bank_accounts
        SET balance = balance + $4::int8, replaced = balance, version = version + 1,
            credits = credits + $4::int8
        WHERE bank = $1 AND id = $8::text AND EXISTS (SELECT FROM first)
          AND CASE WHEN $7::text IS NULL THEN balance <= 9223372036854775807 - $4::int8
              ELSE EXISTS (SELECT FROM debited) END
        RETURNING balance
    ), done AS (SELECT FROM debited UNION ALL SELECT FROM credited)",
    "SELECT (SELECT balance FROM debited), (SELECT balance FROM credited),
        ARRAY(SELECT a.balance FROM unnest($10::text[]) WITH ORDINALITY AS s(id, n)
              JOIN racebank.bank_accounts a ON a.bank = $1 AND a.id = s.id ORDER BY s.n)"
);

/// The statement's own parameters for one move.
struct Params<'a> {
    from: Option<&'a str>,
    to: Option<&'a str>,
    household: Vec<&'a str>,
    reads: Vec<usize>,
    read_ids: Vec<&'a str>,
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
        let reads = mv.reads(spec);
        Self {
            from: from.map(|p| database.id(p)),
            to: to.map(|p| database.id(p)),
            household,
            read_ids: reads.iter().map(|&p| database.id(p)).collect(),
            reads,
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
    let statement = client
        .prepare_cached(MOVE)
        .await
        .map_err(|e| failure::before_write("preparing the move", &e))?;
    let params = Params::of(database, spec, mv);
    let mut redo = Redo::new(max_retries);
    let outcome = loop {
        let attempt = attempt(
            &client,
            &statement,
            database,
            spec,
            mv,
            &params,
            redo.redos(),
        )
        .await;
        if let Some(outcome) = redo.after(attempt).await {
            break outcome;
        }
    };
    redo.finish(database, outcome).await
}

/// The statement, once: the balances written, or the refusal its snapshot explains, or a conflict
/// when the snapshot would have allowed the move.
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
    let [bank, shard, kind, amount, retries, deadlocks] = count.params(database);
    let row = client
        .query_one(
            statement,
            &[
                bank,
                shard,
                kind,
                amount,
                retries,
                deadlocks,
                &params.from,
                &params.to,
                &params.household,
                &params.read_ids,
            ],
        )
        .await
        .map_err(section::during("moving the money"))?;
    let undecodable = |e: tokio_postgres::Error| {
        Attempt::Failed(failure::undecodable("the move's answer", &e.to_string()))
    };
    let debited: Option<i64> = row.try_get(0).map_err(undecodable)?;
    let credited: Option<i64> = row.try_get(1).map_err(undecodable)?;
    match (mv, debited, credited) {
        (Move::Deposit { .. }, _, Some(balance)) | (Move::Withdraw { .. }, Some(balance), _) => {
            return Ok(vec![balance])
        }
        (Move::Transfer { .. }, Some(from), Some(to)) => return Ok(vec![from, to]),
        (Move::Transfer { to, .. }, Some(_), None) => {
            return Err(Attempt::Failed(super::ledger::missing(database, to)))
        }
        _ => {}
    }
    let snapshot: Vec<i64> = row.try_get(2).map_err(undecodable)?;
    if snapshot.len() != params.reads.len() {
        return Err(Attempt::Failed(super::ledger::missing(
            database,
            params.reads[0],
        )));
    }
    let read: Vec<(usize, i64)> = params.reads.iter().copied().zip(snapshot).collect();
    match mv.settle(spec, &read) {
        Err(refusal) => Err(Attempt::Failed(refusal.into())),
        // The snapshot is older than the row the check judged: run the statement again.
        Ok(_) => Err(Attempt::Conflict { deadlock: false }),
    }
}
