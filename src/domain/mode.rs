//! The `--mode` setting: how the read -> work -> write section is guarded, and the one table
//! of which store runs which mode.
//!
//! Modes are named once, here, for every store. [`MATRIX`] says, for each, which stores run it,
//! which of them the demo shows it on, and what its section does; everything else is derived from
//! it: [`Mode::runs_on`], [`Mode::takes_lease`], [`StoreKind::showcase`], the `--mode` help, the
//! parse error, and the hint a store gives for a mode it does not run. A test checks the table
//! below against it.
//!
//! `mutex` and `semaphore:N` are the same in every store: an in-process guard around the store's
//! unguarded section ([`crate::account::guard`]), which is exactly why they stop working across
//! replicas.
//!
//! | mode | section | store |
//! |---|---|---|
//! | `unguarded` | read, work, blind write | all |
//! | `mutex` | the same, one request at a time in this process | all |
//! | `semaphore:N` | the same, N requests at a time in this process | all |
//! | `account-locks` | the same, under one in-process lock per account, taken in `--lock-order` | all |
//! | `for-update` | `SELECT ... FOR UPDATE`, work, `UPDATE`, in one transaction | postgres |
//! | `advisory` | `pg_advisory_xact_lock` around read, work, write | postgres |
//! | `optimistic` | read, work, compare-and-swap (or version check), else redo | all |
//! | `repeatable-read` | the section in REPEATABLE READ, redo on serialization failure | postgres |
//! | `serializable` | the section in SERIALIZABLE, redo on serialization failure | postgres |
//! | `atomic` | work, then one indivisible update that checks funds | all |
//! | `lease` | a lock with a time-to-live around the section | redis |
//! | `fenced-write-only` | the lease plus a token checked only at the write (a lesson) | redis |
//! | `fenced` | the lease plus a fencing token checked at the read and write | redis |

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::error::OpenError;
use crate::domain::work::WorkSpec;

/// Where the balance lives, as `--store` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process.
    Memory,
    /// PostgreSQL, shared by replicas.
    Postgres,
    /// Redis, shared by replicas.
    Redis,
}

impl StoreKind {
    /// Every store, in `--store`'s order.
    pub(crate) const ALL: [StoreKind; 3] =
        [StoreKind::Memory, StoreKind::Postgres, StoreKind::Redis];

    /// The store's name, as `--store` takes it.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Postgres => "postgres",
            StoreKind::Redis => "redis",
        }
    }

    /// The modes the demo shows on this store, in the order it shows them (`semaphore:4` standing
    /// for the semaphores).
    pub fn showcase(self) -> Vec<Mode> {
        MATRIX
            .iter()
            .filter(|row| row.showcase.contains(&self))
            .map(|row| row.mode)
            .collect()
    }

    /// The names of the modes this store runs (`semaphore:N` for the semaphores), in the table's
    /// order.
    fn mode_names(self) -> Vec<&'static str> {
        MATRIX
            .iter()
            .filter(|row| row.stores.contains(&self))
            .map(|row| row.name)
            .collect()
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
    /// The same section under one in-process lock per account it touches, taken one at a time
    /// in `--lock-order`: parallel across accounts, and a deadlock in request order.
    AccountLocks,
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

/// One mode's row of [`MATRIX`].
#[derive(Debug)]
pub(crate) struct Row {
    /// The mode (`semaphore:4` standing for every permit count).
    pub(crate) mode: Mode,
    /// Its name, as `--mode` takes it (`semaphore:N` for the semaphores).
    pub(crate) name: &'static str,
    /// The stores that run it.
    pub(crate) stores: &'static [StoreKind],
    /// The stores the demo shows it on by default.
    pub(crate) showcase: &'static [StoreKind],
    /// Whether it holds a lease, as long as `--lease`.
    pub(crate) takes_lease: bool,
    /// Whether a bank (`--accounts`) runs it on the stores that run it: not the modes that
    /// keep one account's fencing token.
    pub(crate) bank: bool,
    /// What its section does, in one line.
    pub(crate) section: &'static str,
}

const ANY: &[StoreKind] = &StoreKind::ALL;
const POSTGRES: &[StoreKind] = &[StoreKind::Postgres];
const REDIS: &[StoreKind] = &[StoreKind::Redis];

/// Every mode, which stores run it, and what its section does: the one place that says so. Its
/// order is the demo's, and that of every list of modes shown to a user.
pub(crate) const MATRIX: [Row; 13] = [
    Row {
        mode: Mode::Unguarded,
        name: "unguarded",
        stores: ANY,
        showcase: ANY,
        takes_lease: false,
        bank: true,
        section: "read, work, blind write",
    },
    Row {
        mode: Mode::Mutex,
        name: "mutex",
        stores: ANY,
        showcase: ANY,
        takes_lease: false,
        bank: true,
        section: "the same, one request at a time in this process",
    },
    Row {
        mode: Mode::Semaphore(4),
        name: "semaphore:N",
        stores: ANY,
        // Redis runs it too; its demo keeps to the modes that teach something about Redis.
        showcase: &[StoreKind::Memory, StoreKind::Postgres],
        takes_lease: false,
        bank: true,
        section: "the same, N requests at a time in this process",
    },
    Row {
        mode: Mode::AccountLocks,
        name: "account-locks",
        stores: ANY,
        // A bank's lesson: on one account it is the mutex.
        showcase: &[],
        takes_lease: false,
        bank: true,
        section: "the same, under one in-process lock per account, taken in `--lock-order`",
    },
    Row {
        mode: Mode::ForUpdate,
        name: "for-update",
        stores: POSTGRES,
        showcase: POSTGRES,
        takes_lease: false,
        bank: true,
        section: "`SELECT ... FOR UPDATE`, work, `UPDATE`, in one transaction",
    },
    Row {
        mode: Mode::Advisory,
        name: "advisory",
        stores: POSTGRES,
        showcase: POSTGRES,
        takes_lease: false,
        bank: true,
        section: "`pg_advisory_xact_lock` around read, work, write",
    },
    Row {
        mode: Mode::Optimistic,
        name: "optimistic",
        stores: ANY,
        showcase: ANY,
        takes_lease: false,
        bank: true,
        section: "read, work, compare-and-swap (or version check), else redo",
    },
    Row {
        mode: Mode::RepeatableRead,
        name: "repeatable-read",
        stores: POSTGRES,
        showcase: POSTGRES,
        takes_lease: false,
        bank: true,
        section: "the section in REPEATABLE READ, redo on serialization failure",
    },
    Row {
        mode: Mode::Serializable,
        name: "serializable",
        stores: POSTGRES,
        showcase: POSTGRES,
        takes_lease: false,
        bank: true,
        section: "the section in SERIALIZABLE, redo on serialization failure",
    },
    Row {
        mode: Mode::Atomic,
        name: "atomic",
        stores: ANY,
        showcase: ANY,
        takes_lease: false,
        bank: true,
        section: "work, then one indivisible update that checks funds",
    },
    Row {
        mode: Mode::Lease,
        name: "lease",
        stores: REDIS,
        showcase: REDIS,
        takes_lease: true,
        bank: true,
        section: "a lock with a time-to-live around the section",
    },
    Row {
        mode: Mode::FencedWriteOnly,
        name: "fenced-write-only",
        stores: REDIS,
        showcase: REDIS,
        takes_lease: true,
        bank: false,
        section: "the lease plus a token checked only at the write (a lesson)",
    },
    Row {
        mode: Mode::Fenced,
        name: "fenced",
        stores: REDIS,
        showcase: REDIS,
        takes_lease: true,
        bank: false,
        section: "the lease plus a fencing token checked at the read and write",
    },
];

impl Mode {
    /// Whether `store` runs this mode.
    pub fn runs_on(self, store: StoreKind) -> bool {
        self.row().stores.contains(&store)
    }

    /// What this mode's section does, in one line (the start-up log says it).
    pub(crate) fn section(self) -> &'static str {
        self.row().section
    }

    /// Whether this mode holds a lease (as long as `--lease`) around its section.
    pub fn takes_lease(self) -> bool {
        self.row().takes_lease
    }

    /// The `--mode` help: every mode, grouped by the stores that run it (without a final period,
    /// as clap shows the help it takes from doc comments).
    pub fn help() -> String {
        format!(
            "How the read -> work -> write section is guarded: {}",
            by_stores("; ")
        )
    }

    /// Refuses a mode `store` does not run, with a hint that names the stores that do.
    pub(crate) fn check_store(self, store: StoreKind) -> Result<(), OpenError> {
        if self.runs_on(store) {
            return Ok(());
        }
        Err(OpenError::UnsupportedMode {
            mode: self.to_string(),
            store: store.name(),
            hint: self.hint(store),
        })
    }

    /// Whether a bank (`--accounts`) on `store` runs this mode.
    pub fn runs_bank_on(self, store: StoreKind) -> bool {
        self.runs_on(store) && self.row().bank
    }

    /// Refuses a mode a bank on `store` does not run: one `store` does not run at all (the same
    /// refusal as a single account's), or one without a bank, with the modes `store`'s bank runs.
    pub fn check_bank_store(self, store: StoreKind) -> Result<(), OpenError> {
        self.check_store(store)?;
        if self.row().bank {
            return Ok(());
        }
        let runs: Vec<&str> = MATRIX
            .iter()
            .filter(|row| row.bank && row.stores.contains(&store))
            .map(|row| row.name)
            .collect();
        Err(OpenError::NoBank {
            mode: self.to_string(),
            store: store.name(),
            hint: format!(
                "a bank on the {store} store runs {}; {} keeps one account's fencing token",
                list(&runs, "and"),
                self.row().name
            ),
        })
    }

    /// What to do instead of running this mode on `store`: the modes `store` runs, and the
    /// stores that run this one.
    fn hint(self, store: StoreKind) -> String {
        let elsewhere: Vec<String> = self
            .row()
            .stores
            .iter()
            .map(|other| format!("--store {other}"))
            .collect();
        format!(
            "the {store} store runs {}; {} runs with {}",
            list(&store.mode_names(), "and"),
            self.row().name,
            list(&elsewhere, "or"),
        )
    }

    /// This mode's row of [`MATRIX`].
    fn row(self) -> &'static Row {
        let same = |row: &&Row| std::mem::discriminant(&row.mode) == std::mem::discriminant(&self);
        // The table has a row for every mode (a test checks it); the first row is never used.
        MATRIX.iter().find(same).unwrap_or(&MATRIX[0])
    }

    /// Whether this mode keeps every update and never pays out more than the balance, when
    /// `replicas` servers share the account, each request works for up to `work`, and leases last
    /// `lease`.
    pub fn is_safe(self, replicas: usize, work: WorkSpec, lease: Duration) -> bool {
        match self {
            Mode::Unguarded => false,
            // In-process guards see only their own process's requests.
            Mode::Mutex | Mode::AccountLocks => replicas == 1,
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

    /// Whether this mode's guard lives in the server's process, so that it covers that replica's
    /// requests only.
    pub fn guards_in_process(self) -> bool {
        self.in_process_permits().is_some()
    }

    /// The in-process guard this mode puts around the store's section, if any.
    pub(crate) fn in_process_permits(self) -> Option<u32> {
        match self {
            // One account, one lock: the bank's per-account locks are in `crate::bank::locks`.
            Mode::Mutex | Mode::AccountLocks => Some(1),
            Mode::Semaphore(permits) => Some(permits),
            _ => None,
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let named = MATRIX
            .iter()
            .find(|row| row.name == text && !matches!(row.mode, Mode::Semaphore(_)));
        if let Some(row) = named {
            return Ok(row.mode);
        }
        match text.strip_prefix("semaphore:").map(str::parse::<u32>) {
            Some(Ok(permits)) if (1..=100_000).contains(&permits) => Ok(Mode::Semaphore(permits)),
            Some(_) => Err(format!(
                "`{text}`: semaphore takes a permit count from 1 to 100000 (e.g. `semaphore:4`)"
            )),
            None => Err(format!("`{text}` is not a mode: use {}", by_stores(", "))),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Mode::Semaphore(permits) = self {
            return write!(f, "semaphore:{permits}");
        }
        f.write_str(self.row().name)
    }
}

/// Every mode's name, in groups of the modes the same stores run, each group followed by its
/// stores (`unguarded, mutex, ... or atomic (any store)`), the groups joined by `separator`.
fn by_stores(separator: &str) -> String {
    let mut groups: Vec<(&[StoreKind], Vec<&str>)> = Vec::new();
    for row in &MATRIX {
        match groups.iter_mut().find(|(stores, _)| *stores == row.stores) {
            Some((_, names)) => names.push(row.name),
            None => groups.push((row.stores, vec![row.name])),
        }
    }
    let groups: Vec<String> = groups
        .iter()
        .map(|(stores, names)| {
            let stores = if stores.len() == StoreKind::ALL.len() {
                "any store".to_string()
            } else {
                let names: Vec<&str> = stores.iter().map(|store| store.name()).collect();
                list(&names, "or")
            };
            format!("{} ({stores})", list(names, "or"))
        })
        .collect();
    groups.join(separator)
}

/// `a, b and c` (or `a, b or c`, as `conjunction` says).
fn list<T: AsRef<str>>(items: &[T], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} {conjunction} {}", rest.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for text in MATRIX
            .iter()
            .map(|row| row.name)
            .filter(|name| *name != "semaphore:N")
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
            "semaphore:N",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_mode_has_one_row_in_the_matrix() {
        // A new mode does not compile here until it is listed, and then needs its row.
        let every = |mode: Mode| match mode {
            Mode::Unguarded
            | Mode::Mutex
            | Mode::Semaphore(_)
            | Mode::AccountLocks
            | Mode::Optimistic
            | Mode::Atomic
            | Mode::ForUpdate
            | Mode::Advisory
            | Mode::RepeatableRead
            | Mode::Serializable
            | Mode::Lease
            | Mode::Fenced
            | Mode::FencedWriteOnly => mode,
        };
        let modes = [
            Mode::Unguarded,
            Mode::Mutex,
            Mode::Semaphore(1),
            Mode::AccountLocks,
            Mode::Optimistic,
            Mode::Atomic,
            Mode::ForUpdate,
            Mode::Advisory,
            Mode::RepeatableRead,
            Mode::Serializable,
            Mode::Lease,
            Mode::Fenced,
            Mode::FencedWriteOnly,
        ];
        assert_eq!(modes.len(), MATRIX.len());
        for mode in modes.map(every) {
            let rows = MATRIX
                .iter()
                .filter(|row| std::mem::discriminant(&row.mode) == std::mem::discriminant(&mode))
                .count();
            assert_eq!(rows, 1, "{mode:?} has {rows} rows");
        }
        for row in &MATRIX {
            assert!(!row.stores.is_empty(), "{} runs nowhere", row.name);
            for store in row.showcase {
                assert!(row.stores.contains(store), "{} shown on {store}", row.name);
            }
        }
    }

    #[test]
    fn every_hint_names_only_the_stores_that_run_the_mode() {
        for row in &MATRIX {
            for store in StoreKind::ALL {
                let Err(OpenError::UnsupportedMode { hint, .. }) = row.mode.check_store(store)
                else {
                    assert!(row.mode.runs_on(store), "{} on {store}", row.name);
                    continue;
                };
                assert!(!row.mode.runs_on(store), "{} on {store}", row.name);
                for other in StoreKind::ALL {
                    let named = hint.contains(&format!("--store {other}"));
                    assert_eq!(
                        named,
                        row.mode.runs_on(other),
                        "{} on {store}: {hint}",
                        row.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_hint_lists_what_the_store_runs_and_where_the_mode_runs() {
        let Err(error) = Mode::ForUpdate.check_store(StoreKind::Memory) else {
            panic!("for-update runs on memory");
        };
        assert_eq!(
            error.to_string(),
            "mode `for-update` does not run on the memory store: the memory store runs \
             unguarded, mutex, semaphore:N, account-locks, optimistic and atomic; for-update runs \
             with --store postgres"
        );
    }

    #[test]
    fn a_bank_runs_every_mode_of_its_store_but_the_fenced_ones() {
        for row in &MATRIX {
            for store in StoreKind::ALL {
                let fenced = matches!(row.mode, Mode::Fenced | Mode::FencedWriteOnly);
                assert_eq!(
                    row.mode.runs_bank_on(store),
                    row.mode.runs_on(store) && !fenced,
                    "{} on {store}",
                    row.name
                );
                assert_eq!(
                    row.mode.check_bank_store(store).is_ok(),
                    row.mode.runs_bank_on(store)
                );
            }
        }
        let Err(error) = Mode::Fenced.check_bank_store(StoreKind::Redis) else {
            panic!("a Redis bank runs fenced");
        };
        assert_eq!(
            error.to_string(),
            "mode `fenced` runs no bank on the redis store: a bank on the redis store runs \
             unguarded, mutex, semaphore:N, account-locks, optimistic, atomic and lease; fenced \
             keeps one account's fencing token"
        );
    }

    #[test]
    fn the_help_and_the_parse_error_list_every_mode() {
        let help = Mode::help();
        let error = "spinlock".parse::<Mode>().unwrap_err();
        for row in &MATRIX {
            assert!(help.contains(row.name), "{} missing from {help}", row.name);
            assert!(
                error.contains(row.name),
                "{} missing from {error}",
                row.name
            );
        }
        assert_eq!(
            error,
            "`spinlock` is not a mode: use unguarded, mutex, semaphore:N, account-locks, optimistic \
             or atomic (any store), for-update, advisory, repeatable-read or serializable (postgres), \
             lease, fenced-write-only or fenced (redis)"
        );
        assert_eq!(
            help,
            "How the read -> work -> write section is guarded: unguarded, mutex, semaphore:N, \
             account-locks, optimistic or atomic (any store); for-update, advisory, repeatable-read or \
             serializable (postgres); lease, fenced-write-only or fenced (redis)"
        );
    }

    #[test]
    fn each_store_shows_the_demo_its_modes_in_order() {
        let names = |store: StoreKind| -> Vec<String> {
            store.showcase().iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            names(StoreKind::Memory),
            ["unguarded", "mutex", "semaphore:4", "optimistic", "atomic"]
        );
        assert_eq!(
            names(StoreKind::Postgres),
            [
                "unguarded",
                "mutex",
                "semaphore:4",
                "for-update",
                "advisory",
                "optimistic",
                "repeatable-read",
                "serializable",
                "atomic"
            ]
        );
        assert_eq!(
            names(StoreKind::Redis),
            [
                "unguarded",
                "mutex",
                "optimistic",
                "atomic",
                "lease",
                "fenced-write-only",
                "fenced"
            ]
        );
    }

    #[test]
    fn only_the_redis_lease_modes_take_a_lease() {
        for row in &MATRIX {
            let lease = matches!(row.mode, Mode::Lease | Mode::Fenced | Mode::FencedWriteOnly);
            assert_eq!(row.mode.takes_lease(), lease, "{}", row.name);
        }
    }

    #[test]
    fn the_module_docs_table_is_the_matrix() {
        let source = include_str!("mode.rs");
        let documented: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .collect();
        let derived: Vec<String> = MATRIX
            .iter()
            .map(|row| {
                let stores = if row.stores.len() == StoreKind::ALL.len() {
                    "all".to_string()
                } else {
                    let names: Vec<&str> = row.stores.iter().map(|s| s.name()).collect();
                    names.join(", ")
                };
                format!("{}` | {} | {stores} |", row.name, row.section)
            })
            .collect();
        assert_eq!(
            documented, derived,
            "the table in the module docs should read:\n{derived:#?}"
        );
    }

    #[test]
    fn the_stores_parse_from_their_names() {
        use clap::ValueEnum;
        for store in StoreKind::ALL {
            assert_eq!(StoreKind::from_str(store.name(), false), Ok(store));
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
