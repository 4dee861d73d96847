//! What a PostgreSQL error means for the request: was anything written?
//!
//! - An error the server answered (it has a SQLSTATE) means the statement failed and, outside a
//!   transaction that goes on to commit, nothing it did remains: nothing was written.
//! - A serialization failure (40001) or a detected deadlock (40P01) is the same, and worth redoing.
//! - A connection lost or a pool that has no connection to give before the write was sent: nothing
//!   was written, 503.
//! - A connection that closed while the request held it (during the work, when PostgreSQL shuts
//!   down or restarts) has sent nothing since: the write is checked against that before it goes,
//!   so it answers 503, not "outcome unknown".
//! - A connection lost after the write (or the COMMIT) was sent: the write may have been applied or
//!   not, and only the database knows. That is 500 `outcome-unknown`, never a guess.
//!
//! Details go to the log at warn; the client gets a sentence.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::domain::error::AccountError;

const STORE: &str = "postgres";

/// The hint every "cannot reach PostgreSQL" message ends with.
pub(super) const START_HINT: &str =
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`";

/// What to do about a connection the pool could not open, chosen from the cause: the role or
/// password, the database, the port, or a server that is not running. `url` is the one the store
/// was opened with (its host, port, user and database name the commands).
pub(super) fn open_hint(error: &PoolError, url: &str) -> String {
    let config: Option<tokio_postgres::Config> = url.parse().ok();
    let port = config
        .as_ref()
        .and_then(|c| c.get_ports().first().copied())
        .unwrap_or(5432);
    let user = config
        .as_ref()
        .and_then(|c| c.get_user().map(str::to_string))
        .unwrap_or_else(|| "postgres".to_string());
    let database = config
        .as_ref()
        .and_then(|c| c.get_dbname().map(str::to_string))
        .unwrap_or_else(|| user.clone());
    let PoolError::Backend(backend) = error else {
        return START_HINT.to_string();
    };
    match backend.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => format!(
            "the server refused role `{user}`'s password: put the right one in the URL \
             (postgres://{user}:PASSWORD@host:{port}/{database})"
        ),
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "the server does not let role `{user}` in (unknown role, or no pg_hba.conf line for it): \
             use a role it knows (the local server trusts `postgres`), or create it with \
             `createuser -h 127.0.0.1 -p {port} -U postgres {user}`"
        ),
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => format!(
            "database `{database}` does not exist: create it with \
             `createdb -h 127.0.0.1 -p {port} -U postgres {database}`, or name one that exists in the URL"
        ),
        Some(_) => START_HINT.to_string(),
        None if refused(backend) && port != 5432 => format!(
            "nothing listens on port {port}: is the URL's port right? The local PostgreSQL listens \
             on 5432 (`pg_lsclusters` lists its clusters and their ports)"
        ),
        None if refused(backend) => format!("PostgreSQL is not running: {START_HINT}"),
        None => format!(
            "is the host right, and does PostgreSQL accept connections there? If it is local: {START_HINT}"
        ),
    }
}

/// Whether the connection was refused: nothing listens at the address.
fn refused(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    false
}

/// Whether redoing the section may succeed: a serialization failure or a deadlock.
pub(super) fn is_conflict(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// Why the pool gave no connection, on one line.
pub(super) fn pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => chain(error),
        other => other.to_string(),
    }
}

/// A connection could not be had from the pool: nothing was sent.
#[allow(
    clippy::needless_pass_by_value,
    reason = "called as `map_err(failure::no_connection)`, which hands the error over"
)]
pub(super) fn no_connection(error: PoolError) -> AccountError {
    let detail = match &error {
        PoolError::Timeout(_) => {
            "no connection came free in time: every connection of the pool is busy".to_string()
        }
        PoolError::Backend(error) => format!("cannot connect: {}; {START_HINT}", chain(error)),
        other => other.to_string(),
    };
    tracing::warn!(error = pool_error(&error), "postgres: no connection");
    AccountError::Unavailable {
        store: STORE,
        detail,
    }
}

/// `error` happened before any write of this request was sent (or committed): nothing was written.
pub(super) fn before_write(doing: &str, error: &tokio_postgres::Error) -> AccountError {
    if is_key_taken(error) {
        return AccountError::KeyInUse;
    }
    tracing::warn!(
        error = describe(error),
        doing,
        "postgres: failed before writing"
    );
    AccountError::Unavailable {
        store: STORE,
        detail: format!("{doing}: {}", describe(error)),
    }
}

/// Whether the connection is still open just before a write outside a transaction is sent. One
/// that closed during the work (PostgreSQL stopped or restarted) never sent the write: 503. Without
/// this check the write would fail as "connection closed", like one lost on its way, and answer
/// that its outcome is unknown.
pub(super) fn still_open(client: &tokio_postgres::Client, doing: &str) -> Result<(), AccountError> {
    if !client.is_closed() {
        return Ok(());
    }
    tracing::warn!(
        doing,
        "postgres: the connection closed before the write was sent"
    );
    Err(AccountError::Unavailable {
        store: STORE,
        detail: format!(
            "{doing}: the connection closed before the write was sent; nothing was written"
        ),
    })
}

/// `error` happened while the write (or its COMMIT) was on its way: it was applied only if the
/// server answered nothing and committed anyway, which only a SQLSTATE rules out.
pub(super) fn during_write(doing: &str, error: &tokio_postgres::Error) -> AccountError {
    if error.as_db_error().is_some() {
        return before_write(doing, error);
    }
    tracing::warn!(
        error = describe(error),
        doing,
        "postgres: failed while writing; the write may have been applied"
    );
    AccountError::OutcomeUnknown {
        store: STORE,
        detail: format!("{doing}: {}", describe(error)),
    }
}

/// Whether the statement failed because its idempotency key is already kept: another request with
/// the key wrote first, and this statement, write included, was rolled back.
fn is_key_taken(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some("idempotency_pkey")
    })
}

/// The account's row is missing: someone deleted it under a running server.
pub(super) fn missing_account(account: &str) -> AccountError {
    tracing::warn!(account, "postgres: the account's row is gone");
    AccountError::Unavailable {
        store: STORE,
        detail: format!(
            "account `{account}` no longer exists in racebank.accounts; restart to recreate it"
        ),
    }
}

/// What the database holds (`what`: a kept answer, the ledger) does not decode, so it cannot be
/// answered from: 503, nothing written.
pub(super) fn undecodable(what: &str, detail: &str) -> AccountError {
    tracing::warn!(%detail, "postgres: {what} does not decode");
    AccountError::Unavailable {
        store: STORE,
        detail: format!("{what} does not decode: {detail}"),
    }
}

/// One line: the server's message if it sent one, else the client's with its causes.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => chain(error),
    }
}

/// An error and its causes on one line (tokio-postgres prints "error connecting to server" and
/// keeps the reason, such as "Connection refused", in its source).
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_line = cause.to_string();
        // Some errors repeat their cause in their own message: say each thing once.
        if !line.ends_with(&cause_line) {
            line.push_str(": ");
            line.push_str(&cause_line);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use deadpool_postgres::PoolError;

    use super::{open_hint, START_HINT};

    /// The pool's error for a connection refused at `127.0.0.1:1`, where nothing listens.
    async fn refused() -> PoolError {
        let error =
            tokio_postgres::connect("host=127.0.0.1 port=1 user=postgres", tokio_postgres::NoTls)
                .await
                .err()
                .expect("nothing listens on port 1");
        PoolError::Backend(error)
    }

    #[tokio::test]
    async fn a_refused_connection_on_postgres_own_port_says_it_is_not_running_and_how_to_start_it()
    {
        let hint = open_hint(&refused().await, "postgres://postgres@127.0.0.1:5432/test");

        assert_eq!(hint, format!("PostgreSQL is not running: {START_HINT}"));
    }

    #[tokio::test]
    async fn a_refused_connection_on_another_port_asks_about_the_port_instead() {
        let hint = open_hint(&refused().await, "postgres://postgres@127.0.0.1:6543/test");

        assert!(hint.starts_with("nothing listens on port 6543"), "{hint}");
        assert!(!hint.contains("pg_ctlcluster"), "{hint}");
    }
}
