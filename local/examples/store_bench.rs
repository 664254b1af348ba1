//! Measures how many inbound messages per second `SqliteStore` commits.
//!
//! Run with `cargo run --release -p wxkf --example store_bench [MESSAGES [TASKS,…]]`. For each
//! number of concurrent tasks (default 1, 2, 16 and 128) it stores MESSAGES text messages
//! (default 50,000) from that many tasks on a two-thread Tokio runtime, twice:
//!
//! - `append`: `append_inbound` alone. Each append refreshes its contact's window, as the hub
//!   does for a user's message.
//! - `hub path`: the store calls the hub makes for one message to an assigned user with one
//!   open socket: `contact`, `append_inbound`, `agent_connections`, `mark_delivered`.
//!
//! Each run uses a new database file in a temporary directory. Every call has committed when
//! it returns.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Map;
use wxkf::store::SqliteStore;
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId, MessageId, OpenId, Seq};
use wxkf_core::message::{DedupKey, MessageBody};
use wxkf_core::ports::{
    AppendOutcome, AssignOutcome, Assignment, Connection, ConnectionStore, ContactRefresh,
    ContactStore, InboundRecord, StreamStore,
};
use wxkf_core::time::Timestamp;

const USERS: usize = 1_000;
const AGENTS: usize = 20;
const CONCURRENCY: [usize; 4] = [1, 2, 16, 128];
const WINDOW_SECS: i64 = 48 * 60 * 60;

fn main() {
    let messages: usize = match std::env::args().nth(1) {
        Some(text) => text.parse().expect("MESSAGES must be a positive integer"),
        None => 50_000,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the Tokio runtime starts");

    let levels: Vec<usize> = match std::env::args().nth(2) {
        Some(text) => text
            .split(',')
            .map(|level| level.parse().expect("TASKS must be positive integers"))
            .collect(),
        None => CONCURRENCY.to_vec(),
    };

    println!("messages per run: {messages}; users: {USERS}; agents: {AGENTS}");
    for tasks in levels {
        for path in [Path::Append, Path::Hub] {
            let rate = runtime.block_on(measure(messages, tasks, path));
            println!("{path:>8}, {tasks:>3} concurrent tasks: {rate:>8.0} messages/s");
        }
    }
}

/// The set of store calls made for each message.
#[derive(Debug, Clone, Copy)]
enum Path {
    Append,
    Hub,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Path::Append => "append",
            Path::Hub => "hub path",
        })
    }
}

/// Stores `messages` from `tasks` tasks in a new database and returns messages per second.
async fn measure(messages: usize, tasks: usize, path: Path) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("the database opens"));
    let company = CompanyId::parse("acme").expect("valid company id");
    let start = Timestamp::from_secs(1_700_000_000);
    assign_users(&store, &company, start).await;

    let began = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let store = Arc::clone(&store);
        let company = company.clone();
        let share = messages / tasks + usize::from(task < messages % tasks);
        handles.push(tokio::spawn(async move {
            for n in 0..share {
                let record = message(&company, task, n, start);
                match path {
                    Path::Append => {
                        append(&store, record).await;
                    }
                    Path::Hub => hub_path(&store, record, start).await,
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("a bench task finished");
    }
    messages as f64 / began.elapsed().as_secs_f64()
}

async fn append(store: &SqliteStore, record: InboundRecord) -> Seq {
    match store.append_inbound(record).await.expect("append_inbound") {
        AppendOutcome::Stored(seq) => seq,
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// Makes the store calls of the hub's receive path for a user who has an agent.
async fn hub_path(store: &SqliteStore, record: InboundRecord, now: Timestamp) {
    let contact = store
        .contact(&record.company, &record.user)
        .await
        .expect("contact")
        .expect("every bench user is assigned");
    let seq = append(store, record).await;
    let sockets = store
        .agent_connections(&contact.agent, now)
        .await
        .expect("agent_connections");
    assert_eq!(sockets.len(), 1, "each agent has one open socket");
    store
        .mark_delivered(&contact.agent, seq)
        .await
        .expect("mark_delivered");
}

/// Connects every agent once and spreads the users over the agents, so that appends refresh real contacts.
async fn assign_users(store: &SqliteStore, company: &CompanyId, now: Timestamp) {
    for index in 0..AGENTS {
        let connection = Connection {
            id: ConnectionId::parse(format!("conn{index:08}=")).expect("valid connection id"),
            agent: agent(index),
            company: company.clone(),
            connected_at: now,
            expires_at: now.plus_secs(2 * 60 * 60),
            resume_after: None,
            greeted: true,
        };
        store
            .add_connection(&connection)
            .await
            .expect("add_connection");
    }
    for index in 0..USERS {
        let agent = agent(index);
        let notice = Frame::system(
            &MessageId::parse(format!("notice-{index}")).expect("valid message id"),
            company,
            now,
            "contact_assigned",
            "新联系人",
            Map::new(),
        );
        let outcome = store
            .try_assign(Assignment {
                company: company.clone(),
                user: user(index),
                agent,
                name: String::new(),
                avatar: String::new(),
                now,
                window_closes_at: now.plus_secs(WINDOW_SECS),
                max_contacts: u32::MAX,
                notice,
            })
            .await
            .expect("try_assign");
        assert!(
            matches!(outcome, AssignOutcome::Assigned { .. }),
            "got {outcome:?}"
        );
    }
}

fn message(company: &CompanyId, task: usize, n: usize, start: Timestamp) -> InboundRecord {
    let index = (task * 7919 + n) % USERS;
    let id = format!("{}{:010}", 24_000_000 + task, n);
    let sent_at = start.plus_secs(60);
    let frame = Frame::message(
        &MessageId::parse(&id).expect("valid message id"),
        company,
        &user(index),
        "",
        "",
        sent_at,
        &MessageBody::Text {
            content: "您好，请问订单什么时候发货？😀".to_owned(),
        },
    );
    InboundRecord {
        dedup: DedupKey::from_stored(format!("acme|m|{}|{id}", user(index))),
        dedup_expires_at: start.plus_secs(3 * 24 * 60 * 60),
        company: company.clone(),
        user: user(index),
        agent: agent(index),
        frame,
        stored_at: sent_at,
        refresh: Some(ContactRefresh {
            last_inbound_at: sent_at,
            window_closes_at: sent_at.plus_secs(WINDOW_SECS),
            name: None,
            avatar: None,
        }),
    }
}

fn user(index: usize) -> OpenId {
    OpenId::parse(format!("oUser{index:023}")).expect("valid OpenID")
}

fn agent(index: usize) -> AgentId {
    AgentId::parse(format!("agent-{}", index % AGENTS)).expect("valid agent id")
}
