//! The open connections, oldest first, so that when every connection slot is taken the accept
//! loop can ask the oldest to make room rather than leave a newcomer in the listen backlog.
//!
//! A connection asked to retire says `Connection: close` on its next answer, or closes at once if
//! its client is quiet ([`crate::http::connection`], [`crate::http::progress`]). One lock per connection opened and closed,
//! and per retirement; nothing per request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::http::progress::Progress;

/// Every open connection that holds a connection slot, by the order they were accepted.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    connections: Mutex<BTreeMap<u64, Arc<Progress>>>,
    next: AtomicU64,
}

/// A connection's place in the [`Registry`], given up when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    /// Enters a connection, as the newest.
    pub(crate) fn register(self: &Arc<Self>, progress: Arc<Progress>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, progress);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// Asks the oldest connection not yet retiring to close; `false` if there is none.
    pub(crate) fn retire_oldest(&self) -> bool {
        self.lock()
            .values()
            .find(|progress| !progress.is_retiring())
            .is_some_and(|progress| {
                progress.retire();
                true
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Progress>>> {
        // A map of handles: a panic elsewhere cannot leave it half-changed.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}
