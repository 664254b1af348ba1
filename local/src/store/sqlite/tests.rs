//! Tests of the SQLite mapping that the shared conformance suite cannot see: the file on disk,
//! the schema, query plans and how corrupt rows are reported.

use serde_json::Map;
use tempfile::TempDir;
use wxkf_core::frame::Frame;
use wxkf_core::ids::MessageId;
use wxkf_core::message::{DedupKey, MessageBody};
use wxkf_core::ports::{ContactRefresh, Store};

use super::*;

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("a temporary directory can be created")
}

fn acme() -> CompanyId {
    CompanyId::parse("acme").expect("valid company id")
}

fn agent() -> AgentId {
    AgentId::parse("agent-1").expect("valid agent id")
}

fn user() -> OpenId {
    OpenId::parse("oUser-1").expect("valid OpenID")
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn text_frame(id: &str, content: &str, sent_at: Timestamp) -> Frame {
    Frame::message(
        &MessageId::parse(id).expect("valid message id"),
        &acme(),
        &user(),
        "",
        "",
        sent_at,
        &MessageBody::Text {
            content: content.to_owned(),
        },
    )
}

fn notice() -> Frame {
    Frame::system(
        &MessageId::parse("notice-1").expect("valid message id"),
        &acme(),
        at(0),
        "contact_assigned",
        "新联系人",
        Map::new(),
    )
}

fn inbound(dedup: &str, frame: Frame, refresh: Option<ContactRefresh>) -> InboundRecord {
    InboundRecord {
        dedup: DedupKey::from_stored(dedup.to_owned()),
        dedup_expires_at: at(10_000),
        company: acme(),
        user: user(),
        agent: agent(),
        frame,
        stored_at: at(5),
        refresh,
    }
}

fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("wxkf.db")).expect("the database opens")
}

/// Opens the store's file directly, as another process (the sqlite3 shell) would.
fn raw(dir: &TempDir) -> Database {
    Database::open(dir.path().join("wxkf.db")).expect("the database file opens")
}

/// Writes one of every record kind, so that a reopen can check them all.
async fn fill(store: &impl Store) -> Connection {
    let connection = Connection {
        id: ConnectionId::parse("TWegAcC4EowCHnA=").expect("valid connection id"),
        agent: agent(),
        company: acme(),
        connected_at: at(0),
        expires_at: at(7200),
        resume_after: Some(Seq(3)),
        greeted: false,
    };
    store
        .add_connection(&connection)
        .await
        .expect("add_connection");

    store
        .enqueue(QueuedRecord {
            dedup: DedupKey::from_stored("q1".to_owned()),
            dedup_expires_at: at(10_000),
            company: acme(),
            user: user(),
            name: "小红".to_owned(),
            avatar: String::new(),
            at: at(1),
            frame: text_frame("m1", "排队", at(1)),
        })
        .await
        .expect("enqueue");

    let other = OpenId::parse("oUser-2").expect("valid OpenID");
    store
        .enqueue(QueuedRecord {
            dedup: DedupKey::from_stored("q2".to_owned()),
            dedup_expires_at: at(10_000),
            company: acme(),
            user: other,
            name: String::new(),
            avatar: String::new(),
            at: at(2),
            frame: text_frame("m2", "还在排队", at(2)),
        })
        .await
        .expect("enqueue");

    let outcome = store
        .try_assign(Assignment {
            company: acme(),
            user: user(),
            agent: agent(),
            name: "小红".to_owned(),
            avatar: String::new(),
            now: at(5),
            window_closes_at: at(5).plus_secs(48 * 3600),
            max_contacts: 10,
            notice: notice(),
        })
        .await
        .expect("try_assign");
    assert!(
        matches!(outcome, AssignOutcome::Assigned { .. }),
        "got {outcome:?}"
    );

    let appended = store
        .append_inbound(inbound("k1", text_frame("m3", "你好 😀", at(6)), None))
        .await
        .expect("append_inbound");
    assert_eq!(
        appended,
        AppendOutcome::Stored(Seq(3)),
        "after the notice and a queued frame"
    );

    store.ack(&agent(), Seq(2)).await.expect("ack");
    store
        .mark_delivered(&agent(), Seq(3))
        .await
        .expect("mark_delivered");

    connection
}

#[tokio::test]
async fn reopened_database_keeps_every_record() {
    let dir = temp_dir();
    let store = open(&dir);
    let connection = fill(&store).await;
    drop(store);

    let store = open(&dir);

    let read = store
        .connection(&connection.id, at(10))
        .await
        .expect("connection");
    assert_eq!(read, Some(connection), "the connection survives a reopen");
    let contact = store.contact(&acme(), &user()).await.expect("contact");
    assert_eq!(
        contact.map(|c| c.agent),
        Some(agent()),
        "the assignment survives"
    );
    let frames = store
        .frames_after(&agent(), Seq(0), 10)
        .await
        .expect("frames_after");
    let contents: Vec<String> = frames
        .iter()
        .map(|(_, frame)| {
            frame.to_value()["data"]["data"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        contents,
        vec!["", "排队", "你好 😀"],
        "the notice and two texts, in order"
    );
    let cursor = store.cursor(&agent()).await.expect("cursor");
    assert_eq!(
        cursor,
        StreamCursor {
            last: Seq(3),
            acked: Seq(2),
            delivered: Seq(3),
        },
        "the cursor survives"
    );
    let queue = store.queued_users(&acme(), 10).await.expect("queued_users");
    assert_eq!(queue.len(), 1, "oUser-2 still waits, got {queue:?}");
    let retry = store
        .append_inbound(inbound("k1", text_frame("m3", "你好 😀", at(6)), None))
        .await
        .expect("append_inbound");
    assert_eq!(retry, AppendOutcome::Duplicate, "dedup keys survive");
    let next = store
        .append_inbound(inbound("k2", text_frame("m4", "again", at(7)), None))
        .await
        .expect("append_inbound");
    assert_eq!(
        next,
        AppendOutcome::Stored(Seq(4)),
        "positions continue after a reopen"
    );
}

#[tokio::test]
async fn database_uses_wal_journal() {
    let dir = temp_dir();
    let _store = open(&dir);

    let mode: String = raw(&dir)
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .expect("journal_mode is readable");

    assert_eq!(
        mode, "wal",
        "the file is in WAL mode, which persists across connections"
    );
}

#[tokio::test]
async fn unknown_schema_version_is_rejected() {
    let dir = temp_dir();
    raw(&dir)
        .pragma_update(None, "user_version", 7)
        .expect("user_version is writable");

    let error = SqliteStore::open(&dir.path().join("wxkf.db"))
        .err()
        .expect("a database from an unknown version is rejected");

    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        matches!(&error, StoreError::Unavailable(_)),
        "expected Unavailable, got {error:?}"
    );
    assert!(
        cause
            .as_deref()
            .is_some_and(|cause| cause.contains("schema version 7")),
        "the cause names version 7, got {cause:?}"
    );
}

#[tokio::test]
async fn stored_frame_json_has_no_seq() {
    let dir = temp_dir();
    let store = open(&dir);
    let stale = text_frame("m1", "hello", at(0)).with_seq(Seq(999));

    let outcome = store
        .append_inbound(inbound("k1", stale, None))
        .await
        .expect("append_inbound");
    drop(store);

    assert_eq!(outcome, AppendOutcome::Stored(Seq(1)));
    let (json, stored_at): (String, i64) = raw(&dir)
        .query_row("SELECT frame, stored_at FROM frames", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .expect("one frame row");
    let stored: serde_json::Value = serde_json::from_str(&json).expect("stored JSON parses");
    assert_eq!(
        stored["data"].get("seq"),
        None,
        "the stored JSON carries no seq: {json}"
    );
    assert_eq!(
        stored_at,
        at(5).0,
        "stored_at is the record's storage time in milliseconds"
    );
}

#[tokio::test]
async fn undecodable_frame_is_reported_corrupt() {
    let dir = temp_dir();
    let store = open(&dir);
    store
        .append_inbound(inbound("k1", text_frame("m1", "hello", at(0)), None))
        .await
        .expect("append_inbound");
    drop(store);
    raw(&dir)
        .execute("UPDATE frames SET frame = '{\"data\":' WHERE seq = 1", [])
        .expect("the frame row is writable");
    let store = open(&dir);

    let error = store
        .frames_after(&agent(), Seq(0), 10)
        .await
        .expect_err("a truncated frame cannot be read");

    assert!(
        matches!(&error, StoreError::Corrupt(message) if message.contains("seq 1")),
        "expected Corrupt naming seq 1, got {error:?}"
    );
}

#[tokio::test]
async fn invalid_stored_id_is_reported_corrupt() {
    let dir = temp_dir();
    let store = open(&dir);
    fill(&store).await;
    drop(store);
    raw(&dir)
        .execute("UPDATE contacts SET agent = 'has space'", [])
        .expect("the contact row is writable");
    let store = open(&dir);

    let error = store
        .contact(&acme(), &user())
        .await
        .expect_err("a contact with an invalid agent id cannot be read");

    assert!(
        matches!(&error, StoreError::Corrupt(message) if message.contains("column agent")),
        "expected Corrupt naming the agent column, got {error:?}"
    );
}

/// Every statement the store runs searches by key or index, except the sweep's search for
/// lapsed contacts, which the schema's comment explains.
#[test]
fn no_request_statement_scans_a_table() {
    let db = Database::open_in_memory().expect("an in-memory database opens");
    db.execute_batch(SCHEMA).expect("the schema applies");

    for statement in sql::ALL {
        if *statement == sql::SELECT_LAPSED_CONTACTS {
            continue;
        }
        let mut plan = db
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .expect("the statement prepares");
        // Parameters stay unbound (NULL): the plan does not depend on their values.
        let mut rows = plan.raw_query();
        let mut details = Vec::new();
        while let Some(row) = rows.next().expect("the plan is readable") {
            details.push(row.get::<_, String>(3).expect("plan details are text"));
        }
        for detail in &details {
            assert!(
                !detail.starts_with("SCAN") || detail == "SCAN CONSTANT ROW",
                "{statement}\nscans: {detail}\nwhole plan: {details:?}"
            );
        }
    }
}
