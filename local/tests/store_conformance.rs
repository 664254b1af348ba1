//! Runs the shared store conformance suite against both store adapters the local hub can use:
//! SQLite on a real file in a temporary directory, and the in-memory reference store.

use std::ops::Deref;

use tempfile::TempDir;
use wxkf::store::SqliteStore;

/// A SQLite store together with the temporary directory that holds its file. The store is
/// declared first so that it closes before the directory is deleted.
struct TempSqlite {
    store: SqliteStore,
    _dir: TempDir,
}

impl Deref for TempSqlite {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn temp_sqlite() -> TempSqlite {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let store = SqliteStore::open(&dir.path().join("wxkf.db")).expect("a new database opens");
    TempSqlite { store, _dir: dir }
}

mod sqlite {
    wxkf_core::store_conformance_tests!(super::temp_sqlite());
}

mod memory {
    wxkf_core::store_conformance_tests!(Box::new(wxkf_core::memory::MemoryStore::new()));
}
