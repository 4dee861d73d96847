//! The account-wide ledger in PostgreSQL: the same counters as the memory store's, kept beside the
//! balance so that `/stats` of any replica describes every replica's writes.
//!
//! Every write records its ledger entry in the SAME statement as the write ([`write_and_record!`]):
//! a data-modifying CTE updates the account and upserts one ledger shard, so nothing can separate a
//! write from its entry (not a dropped request, not a crash, not a lost connection), and the
//! bookkeeping takes no lock that lasts beyond the write itself. It never hides the race it counts.
//!
//! Refusals, and the redos of a request that gave up, are upserts of their own ([`RECORD`]), sent
//! after any transaction that may roll back: they change no balance, so the identity
//! `balance == expected_balance - lost_net` never depends on them.
//!
//! `atomic` keeps its entries in the account row itself (migration 0005): its UPDATE adds them in
//! its own SET, so a write is one tuple and nothing else happens while it holds the row lock (see
//! `atomic.rs`). [`READ`] adds those columns to the shards' sums; a reset zeroes both.

use tokio_postgres::Row;

use crate::domain::idempotency::Claim;
use crate::domain::ledger::Ledger;
use crate::domain::money::Op;

/// How many ledger rows each account has. Each write picks one at random, so concurrent writes
/// rarely wait for each other's ledger row (the account row is where they are meant to meet).
pub(super) const SHARDS: i16 = 16;

/// Wraps a write on `racebank.accounts` so that the same statement records it in the ledger.
///
/// The write is an `UPDATE racebank.accounts ... RETURNING balance, replaced, <read>`: the balance
/// it wrote, the balance it overwrote (`replaced = balance` in its SET) and the balance the request
/// computed from, named `read`. If they differ, this write erased another: a lost update, and
/// `replaced - read` is the money it erased. The statement answers the written balance, or no row
/// if the UPDATE matched nothing (then nothing is recorded either). A second argument replaces the
/// answer (`atomic` also wants the balance it did not write).
///
/// With an idempotency key, the same statement keeps the key's answer (200 and the balance
/// written) in `racebank.idempotency`. A key already there fails the insert, and with it the whole
/// statement, write included: [`super::failure`] reads that as "answered by another request".
///
/// Parameters: `$1` account id, `$2` shard, `$3` the deposit or 0, `$4` the withdrawal or 0,
/// `$5` the redos this request needed, `$6` the idempotency key or NULL, `$7` how long its answer is
/// kept in milliseconds; the write's own start at `$8`.
macro_rules! write_and_record {
    ($write:literal) => {
        write_and_record!($write, "SELECT balance FROM written")
    };
    ($write:literal, $answer:literal) => {
        concat!(
            "WITH written AS (",
            $write,
            "), recorded AS (
                INSERT INTO racebank.ledger AS l (account, shard, deposit_count, deposit_sum,
                    withdrawal_count, withdrawal_sum, lost_updates, lost_net, lost_removed,
                    lost_added, retries)
                SELECT $1, $2::int2, ($3::int8 > 0)::int, $3::int8, ($4::int8 > 0)::int, $4::int8,
                    (replaced <> read)::int, replaced - read, greatest(replaced - read, 0),
                    greatest(read - replaced, 0), $5::int8
                FROM written
                ON CONFLICT (account, shard) DO UPDATE SET
                    deposit_count = l.deposit_count + excluded.deposit_count,
                    deposit_sum = l.deposit_sum + excluded.deposit_sum,
                    withdrawal_count = l.withdrawal_count + excluded.withdrawal_count,
                    withdrawal_sum = l.withdrawal_sum + excluded.withdrawal_sum,
                    lost_updates = l.lost_updates + excluded.lost_updates,
                    lost_net = l.lost_net + excluded.lost_net,
                    lost_removed = l.lost_removed + excluded.lost_removed,
                    lost_added = l.lost_added + excluded.lost_added,
                    retries = l.retries + excluded.retries
             ), ",
            $crate::store::postgres::ledger::remember_answer!(account: "$1", deposit: "$3", withdrawal: "$4", key: "$6", ttl: "$7"),
            " ",
            $answer
        )
    };
}
pub(super) use write_and_record;

/// The CTE `remembered` that keeps a keyed write's answer (200 and the balance `written` returned)
/// in `racebank.idempotency`, in the write's own statement; nothing without a key. Its arguments
/// name the statement's parameters: the account, the deposit or 0, the withdrawal or 0, the key or
/// NULL, and how long the answer is kept in milliseconds.
macro_rules! remember_answer {
    (account: $account:literal, deposit: $deposit:literal, withdrawal: $withdrawal:literal,
     key: $key:literal, ttl: $ttl:literal) => {
        concat!(
            "remembered AS (
                INSERT INTO racebank.idempotency (account, key, kind, amount, status, balance,
                    expires_at)
                SELECT ",
            $account,
            ", ",
            $key,
            "::text,
                    CASE WHEN ",
            $deposit,
            "::int8 > 0 THEN 'deposit' ELSE 'withdrawal' END,
                    ",
            $deposit,
            "::int8 + ",
            $withdrawal,
            "::int8, 200, balance,
                    now() + ",
            $ttl,
            "::int8 * interval '1 millisecond'
                FROM written
                WHERE ",
            $key,
            "::text IS NOT NULL
             )"
        )
    };
}
pub(super) use remember_answer;

/// Adds refusals and redos to a shard: `$1` account, `$2` shard, `$3` refused, `$4` retries,
/// `$5` retries exhausted.
pub(super) const RECORD: &str = "
    INSERT INTO racebank.ledger AS l (account, shard, refused_count, retries, retries_exhausted)
    VALUES ($1, $2::int2, $3::int8, $4::int8, $5::int8)
    ON CONFLICT (account, shard) DO UPDATE SET
        refused_count = l.refused_count + excluded.refused_count,
        retries = l.retries + excluded.retries,
        retries_exhausted = l.retries_exhausted + excluded.retries_exhausted";

/// The balance and the sum of every shard and of the entries kept in the account row, in one
/// statement and so one snapshot. Sums are read as text: they are numeric, wider than any Rust
/// integer tokio-postgres decodes, and fit an i128.
pub(super) const READ: &str = "
    SELECT a.balance, a.initial_balance,
        (a.deposit_count + coalesce(sum(l.deposit_count), 0))::int8,
        (a.deposit_sum + coalesce(sum(l.deposit_sum), 0))::text,
        (a.withdrawal_count + coalesce(sum(l.withdrawal_count), 0))::int8,
        (a.withdrawal_sum + coalesce(sum(l.withdrawal_sum), 0))::text,
        coalesce(sum(l.refused_count), 0)::int8,
        coalesce(sum(l.lost_updates), 0)::int8,
        coalesce(sum(l.lost_net), 0)::text,
        (a.retries + coalesce(sum(l.retries), 0))::int8,
        coalesce(sum(l.retries_exhausted), 0)::int8,
        coalesce(sum(l.lost_removed), 0)::text,
        coalesce(sum(l.lost_added), 0)::text
    FROM racebank.accounts a
    LEFT JOIN racebank.ledger l ON l.account = a.id
    WHERE a.id = $1
    GROUP BY a.id";

/// What one write adds to the ledger, as the parameters `$2` to `$4`, `$6` and `$7` of
/// [`write_and_record!`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'a> {
    pub(super) shard: i16,
    pub(super) deposit: i64,
    pub(super) withdrawal: i64,
    pub(super) key: Option<&'a str>,
    pub(super) ttl_millis: i64,
}

impl<'a> Entry<'a> {
    /// The entry for `op`, on a shard picked at random, keeping its answer for `claim`'s key.
    pub(super) fn new(op: Op, claim: Option<&Claim<'a>>) -> Self {
        let (deposit, withdrawal) = match op {
            Op::Deposit(amount) => (amount.get(), 0),
            Op::Withdraw(amount) => (0, amount.get()),
        };
        Self {
            shard: random_shard(),
            deposit,
            withdrawal,
            key: claim.map(|claim| claim.key.as_str()),
            ttl_millis: claim.map_or(0, Claim::ttl_millis),
        }
    }
}

/// A shard picked at random.
pub(super) fn random_shard() -> i16 {
    rand::random_range(0..SHARDS)
}

/// The ledger and the balance from a row of [`READ`]; a column that does not decode is an error,
/// not a panic.
pub(super) fn from_row(row: &Row) -> Result<(Ledger, i64), String> {
    let (int, count, sum) = (
        |index| column_int(row, index),
        |index| column_count(row, index),
        |index| column_sum(row, index),
    );
    let ledger = Ledger {
        initial_balance: int(1)?,
        deposit_count: count(2)?,
        deposit_sum: sum(3)?,
        withdrawal_count: count(4)?,
        withdrawal_sum: sum(5)?,
        refused_count: count(6)?,
        lost_updates: count(7)?,
        lost_net: sum(8)?,
        retries: count(9)?,
        retries_exhausted: count(10)?,
        lost_removed: sum(11)?,
        lost_added: sum(12)?,
    };
    Ok((ledger, int(0)?))
}

/// Column `index` of `row` as an `i64`; a column that does not decode is an error, not a panic.
pub(super) fn column_int(row: &Row, index: usize) -> Result<i64, String> {
    row.try_get::<_, i64>(index)
        .map_err(|e| format!("column {index}: {e}"))
}

/// Column `index` of `row` as a count: an `int8` that is never negative.
pub(super) fn column_count(row: &Row, index: usize) -> Result<u64, String> {
    u64::try_from(column_int(row, index)?).map_err(|e| format!("column {index}: {e}"))
}

/// Column `index` of `row` as an exact sum: a `numeric` the query casts to text.
pub(super) fn column_sum(row: &Row, index: usize) -> Result<i128, String> {
    let text: &str = row
        .try_get(index)
        .map_err(|e| format!("column {index}: {e}"))?;
    text.parse::<i128>()
        .map_err(|e| format!("column {index} ({text:?}): {e}"))
}
