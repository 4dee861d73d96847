//! The schema, created and migrated by the server itself at start: versioned SQL files kept in
//! the repository (`migrations/NNNN_name.sql`), each applied once and recorded in
//! `racebank.schema_migrations`.
//!
//! Several replicas usually start at the same moment. Each runs the whole migration in one
//! transaction that first takes a transaction-scoped advisory lock: the first applies what is
//! missing, the others wait for it, then find nothing left to do. DDL is transactional in
//! PostgreSQL, so a migration that fails leaves no half-made table behind and the next start
//! retries it. A migration file is never edited once released; a change is a new file.

use tokio_postgres::Client;

/// Every migration, in order: its version, its name, its SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "accounts", include_str!("migrations/0001_accounts.sql")),
    (
        2,
        "lost_by_sign",
        include_str!("migrations/0002_lost_by_sign.sql"),
    ),
    (
        3,
        "idempotency",
        include_str!("migrations/0003_idempotency.sql"),
    ),
    (4, "bank", include_str!("migrations/0004_bank.sql")),
    (
        5,
        "entries_in_the_account_row",
        include_str!("migrations/0005_entries_in_the_account_row.sql"),
    ),
    (
        6,
        "bank_entries_in_the_account_rows",
        include_str!("migrations/0006_bank_entries_in_the_account_rows.sql"),
    ),
];

/// The advisory lock every starting replica queues on (the one-number key space; account locks use
/// the two-number one, so they never collide with it). The bytes spell "racebank".
const MIGRATION_LOCK: i64 = 0x7261_6365_6261_6e6b;

/// Brings the schema up to date; safe to run from any number of replicas at once.
pub(super) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS racebank;
             CREATE TABLE IF NOT EXISTS racebank.schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;
    let applied = transaction
        .query("SELECT version FROM racebank.schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get::<_, i32>(0))
        .collect::<Result<Vec<_>, _>>()?;
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO racebank.schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await?;
        tracing::info!(version, name, "applied a schema migration");
    }
    transaction.commit().await
}
