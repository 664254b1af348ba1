//! The store conformance suite: one check per behaviour of the store ports, which every store
//! adapter (memory, SQLite, DynamoDB) passes unchanged.
//!
//! Each check is a `pub async fn` that takes a fresh, empty store behind any pointer that
//! derefs to it: `Box<S>`, `Arc<S>`, or a fixture that also owns the store's temporary
//! directory. An adapter crate runs the whole suite as one `#[tokio::test]` per check with
//!
//! ```ignore
//! mod sqlite {
//!     wxkf_core::store_conformance_tests!(fixture().await);
//! }
//! ```
//!
//! where the expression is evaluated afresh inside each test (it may `.await`). The adapter
//! crate needs `tokio` with the `macros` and `rt` features. [`run_all`] runs every check in
//! one test instead.
//!
//! The checks use fixed [`Timestamp`]s, never a clock. Where the port docs leave a detail
//! open, the suite fixes one reading, and the doc of the check that enforces it names it:
//!
//! - A connection has expired at `now` when `expires_at <= now`. A contact's window is open at
//!   `now` while `window_closes_at > now`, so a contact lapses at exactly `window_closes_at`.
//! - A dedup key blocks its message until [`StreamStore::prune`] removes it, even after its
//!   `dedup_expires_at` has passed; the sweep prunes every minute.
//! - `append_inbound` with a refresh treats the window as open while it closes after the
//!   refresh's `last_inbound_at`. The refresh overwrites the contact's times, even with
//!   earlier ones.
//! - A frame's age for `prune` is its storage time (`InboundRecord::stored_at`, the assignment's
//!   `now`, `append_system`'s `at`), never the user's `send_time`, which WeChat sets.
//! - `AgentLoad::idle_since` is the time of the agent's last successful `try_assign`, which a
//!   later release does not change. An agent never assigned reports the earliest
//!   `connected_at` among its unexpired connections.
//! - A queued user's `since` is the earliest `at` of its waiting frames. Its name and avatar
//!   are the latest non-empty values it was queued with.
//! - Queued frames move to the agent's stream in the order they were enqueued.
//! - `mark_delivered` creates the agent's cursor if needed and does not cap at `last`.

use std::future::{poll_fn, Future};
use std::ops::Deref;
use std::pin::Pin;
use std::task::Poll;

use serde_json::{json, Map};

use crate::frame::Frame;
use crate::ids::{AgentId, CompanyId, ConnectionId, MessageId, OpenId, Seq};
use crate::message::{DedupKey, MediaSource, MessageBody};
use crate::ports::{
    AgentLoad, AppendOutcome, AssignOutcome, Assignment, Connection, Contact, ContactRefresh,
    InboundRecord, QueueOutcome, QueuedRecord, QueuedUser, Store, StoreError, StreamCursor,
};
use crate::time::Timestamp;

/// Expands the store conformance checks into the names they are run under, in `tests` mode
/// as one `#[tokio::test]` each and in `run` mode as sequential calls. The check list lives
/// only here, so [`run_all`] and [`store_conformance_tests!`] cannot drift apart.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_checks {
    (@each tests $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                $crate::conformance::$check($make).await;
            }
        )+
    };
    (@each run $make:expr; $($check:ident),+ $(,)?) => {
        $( $crate::conformance::$check($make).await; )+
    };
    ($mode:ident $make:expr) => {
        $crate::__store_conformance_checks!(@each $mode $make;
            added_connection_reads_back,
            removing_connection_twice_returns_none,
            late_disconnect_keeps_newer_connection,
            expired_connections_are_ignored,
            agent_connections_are_oldest_first,
            mark_greeted_is_true_only_once,
            online_agents_are_per_company,
            online_agents_count_only_open_windows,
            idle_since_is_last_assignment_or_connect_time,
            assignment_returns_notice_with_next_seq,
            held_contact_is_taken,
            lapsed_contact_can_be_reassigned,
            full_agent_is_rejected,
            concurrent_assignments_end_with_one_agent,
            assignment_moves_queued_frames_after_notice,
            agent_contacts_are_open_and_most_recent_first,
            release_requires_holding_agent,
            lapsed_contacts_have_closed_windows,
            appends_number_each_agent_separately,
            duplicate_dedup_key_is_not_stored,
            dedup_key_blocks_until_pruned,
            append_requires_open_contact,
            refresh_moves_window_and_profile,
            append_without_refresh_skips_contact_check,
            frames_after_respects_position_and_limit,
            frames_round_trip_exactly,
            empty_stream_has_zero_cursor,
            ack_never_lowers_or_passes_last,
            mark_delivered_never_lowers,
            enqueue_rejects_seen_dedup_keys,
            queued_users_wait_in_arrival_order,
            queued_user_keeps_known_profile,
            prune_removes_expired_dedup_and_old_frames,
        );
    };
}

/// Expands to one `#[tokio::test]` per conformance check. The argument is an expression,
/// evaluated afresh in each test's async body, that yields a pointer to a new empty store
/// (for example `Box::new(MemoryStore::new())` or `fixture().await`). Invoke it inside a
/// module of its own per adapter, because the tests take the checks' names.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::__store_conformance_checks!(tests $make);
    };
}

/// Runs every check in turn, each on a new store from `make`.
pub async fn run_all<H, S, F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = H>,
    H: Deref<Target = S>,
    S: Store,
{
    crate::__store_conformance_checks!(run make().await);
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Checks that a connection reads back with every field, through `connection` and
/// `agent_connections`.
pub async fn added_connection_reads_back<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let mut added = connection("TWegAcC4EowCHnA=", "agent-1", at(0));
    added.resume_after = Some(Seq(41));

    ok(store.add_connection(&added).await, "add_connection");

    let read = ok(store.connection(&added.id, at(1)).await, "connection");
    assert_eq!(
        read,
        Some(added.clone()),
        "connection() returns every field as added"
    );
    let listed = ok(
        store.agent_connections(&added.agent, at(1)).await,
        "agent_connections",
    );
    assert_eq!(
        listed,
        vec![added],
        "agent_connections() lists the added connection"
    );
}

/// Checks that `remove_connection` returns the connection once and `None` after that.
pub async fn removing_connection_twice_returns_none<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let added = connection("AAAAAAAAAAA=", "agent-1", at(0));
    ok(store.add_connection(&added).await, "add_connection");

    let first = ok(
        store.remove_connection(&added.id).await,
        "remove_connection",
    );
    let second = ok(
        store.remove_connection(&added.id).await,
        "remove_connection",
    );

    assert_eq!(
        first,
        Some(added.clone()),
        "the first removal returns the connection"
    );
    assert_eq!(second, None, "the second removal finds nothing");
    let read = ok(store.connection(&added.id, at(1)).await, "connection");
    assert_eq!(read, None, "a removed connection is not found");
}

/// Checks that removing an agent's old connection id leaves its newer connection in place.
pub async fn late_disconnect_keeps_newer_connection<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let old = connection("OLDOLDOLDOL=", "agent-1", at(0));
    let new = connection("NEWNEWNEWNE=", "agent-1", at(10));
    ok(store.add_connection(&old).await, "add_connection");
    ok(store.add_connection(&new).await, "add_connection");

    let removed = ok(store.remove_connection(&old.id).await, "remove_connection");

    assert_eq!(removed, Some(old), "the old connection is the one removed");
    let listed = ok(
        store.agent_connections(&new.agent, at(11)).await,
        "agent_connections",
    );
    assert_eq!(
        listed,
        vec![new.clone()],
        "only the newer connection remains"
    );
    let read = ok(store.connection(&new.id, at(11)).await, "connection");
    assert_eq!(read, Some(new), "the newer connection is still found by id");
}

/// Checks that a connection counts until `now` reaches its `expires_at`, in every read.
pub async fn expired_connections_are_ignored<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let mut short = connection("SHORTSHORTS=", "agent-1", at(0));
    short.expires_at = at(100);
    let mut early = connection("EARLYEARLYE=", "agent-2", at(0));
    early.expires_at = at(100);
    let late = connection("LATELATELAT=", "agent-2", at(50));
    for added in [&short, &early, &late] {
        ok(store.add_connection(added).await, "add_connection");
    }

    let before = ok(store.connection(&short.id, at(99)).await, "connection");
    assert_eq!(
        before,
        Some(short.clone()),
        "a connection is found before it expires"
    );
    let online = ok(store.online_agents(&acme(), at(99)).await, "online_agents");
    assert_eq!(
        sorted_loads(online),
        vec![load("agent-1", 0, at(0)), load("agent-2", 0, at(0))],
        "both agents are online before the expiry"
    );

    let expired = ok(store.connection(&short.id, at(100)).await, "connection");
    assert_eq!(
        expired, None,
        "connection() ignores a connection at its expires_at"
    );
    let listed = ok(
        store.agent_connections(&short.agent, at(100)).await,
        "agent_connections",
    );
    assert!(
        listed.is_empty(),
        "agent_connections() ignores expired ones, got {listed:?}"
    );
    let listed = ok(
        store.agent_connections(&late.agent, at(100)).await,
        "agent_connections",
    );
    assert_eq!(
        listed,
        vec![late],
        "agent_connections() keeps the unexpired connection"
    );
    let online = ok(store.online_agents(&acme(), at(100)).await, "online_agents");
    assert_eq!(
        sorted_loads(online),
        vec![load("agent-2", 0, at(50))],
        "online_agents() drops an agent whose only connection expired, and idle_since \
         ignores the expired connection's connect time"
    );
}

/// Checks that `agent_connections` lists the oldest connection first, whatever the order of adding.
pub async fn agent_connections_are_oldest_first<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let third = connection("CCCCCCCCCCC=", "agent-1", at(20));
    let first = connection("AAAAAAAAAAA=", "agent-1", at(5));
    let second = connection("BBBBBBBBBBB=", "agent-1", at(10));
    for added in [&third, &first, &second] {
        ok(store.add_connection(added).await, "add_connection");
    }

    let listed = ok(
        store.agent_connections(&agent("agent-1"), at(30)).await,
        "agent_connections",
    );

    assert_eq!(
        listed,
        vec![first, second, third],
        "connections ordered by connected_at"
    );
}

/// Checks that `mark_greeted` returns `true` for the call that greets and `false` afterwards.
pub async fn mark_greeted_is_true_only_once<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let added = connection("AAAAAAAAAAA=", "agent-1", at(0));
    ok(store.add_connection(&added).await, "add_connection");

    let first = ok(store.mark_greeted(&added.id).await, "mark_greeted");
    let second = ok(store.mark_greeted(&added.id).await, "mark_greeted");
    let unknown = ok(
        store.mark_greeted(&connection_id("UNKNOWNUNKN=")).await,
        "mark_greeted",
    );

    assert!(first, "the first mark_greeted returns true");
    assert!(!second, "a second mark_greeted returns false");
    assert!(
        !unknown,
        "mark_greeted on an unknown connection returns false"
    );
    let read = ok(store.connection(&added.id, at(1)).await, "connection");
    assert_eq!(
        read.map(|c| c.greeted),
        Some(true),
        "the stored connection is greeted"
    );
}

/// Checks that `online_agents` lists each agent of the company once, however many connections it
/// has.
pub async fn online_agents_are_per_company<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let first = connection("AAAAAAAAAAA=", "agent-1", at(10));
    let second = connection("BBBBBBBBBBB=", "agent-1", at(5));
    let mut elsewhere = connection("CCCCCCCCCCC=", "agent-9", at(0));
    elsewhere.company = company("globex");
    for added in [&first, &second, &elsewhere] {
        ok(store.add_connection(added).await, "add_connection");
    }

    let online = ok(store.online_agents(&acme(), at(20)).await, "online_agents");

    assert_eq!(
        online,
        vec![load("agent-1", 0, at(5))],
        "one entry for agent-1, idle since its earliest connection, and none for another \
         company's agent"
    );
}

/// Checks that an agent's load counts only contacts whose window is open at `now`.
pub async fn online_agents_count_only_open_windows<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    ok(
        store
            .add_connection(&connection("AAAAAAAAAAA=", "agent-1", at(0)))
            .await,
        "add_connection",
    );
    assign(store, assignment("user-1", "agent-1", at(0), at(100), 10)).await;
    assign(store, assignment("user-2", "agent-1", at(10), at(1000), 10)).await;
    assign(store, assignment("user-3", "agent-2", at(20), at(1000), 10)).await;

    let open = ok(store.online_agents(&acme(), at(50)).await, "online_agents");
    let one_lapsed = ok(store.online_agents(&acme(), at(100)).await, "online_agents");

    assert_eq!(
        open,
        vec![load("agent-1", 2, at(10))],
        "both windows open at 50 s"
    );
    assert_eq!(
        one_lapsed,
        vec![load("agent-1", 1, at(10))],
        "user-1's window closes at 100 s, so only user-2 counts"
    );
}

/// Checks that `idle_since` is the agent's last assignment time, or its connect time if never
/// assigned.
pub async fn idle_since_is_last_assignment_or_connect_time<S: Store>(
    store: impl Deref<Target = S>,
) {
    let store = &*store;
    ok(
        store
            .add_connection(&connection("AAAAAAAAAAA=", "agent-1", at(0)))
            .await,
        "add_connection",
    );
    ok(
        store
            .add_connection(&connection("BBBBBBBBBBB=", "agent-2", at(5)))
            .await,
        "add_connection",
    );

    let fresh = ok(store.online_agents(&acme(), at(10)).await, "online_agents");
    assert_eq!(
        sorted_loads(fresh),
        vec![load("agent-1", 0, at(0)), load("agent-2", 0, at(5))],
        "agents never assigned are idle since they connected"
    );

    assign(store, assignment("user-1", "agent-1", at(20), at(5000), 10)).await;
    assign(store, assignment("user-2", "agent-1", at(30), at(5000), 10)).await;
    let assigned = ok(store.online_agents(&acme(), at(40)).await, "online_agents");
    assert_eq!(
        sorted_loads(assigned),
        vec![load("agent-1", 2, at(30)), load("agent-2", 0, at(5))],
        "agent-1 is idle since its last assignment at 30 s"
    );

    let released = ok(
        store
            .release_contact(&acme(), &user("user-2"), &agent("agent-1"))
            .await,
        "release",
    );
    assert!(released, "agent-1 holds user-2, so the release succeeds");
    let after_release = ok(store.online_agents(&acme(), at(40)).await, "online_agents");
    assert_eq!(
        sorted_loads(after_release),
        vec![load("agent-1", 1, at(30)), load("agent-2", 0, at(5))],
        "a release lowers the load but keeps the last assignment time"
    );
}

// ---------------------------------------------------------------------------------------------
// Contacts and assignment
// ---------------------------------------------------------------------------------------------

/// Checks that `try_assign` stores the contact and appends the notice at the agent's next position.
pub async fn assignment_returns_notice_with_next_seq<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let earlier = system_frame("sys-1", at(0));
    let first = ok(
        store
            .append_system(&agent("agent-1"), &earlier, START)
            .await,
        "append_system",
    );
    assert_eq!(
        first,
        Seq(1),
        "the first frame of a stream is at position 1"
    );
    let mut request = assignment("user-1", "agent-1", at(10), at(1000), 5);
    request.name = "王小明".to_owned();
    request.avatar = "https://thirdwx.qlogo.cn/mmopen/abc/132".to_owned();
    let notice = request.notice.clone();

    let outcome = ok(store.try_assign(request).await, "try_assign");

    assert_eq!(
        outcome,
        AssignOutcome::Assigned {
            frames: vec![(Seq(2), notice.with_seq(Seq(2)))]
        },
        "the notice follows the earlier frame, carrying its seq"
    );
    let contact = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(
        contact,
        Some(Contact {
            company: acme(),
            user: user("user-1"),
            agent: agent("agent-1"),
            name: "王小明".to_owned(),
            avatar: "https://thirdwx.qlogo.cn/mmopen/abc/132".to_owned(),
            assigned_at: at(10),
            last_inbound_at: at(10),
            window_closes_at: at(1000),
        }),
        "the contact is stored with the assignment time as its last inbound time"
    );
    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(
        cursor.last,
        Seq(2),
        "the stream's last position is the notice's"
    );
}

/// Checks that a user held with an open window is `Taken`, by another agent or by the holder
/// itself.
pub async fn held_contact_is_taken<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(1000), 5)).await;
    let holder = ok(store.contact(&acme(), &user("user-1")).await, "contact")
        .expect("user-1 was just assigned");

    let by_other = ok(
        store
            .try_assign(assignment("user-1", "agent-2", at(10), at(2000), 5))
            .await,
        "try_assign",
    );
    let by_holder = ok(
        store
            .try_assign(assignment("user-1", "agent-1", at(10), at(2000), 5))
            .await,
        "try_assign",
    );

    assert_eq!(
        by_other,
        AssignOutcome::Taken(holder.clone()),
        "agent-2 learns the holder"
    );
    assert_eq!(
        by_holder,
        AssignOutcome::Taken(holder.clone()),
        "the holder gets Taken too"
    );
    let stored = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(stored, Some(holder), "the contact is unchanged");
    let cursor = ok(store.cursor(&agent("agent-2")).await, "cursor");
    assert_eq!(
        cursor.last,
        Seq(0),
        "no notice is appended for a taken user"
    );
    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(
        cursor.last,
        Seq(1),
        "only the first assignment appended a notice"
    );
}

/// Checks that a contact whose window closed can go to another agent.
pub async fn lapsed_contact_can_be_reassigned<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(100), 5)).await;

    let outcome = ok(
        store
            .try_assign(assignment("user-1", "agent-2", at(100), at(2000), 5))
            .await,
        "try_assign",
    );

    assert!(
        matches!(outcome, AssignOutcome::Assigned { .. }),
        "a window closing at 100 s has lapsed at 100 s, so the user is free; got {outcome:?}"
    );
    let contact =
        ok(store.contact(&acme(), &user("user-1")).await, "contact").expect("user-1 is assigned");
    assert_eq!(contact.agent, agent("agent-2"), "agent-2 now holds user-1");
    assert_eq!(
        contact.assigned_at,
        at(100),
        "assigned_at is the new assignment's time"
    );
    assert_eq!(
        contact.window_closes_at,
        at(2000),
        "the window is the new assignment's"
    );
    let old_list = ok(
        store.agent_contacts(&agent("agent-1"), at(100)).await,
        "agent_contacts",
    );
    assert!(
        old_list.is_empty(),
        "agent-1 no longer lists user-1, got {old_list:?}"
    );
}

/// Checks that an agent with `max_contacts` open windows is full; a lapsed window frees room.
pub async fn full_agent_is_rejected<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(100), 2)).await;
    assign(store, assignment("user-2", "agent-1", at(10), at(1000), 2)).await;

    let full = ok(
        store
            .try_assign(assignment("user-3", "agent-1", at(20), at(1000), 2))
            .await,
        "try_assign",
    );

    assert_eq!(
        full,
        AssignOutcome::AgentFull,
        "two open windows fill max_contacts = 2"
    );
    let contact = ok(store.contact(&acme(), &user("user-3")).await, "contact");
    assert_eq!(contact, None, "a full agent gets no contact record");
    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(cursor.last, Seq(2), "a full agent gets no notice");

    let after_lapse = ok(
        store
            .try_assign(assignment("user-3", "agent-1", at(100), at(1000), 2))
            .await,
        "try_assign",
    );
    assert!(
        matches!(after_lapse, AssignOutcome::Assigned { .. }),
        "user-1's window closed at 100 s, so agent-1 has room; got {after_lapse:?}"
    );
}

/// Checks that many agents racing for one user end with exactly one of them holding it.
pub async fn concurrent_assignments_end_with_one_agent<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let agents: Vec<String> = (1..=8).map(|n| format!("agent-{n}")).collect();

    let attempts = agents
        .iter()
        .map(|name| store.try_assign(assignment("user-1", name, at(0), at(1000), 5)))
        .collect();
    let outcomes = join_all(attempts).await;

    let mut winners = Vec::new();
    for (name, outcome) in agents.iter().zip(&outcomes) {
        match outcome {
            Ok(AssignOutcome::Assigned { .. }) => winners.push(name.clone()),
            Ok(AssignOutcome::Taken(_)) => {}
            other => panic!("{name}: expected Assigned or Taken, got {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one agent wins, winners: {winners:?}"
    );
    let winner = agent(&winners[0]);
    for (name, outcome) in agents.iter().zip(&outcomes) {
        if let Ok(AssignOutcome::Taken(holder)) = outcome {
            assert_eq!(
                holder.agent, winner,
                "{name} is told the winner holds user-1"
            );
        }
    }
    let contact =
        ok(store.contact(&acme(), &user("user-1")).await, "contact").expect("user-1 is assigned");
    assert_eq!(contact.agent, winner, "the stored contact names the winner");
    let mut notices = 0;
    for name in &agents {
        notices += ok(store.cursor(&agent(name)).await, "cursor").last.0;
    }
    assert_eq!(notices, 1, "one notice in all the agents' streams");
}

/// Checks that queued frames of the assigned user follow the notice in arrival order and leave the
/// queue; other users keep waiting.
pub async fn assignment_moves_queued_frames_after_notice<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let waiting: Vec<Frame> = (1..=3)
        .map(|n| text_frame(&format!("m{n}"), "user-1", &format!("第{n}条"), at(n)))
        .collect();
    for (n, frame) in (1..).zip(&waiting) {
        let record = queued(&format!("q{n}"), "user-1", at(n), frame.clone());
        assert_eq!(
            ok(store.enqueue(record).await, "enqueue"),
            QueueOutcome::Queued
        );
    }
    let other = queued(
        "q9",
        "user-2",
        at(2),
        text_frame("m9", "user-2", "hi", at(2)),
    );
    assert_eq!(
        ok(store.enqueue(other).await, "enqueue"),
        QueueOutcome::Queued
    );
    let request = assignment("user-1", "agent-1", at(10), at(1000), 5);
    let notice = request.notice.clone();

    let outcome = ok(store.try_assign(request).await, "try_assign");

    let expected = vec![
        (Seq(1), notice.with_seq(Seq(1))),
        (Seq(2), waiting[0].clone().with_seq(Seq(2))),
        (Seq(3), waiting[1].clone().with_seq(Seq(3))),
        (Seq(4), waiting[2].clone().with_seq(Seq(4))),
    ];
    assert_eq!(
        outcome,
        AssignOutcome::Assigned {
            frames: expected.clone()
        },
        "the outcome holds the notice, then the queued frames in arrival order"
    );
    let stream = ok(
        store.frames_after(&agent("agent-1"), Seq(0), 10).await,
        "frames_after",
    );
    assert_eq!(
        stream, expected,
        "the stream holds the same frames at the same positions"
    );
    let queue = ok(store.queued_users(&acme(), 10).await, "queued_users");
    let waiting_users: Vec<OpenId> = queue.into_iter().map(|u| u.user).collect();
    assert_eq!(
        waiting_users,
        vec![user("user-2")],
        "user-1 left the queue, user-2 waits"
    );
    let retry = inbound("q2", "agent-1", "user-1", waiting[1].clone(), None);
    assert_eq!(
        ok(store.append_inbound(retry).await, "append_inbound"),
        AppendOutcome::Duplicate,
        "a moved frame's dedup key still blocks a retry"
    );
}

/// Checks that `agent_contacts` lists only open windows, the most recent inbound first.
pub async fn agent_contacts_are_open_and_most_recent_first<S: Store>(
    store: impl Deref<Target = S>,
) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(5000), 10)).await;
    assign(store, assignment("user-2", "agent-1", at(10), at(5000), 10)).await;
    assign(store, assignment("user-3", "agent-1", at(20), at(5000), 10)).await;
    assign(store, assignment("user-4", "agent-1", at(25), at(50), 10)).await;
    assign(store, assignment("user-5", "agent-2", at(26), at(5000), 10)).await;
    let frame = text_frame("m1", "user-1", "又来了", at(30));
    let record = inbound("k1", "agent-1", "user-1", frame, Some(refresh(at(30))));
    let appended = ok(store.append_inbound(record).await, "append_inbound");
    assert!(
        matches!(appended, AppendOutcome::Stored(_)),
        "got {appended:?}"
    );

    let contacts = ok(
        store.agent_contacts(&agent("agent-1"), at(60)).await,
        "agent_contacts",
    );

    let users: Vec<OpenId> = contacts.into_iter().map(|c| c.user).collect();
    assert_eq!(
        users,
        vec![user("user-1"), user("user-3"), user("user-2")],
        "user-1 wrote last; user-4's window closed at 50 s; user-5 belongs to agent-2"
    );
}

/// Checks that `release_contact` removes the contact only for the agent that holds it.
pub async fn release_requires_holding_agent<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(1000), 5)).await;

    let by_other = ok(
        store
            .release_contact(&acme(), &user("user-1"), &agent("agent-2"))
            .await,
        "release",
    );
    assert!(
        !by_other,
        "agent-2 does not hold user-1, so it cannot release it"
    );
    let kept = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(
        kept.map(|c| c.agent),
        Some(agent("agent-1")),
        "agent-1 still holds user-1"
    );

    let by_holder = ok(
        store
            .release_contact(&acme(), &user("user-1"), &agent("agent-1"))
            .await,
        "release",
    );
    let again = ok(
        store
            .release_contact(&acme(), &user("user-1"), &agent("agent-1"))
            .await,
        "release",
    );

    assert!(by_holder, "the holder's release succeeds");
    assert!(!again, "a second release finds nothing");
    let gone = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(gone, None, "the released contact is gone");
}

/// Checks that `lapsed_contacts` returns contacts whose window closed at or before `now`, up to the
/// limit, and `contact` still finds them.
pub async fn lapsed_contacts_have_closed_windows<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-1", "agent-1", at(0), at(100), 5)).await;
    assign(store, assignment("user-2", "agent-2", at(0), at(200), 5)).await;
    assign(store, assignment("user-3", "agent-1", at(0), at(300), 5)).await;

    let lapsed = ok(store.lapsed_contacts(at(200), 10).await, "lapsed_contacts");
    let limited = ok(store.lapsed_contacts(at(200), 1).await, "lapsed_contacts");

    let mut users: Vec<OpenId> = lapsed.into_iter().map(|c| c.user).collect();
    users.sort();
    assert_eq!(
        users,
        vec![user("user-1"), user("user-2")],
        "windows closing at 100 s and at exactly 200 s have lapsed; 300 s has not"
    );
    assert_eq!(
        limited.len(),
        1,
        "limit 1 returns one contact, got {limited:?}"
    );
    assert!(
        [user("user-1"), user("user-2")].contains(&limited[0].user),
        "the limited result is a lapsed contact, got {:?}",
        limited[0].user
    );
    let still_there = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(
        still_there.map(|c| c.window_closes_at),
        Some(at(100)),
        "contact() returns a contact whose window has closed"
    );
}

// ---------------------------------------------------------------------------------------------
// Streams, deduplication and the queue
// ---------------------------------------------------------------------------------------------

/// Checks that inbound and system frames share one increasing sequence per agent, independent of
/// other agents.
pub async fn appends_number_each_agent_separately<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;

    let a1 = append_text(store, "k1", "agent-1", "user-1").await;
    let a2 = append_text(store, "k2", "agent-1", "user-1").await;
    let b1 = append_text(store, "k3", "agent-2", "user-2").await;
    let a3 = ok(
        store
            .append_system(&agent("agent-1"), &system_frame("s1", at(0)), at(0))
            .await,
        "append",
    );
    let a4 = append_text(store, "k4", "agent-1", "user-1").await;

    assert_eq!(a1, AppendOutcome::Stored(Seq(1)), "agent-1's first frame");
    assert_eq!(a2, AppendOutcome::Stored(Seq(2)), "agent-1's second frame");
    assert_eq!(
        b1,
        AppendOutcome::Stored(Seq(1)),
        "agent-2 has its own sequence"
    );
    assert_eq!(a3, Seq(3), "a system frame takes agent-1's next position");
    assert_eq!(
        a4,
        AppendOutcome::Stored(Seq(4)),
        "inbound frames continue after it"
    );
    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(cursor.last, Seq(4), "agent-1's cursor is at its last frame");
    let cursor = ok(store.cursor(&agent("agent-2")).await, "cursor");
    assert_eq!(cursor.last, Seq(1), "agent-2's cursor is at its only frame");
}

/// Checks that a dedup key seen once makes every later append with it a `Duplicate`, for any agent.
pub async fn duplicate_dedup_key_is_not_stored<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;

    let first = append_text(store, "acme|m|user-1|1", "agent-1", "user-1").await;
    let again = append_text(store, "acme|m|user-1|1", "agent-1", "user-1").await;
    let elsewhere = append_text(store, "acme|m|user-1|1", "agent-2", "user-1").await;

    assert_eq!(
        first,
        AppendOutcome::Stored(Seq(1)),
        "the first append is stored"
    );
    assert_eq!(
        again,
        AppendOutcome::Duplicate,
        "a retry to the same agent is a duplicate"
    );
    assert_eq!(
        elsewhere,
        AppendOutcome::Duplicate,
        "a retry to another agent is a duplicate"
    );
    let frames = ok(
        store.frames_after(&agent("agent-1"), Seq(0), 10).await,
        "frames_after",
    );
    assert_eq!(frames.len(), 1, "agent-1 holds one frame, got {frames:?}");
    let cursor = ok(store.cursor(&agent("agent-2")).await, "cursor");
    assert_eq!(cursor.last, Seq(0), "nothing reached agent-2's stream");
}

/// Checks that a dedup key blocks its message until `prune` removes it, and `prune` removes it only
/// once `now` reaches its expiry.
pub async fn dedup_key_blocks_until_pruned<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let frame = text_frame("m1", "user-1", "hello", at(0));
    let record = || InboundRecord {
        dedup_expires_at: at(100),
        ..inbound("k1", "agent-1", "user-1", frame.clone(), None)
    };
    let first = ok(store.append_inbound(record()).await, "append_inbound");
    assert_eq!(
        first,
        AppendOutcome::Stored(Seq(1)),
        "the first append is stored"
    );

    let early = ok(store.prune(at(99), EPOCH).await, "prune");
    let kept = ok(store.append_inbound(record()).await, "append_inbound");
    assert_eq!(early, 0, "nothing has expired at 99 s");
    assert_eq!(
        kept,
        AppendOutcome::Duplicate,
        "an unpruned key still blocks"
    );

    let pruned = ok(store.prune(at(100), EPOCH).await, "prune");
    let after = ok(store.append_inbound(record()).await, "append_inbound");
    assert_eq!(pruned, 1, "the key expiring at 100 s is pruned at 100 s");
    assert_eq!(
        after,
        AppendOutcome::Stored(Seq(2)),
        "a pruned key no longer blocks"
    );
}

/// Checks that with a refresh, an append is `NotAssigned` unless the agent holds the user with an
/// open window, and then it writes nothing, not even the dedup key.
pub async fn append_requires_open_contact<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-2", "agent-2", at(0), at(1000), 5)).await;
    assign(store, assignment("user-3", "agent-1", at(0), at(100), 5)).await;
    let before = ok(store.cursor(&agent("agent-1")).await, "cursor");
    let held_by_other = ok(store.contact(&acme(), &user("user-2")).await, "contact");

    let unknown = append_refreshing(store, "k1", "agent-1", "user-1", at(50)).await;
    let other_agent = append_refreshing(store, "k2", "agent-1", "user-2", at(50)).await;
    let lapsed = append_refreshing(store, "k3", "agent-1", "user-3", at(100)).await;

    assert_eq!(unknown, AppendOutcome::NotAssigned, "user-1 has no agent");
    assert_eq!(
        other_agent,
        AppendOutcome::NotAssigned,
        "agent-2 holds user-2"
    );
    assert_eq!(
        lapsed,
        AppendOutcome::NotAssigned,
        "user-3's window closed at 100 s"
    );
    let after = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(after, before, "nothing was appended to agent-1's stream");
    let unchanged = ok(store.contact(&acme(), &user("user-2")).await, "contact");
    assert_eq!(
        unchanged, held_by_other,
        "agent-2's contact was not refreshed"
    );

    assign(store, assignment("user-1", "agent-1", at(60), at(1000), 5)).await;
    let retried = append_refreshing(store, "k1", "agent-1", "user-1", at(70)).await;
    assert_eq!(
        retried,
        AppendOutcome::Stored(Seq(before.last.0 + 2)),
        "the rejected append did not record its dedup key; the notice took one position"
    );
}

/// Checks that a refresh moves the contact's times and overwrites only the profile fields it
/// carries.
pub async fn refresh_moves_window_and_profile<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let mut request = assignment("user-1", "agent-1", at(0), at(1000), 5);
    request.name = "老王".to_owned();
    request.avatar = "https://thirdwx.qlogo.cn/old/132".to_owned();
    assign(store, request).await;

    let renamed = ContactRefresh {
        name: Some("王小明😀".to_owned()),
        ..refresh(at(60))
    };
    let frame = text_frame("m1", "user-1", "在吗", at(60));
    let outcome = ok(
        store
            .append_inbound(inbound("k1", "agent-1", "user-1", frame, Some(renamed)))
            .await,
        "append_inbound",
    );
    assert_eq!(
        outcome,
        AppendOutcome::Stored(Seq(2)),
        "the refreshing append is stored"
    );

    let contact =
        ok(store.contact(&acme(), &user("user-1")).await, "contact").expect("user-1 is assigned");
    assert_eq!(
        contact.last_inbound_at,
        at(60),
        "last_inbound_at moved to the message"
    );
    assert_eq!(
        contact.window_closes_at,
        at(60).plus_secs(WINDOW_SECS),
        "the window is the refresh's"
    );
    assert_eq!(
        contact.name, "王小明😀",
        "a name in the refresh replaces the stored one"
    );
    assert_eq!(
        contact.avatar, "https://thirdwx.qlogo.cn/old/132",
        "an absent avatar keeps the stored one"
    );
    assert_eq!(
        contact.assigned_at,
        at(0),
        "a refresh keeps the assignment time"
    );

    let cleared = ContactRefresh {
        avatar: Some(String::new()),
        ..refresh(at(70))
    };
    let frame = text_frame("m2", "user-1", "?", at(70));
    ok(
        store
            .append_inbound(inbound("k2", "agent-1", "user-1", frame, Some(cleared)))
            .await,
        "append_inbound",
    );
    let contact =
        ok(store.contact(&acme(), &user("user-1")).await, "contact").expect("user-1 is assigned");
    assert_eq!(
        contact.avatar, "",
        "an empty avatar in the refresh is stored as given"
    );
    assert_eq!(
        contact.name, "王小明😀",
        "an absent name keeps the stored one"
    );
}

/// Checks that without a refresh (an event that does not open the window) an append skips the
/// contact check and leaves contacts alone.
pub async fn append_without_refresh_skips_contact_check<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    assign(store, assignment("user-2", "agent-2", at(0), at(1000), 5)).await;
    let held = ok(store.contact(&acme(), &user("user-2")).await, "contact");

    let stranger = append_text(store, "k1", "agent-1", "user-1").await;
    let others = append_text(store, "k2", "agent-1", "user-2").await;

    assert_eq!(
        stranger,
        AppendOutcome::Stored(Seq(1)),
        "no contact is needed"
    );
    assert_eq!(
        others,
        AppendOutcome::Stored(Seq(2)),
        "another agent's contact is no bar"
    );
    let contact = ok(store.contact(&acme(), &user("user-1")).await, "contact");
    assert_eq!(contact, None, "no contact is created for user-1");
    let unchanged = ok(store.contact(&acme(), &user("user-2")).await, "contact");
    assert_eq!(unchanged, held, "user-2's contact is untouched");
}

/// Checks that `frames_after` returns frames after the position, in order, at most `limit`, each
/// with its `seq` in the tuple and in `data.seq`.
pub async fn frames_after_respects_position_and_limit<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let mut frames = Vec::new();
    for n in 1..=5 {
        let frame = text_frame(&format!("m{n}"), "user-1", &format!("#{n}"), at(n));
        let record = inbound(&format!("k{n}"), "agent-1", "user-1", frame.clone(), None);
        ok(store.append_inbound(record).await, "append_inbound");
        frames.push((Seq(n as u64), frame.with_seq(Seq(n as u64))));
    }
    let agent_1 = agent("agent-1");

    let head = ok(
        store.frames_after(&agent_1, Seq(0), 2).await,
        "frames_after",
    );
    let tail = ok(
        store.frames_after(&agent_1, Seq(2), 10).await,
        "frames_after",
    );
    let past_end = ok(
        store.frames_after(&agent_1, Seq(5), 10).await,
        "frames_after",
    );
    let no_room = ok(
        store.frames_after(&agent_1, Seq(1), 0).await,
        "frames_after",
    );
    let unknown = ok(
        store.frames_after(&agent("agent-9"), Seq(0), 10).await,
        "frames_after",
    );

    assert_eq!(
        head,
        frames[..2].to_vec(),
        "limit 2 from the start gives seq 1 and 2"
    );
    assert_eq!(tail, frames[2..].to_vec(), "after seq 2 come 3, 4 and 5");
    assert!(
        past_end.is_empty(),
        "nothing after the last frame, got {past_end:?}"
    );
    assert!(no_room.is_empty(), "limit 0 gives nothing, got {no_room:?}");
    assert!(
        unknown.is_empty(),
        "an unknown agent has no frames, got {unknown:?}"
    );
    for (seq, frame) in &head {
        assert_eq!(frame.seq(), Some(*seq), "data.seq matches the position");
    }
}

/// Checks that frames come back exactly as stored: Chinese, emoji, escapes, 20-digit ids, floats
/// and big integers, through every way in (inbound, system, queue) and out (frames_after, assign).
pub async fn frames_round_trip_exactly<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let text = Frame::message(
        &MessageId::parse("24523365472734781234").expect("valid id"),
        &acme(),
        &user("oUser-微信"),
        "张三 🐼",
        "https://thirdwx.qlogo.cn/mmopen/a?b=1&c=\"2\"",
        at(1),
        &MessageBody::Text {
            content: "你好 😀 /::) \"quoted\" back\\slash\nnew line\ttab \u{1}".to_owned(),
        },
    );
    let location = Frame::message(
        &MessageId::parse("98765432109876543210").expect("valid id"),
        &acme(),
        &user("oUser-微信"),
        "",
        "",
        at(2),
        &MessageBody::Location {
            latitude: 23.134521,
            longitude: -113.358803,
            scale: Some(20.0),
            label: "广州市海珠区 🗺".to_owned(),
        },
    );
    let image = Frame::message(
        &MessageId::parse("11111111111111111111").expect("valid id"),
        &acme(),
        &user("oUser-微信"),
        "",
        "",
        at(3),
        &MessageBody::Image {
            media: MediaSource {
                media_id: Some("MEDIA_ID_1".to_owned()),
                url: None,
            },
        },
    );
    // A stale seq in the stored frame must give way to the frame's real position.
    let image = image.with_seq(Seq(999));
    let mut fields = Map::new();
    fields.insert(
        "nested".to_owned(),
        json!({ "big": u64::MAX, "negative": -42, "list": [1.5, null, true, "两"] }),
    );
    let system = Frame::system(
        &MessageId::parse("sys-1").expect("valid id"),
        &acme(),
        at(4),
        "contact_assigned",
        "新联系人：张三 🐼",
        fields,
    );

    let stored_text = ok(
        store
            .append_inbound(inbound("k1", "agent-1", "oUser-微信", text.clone(), None))
            .await,
        "append_inbound",
    );
    let stored_location = ok(
        store
            .append_inbound(inbound(
                "k2",
                "agent-1",
                "oUser-微信",
                location.clone(),
                None,
            ))
            .await,
        "append_inbound",
    );
    let stored_image = ok(
        store
            .append_inbound(inbound("k3", "agent-1", "oUser-微信", image.clone(), None))
            .await,
        "append_inbound",
    );
    let system_seq = ok(
        store.append_system(&agent("agent-1"), &system, START).await,
        "append_system",
    );
    assert_eq!(stored_text, AppendOutcome::Stored(Seq(1)));
    assert_eq!(stored_location, AppendOutcome::Stored(Seq(2)));
    assert_eq!(stored_image, AppendOutcome::Stored(Seq(3)));
    assert_eq!(system_seq, Seq(4));

    let read = ok(
        store.frames_after(&agent("agent-1"), Seq(0), 10).await,
        "frames_after",
    );
    assert_eq!(
        read,
        vec![
            (Seq(1), text.clone().with_seq(Seq(1))),
            (Seq(2), location.clone().with_seq(Seq(2))),
            (Seq(3), image.with_seq(Seq(3))),
            (Seq(4), system.clone().with_seq(Seq(4))),
        ],
        "every frame reads back equal to what was stored, with its seq"
    );
    assert_eq!(
        read[0].1.to_value()["data"]["id"],
        "24523365472734781234",
        "a 20-digit MsgId keeps every digit"
    );

    let queued_text = queued("q1", "oUser-微信", at(5), text.clone());
    ok(store.enqueue(queued_text).await, "enqueue");
    let mut request = assignment("oUser-微信", "agent-2", at(6), at(1000), 5);
    request.notice = system.clone();
    let outcome = ok(store.try_assign(request).await, "try_assign");
    let expected = vec![
        (Seq(1), system.with_seq(Seq(1))),
        (Seq(2), text.with_seq(Seq(2))),
    ];
    assert_eq!(
        outcome,
        AssignOutcome::Assigned {
            frames: expected.clone()
        },
        "the notice and the queued frame come back exactly from try_assign"
    );
    let moved = ok(
        store.frames_after(&agent("agent-2"), Seq(0), 10).await,
        "frames_after",
    );
    assert_eq!(moved, expected, "and exactly from frames_after");
}

/// Checks that an agent that never had a frame has an all-zero cursor.
pub async fn empty_stream_has_zero_cursor<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;

    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");

    assert_eq!(
        cursor,
        StreamCursor::default(),
        "an empty stream's cursor is all zero"
    );
}

/// Checks that `ack` raises the acknowledged position, never lowers it and never passes `last`.
pub async fn ack_never_lowers_or_passes_last<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    for n in 1..=3 {
        append_text(store, &format!("k{n}"), "agent-1", "user-1").await;
    }
    let agent_1 = agent("agent-1");

    ok(store.ack(&agent_1, Seq(2)).await, "ack");
    let raised = ok(store.cursor(&agent_1).await, "cursor");
    ok(store.ack(&agent_1, Seq(1)).await, "ack");
    let lowered = ok(store.cursor(&agent_1).await, "cursor");
    ok(store.ack(&agent_1, Seq(99)).await, "ack");
    let beyond = ok(store.cursor(&agent_1).await, "cursor");

    assert_eq!(raised.acked, Seq(2), "ack 2 raises acked to 2");
    assert_eq!(lowered.acked, Seq(2), "ack 1 after ack 2 keeps 2");
    assert_eq!(beyond.acked, Seq(3), "ack 99 stops at the last position, 3");
    assert_eq!(
        beyond,
        StreamCursor {
            last: Seq(3),
            acked: Seq(3),
            delivered: Seq(0),
        },
        "ack leaves last and delivered alone"
    );
}

/// Checks that `mark_delivered` raises the delivered position and never lowers it.
pub async fn mark_delivered_never_lowers<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    for n in 1..=3 {
        append_text(store, &format!("k{n}"), "agent-1", "user-1").await;
    }
    let agent_1 = agent("agent-1");

    ok(
        store.mark_delivered(&agent_1, Seq(2)).await,
        "mark_delivered",
    );
    let raised = ok(store.cursor(&agent_1).await, "cursor");
    ok(
        store.mark_delivered(&agent_1, Seq(1)).await,
        "mark_delivered",
    );
    let lowered = ok(store.cursor(&agent_1).await, "cursor");
    ok(
        store.mark_delivered(&agent_1, Seq(3)).await,
        "mark_delivered",
    );
    let last = ok(store.cursor(&agent_1).await, "cursor");

    assert_eq!(raised.delivered, Seq(2), "delivered rises to 2");
    assert_eq!(lowered.delivered, Seq(2), "delivered 1 after 2 keeps 2");
    assert_eq!(
        last,
        StreamCursor {
            last: Seq(3),
            acked: Seq(0),
            delivered: Seq(3),
        },
        "delivered rises to 3 and acked stays 0"
    );
}

/// Checks that queued and appended messages share dedup keys: a key seen by either blocks both.
pub async fn enqueue_rejects_seen_dedup_keys<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let frame = text_frame("m1", "user-1", "排队中", at(1));

    let first = ok(
        store
            .enqueue(queued("k1", "user-1", at(1), frame.clone()))
            .await,
        "enqueue",
    );
    let again = ok(
        store
            .enqueue(queued("k1", "user-1", at(2), frame.clone()))
            .await,
        "enqueue",
    );
    let appended = append_text(store, "k1", "agent-1", "user-1").await;
    let fresh = append_text(store, "k2", "agent-1", "user-1").await;
    let requeued = ok(
        store
            .enqueue(queued("k2", "user-1", at(3), frame.clone()))
            .await,
        "enqueue",
    );

    assert_eq!(first, QueueOutcome::Queued, "a new key is queued");
    assert_eq!(
        again,
        QueueOutcome::Duplicate,
        "a queued key is a duplicate in the queue"
    );
    assert_eq!(
        appended,
        AppendOutcome::Duplicate,
        "a queued key blocks append_inbound"
    );
    assert_eq!(
        fresh,
        AppendOutcome::Stored(Seq(1)),
        "an unseen key is appended"
    );
    assert_eq!(
        requeued,
        QueueOutcome::Duplicate,
        "an appended key blocks enqueue"
    );

    let outcome = ok(
        store
            .try_assign(assignment("user-1", "agent-2", at(10), at(1000), 5))
            .await,
        "try_assign",
    );
    match outcome {
        AssignOutcome::Assigned { frames } => {
            assert_eq!(
                frames.len(),
                2,
                "the notice and the one queued frame, got {frames:?}"
            )
        }
        other => panic!("expected Assigned, got {other:?}"),
    }
}

/// Checks that `queued_users` lists a company's waiting users once each, longest waiting first.
pub async fn queued_users_wait_in_arrival_order<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let records = [
        ("k1", "user-b", at(10)),
        ("k2", "user-a", at(20)),
        ("k3", "user-b", at(30)),
        ("k4", "user-c", at(25)),
    ];
    for (dedup, name, time) in records {
        let record = queued(dedup, name, time, text_frame(dedup, name, "你好", time));
        ok(store.enqueue(record).await, "enqueue");
    }
    let mut foreign = queued(
        "k5",
        "user-z",
        at(5),
        text_frame("k5", "user-z", "hi", at(5)),
    );
    foreign.company = company("globex");
    ok(store.enqueue(foreign).await, "enqueue");

    let all = ok(store.queued_users(&acme(), 10).await, "queued_users");
    let first = ok(store.queued_users(&acme(), 1).await, "queued_users");
    let other = ok(
        store.queued_users(&company("globex"), 10).await,
        "queued_users",
    );

    assert_eq!(
        all,
        vec![
            waiting_user("user-b", at(10)),
            waiting_user("user-a", at(20)),
            waiting_user("user-c", at(25)),
        ],
        "user-b waits since its first message at 10 s and is listed once"
    );
    assert_eq!(
        first,
        vec![waiting_user("user-b", at(10))],
        "limit 1 gives the longest waiting"
    );
    assert_eq!(
        other,
        vec![waiting_user("user-z", at(5))],
        "each company has its own queue"
    );
}

/// Checks that a queued user keeps the latest non-empty name and avatar it was queued with.
pub async fn queued_user_keeps_known_profile<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let profiles = [
        ("k1", "", ""),
        ("k2", "小红", "https://a/1.png"),
        ("k3", "", ""),
    ];
    for (n, (dedup, name, avatar)) in (1..).zip(profiles) {
        let record = QueuedRecord {
            name: name.to_owned(),
            avatar: avatar.to_owned(),
            ..queued(
                dedup,
                "user-1",
                at(n),
                text_frame(dedup, "user-1", "嗨", at(n)),
            )
        };
        ok(store.enqueue(record).await, "enqueue");
    }

    let users = ok(store.queued_users(&acme(), 10).await, "queued_users");

    assert_eq!(
        users,
        vec![QueuedUser {
            user: user("user-1"),
            name: "小红".to_owned(),
            avatar: "https://a/1.png".to_owned(),
            since: at(1),
        }],
        "a later empty profile does not wipe the one learned from the second message"
    );
}

/// Checks that `prune` deletes dedup records expired at `now` and frames stored before the
/// cutoff (by storage time, not the user's `send_time`), returns how many records went, and
/// never reuses a position.
pub async fn prune_removes_expired_dedup_and_old_frames<S: Store>(store: impl Deref<Target = S>) {
    let store = &*store;
    let mut frames = Vec::new();
    for (n, (stored, expires)) in (1..).zip([(0, 100), (10, 200), (20, 300)]) {
        // The user's send_time is after the cutoff for every frame, so only storage time can
        // tell them apart.
        let frame = text_frame(&format!("m{n}"), "user-1", "text", at(1_000));
        let record = InboundRecord {
            dedup_expires_at: at(expires),
            stored_at: at(stored),
            ..inbound(&format!("k{n}"), "agent-1", "user-1", frame.clone(), None)
        };
        ok(store.append_inbound(record).await, "append_inbound");
        frames.push(frame);
    }

    let removed = ok(store.prune(at(200), at(20)).await, "prune");

    assert_eq!(
        removed, 4,
        "two dedup keys (expiring at 100 s and 200 s) and two frames (stored at 0 s and 10 s)"
    );
    let left = ok(
        store.frames_after(&agent("agent-1"), Seq(0), 10).await,
        "frames_after",
    );
    assert_eq!(
        left,
        vec![(Seq(3), frames[2].clone().with_seq(Seq(3)))],
        "only the frame stored at the cutoff remains"
    );
    let cursor = ok(store.cursor(&agent("agent-1")).await, "cursor");
    assert_eq!(cursor.last, Seq(3), "pruning keeps the last position");
    let reused = append_text(store, "k1", "agent-1", "user-1").await;
    assert_eq!(
        reused,
        AppendOutcome::Stored(Seq(4)),
        "the pruned key is free again and the next frame takes a new position"
    );
    let blocked = append_text(store, "k3", "agent-1", "user-1").await;
    assert_eq!(
        blocked,
        AppendOutcome::Duplicate,
        "the key expiring at 300 s still blocks"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// 2023-11-14T22:13:20Z, whole seconds so that `send_time` keeps it exactly.
const START: Timestamp = Timestamp(1_700_000_000_000);
/// Older than every frame in the suite, for prunes that must keep frames.
const EPOCH: Timestamp = Timestamp(0);
const WINDOW_SECS: i64 = 48 * 60 * 60;

fn at(secs: i64) -> Timestamp {
    START.plus_secs(secs)
}

/// Unwraps a store result, naming the call and the whole error chain on failure.
#[track_caller]
fn ok<T>(result: Result<T, StoreError>, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => {
            let mut message = format!("{call} failed: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            panic!("{message}")
        }
    }
}

fn acme() -> CompanyId {
    company("acme")
}

fn company(name: &str) -> CompanyId {
    CompanyId::parse(name).expect("test company id is valid")
}

fn agent(name: &str) -> AgentId {
    AgentId::parse(name).expect("test agent id is valid")
}

fn user(name: &str) -> OpenId {
    OpenId::parse(name).expect("test OpenID is valid")
}

fn connection_id(text: &str) -> ConnectionId {
    ConnectionId::parse(text).expect("test connection id is valid")
}

/// A connection of `acme` that lives two hours.
fn connection(id: &str, agent_name: &str, connected_at: Timestamp) -> Connection {
    Connection {
        id: connection_id(id),
        agent: agent(agent_name),
        company: acme(),
        connected_at,
        expires_at: connected_at.plus_secs(2 * 60 * 60),
        resume_after: None,
        greeted: false,
    }
}

fn load(agent_name: &str, contacts: u32, idle_since: Timestamp) -> AgentLoad {
    AgentLoad {
        agent: agent(agent_name),
        contacts,
        idle_since,
    }
}

fn sorted_loads(mut loads: Vec<AgentLoad>) -> Vec<AgentLoad> {
    loads.sort_by(|a, b| a.agent.cmp(&b.agent));
    loads
}

fn waiting_user(name: &str, since: Timestamp) -> QueuedUser {
    QueuedUser {
        user: user(name),
        name: String::new(),
        avatar: String::new(),
        since,
    }
}

fn text_frame(id: &str, user_name: &str, content: &str, sent_at: Timestamp) -> Frame {
    Frame::message(
        &MessageId::parse(id).expect("test message id is valid"),
        &acme(),
        &user(user_name),
        "",
        "",
        sent_at,
        &MessageBody::Text {
            content: content.to_owned(),
        },
    )
}

fn system_frame(id: &str, time: Timestamp) -> Frame {
    Frame::system(
        &MessageId::parse(id).expect("test message id is valid"),
        &acme(),
        time,
        "contact_assigned",
        "新联系人",
        Map::new(),
    )
}

/// A request to give `user_name` of `acme` to `agent_name` at `now`.
fn assignment(
    user_name: &str,
    agent_name: &str,
    now: Timestamp,
    window_closes_at: Timestamp,
    max_contacts: u32,
) -> Assignment {
    let notice_id = format!("notice-{user_name}-{agent_name}");
    Assignment {
        company: acme(),
        user: user(user_name),
        agent: agent(agent_name),
        name: String::new(),
        avatar: String::new(),
        now,
        window_closes_at,
        max_contacts,
        notice: system_frame(&notice_id, now),
    }
}

/// Runs an assignment that the check expects to succeed.
async fn assign<S: Store>(store: &S, request: Assignment) -> Vec<(Seq, Frame)> {
    let what = format!("assigning {} to {}", request.user, request.agent);
    match ok(store.try_assign(request).await, "try_assign") {
        AssignOutcome::Assigned { frames } => frames,
        other => panic!("{what}: expected Assigned, got {other:?}"),
    }
}

fn refresh(time: Timestamp) -> ContactRefresh {
    ContactRefresh {
        last_inbound_at: time,
        window_closes_at: time.plus_secs(WINDOW_SECS),
        name: None,
        avatar: None,
    }
}

fn inbound(
    dedup: &str,
    agent_name: &str,
    user_name: &str,
    frame: Frame,
    refresh: Option<ContactRefresh>,
) -> InboundRecord {
    InboundRecord {
        dedup: DedupKey::from_stored(dedup.to_owned()),
        dedup_expires_at: at(10_000),
        company: acme(),
        user: user(user_name),
        agent: agent(agent_name),
        stored_at: Timestamp::from_secs(frame.to_value()["data"]["send_time"].as_i64().unwrap()),
        frame,
        refresh,
    }
}

fn queued(dedup: &str, user_name: &str, time: Timestamp, frame: Frame) -> QueuedRecord {
    QueuedRecord {
        dedup: DedupKey::from_stored(dedup.to_owned()),
        dedup_expires_at: at(10_000),
        company: acme(),
        user: user(user_name),
        name: String::new(),
        avatar: String::new(),
        at: time,
        frame,
    }
}

/// Appends a text frame without a refresh; the dedup key doubles as the message id and text.
async fn append_text<S: Store>(
    store: &S,
    dedup: &str,
    agent_name: &str,
    user_name: &str,
) -> AppendOutcome {
    let frame = text_frame(dedup, user_name, dedup, at(0));
    let record = inbound(dedup, agent_name, user_name, frame, None);
    ok(store.append_inbound(record).await, "append_inbound")
}

/// Appends a text frame that refreshes the contact as of `time`.
async fn append_refreshing<S: Store>(
    store: &S,
    dedup: &str,
    agent_name: &str,
    user_name: &str,
    time: Timestamp,
) -> AppendOutcome {
    let frame = text_frame(dedup, user_name, "text", time);
    let record = inbound(dedup, agent_name, user_name, frame, Some(refresh(time)));
    ok(store.append_inbound(record).await, "append_inbound")
}

/// Polls all the futures until each has finished, so that their store calls are in flight
/// together without needing a runtime to spawn on.
async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut futures = futures;
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_some() {
                continue;
            }
            match future.as_mut().poll(context) {
                Poll::Ready(value) => *output = Some(value),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished before poll_fn returned"))
        .collect()
}
