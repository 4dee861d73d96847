//! Dedicated connections for `WATCH`, a bounded set of them.
//!
//! `WATCH` belongs to a connection: on the shared multiplexed connection, one request's `EXEC`
//! would be judged by every other request's `WATCH`es (and clear them). So an optimistic request
//! takes a connection of its own for its whole section. Opening one per attempt would cost a
//! connect per redo; instead, up to `size` connections are kept and handed out one request at a
//! time, and a request waits for one when all are out. That bound is a guard too: at most `size`
//! requests of this replica are in the window at once.
//!
//! A connection goes back only from a clean state (after `EXEC` or `UNWATCH`). A request dropped
//! mid-section, or one that met an error, drops its connection instead: closing it ends any
//! `WATCH` it held, so no stale watch can reach the next request.

use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{unavailable, CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};
use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// Up to `size` connections, each used by one request at a time.
pub(super) struct Dedicated {
    client: Client,
    config: AsyncConnectionConfig,
    idle: Mutex<Vec<MultiplexedConnection>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Dedicated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedicated")
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Dedicated {
    /// Connections are opened on first use.
    pub(super) fn new(client: Client, size: usize) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        }
    }

    /// A connection for this request alone; waits while all are out (a stopping server cuts the
    /// wait short).
    pub(super) async fn take(&self, work: &Work) -> Result<Taken<'_>, AccountError> {
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => work
                .unless_stopped(self.permits.acquire())
                .await?
                .expect("the semaphore is never closed"),
        };
        let idle = self.idle().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map_err(unavailable)?,
        };
        Ok(Taken {
            dedicated: self,
            connection: Some(connection),
            _permit: permit,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        // Nothing panics while holding this lock, but a poisoned lock must not take the server down.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection taken for one request. Dropped, it closes; given back, it serves the next one.
pub(super) struct Taken<'a> {
    dedicated: &'a Dedicated,
    connection: Option<MultiplexedConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Taken<'_> {
    pub(super) fn connection(&mut self) -> &mut MultiplexedConnection {
        self.connection
            .as_mut()
            .expect("the connection is there until the request gives it back")
    }

    /// Returns the connection for reuse; call only when it watches nothing.
    pub(super) fn give_back(mut self) {
        if let Some(connection) = self.connection.take() {
            self.dedicated.idle().push(connection);
        }
    }
}
