//! Store adapters of the local hub: [`SqliteStore`] keeps the hub's state in one SQLite file.
//! A dedicated writer thread runs its writes and commits them in groups, reads go through a
//! pool of read-only connections, and a background thread checkpoints the WAL.

mod checkpoint;
mod readers;
mod sqlite;
mod writer;

pub use sqlite::SqliteStore;
