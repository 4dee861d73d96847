//! What Redis keeps of the account across a restart or a crash, read at start and said in one log
//! line: the account's durability is Redis's, and a server should not pretend otherwise.
//!
//! - no persistence (`save ""`, `appendonly no`): a restart loses everything;
//! - snapshots (`save <seconds> <changes>`): a crash loses every write since the last snapshot;
//! - append-only (`appendonly yes`): with `appendfsync always` nothing acknowledged; `everysec`
//!   about the last second; `no` what the OS had not yet flushed (up to about 30 s on Linux).
//!
//! Anything but append-only is logged at WARN; `--redis-require-aof` refuses to start. A Redis that
//! disables `CONFIG` (managed services) cannot be asked: the line says so.

use redis::aio::ConnectionManager;
use redis::RedisResult;

use crate::domain::error::OpenError;

/// Redis's persistence settings, as `CONFIG GET` answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Persistence {
    /// Neither snapshots nor an append-only file.
    None,
    /// Snapshots only, on this schedule (`save`).
    Snapshots(String),
    /// The append-only file, flushed to disk as `appendfsync` says.
    AppendOnly(String),
    /// `CONFIG GET` was refused or answered something unexpected.
    Unknown(String),
}

impl Persistence {
    /// From the answers to `CONFIG GET appendonly`, `appendfsync` and `save`.
    pub(super) fn from_settings(appendonly: &str, appendfsync: &str, save: &str) -> Self {
        if appendonly.eq_ignore_ascii_case("yes") {
            Persistence::AppendOnly(appendfsync.to_string())
        } else if save.trim().is_empty() {
            Persistence::None
        } else {
            Persistence::Snapshots(save.trim().to_string())
        }
    }

    /// What this setting keeps, in one sentence for the log.
    pub(super) fn describe(&self) -> String {
        match self {
            Persistence::None => "Redis has no persistence (save \"\", appendonly no): a restart \
                loses every account and every acknowledged write"
                .to_string(),
            Persistence::Snapshots(save) => format!(
                "Redis keeps snapshots only (save \"{save}\", appendonly no): a crash or a kill \
                 loses every write acknowledged since the last snapshot, and the account goes \
                 back to it"
            ),
            Persistence::AppendOnly(fsync) => match fsync.as_str() {
                "always" => "Redis keeps an append-only file flushed at every write (appendonly \
                    yes, appendfsync always): a crash loses no acknowledged write"
                    .to_string(),
                "everysec" => "Redis keeps an append-only file flushed every second (appendonly \
                    yes, appendfsync everysec): a crash of the machine loses up to the last \
                    second of acknowledged writes; a crash of Redis alone loses none"
                    .to_string(),
                other => format!(
                    "Redis keeps an append-only file flushed when the OS decides (appendonly \
                     yes, appendfsync {other}): a crash of the machine loses the writes not yet \
                     flushed (up to about 30 s on Linux); a crash of Redis alone loses none"
                ),
            },
            Persistence::Unknown(why) => format!(
                "could not tell what Redis keeps across a restart ({why}): CONFIG GET is \
                 disabled or refused; check its persistence by hand"
            ),
        }
    }

    fn is_append_only(&self) -> bool {
        matches!(self, Persistence::AppendOnly(_))
    }
}

/// Reads Redis's persistence, logs what it keeps, and refuses to go on without an append-only file
/// when `require_aof`.
pub(super) async fn check(
    connection: &mut ConnectionManager,
    require_aof: bool,
) -> Result<Persistence, OpenError> {
    let persistence = match read(connection).await {
        Ok(persistence) => persistence,
        Err(error) => Persistence::Unknown(error.to_string()),
    };
    let described = persistence.describe();
    if persistence.is_append_only() {
        tracing::info!("redis durability: {described}");
    } else if require_aof {
        return Err(OpenError::Store(format!(
            "--redis-require-aof: {described}; start Redis with --appendonly yes (and \
             --appendfsync always to lose nothing), or run without --redis-require-aof"
        )));
    } else {
        tracing::warn!("redis durability: {described}");
    }
    Ok(persistence)
}

async fn read(connection: &mut ConnectionManager) -> RedisResult<Persistence> {
    let setting = |name: &'static str| {
        let mut connection = connection.clone();
        async move {
            // `CONFIG GET name` answers `[name, value]` (a map in RESP3).
            let answer: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(answer.get(1).cloned().unwrap_or_default())
        }
    };
    let (appendonly, appendfsync, save) = tokio::try_join!(
        setting("appendonly"),
        setting("appendfsync"),
        setting("save")
    )?;
    Ok(Persistence::from_settings(&appendonly, &appendfsync, &save))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_persistence_setting_says_what_a_restart_or_a_crash_loses() {
        let cases = [
            (("no", "everysec", ""), "a restart loses every account"),
            (
                ("no", "everysec", "3600 1 300 100"),
                "since the last snapshot",
            ),
            (("yes", "always", ""), "loses no acknowledged write"),
            (("yes", "everysec", "3600 1"), "up to the last second"),
            (("yes", "no", ""), "not yet flushed"),
        ];
        for ((appendonly, appendfsync, save), says) in cases {
            let described = Persistence::from_settings(appendonly, appendfsync, save).describe();
            assert!(
                described.contains(says),
                "{appendonly} {appendfsync} {save:?}: {described}"
            );
        }
    }
}
