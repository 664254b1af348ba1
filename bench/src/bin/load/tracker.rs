//! Send and receipt instants of every message in the run, shared by the HTTP senders and the
//! socket readers without locks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// The first MsgId of a run. The run's ids have 20 digits, like recent WeChat MsgIds, and still
/// fit a `u64`. A socket reader therefore turns a frame id into a message index without
/// allocating.
pub const FIRST_MSG_ID: u64 = 10_000_000_000_000_000_000;

/// Start of a message frame up to the value of `data.id`, which the hub serializes first.
const ID_PREFIX: &str = r#"{"data":{"id":""#;

pub struct Tracker {
    origin: Instant,
    /// Nanoseconds from `origin` to each POST's start; 0 while unsent.
    sent_at: Vec<AtomicU64>,
    /// Nanoseconds from `origin` to each frame's first receipt; 0 while not received.
    received_at: Vec<AtomicU64>,
    pub received: AtomicUsize,
    /// Frames of a message that had already arrived.
    pub duplicates: AtomicUsize,
    /// Frames with an id that is not one of this run's messages: the system frames.
    pub other_frames: AtomicUsize,
    /// Agent sockets that closed or failed while the run was going on.
    pub closed_sockets: AtomicUsize,
}

impl Tracker {
    pub fn new(messages: usize) -> Tracker {
        Tracker {
            origin: Instant::now(),
            sent_at: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            received_at: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            received: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            other_frames: AtomicUsize::new(0),
            closed_sockets: AtomicUsize::new(0),
        }
    }

    /// Nanoseconds since the tracker was created, never 0.
    pub fn now_ns(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    pub fn mark_sent(&self, index: usize) {
        self.sent_at[index].store(self.now_ns(), Ordering::Relaxed);
    }

    /// Records a text frame from an agent socket.
    pub fn mark_frame(&self, frame: &str) {
        let now = self.now_ns();
        let Some(index) = self.message_index(frame) else {
            self.other_frames.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let first = self.received_at[index]
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if first {
            self.received.fetch_add(1, Ordering::Relaxed);
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns the message index of a frame's `data.id`. The prefix check is a fast path for
    /// the hub's field order, and any other layout is parsed as JSON.
    fn message_index(&self, frame: &str) -> Option<usize> {
        let id = match frame.strip_prefix(ID_PREFIX) {
            Some(rest) => rest.split('"').next()?.parse::<u64>().ok()?,
            None => {
                let value: serde_json::Value = serde_json::from_str(frame).ok()?;
                value["data"]["id"].as_str()?.parse::<u64>().ok()?
            }
        };
        let index = usize::try_from(id.checked_sub(FIRST_MSG_ID)?).ok()?;
        (index < self.sent_at.len()).then_some(index)
    }

    /// Latencies from POST start to receipt of the messages with an index in `indexes`, in
    /// nanoseconds, ascending.
    pub fn latencies_ns(&self, indexes: std::ops::Range<usize>) -> Vec<u64> {
        let indexes = indexes.start.min(self.sent_at.len())..indexes.end.min(self.sent_at.len());
        let mut latencies: Vec<u64> = self.sent_at[indexes.clone()]
            .iter()
            .zip(&self.received_at[indexes])
            .filter_map(|(sent, received)| {
                let sent = sent.load(Ordering::Relaxed);
                let received = received.load(Ordering::Relaxed);
                (sent != 0 && received != 0).then(|| received.saturating_sub(sent))
            })
            .collect();
        latencies.sort_unstable();
        latencies
    }

    /// Nanoseconds from the first POST start to the last receipt among the messages with an
    /// index in `indexes`, or `None` before any of them arrived.
    pub fn span_ns(&self, indexes: std::ops::Range<usize>) -> Option<u64> {
        let indexes = indexes.start.min(self.sent_at.len())..indexes.end.min(self.sent_at.len());
        let first_sent = self.sent_at[indexes.clone()]
            .iter()
            .map(|at| at.load(Ordering::Relaxed))
            .filter(|&at| at != 0)
            .min()?;
        let last_received = self.received_at[indexes]
            .iter()
            .map(|at| at.load(Ordering::Relaxed))
            .max()
            .filter(|&at| at != 0)?;
        Some(last_received.saturating_sub(first_sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_map_to_message_indexes() {
        let tracker = Tracker::new(10);
        tracker.mark_sent(3);
        tracker.mark_frame(r#"{"data":{"id":"10000000000000000003","name":""},"result":{}}"#);
        tracker.mark_frame(r#"{"result":{},"data":{"id":"10000000000000000003"}}"#);
        tracker.mark_frame(r#"{"data":{"id":"evabc","msg_type":"system"}}"#);
        tracker.mark_frame(r#"{"data":{"id":"10000000000000000010"}}"#);

        assert_eq!(
            tracker.received.load(Ordering::Relaxed),
            1,
            "first frame of message 3"
        );
        assert_eq!(
            tracker.duplicates.load(Ordering::Relaxed),
            1,
            "second frame of message 3"
        );
        assert_eq!(
            tracker.other_frames.load(Ordering::Relaxed),
            2,
            "system and out-of-range"
        );
        assert_eq!(
            tracker.latencies_ns(0..10).len(),
            1,
            "latencies of all messages"
        );
        assert_eq!(
            tracker.latencies_ns(4..20).len(),
            0,
            "latencies after message 3"
        );
    }
}
