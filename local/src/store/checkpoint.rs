//! The checkpoint thread: copies committed pages from the WAL into the database file in the
//! background, so that the writer thread rarely waits for that copy or its fsync calls.
//!
//! With `synchronous=NORMAL` a commit only appends to the WAL; the fsync calls happen at
//! checkpoints. SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold, which would stall every caller in that batch for the copy and two fsync calls.
//! Here a separate connection runs a PASSIVE checkpoint every [`INTERVAL`]. SQLite documents
//! that mode as copying what it can without waiting for readers or writers
//! (`sqlite3_wal_checkpoint_v2`). The writer's automatic checkpoint stays on with a large
//! threshold as a backstop. Under sustained load the background checkpoint always lags the
//! newest commits, so SQLite cannot restart the WAL from its beginning. The writer's checkpoint
//! then finds almost every page already copied and lets the next batch restart the WAL.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use wxkf_core::ports::StoreError;

/// How often the background checkpoint runs. A checkpoint copies each changed page once, so a
/// longer interval copies less for pages written many times (stream heads, right-hand index
/// pages) but lets the WAL grow larger in between.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL pages (4 KiB each by default) after which the writer's own commit checkpoints. It sits
/// well above what one interval of heavy load writes, so that it rarely fires.
///
/// NOTE: SQLite reuses the WAL file from its start after a checkpoint instead of shrinking it,
/// so the file keeps its largest size until the store closes. In `store_bench` (300,000
/// messages from 128 tasks) it reached about 110 MB.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The running checkpoint thread; dropping it stops the thread and waits for it.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to the database at `path` and starts checkpointing it.
    pub(super) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let db = Connection::open(path).map_err(StoreError::unavailable)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wxkf-sqlite-checkpoint".to_owned())
            .spawn(move || run(db, stopped))
            .map_err(StoreError::unavailable)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The loop only logs failures, so a join error would be a panic already reported
            // on stderr.
            let _ = thread.join();
        }
    }
}

fn run(db: Connection, stopped: mpsc::Receiver<()>) {
    let mut failing = false;
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // With nothing new in the WAL this returns after reading the WAL index header.
        let checkpoint = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        // The writer's own checkpoint still bounds the WAL, so a failure here costs speed, not
        // data, and the next interval tries again. Only changes are logged, not every retry.
        match checkpoint {
            Err(error) if !failing => {
                tracing::warn!(error = %error, "background wal checkpoint failed; retrying");
                failing = true;
            }
            Ok(()) if failing => {
                tracing::info!("background wal checkpoint recovered");
                failing = false;
            }
            _ => {}
        }
    }
}
