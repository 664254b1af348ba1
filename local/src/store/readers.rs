//! Read-only connections for the store's queries, so that reads never queue behind the writer
//! thread. In WAL mode a reader sees the last committed transaction and neither blocks the
//! writer nor waits for it. Because the writer replies only after COMMIT, a read that starts
//! after a write call returned sees that write.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use wxkf_core::ports::StoreError;

use super::writer::JobError;

/// Idle connections kept for reuse. Reads run on the calling thread, so rarely more than one per
/// runtime worker thread is in use at once. Connections beyond this are closed after use.
const MAX_IDLE: usize = 8;

/// Distinct statements a connection prepares. Its statement cache has room for all of them.
pub(super) const STATEMENT_CACHE_CAPACITY: usize = 64;

/// A pool of read-only connections to one database file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` on a read-only connection on the calling thread.
    ///
    /// This blocks the caller for the duration of the query. The store's queries are key and
    /// index lookups over pages normally in the OS cache, so that takes microseconds, like
    /// waiting for a mutex. Handing them to another thread would cost more than the query.
    pub(super) fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, JobError>,
    ) -> Result<T, StoreError> {
        let db = match self.idle().pop() {
            Some(db) => db,
            None => self.open().map_err(StoreError::from)?,
        };

        let result = work(&db);

        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(db);
        }
        result.map_err(StoreError::from)
    }

    fn open(&self) -> Result<Connection, JobError> {
        let db = Connection::open(&self.path)?;
        db.pragma_update(None, "query_only", true)?;
        // The writer holds its lock only while committing a batch, but a checkpoint or another
        // process (a backup, the sqlite3 shell) may hold one for a moment.
        db.busy_timeout(Duration::from_secs(5))?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(db)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The lock guards a single push or pop, so even a poisoned lock guards a whole list.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
