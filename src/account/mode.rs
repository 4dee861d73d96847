//! The `--mode` setting: how the read -> work -> write section is guarded.
//!
//! Modes are named once, here, for every store; each store says which of them it can run
//! (`memory` the in-process ones, `postgres` the database's own tools, `redis` leases and scripts).
//! `mutex` and `semaphore:N` are the same in every store: an in-process guard around the store's
//! unguarded section ([`crate::account::guard`]), which is exactly why they stop working across replicas.
//!
//! | mode                | section                                                       | store             |
//! |---------------------|---------------------------------------------------------------|-------------------|
//! | `unguarded`         | read, work, blind write                                       | all               |
//! | `mutex`             | the same, one request at a time in this process               | all               |
//! | `semaphore:N`       | the same, N requests at a time in this process                | all               |
//! | `optimistic`        | read, work, compare-and-swap (or version check), else redo    | all               |
//! | `atomic`            | work, then one indivisible update that checks funds           | all               |
//! | `for-update`        | `SELECT ... FOR UPDATE`, work, `UPDATE`, in one transaction   | postgres          |
//! | `advisory`          | `pg_advisory_xact_lock` around read, work, write              | postgres          |
//! | `repeatable-read`   | the section in REPEATABLE READ, redo on serialization failure | postgres          |
//! | `serializable`      | the section in SERIALIZABLE, redo on serialization failure    | postgres          |
//! | `lease`             | a lock with a time-to-live around the section                 | redis             |
//! | `fenced`            | the lease plus a fencing token checked at the read and write  | redis             |
//! | `fenced-write-only` | the lease plus a token checked only at the write (a lesson)   | redis             |

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::account::work::WorkSpec;

/// The `--store` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process.
    Memory,
    /// PostgreSQL, shared by replicas.
    Postgres,
    /// Redis, shared by replicas.
    Redis,
}

/// How (or whether) the account's read -> work -> write section is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Read, work, write, with no guard: the race.
    Unguarded,
    /// The same section behind an in-process mutex held across the work.
    Mutex,
    /// The same section admitting up to N requests at once, in this process.
    Semaphore(u32),
    /// No lock: compare the result against what was read, and redo the work on conflict.
    Optimistic,
    /// Work first, then apply the change in one indivisible step.
    Atomic,
    /// PostgreSQL: lock the row with `SELECT ... FOR UPDATE` for the whole section.
    ForUpdate,
    /// PostgreSQL: a transaction-scoped advisory lock on the account around the section.
    Advisory,
    /// PostgreSQL: the section in a REPEATABLE READ transaction, redone on conflict.
    RepeatableRead,
    /// PostgreSQL: the section in a SERIALIZABLE transaction, redone on conflict.
    Serializable,
    /// Redis: a lock with a time-to-live (`SET NX PX`) around the section.
    Lease,
    /// Redis: the lease plus a fencing token that the storage checks at the read and the write.
    Fenced,
    /// Redis: the lease plus a fencing token checked only at the write; still loses updates.
    FencedWriteOnly,
}

/// Every mode that takes no parameter, with its name.
const NAMED: [(&str, Mode); 11] = [
    ("unguarded", Mode::Unguarded),
    ("mutex", Mode::Mutex),
    ("optimistic", Mode::Optimistic),
    ("atomic", Mode::Atomic),
    ("for-update", Mode::ForUpdate),
    ("advisory", Mode::Advisory),
    ("repeatable-read", Mode::RepeatableRead),
    ("serializable", Mode::Serializable),
    ("lease", Mode::Lease),
    ("fenced", Mode::Fenced),
    ("fenced-write-only", Mode::FencedWriteOnly),
];

impl Mode {
    /// One of each in-memory strategy, as the demo shows them.
    pub fn showcase() -> [Mode; 5] {
        [
            Mode::Unguarded,
            Mode::Mutex,
            Mode::Semaphore(4),
            Mode::Optimistic,
            Mode::Atomic,
        ]
    }

    /// Every mode, with `semaphore:4` standing for the semaphores.
    pub(crate) fn all() -> impl Iterator<Item = Mode> {
        NAMED
            .iter()
            .map(|(_, mode)| *mode)
            .chain([Mode::Semaphore(4)])
    }

    /// Whether this mode keeps every update and never pays out more than the balance, when
    /// `replicas` servers share the account, each request works for up to `work`, and leases last
    /// `lease`.
    pub fn is_safe(self, replicas: usize, work: WorkSpec, lease: Duration) -> bool {
        match self {
            Mode::Unguarded => false,
            // In-process guards see only their own process's requests.
            Mode::Mutex => replicas == 1,
            Mode::Semaphore(permits) => permits == 1 && replicas == 1,
            // A lease protects only while the work ends before it runs out; a token checked only
            // at the write does not change that (a stale holder writes before the next one does).
            Mode::Lease | Mode::FencedWriteOnly => work.longest() < lease,
            Mode::Optimistic
            | Mode::Atomic
            | Mode::ForUpdate
            | Mode::Advisory
            | Mode::RepeatableRead
            | Mode::Serializable
            | Mode::Fenced => true,
        }
    }

    /// The in-process guard this mode puts around the store's section, if any.
    pub(crate) fn in_process_permits(self) -> Option<u32> {
        match self {
            Mode::Mutex => Some(1),
            Mode::Semaphore(permits) => Some(permits),
            _ => None,
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some((_, mode)) = NAMED.iter().find(|(name, _)| *name == text) {
            return Ok(*mode);
        }
        match text.strip_prefix("semaphore:").map(str::parse::<u32>) {
            Some(Ok(permits)) if (1..=100_000).contains(&permits) => Ok(Mode::Semaphore(permits)),
            Some(_) => Err(format!(
                "`{text}`: semaphore takes a permit count from 1 to 100000 (e.g. `semaphore:4`)"
            )),
            None => Err(format!(
                "`{text}` is not a mode: use unguarded, mutex, semaphore:N, optimistic or atomic \
                 (any store), for-update, advisory, repeatable-read or serializable (postgres), \
                 lease, fenced or fenced-write-only (redis)"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Mode::Semaphore(permits) = self {
            return write!(f, "semaphore:{permits}");
        }
        let name = NAMED
            .iter()
            .find(|(_, mode)| mode == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for text in NAMED
            .iter()
            .map(|(name, _)| *name)
            .chain(["semaphore:1", "semaphore:8"])
        {
            let mode: Mode = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(mode.to_string(), text);
        }
        for bad in [
            "",
            "locked",
            "semaphore",
            "semaphore:0",
            "semaphore:-1",
            "Mutex",
            "for_update",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn in_process_guards_are_safe_with_one_replica_only() {
        let (work, lease) = (WorkSpec::None, Duration::from_millis(100));
        assert!(Mode::Mutex.is_safe(1, work, lease));
        assert!(!Mode::Mutex.is_safe(3, work, lease));
        assert!(!Mode::Semaphore(4).is_safe(1, work, lease));
        assert!(Mode::ForUpdate.is_safe(3, work, lease));
    }

    #[test]
    fn a_lease_is_safe_only_while_the_work_ends_before_it_expires() {
        let lease = Duration::from_millis(50);
        let short = WorkSpec::Sleep(Duration::from_millis(1));
        let long = WorkSpec::Sleep(Duration::from_millis(200));
        assert!(Mode::Lease.is_safe(3, short, lease));
        assert!(!Mode::Lease.is_safe(1, long, lease));
        assert!(Mode::Fenced.is_safe(3, long, lease));
        assert!(Mode::FencedWriteOnly.is_safe(3, short, lease));
        assert!(!Mode::FencedWriteOnly.is_safe(3, long, lease));
    }
}
