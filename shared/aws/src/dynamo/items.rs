//! Keys and item shapes of the single wxkf table, and the mapping between items and core types.
//! `docs/aws-dynamodb-design.md` shows the same layout as tables.
//!
//! Every item has a partition key `pk` and a sort key `sk`. Items that the sweep must find by
//! time also carry `gsi1pk`/`gsi1sk` (the `by_time` index, keys only). Items that DynamoDB's TTL
//! may delete carry `ttl` in Unix seconds; TTL deletion lags by up to days, so every read also
//! compares the item's own expiry with `now`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId, OpenId, Seq};
use wxkf_core::ports::{Connection, Contact, QueuedUser, StoreError};
use wxkf_core::time::Timestamp;

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "by_time";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
pub const TTL: &str = "ttl";

/// Partitions of the `by_time` index per kind of item. Spreading one kind over several
/// partition keys keeps every write under the per-key throughput limit of an index partition;
/// the sweep queries each shard.
pub const TIME_SHARDS: u32 = 4;

/// The kinds of item the sweep looks up by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// Contacts, by the time their window closes.
    Lapse,
    /// Dedup records, by expiry.
    Dedup,
    /// Stream frames, by the time they were stored.
    Frame,
}

impl TimeKind {
    fn prefix(self) -> &'static str {
        match self {
            TimeKind::Lapse => "LAPSE",
            TimeKind::Dedup => "DEDUP",
            TimeKind::Frame => "FRAME",
        }
    }

    /// Returns the index partition key of one shard.
    pub fn shard_key(self, shard: u32) -> String {
        format!("{}#{shard}", self.prefix())
    }

    /// Returns the index partition key for an item, chosen by a hash of its table key so that one
    /// item always lands in the same shard.
    pub fn shard_for(self, pk: &str, sk: &str) -> String {
        let digest = Sha256::new()
            .chain_update(pk.as_bytes())
            .chain_update([0])
            .chain_update(sk.as_bytes())
            .finalize();
        self.shard_key(u32::from(digest[0]) % TIME_SHARDS)
    }
}

/// Returns a time as an index sort key: milliseconds, zero-padded so that text order is time order.
/// Times before the epoch are clamped to zero.
pub fn time_sort_key(at: Timestamp) -> String {
    format!("{:015}", at.0.max(0))
}

/// Returns a stream position as a sort key, zero-padded so that text order is numeric order.
pub fn frame_sk(seq: Seq) -> String {
    format!("F#{:020}", seq.0)
}

/// The highest possible frame sort key, the upper bound of stream queries.
pub const FRAME_SK_MAX: &str = "F#99999999999999999999";

// Partition keys. Ids may contain `#`, but every key ends with the id, or puts it between
// fixed-length parts, so two different ids never produce the same key.

/// Returns an agent's partition: its stream counters, connections, contact copies and frames.
pub fn agent_pk(agent: &AgentId) -> String {
    format!("A#{agent}")
}

/// Returns the item that finds a connection by its id alone.
pub fn connection_pk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

/// Returns a company's partition: one presence item per agent that connected.
pub fn company_pk(company: &CompanyId) -> String {
    format!("CO#{company}")
}

/// Returns a company's queue: one head item per waiting user and the waiting frames.
pub fn queue_pk(company: &CompanyId) -> String {
    format!("Q#{company}")
}

/// Returns the primary contact item, found by company and user. The company id is length-prefixed
/// because both ids may contain `#`.
pub fn contact_pk(company: &CompanyId, user: &OpenId) -> String {
    format!("U#{}#{company}#{user}", company.as_str().len())
}

pub fn dedup_pk(dedup: &str) -> String {
    format!("D#{dedup}")
}

pub const META_SK: &str = "META";
pub const CONNECTION_SK: &str = "CONN";
pub const CONTACT_SK: &str = "CONTACT";
pub const DEDUP_SK: &str = "DEDUP";

pub fn agent_connection_sk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

/// Returns the sort key of a contact's copy in its agent's partition.
pub fn agent_contact_sk(company: &CompanyId, user: &OpenId) -> String {
    format!("CT#{}#{company}#{user}", company.as_str().len())
}

pub fn presence_sk(agent: &AgentId) -> String {
    format!("AG#{agent}")
}

pub fn queue_head_sk(user: &OpenId) -> String {
    format!("U#{user}")
}

/// Returns the prefix of a user's waiting frames in the company queue; the user id is length-prefixed
/// so that one user's prefix never matches another user's frames.
pub fn queue_frames_prefix(user: &OpenId) -> String {
    format!("F#{}#{user}#", user.as_str().len())
}

/// Returns a waiting frame: arrival time first so that a prefix query returns arrival order, then a
/// digest of the dedup key so that two frames in the same millisecond get distinct keys.
pub fn queue_frame_sk(user: &OpenId, at: Timestamp, dedup: &str) -> String {
    let digest = Sha256::digest(dedup.as_bytes());
    format!(
        "{}{}#{}",
        queue_frames_prefix(user),
        time_sort_key(at),
        hex::encode(&digest[..8])
    )
}

pub fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk.into())),
    ])
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads typed attributes, naming the attribute when an item is not in the expected shape.
pub struct Fields<'a>(pub &'a Item);

impl Fields<'_> {
    pub fn string(&self, name: &str) -> Result<String, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::S(value)) => Ok(value.clone()),
            _ => Err(corrupt(self.0, name, "a string")),
        }
    }

    pub fn string_or_empty(&self, name: &str) -> Result<String, StoreError> {
        match self.0.get(name) {
            None => Ok(String::new()),
            Some(_) => self.string(name),
        }
    }

    pub fn number(&self, name: &str) -> Result<i64, StoreError> {
        self.optional_number(name)?
            .ok_or_else(|| corrupt(self.0, name, "a number"))
    }

    pub fn optional_number(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value
                .parse()
                .map(Some)
                .map_err(|_| corrupt(self.0, name, "an integer")),
            Some(_) => Err(corrupt(self.0, name, "a number")),
        }
    }

    pub fn timestamp(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.number(name).map(Timestamp)
    }

    pub fn boolean(&self, name: &str) -> Result<bool, StoreError> {
        match self.0.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(value)) => Ok(*value),
            Some(_) => Err(corrupt(self.0, name, "a boolean")),
        }
    }

    pub fn id<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let text = self.string(name)?;
        parse(text).map_err(|error| StoreError::Corrupt(format!("attribute {name}: {error}")))
    }
}

fn corrupt(item: &Item, name: &str, expected: &str) -> StoreError {
    let pk = match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk.as_str(),
        _ => "?",
    };
    StoreError::Corrupt(format!("item {pk}: attribute {name} is not {expected}"))
}

/// Returns the connection's attributes, shared by its lookup item and its copy in the agent partition.
pub fn connection_attributes(connection: &Connection) -> Item {
    let mut item = HashMap::from([
        ("connection_id".to_owned(), s(connection.id.as_str())),
        ("agent".to_owned(), s(connection.agent.as_str())),
        ("company".to_owned(), s(connection.company.as_str())),
        ("connected_at".to_owned(), n(connection.connected_at.0)),
        ("expires_at".to_owned(), n(connection.expires_at.0)),
        (
            "greeted".to_owned(),
            AttributeValue::Bool(connection.greeted),
        ),
        (TTL.to_owned(), n(ttl_secs(connection.expires_at))),
    ]);
    if let Some(seq) = connection.resume_after {
        item.insert("resume_after".to_owned(), n(seq.0));
    }
    item
}

pub fn connection_from_item(item: &Item) -> Result<Connection, StoreError> {
    let fields = Fields(item);
    Ok(Connection {
        id: fields.id("connection_id", ConnectionId::parse)?,
        agent: fields.id("agent", AgentId::parse)?,
        company: fields.id("company", CompanyId::parse)?,
        connected_at: fields.timestamp("connected_at")?,
        expires_at: fields.timestamp("expires_at")?,
        resume_after: fields
            .optional_number("resume_after")?
            .map(|seq| Seq(seq.max(0) as u64)),
        greeted: fields.boolean("greeted")?,
    })
}

/// Returns the contact's attributes, shared by the primary item and the copy in the agent partition.
pub fn contact_attributes(contact: &Contact) -> Item {
    HashMap::from([
        ("company".to_owned(), s(contact.company.as_str())),
        ("user".to_owned(), s(contact.user.as_str())),
        ("agent".to_owned(), s(contact.agent.as_str())),
        ("name".to_owned(), s(contact.name.as_str())),
        ("avatar".to_owned(), s(contact.avatar.as_str())),
        ("assigned_at".to_owned(), n(contact.assigned_at.0)),
        ("last_inbound_at".to_owned(), n(contact.last_inbound_at.0)),
        ("window_closes_at".to_owned(), n(contact.window_closes_at.0)),
    ])
}

pub fn contact_from_item(item: &Item) -> Result<Contact, StoreError> {
    let fields = Fields(item);
    Ok(Contact {
        company: fields.id("company", CompanyId::parse)?,
        user: fields.id("user", OpenId::parse)?,
        agent: fields.id("agent", AgentId::parse)?,
        name: fields.string_or_empty("name")?,
        avatar: fields.string_or_empty("avatar")?,
        assigned_at: fields.timestamp("assigned_at")?,
        last_inbound_at: fields.timestamp("last_inbound_at")?,
        window_closes_at: fields.timestamp("window_closes_at")?,
    })
}

/// Returns the primary contact item with its `by_time` index keys.
pub fn contact_item(contact: &Contact) -> Item {
    let pk = contact_pk(&contact.company, &contact.user);
    let mut item = key(pk.clone(), CONTACT_SK);
    item.extend(contact_attributes(contact));
    item.insert(
        GSI1_PK.to_owned(),
        s(TimeKind::Lapse.shard_for(&pk, CONTACT_SK)),
    );
    item.insert(
        GSI1_SK.to_owned(),
        s(time_sort_key(contact.window_closes_at)),
    );
    item
}

/// Returns the contact's copy in its agent's partition, which lets an agent's contacts be counted and
/// listed with one strongly consistent query.
pub fn agent_contact_item(contact: &Contact) -> Item {
    let mut item = key(
        agent_pk(&contact.agent),
        agent_contact_sk(&contact.company, &contact.user),
    );
    item.extend(contact_attributes(contact));
    item
}

/// Returns a stored frame of an agent's stream.
pub fn frame_item(agent: &AgentId, seq: Seq, frame: &Frame, stored_at: Timestamp) -> Item {
    let pk = agent_pk(agent);
    let sk = frame_sk(seq);
    let mut item = key(pk.clone(), sk.clone());
    item.insert("frame".to_owned(), s(frame.json_without_seq().to_owned()));
    item.insert("stored_at".to_owned(), n(stored_at.0));
    item.insert(GSI1_PK.to_owned(), s(TimeKind::Frame.shard_for(&pk, &sk)));
    item.insert(GSI1_SK.to_owned(), s(time_sort_key(stored_at)));
    item
}

pub fn frame_from_item(item: &Item) -> Result<(Seq, Frame), StoreError> {
    let fields = Fields(item);
    let sk = fields.string(SK)?;
    let seq = sk
        .strip_prefix("F#")
        .and_then(|digits| digits.parse().ok())
        .map(Seq)
        .ok_or_else(|| StoreError::Corrupt(format!("frame sort key {sk:?} has no position")))?;
    let frame = parse_frame(&fields.string("frame")?)?;
    Ok((seq, frame))
}

pub fn parse_frame(json: &str) -> Result<Frame, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Corrupt(format!("stored frame is not a frame: {error}")))
}

/// Returns a dedup record: its existence makes a retry of the same message a duplicate until
/// `expires_at`.
pub fn dedup_item(dedup: &str, expires_at: Timestamp) -> Item {
    let pk = dedup_pk(dedup);
    let mut item = key(pk.clone(), DEDUP_SK);
    item.insert("expires_at".to_owned(), n(expires_at.0));
    item.insert(TTL.to_owned(), n(ttl_secs(expires_at)));
    item.insert(
        GSI1_PK.to_owned(),
        s(TimeKind::Dedup.shard_for(&pk, DEDUP_SK)),
    );
    item.insert(GSI1_SK.to_owned(), s(time_sort_key(expires_at)));
    item
}

pub fn queued_user_from_item(item: &Item) -> Result<QueuedUser, StoreError> {
    let fields = Fields(item);
    Ok(QueuedUser {
        user: fields.id("user", OpenId::parse)?,
        name: fields.string_or_empty("name")?,
        avatar: fields.string_or_empty("avatar")?,
        since: fields.timestamp("since")?,
    })
}

/// DynamoDB's TTL attribute is in whole seconds; rounding up never deletes an item early.
pub fn ttl_secs(at: Timestamp) -> i64 {
    at.0.div_euclid(1000) + i64::from(at.0.rem_euclid(1000) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact {
            company: CompanyId::parse("acme").unwrap(),
            user: OpenId::parse("oUser#1").unwrap(),
            agent: AgentId::parse("kf01").unwrap(),
            name: "小明".into(),
            avatar: String::new(),
            assigned_at: Timestamp(1_000),
            last_inbound_at: Timestamp(2_000),
            window_closes_at: Timestamp(172_802_000),
        }
    }

    #[test]
    fn contact_round_trips_through_its_item() {
        let item = contact_item(&contact());
        assert_eq!(contact_from_item(&item).unwrap(), contact());
        assert_eq!(item[PK], s("U#4#acme#oUser#1"));
        assert_eq!(item[GSI1_SK], s("000000172802000"));
    }

    #[test]
    fn connection_round_trips_and_keeps_padding() {
        let connection = Connection {
            id: ConnectionId::parse("TWegAcC4EowCHnA=").unwrap(),
            agent: AgentId::parse("kf01").unwrap(),
            company: CompanyId::parse("acme").unwrap(),
            connected_at: Timestamp(5_000),
            expires_at: Timestamp(7_205_001),
            resume_after: Some(Seq(12)),
            greeted: true,
        };
        let item = connection_attributes(&connection);
        assert_eq!(connection_from_item(&item).unwrap(), connection);
        assert_eq!(item[TTL], n(7_206));
    }

    #[test]
    fn frame_keys_sort_numerically() {
        assert!(frame_sk(Seq(9)) < frame_sk(Seq(10)));
        assert!(frame_sk(Seq(u64::MAX)).as_str() <= FRAME_SK_MAX);
    }

    #[test]
    fn ids_containing_separators_get_distinct_keys() {
        let a = contact_pk(
            &CompanyId::parse("a#b").unwrap(),
            &OpenId::parse("c").unwrap(),
        );
        let b = contact_pk(
            &CompanyId::parse("a").unwrap(),
            &OpenId::parse("b#c").unwrap(),
        );
        assert_ne!(a, b);
        let one = queue_frames_prefix(&OpenId::parse("u").unwrap());
        let other = queue_frame_sk(&OpenId::parse("u#x").unwrap(), Timestamp(1), "d");
        assert!(
            !other.starts_with(&one),
            "{other} must not match the prefix {one}"
        );
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        let first = TimeKind::Dedup.shard_for("D#x", DEDUP_SK);
        assert_eq!(first, TimeKind::Dedup.shard_for("D#x", DEDUP_SK));
        let shards: Vec<String> = (0..TIME_SHARDS)
            .map(|i| TimeKind::Dedup.shard_key(i))
            .collect();
        assert!(shards.contains(&first), "{first} is not one of {shards:?}");
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Timestamp(2_000)), 2);
        assert_eq!(ttl_secs(Timestamp(2_001)), 3);
    }
}
