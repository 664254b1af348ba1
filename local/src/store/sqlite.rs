//! [`SqliteStore`]: the store ports on one SQLite file, for `wxkf serve`.
//!
//! Each port method maps to a few statements on one table per record kind. Assignment policy
//! stays in the hub. The only decisions made here are the data conditions that the ports make
//! atomic: a user already held, an agent full, a dedup key seen. Every write runs as a job on
//! the writer thread, so writes never interleave, and each write returns only after its
//! transaction has committed. Reads run on read-only connections and see committed data only.
//!
//! Durability: WAL journal with `synchronous=NORMAL`. A committed call survives the process
//! being killed (SIGKILL included), because the WAL is written before COMMIT returns. A power
//! loss or OS crash may lose the last transactions before the next checkpoint, which is the
//! price of not calling fsync on every commit.
//!
//! Frames are stored as their JSON text without `data.seq`, which is set from the row's
//! position on every read.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection as Database, Row};
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId, IdError, OpenId, Seq};
use wxkf_core::ports::{
    AgentLoad, AppendOutcome, AssignOutcome, Assignment, Connection, ConnectionStore, Contact,
    ContactStore, InboundRecord, QueueOutcome, QueuedRecord, QueuedUser, StoreError, StreamCursor,
    StreamStore,
};
use wxkf_core::time::Timestamp;

use super::checkpoint::{Checkpointer, WRITER_AUTOCHECKPOINT_PAGES};
use super::readers::{Readers, STATEMENT_CACHE_CAPACITY};
use super::writer::{JobError, Writer};

/// The schema version this code reads and writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The schema. Every request-path query is a key or index lookup: contacts by (company, user)
/// and by agent, frames by (agent, seq), connections by id, agent and company, dedup keys by
/// key, the queue by company and waiting time. The indexes on frame age and dedup expiry let
/// the sweep prune without reading whole tables.
///
/// Contacts have no index on `window_closes_at`, because every inbound message moves that
/// column, and an index on it would cost one more page write per message. So an agent's
/// contacts are found by agent and filtered by window, and `lapsed_contacts`, which the sweep
/// calls once a minute, reads the whole contacts table on a read-only connection.
const SCHEMA: &str = "
CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    agent        TEXT NOT NULL,
    company      TEXT NOT NULL,
    connected_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    resume_after INTEGER,
    greeted      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX connections_by_agent ON connections (agent, connected_at);
CREATE INDEX connections_by_company ON connections (company, agent);

CREATE TABLE contacts (
    company          TEXT NOT NULL,
    open_id          TEXT NOT NULL,
    agent            TEXT NOT NULL,
    name             TEXT NOT NULL,
    avatar           TEXT NOT NULL,
    assigned_at      INTEGER NOT NULL,
    last_inbound_at  INTEGER NOT NULL,
    window_closes_at INTEGER NOT NULL,
    PRIMARY KEY (company, open_id)
) WITHOUT ROWID;
CREATE INDEX contacts_by_agent ON contacts (agent);

-- One row per agent that ever had a frame, an assignment or a delivery.
CREATE TABLE streams (
    agent            TEXT PRIMARY KEY,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    acked_seq        INTEGER NOT NULL DEFAULT 0,
    delivered_seq    INTEGER NOT NULL DEFAULT 0,
    last_assigned_at INTEGER
) WITHOUT ROWID;

-- A rowid table, unlike the others: frames can be large, and SQLite advises against
-- WITHOUT ROWID for rows bigger than a few hundred bytes.
CREATE TABLE frames (
    agent   TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    frame   TEXT NOT NULL,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX frames_by_age ON frames (stored_at);

CREATE TABLE dedup (
    dedup_key  TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedup_by_expiry ON dedup (expires_at);

CREATE TABLE queued_users (
    company TEXT NOT NULL,
    open_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    avatar  TEXT NOT NULL,
    since   INTEGER NOT NULL,
    PRIMARY KEY (company, open_id)
) WITHOUT ROWID;
CREATE INDEX queued_users_by_wait ON queued_users (company, since, open_id);

-- The rowid orders a user's frames by arrival.
CREATE TABLE queued_frames (
    id      INTEGER PRIMARY KEY,
    company TEXT NOT NULL,
    open_id TEXT NOT NULL,
    frame   TEXT NOT NULL
);
CREATE INDEX queued_frames_by_user ON queued_frames (company, open_id, id);
";

mod sql {
    //! Every statement the store runs, so that a test can check each query plan.

    pub const INSERT_CONNECTION: &str = "INSERT OR REPLACE INTO connections \
        (id, agent, company, connected_at, expires_at, resume_after, greeted) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    pub const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE id = ?1 \
        RETURNING id, agent, company, connected_at, expires_at, resume_after, greeted";
    pub const SELECT_CONNECTION: &str = "SELECT id, agent, company, connected_at, expires_at, \
        resume_after, greeted FROM connections WHERE id = ?1 AND expires_at > ?2";
    pub const SELECT_AGENT_CONNECTIONS: &str = "SELECT id, agent, company, connected_at, \
        expires_at, resume_after, greeted FROM connections \
        WHERE agent = ?1 AND expires_at > ?2 ORDER BY connected_at, id";
    pub const MARK_GREETED: &str =
        "UPDATE connections SET greeted = 1 WHERE id = ?1 AND greeted = 0";
    pub const SELECT_ONLINE_AGENTS: &str = "SELECT c.agent, MIN(c.connected_at), \
        (SELECT COUNT(*) FROM contacts k WHERE k.agent = c.agent AND k.window_closes_at > ?2), \
        (SELECT s.last_assigned_at FROM streams s WHERE s.agent = c.agent) \
        FROM connections c WHERE c.company = ?1 AND c.expires_at > ?2 \
        GROUP BY c.agent ORDER BY c.agent";

    pub const SELECT_CONTACT: &str = "SELECT company, open_id, agent, name, avatar, \
        assigned_at, last_inbound_at, window_closes_at FROM contacts \
        WHERE company = ?1 AND open_id = ?2";
    pub const COUNT_OPEN_CONTACTS: &str =
        "SELECT COUNT(*) FROM contacts WHERE agent = ?1 AND window_closes_at > ?2";
    pub const UPSERT_CONTACT: &str = "INSERT OR REPLACE INTO contacts (company, open_id, agent, \
        name, avatar, assigned_at, last_inbound_at, window_closes_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)";
    pub const SET_LAST_ASSIGNED: &str = "INSERT INTO streams (agent, last_assigned_at) \
        VALUES (?1, ?2) ON CONFLICT (agent) DO UPDATE SET last_assigned_at = excluded.last_assigned_at";
    pub const SELECT_AGENT_CONTACTS: &str = "SELECT company, open_id, agent, name, avatar, \
        assigned_at, last_inbound_at, window_closes_at FROM contacts \
        WHERE agent = ?1 AND window_closes_at > ?2 ORDER BY last_inbound_at DESC, open_id";
    pub const DELETE_CONTACT: &str =
        "DELETE FROM contacts WHERE company = ?1 AND open_id = ?2 AND agent = ?3";
    pub const SELECT_LAPSED_CONTACTS: &str = "SELECT company, open_id, agent, name, avatar, \
        assigned_at, last_inbound_at, window_closes_at FROM contacts \
        WHERE window_closes_at <= ?1 ORDER BY window_closes_at, company, open_id LIMIT ?2";
    /// Moves the window only while the agent still holds the user and the window is open at
    /// the refreshing message's time. `NULL` profile values keep the stored ones.
    pub const REFRESH_CONTACT: &str = "UPDATE contacts SET last_inbound_at = ?4, \
        window_closes_at = ?5, name = COALESCE(?6, name), avatar = COALESCE(?7, avatar) \
        WHERE company = ?1 AND open_id = ?2 AND agent = ?3 AND window_closes_at > ?4";

    pub const NEXT_SEQ: &str = "INSERT INTO streams (agent, last_seq) VALUES (?1, 1) \
        ON CONFLICT (agent) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq";
    pub const INSERT_FRAME: &str =
        "INSERT INTO frames (agent, seq, stored_at, frame) VALUES (?1, ?2, ?3, ?4)";
    pub const SELECT_FRAMES_AFTER: &str = "SELECT seq, frame FROM frames \
        WHERE agent = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
    pub const SELECT_CURSOR: &str =
        "SELECT last_seq, acked_seq, delivered_seq FROM streams WHERE agent = ?1";
    pub const ACK: &str = "UPDATE streams SET acked_seq = MAX(acked_seq, MIN(?2, last_seq)) \
        WHERE agent = ?1";
    pub const MARK_DELIVERED: &str = "INSERT INTO streams (agent, delivered_seq) VALUES (?1, ?2) \
        ON CONFLICT (agent) DO UPDATE SET delivered_seq = MAX(delivered_seq, excluded.delivered_seq)";

    pub const DEDUP_SEEN: &str = "SELECT 1 FROM dedup WHERE dedup_key = ?1";
    pub const INSERT_DEDUP: &str = "INSERT INTO dedup (dedup_key, expires_at) VALUES (?1, ?2)";

    /// A later record's profile replaces the stored one unless it is empty, and `since` stays
    /// the earliest arrival.
    pub const UPSERT_QUEUED_USER: &str = "INSERT INTO queued_users \
        (company, open_id, name, avatar, since) VALUES (?1, ?2, ?3, ?4, ?5) \
        ON CONFLICT (company, open_id) DO UPDATE SET \
        name = CASE WHEN excluded.name = '' THEN queued_users.name ELSE excluded.name END, \
        avatar = CASE WHEN excluded.avatar = '' THEN queued_users.avatar ELSE excluded.avatar END, \
        since = MIN(queued_users.since, excluded.since)";
    pub const INSERT_QUEUED_FRAME: &str =
        "INSERT INTO queued_frames (company, open_id, frame) VALUES (?1, ?2, ?3)";
    pub const SELECT_QUEUED_FRAMES: &str = "SELECT id, frame FROM queued_frames \
        WHERE company = ?1 AND open_id = ?2 ORDER BY id";
    pub const DELETE_QUEUED_FRAMES: &str =
        "DELETE FROM queued_frames WHERE company = ?1 AND open_id = ?2";
    pub const DELETE_QUEUED_USER: &str =
        "DELETE FROM queued_users WHERE company = ?1 AND open_id = ?2";
    pub const SELECT_QUEUED_USERS: &str = "SELECT open_id, name, avatar, since FROM queued_users \
        WHERE company = ?1 ORDER BY since, open_id LIMIT ?2";

    pub const PRUNE_DEDUP: &str = "DELETE FROM dedup WHERE expires_at <= ?1";
    pub const PRUNE_FRAMES: &str = "DELETE FROM frames WHERE stored_at < ?1";

    /// Every statement above, for the query plan test.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        INSERT_CONNECTION,
        DELETE_CONNECTION,
        SELECT_CONNECTION,
        SELECT_AGENT_CONNECTIONS,
        MARK_GREETED,
        SELECT_ONLINE_AGENTS,
        SELECT_CONTACT,
        COUNT_OPEN_CONTACTS,
        UPSERT_CONTACT,
        SET_LAST_ASSIGNED,
        SELECT_AGENT_CONTACTS,
        DELETE_CONTACT,
        SELECT_LAPSED_CONTACTS,
        REFRESH_CONTACT,
        NEXT_SEQ,
        INSERT_FRAME,
        SELECT_FRAMES_AFTER,
        SELECT_CURSOR,
        ACK,
        MARK_DELIVERED,
        DEDUP_SEEN,
        INSERT_DEDUP,
        UPSERT_QUEUED_USER,
        INSERT_QUEUED_FRAME,
        SELECT_QUEUED_FRAMES,
        DELETE_QUEUED_FRAMES,
        DELETE_QUEUED_USER,
        SELECT_QUEUED_USERS,
        PRUNE_DEDUP,
        PRUNE_FRAMES,
    ];
}

/// The store ports on a SQLite database file.
pub struct SqliteStore {
    // Fields drop in this order: the writer finishes the jobs already sent before the
    // checkpoint thread and the readers close their connections.
    writer: Writer,
    _checkpointer: Checkpointer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its schema if they do not exist,
    /// and starts the writer thread that owns the write connection from then on and the
    /// thread that checkpoints the WAL.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let db = Database::open(path).map_err(StoreError::unavailable)?;
        configure_writer(&db).map_err(StoreError::from)?;
        migrate(&db).map_err(StoreError::from)?;
        let checkpointer = Checkpointer::start(path)?;
        let writer = Writer::start(db).map_err(StoreError::unavailable)?;
        Ok(SqliteStore {
            writer,
            _checkpointer: checkpointer,
            readers: Readers::new(path),
        })
    }
}

fn configure_writer(db: &Database) -> Result<(), JobError> {
    let mode: String = db.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JobError::Unsupported(format!(
            "failed to switch the database to WAL journal mode; it stays in {mode:?} mode, \
             which happens on file systems without shared memory support"
        )));
    }
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    // Each job's savepoint keeps copies of the pages it changes, in memory rather than in a
    // temporary file.
    db.pragma_update(None, "temp_store", "MEMORY")?;
    // A checkpoint or another process (a backup, the sqlite3 shell) may hold a lock briefly.
    db.busy_timeout(Duration::from_secs(5))?;
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

/// Creates the schema in a new database and rejects one written by an unknown version.
fn migrate(db: &Database) -> Result<(), JobError> {
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match version {
        0 => {
            db.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(JobError::Unsupported(format!(
            "database schema version {other} is not supported; this wxkf reads version \
             {SCHEMA_VERSION}, so open the file with the wxkf release that wrote it"
        ))),
    }
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn add_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let connection = connection.clone();
        self.writer
            .call(move |db| {
                db.prepare_cached(sql::INSERT_CONNECTION)?.execute(params![
                    connection.id.as_str(),
                    connection.agent.as_str(),
                    connection.company.as_str(),
                    connection.connected_at.0,
                    connection.expires_at.0,
                    connection.resume_after.map(seq_param),
                    connection.greeted,
                ])?;
                Ok(())
            })
            .await
    }

    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let id = id.clone();
        self.writer
            .call(move |db| {
                let mut statement = db.prepare_cached(sql::DELETE_CONNECTION)?;
                let mut rows = statement.query([id.as_str()])?;
                rows.next()?.map(connection_from_row).transpose()
            })
            .await
    }

    async fn connection(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_CONNECTION)?;
            let mut rows = statement.query(params![id.as_str(), now.0])?;
            rows.next()?.map(connection_from_row).transpose()
        })
    }

    async fn agent_connections(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_AGENT_CONNECTIONS)?;
            let rows = statement.query(params![agent.as_str(), now.0])?;
            collect_rows(rows, connection_from_row)
        })
    }

    async fn mark_greeted(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.writer
            .call(move |db| {
                let changed = db
                    .prepare_cached(sql::MARK_GREETED)?
                    .execute([id.as_str()])?;
                Ok(changed == 1)
            })
            .await
    }

    async fn online_agents(
        &self,
        company: &CompanyId,
        now: Timestamp,
    ) -> Result<Vec<AgentLoad>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_ONLINE_AGENTS)?;
            let rows = statement.query(params![company.as_str(), now.0])?;
            collect_rows(rows, |row| {
                let connected_at = Timestamp(row.get(1)?);
                let last_assigned_at: Option<i64> = row.get(3)?;
                Ok(AgentLoad {
                    agent: id_column(row, 0, AgentId::parse)?,
                    contacts: count_column(row, 2)?,
                    idle_since: last_assigned_at.map(Timestamp).unwrap_or(connected_at),
                })
            })
        })
    }
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
    ) -> Result<Option<Contact>, StoreError> {
        self.readers.read(|db| select_contact(db, company, user))
    }

    async fn try_assign(&self, assignment: Assignment) -> Result<AssignOutcome, StoreError> {
        let notice_json = frame_json(&assignment.notice);
        self.writer
            .call(move |db| try_assign(db, assignment, &notice_json))
            .await
    }

    async fn agent_contacts(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Contact>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_AGENT_CONTACTS)?;
            let rows = statement.query(params![agent.as_str(), now.0])?;
            collect_rows(rows, contact_from_row)
        })
    }

    async fn release_contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
        agent: &AgentId,
    ) -> Result<bool, StoreError> {
        let (company, user, agent) = (company.clone(), user.clone(), agent.clone());
        self.writer
            .call(move |db| {
                let deleted = db.prepare_cached(sql::DELETE_CONTACT)?.execute(params![
                    company.as_str(),
                    user.as_str(),
                    agent.as_str()
                ])?;
                Ok(deleted == 1)
            })
            .await
    }

    async fn lapsed_contacts(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_LAPSED_CONTACTS)?;
            let rows = statement.query(params![now.0, limit_param(limit)])?;
            collect_rows(rows, contact_from_row)
        })
    }
}

#[async_trait]
impl StreamStore for SqliteStore {
    async fn append_inbound(&self, record: InboundRecord) -> Result<AppendOutcome, StoreError> {
        // Serializing here keeps JSON work off the single writer thread.
        let json = frame_json(&record.frame);
        self.writer
            .call(move |db| append_inbound(db, &record, &json))
            .await
    }

    async fn append_system(
        &self,
        agent: &AgentId,
        frame: &Frame,
        at: Timestamp,
    ) -> Result<Seq, StoreError> {
        let agent = agent.clone();
        let json = frame_json(frame);
        self.writer
            .call(move |db| append_frame(db, &agent, at, &json))
            .await
    }

    async fn frames_after(
        &self,
        agent: &AgentId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Frame)>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_FRAMES_AFTER)?;
            let rows = statement.query(params![
                agent.as_str(),
                seq_param(after),
                limit_param(limit)
            ])?;
            collect_rows(rows, |row| {
                let seq = seq_column(row, 0)?;
                let json: String = row.get(1)?;
                Ok((seq, decode_frame(&json, seq)?))
            })
        })
    }

    async fn cursor(&self, agent: &AgentId) -> Result<StreamCursor, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_CURSOR)?;
            let mut rows = statement.query([agent.as_str()])?;
            let Some(row) = rows.next()? else {
                return Ok(StreamCursor::default());
            };
            Ok(StreamCursor {
                last: seq_column(row, 0)?,
                acked: seq_column(row, 1)?,
                delivered: seq_column(row, 2)?,
            })
        })
    }

    async fn ack(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        let agent = agent.clone();
        self.writer
            .call(move |db| {
                db.prepare_cached(sql::ACK)?
                    .execute(params![agent.as_str(), seq_param(seq)])?;
                Ok(())
            })
            .await
    }

    async fn mark_delivered(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        let agent = agent.clone();
        self.writer
            .call(move |db| {
                db.prepare_cached(sql::MARK_DELIVERED)?
                    .execute(params![agent.as_str(), seq_param(seq)])?;
                Ok(())
            })
            .await
    }

    async fn enqueue(&self, record: QueuedRecord) -> Result<QueueOutcome, StoreError> {
        let json = frame_json(&record.frame);
        self.writer
            .call(move |db| enqueue(db, &record, &json))
            .await
    }

    async fn queued_users(
        &self,
        company: &CompanyId,
        limit: usize,
    ) -> Result<Vec<QueuedUser>, StoreError> {
        self.readers.read(|db| {
            let mut statement = db.prepare_cached(sql::SELECT_QUEUED_USERS)?;
            let rows = statement.query(params![company.as_str(), limit_param(limit)])?;
            collect_rows(rows, |row| {
                Ok(QueuedUser {
                    user: id_column(row, 0, OpenId::parse)?,
                    name: row.get(1)?,
                    avatar: row.get(2)?,
                    since: Timestamp(row.get(3)?),
                })
            })
        })
    }

    async fn prune(&self, now: Timestamp, frames_before: Timestamp) -> Result<u64, StoreError> {
        // NOTE: one transaction deletes everything due, so a sweep after a long pause holds the
        // writer thread, and with it every other call, until it is done.
        self.writer
            .call(move |db| {
                let dedup = db.prepare_cached(sql::PRUNE_DEDUP)?.execute([now.0])?;
                let frames = db
                    .prepare_cached(sql::PRUNE_FRAMES)?
                    .execute([frames_before.0])?;
                Ok((dedup + frames) as u64)
            })
            .await
    }
}

/// Assigns the user unless it is held with an open window or the agent is full, then appends
/// the notice and moves the user's queued frames behind it.
fn try_assign(
    db: &Database,
    assignment: Assignment,
    notice_json: &str,
) -> Result<AssignOutcome, JobError> {
    let Assignment {
        company,
        user,
        agent,
        name,
        avatar,
        now,
        window_closes_at,
        max_contacts,
        notice,
    } = assignment;

    if let Some(holder) = select_contact(db, &company, &user)? {
        if holder.window_closes_at > now {
            return Ok(AssignOutcome::Taken(holder));
        }
    }
    let open: i64 = db
        .prepare_cached(sql::COUNT_OPEN_CONTACTS)?
        .query_row(params![agent.as_str(), now.0], |row| row.get(0))?;
    if open >= i64::from(max_contacts) {
        return Ok(AssignOutcome::AgentFull);
    }

    db.prepare_cached(sql::UPSERT_CONTACT)?.execute(params![
        company.as_str(),
        user.as_str(),
        agent.as_str(),
        name,
        avatar,
        now.0,
        window_closes_at.0,
    ])?;
    db.prepare_cached(sql::SET_LAST_ASSIGNED)?
        .execute(params![agent.as_str(), now.0])?;

    let seq = append_frame(db, &agent, now, notice_json)?;
    let mut frames = vec![(seq, notice.with_seq(seq))];
    for (id, json) in queued_frames(db, &company, &user)? {
        let frame = serde_json::from_str::<Frame>(&json).map_err(|error| {
            JobError::Corrupt(format!("queued frame {id} is not a valid frame: {error}"))
        })?;
        let seq = append_frame(db, &agent, now, &json)?;
        frames.push((seq, frame.with_seq(seq)));
    }
    let key = params![company.as_str(), user.as_str()];
    db.prepare_cached(sql::DELETE_QUEUED_FRAMES)?.execute(key)?;
    db.prepare_cached(sql::DELETE_QUEUED_USER)?.execute(key)?;

    Ok(AssignOutcome::Assigned { frames })
}

/// Returns the user's queued frames as (row id, JSON), in arrival order.
fn queued_frames(
    db: &Database,
    company: &CompanyId,
    user: &OpenId,
) -> Result<Vec<(i64, String)>, JobError> {
    let mut statement = db.prepare_cached(sql::SELECT_QUEUED_FRAMES)?;
    let rows = statement.query(params![company.as_str(), user.as_str()])?;
    collect_rows(rows, |row| Ok((row.get(0)?, row.get(1)?)))
}

/// Appends a user's frame unless its dedup key was seen or, with a refresh, the agent no longer
/// holds the user. Nothing is written in either case.
fn append_inbound(
    db: &Database,
    record: &InboundRecord,
    json: &str,
) -> Result<AppendOutcome, JobError> {
    if dedup_seen(db, record.dedup.as_str())? {
        return Ok(AppendOutcome::Duplicate);
    }

    if let Some(refresh) = &record.refresh {
        let refreshed = db.prepare_cached(sql::REFRESH_CONTACT)?.execute(params![
            record.company.as_str(),
            record.user.as_str(),
            record.agent.as_str(),
            refresh.last_inbound_at.0,
            refresh.window_closes_at.0,
            refresh.name,
            refresh.avatar,
        ])?;
        if refreshed == 0 {
            return Ok(AppendOutcome::NotAssigned);
        }
    }

    db.prepare_cached(sql::INSERT_DEDUP)?
        .execute(params![record.dedup.as_str(), record.dedup_expires_at.0])?;
    let seq = append_frame(db, &record.agent, record.stored_at, json)?;
    Ok(AppendOutcome::Stored(seq))
}

/// Puts a frame in the company queue unless its dedup key was seen.
fn enqueue(db: &Database, record: &QueuedRecord, json: &str) -> Result<QueueOutcome, JobError> {
    if dedup_seen(db, record.dedup.as_str())? {
        return Ok(QueueOutcome::Duplicate);
    }

    db.prepare_cached(sql::INSERT_DEDUP)?
        .execute(params![record.dedup.as_str(), record.dedup_expires_at.0])?;
    db.prepare_cached(sql::UPSERT_QUEUED_USER)?
        .execute(params![
            record.company.as_str(),
            record.user.as_str(),
            record.name,
            record.avatar,
            record.at.0,
        ])?;
    db.prepare_cached(sql::INSERT_QUEUED_FRAME)?
        .execute(params![record.company.as_str(), record.user.as_str(), json])?;
    Ok(QueueOutcome::Queued)
}

fn dedup_seen(db: &Database, key: &str) -> Result<bool, JobError> {
    Ok(db.prepare_cached(sql::DEDUP_SEEN)?.exists([key])?)
}

/// Gives the frame the agent's next position and stores it there.
fn append_frame(
    db: &Database,
    agent: &AgentId,
    stored_at: Timestamp,
    json: &str,
) -> Result<Seq, JobError> {
    let last: i64 = db
        .prepare_cached(sql::NEXT_SEQ)?
        .query_row([agent.as_str()], |row| row.get(0))?;
    db.prepare_cached(sql::INSERT_FRAME)?.execute(params![
        agent.as_str(),
        last,
        stored_at.0,
        json
    ])?;
    seq_value(last)
}

fn select_contact(
    db: &Database,
    company: &CompanyId,
    user: &OpenId,
) -> Result<Option<Contact>, JobError> {
    let mut statement = db.prepare_cached(sql::SELECT_CONTACT)?;
    let mut rows = statement.query(params![company.as_str(), user.as_str()])?;
    rows.next()?.map(contact_from_row).transpose()
}

/// Serializes the frame as stored, without `data.seq`, which belongs to the row.
fn frame_json(frame: &Frame) -> String {
    frame.json_without_seq().to_owned()
}

fn decode_frame(json: &str, seq: Seq) -> Result<Frame, JobError> {
    let frame = serde_json::from_str::<Frame>(json).map_err(|error| {
        JobError::Corrupt(format!("frame at seq {seq} is not a valid frame: {error}"))
    })?;
    Ok(frame.with_seq(seq))
}

fn collect_rows<T>(
    mut rows: rusqlite::Rows<'_>,
    mut map: impl FnMut(&Row<'_>) -> Result<T, JobError>,
) -> Result<Vec<T>, JobError> {
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(map(row)?);
    }
    Ok(items)
}

fn connection_from_row(row: &Row<'_>) -> Result<Connection, JobError> {
    let resume_after: Option<i64> = row.get(5)?;
    Ok(Connection {
        id: id_column(row, 0, ConnectionId::parse)?,
        agent: id_column(row, 1, AgentId::parse)?,
        company: id_column(row, 2, CompanyId::parse)?,
        connected_at: Timestamp(row.get(3)?),
        expires_at: Timestamp(row.get(4)?),
        resume_after: resume_after.map(seq_value).transpose()?,
        greeted: row.get(6)?,
    })
}

fn contact_from_row(row: &Row<'_>) -> Result<Contact, JobError> {
    Ok(Contact {
        company: id_column(row, 0, CompanyId::parse)?,
        user: id_column(row, 1, OpenId::parse)?,
        agent: id_column(row, 2, AgentId::parse)?,
        name: row.get(3)?,
        avatar: row.get(4)?,
        assigned_at: Timestamp(row.get(5)?),
        last_inbound_at: Timestamp(row.get(6)?),
        window_closes_at: Timestamp(row.get(7)?),
    })
}

/// Reads an id column, reporting a stored value the id type rejects as corrupt data.
fn id_column<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(String) -> Result<T, IdError>,
) -> Result<T, JobError> {
    let text: String = row.get(index)?;
    parse(text).map_err(|error| {
        let column = row.as_ref().column_name(index).unwrap_or("?");
        JobError::Corrupt(format!("column {column} contains an invalid id: {error}"))
    })
}

fn seq_column(row: &Row<'_>, index: usize) -> Result<Seq, JobError> {
    seq_value(row.get(index)?)
}

fn count_column(row: &Row<'_>, index: usize) -> Result<u32, JobError> {
    let count: i64 = row.get(index)?;
    // Counts are never negative; one beyond u32 reads as the largest, which still means full.
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

fn seq_value(stored: i64) -> Result<Seq, JobError> {
    u64::try_from(stored)
        .map(Seq)
        .map_err(|_| JobError::Corrupt(format!("stored seq {stored} is negative")))
}

/// Converts a position to SQLite's signed integer. Positions beyond `i64::MAX` cannot occur in
/// a stream, so a larger value from a caller is clamped, which keeps the "after", "up to" and
/// "at least" comparisons right.
fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq.0).unwrap_or(i64::MAX)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
