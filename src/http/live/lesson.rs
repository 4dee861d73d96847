//! What each mode teaches, in one paragraph: the live page shows it, the modes chapter
//! (`docs/modes.md`) carries the same text.
//!
//! One source for both, so they cannot drift: a test below finds every paragraph in docs/modes.md
//! (whitespace aside, since the chapter wraps its lines). Backticks mark code, as in Markdown; the page
//! renders them the same way.
//!
//! It lives with the live page, which shows the paragraph of the mode it is watching.
//!
//! The PostgreSQL and Redis paragraphs describe modes that live behind the store seam: they are
//! here so that a mode has its paragraph from the day it exists.

/// One mode's paragraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lesson {
    /// The mode as `--mode` spells it (`semaphore:N` for every permit count).
    pub mode: &'static str,
    /// What a user watching that mode sees, and why.
    pub text: &'static str,
}

/// Every mode's paragraph, in the order docs/modes.md lists them.
pub(crate) const LESSONS: &[Lesson] = &[
    Lesson {
        mode: "unguarded",
        text: "Every request reads the balance, does its work, then writes back what it computed \
               without looking. When requests overlap, two of them read the same balance and the \
               later write erases the earlier one: both were answered 200 OK, but only one deposit \
               is in the account. Watch the balance fall behind the expected balance as soon as \
               requests overlap. Each write that erased another counts as a lost update, and the \
               lost amount is the money those writes erased.",
    },
    Lesson {
        mode: "mutex",
        text: "One request at a time holds a lock from its read to its write, so nobody writes in \
               between and nothing is lost: the balance stays on the expected balance however many \
               requests pile in. The price is the queue. With real work in the window the requests \
               run one after another, and req/s can never exceed one request per work duration \
               (1000 a second with `--work 1ms`).",
    },
    Lesson {
        mode: "semaphore:N",
        text:
            "Up to N requests hold a permit at once. With one permit this is a mutex; with more, \
               the permit holders overlap inside the window, read the same balance and erase each \
               other's writes just as unguarded requests do. Fewer updates are lost than \
               unguarded, but not none: limiting concurrency is not mutual exclusion.",
    },
    Lesson {
        mode: "account-locks",
        text: "One lock per account, taken one at a time: a transfer locks the account it debits, \
               does its work, then locks the other. Requests on different accounts run in \
               parallel, which one bank-wide mutex cannot do. Taken in the order the request names \
               them (`--lock-order request`), two transfers in opposite directions each hold the \
               lock the other wants: a deadlock, which the server detects, answering one of them \
               503 `deadlock`. Taken by account id (`--lock-order id`), no request can wait for one \
               that waits for it. On a single account it is the mutex, and like the mutex it sees \
               only this process's requests.",
    },
    Lesson {
        mode: "optimistic",
        text:
            "No lock. Each request reads, works, then writes only if the balance is still the one \
               it read (compare-and-swap). If another write got there first, it reads again and \
               redoes the work. Nothing is lost, but under contention most of the work is done \
               twice or more: retries counts the redos, and a request that conflicts \
               `--max-retries` times gives up with a 503 and changes nothing.",
    },
    Lesson {
        mode: "atomic",
        text: "The work happens first, outside any lock; then the change is applied in one \
               indivisible step that reads and writes together, the in-memory twin of \
               `UPDATE account SET balance = balance + 5`. No request can slip in between a read \
               and its write, so nothing is lost, and it runs about as fast as unguarded. When the \
               update can be one step, make it one step.",
    },
    Lesson {
        mode: "for-update",
        text:
            "Each request reads the row with `SELECT ... FOR UPDATE` inside a transaction, which \
               locks the row until the transaction commits. A second request's read waits for the \
               first to commit and then sees the new balance: a mutex kept by PostgreSQL, so it \
               holds across every replica that shares the database. Nothing is lost; requests \
               queue on the row lock.",
    },
    Lesson {
        mode: "advisory",
        text: "Each request takes a PostgreSQL advisory lock named after the account before it \
               reads, and holds it until it has written. It is a mutex that lives in the database \
               rather than in one process, so every replica that shares the database queues on the \
               same lock. Nothing is lost, as long as every writer takes the lock: the database \
               does not enforce it on the row.",
    },
    Lesson {
        mode: "repeatable-read",
        text:
            "Each request runs in a `REPEATABLE READ` transaction: it reads from a snapshot, and \
               if another transaction has changed the row since that snapshot was taken, \
               PostgreSQL refuses the update with a serialization failure instead of overwriting. \
               The request is rolled back and redone, as in optimistic mode: nothing is lost, and \
               under contention many transactions are redone.",
    },
    Lesson {
        mode: "serializable",
        text:
            "The strictest level: PostgreSQL commits transactions only if the result is the same \
               as running them one at a time in some order, and aborts one of any pair that could \
               not be ordered. On this single row it behaves like repeatable read, refusing the \
               second of two overlapping updates, which is then redone. Nothing is lost; the \
               difference shows when an invariant spans several rows.",
    },
    Lesson {
        mode: "lease",
        text:
            "Each request takes a lease in Redis (a key set only if absent, with an expiry) before \
               it reads, and deletes it after it writes. While the work is shorter than the lease, \
               this is a mutex shared by every replica. But a lease ends on a clock, not when its \
               holder is done: a request still working when its lease expires (a long pause, a \
               slow network, a long work window) still writes, after the next holder has read, and \
               erases that holder's update.",
    },
    Lesson {
        mode: "fenced",
        text:
            "Each lease comes with a fencing token, a number that grows with every lease granted, \
               and Redis checks it twice, each time in one atomic step: when the holder reads, \
               which records the token as the newest seen, and when it writes. Once a newer holder \
               has read, every write with an older token is refused. A request whose lease expired \
               mid-work can no longer write over its successor, so nothing is lost even when the \
               work outlasts the lease; the late request is refused instead (503 lease-lost).",
    },
    Lesson {
        mode: "fenced-write-only",
        text:
            "The token is checked the way a store that only sees writes can check it: a write is \
               refused only if a write with a newer token has already landed. That stops a stale \
               write that comes after its successor's, but not one that comes before it: the \
               expired holder writes first, and the new holder, which read the balance before that \
               write, then erases it. Fencing must compare against the newest lease, not the \
               newest write.",
    },
];

/// The paragraph for `mode` as the server names it (`semaphore:4` finds `semaphore:N`).
pub fn lesson(mode: &str) -> Option<&'static str> {
    let name = match mode.strip_prefix("semaphore:") {
        Some(permits) if !permits.is_empty() && permits.bytes().all(|b| b.is_ascii_digit()) => {
            "semaphore:N"
        }
        _ => mode,
    };
    LESSONS
        .iter()
        .find(|lesson| lesson.mode == name)
        .map(|lesson| lesson.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::{Mode, MATRIX};

    /// Collapses every run of whitespace to one space, so wrapped lines compare equal.
    fn words(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_modes_chapter_carries_every_paragraph_verbatim() {
        let section = words(include_str!("../../../docs/modes.md"));
        for lesson in LESSONS {
            assert!(
                section.contains(&words(lesson.text)),
                "docs/modes.md must carry the `{}` paragraph from src/http/live/lesson.rs word for \
                 word:\n\n{}",
                lesson.mode,
                words(lesson.text)
            );
        }
    }

    #[test]
    fn every_mode_the_server_runs_has_a_paragraph() {
        for mode in MATRIX
            .iter()
            .map(|row| row.mode)
            .chain([Mode::Semaphore(1), Mode::Semaphore(64)])
        {
            assert!(
                lesson(&mode.to_string()).is_some(),
                "no paragraph for {mode}"
            );
        }
    }

    #[test]
    fn semaphore_with_any_permit_count_finds_the_semaphore_paragraph() {
        let semaphore = lesson("semaphore:N");
        assert!(semaphore.is_some());
        assert_eq!(lesson("semaphore:4"), semaphore);
        assert_eq!(lesson("semaphore:"), None);
        assert_eq!(lesson("semaphore:x"), None);
        assert_eq!(lesson("spinlock"), None);
    }

    #[test]
    fn modes_are_listed_once_and_paragraphs_are_one_line_each() {
        for (i, lesson) in LESSONS.iter().enumerate() {
            assert!(
                LESSONS[i + 1..]
                    .iter()
                    .all(|other| other.mode != lesson.mode),
                "{} is listed twice",
                lesson.mode
            );
            // The string continuations above leave no newline or double space in the text.
            assert_eq!(lesson.text, words(lesson.text), "{}", lesson.mode);
        }
    }
}
