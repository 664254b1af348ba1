//! Counts the AWS calls one inbound text message costs, for one agent with one open socket,
//! against moto: every DynamoDB request is counted by an interceptor, and every push is one
//! `PostToConnection` call. BENCHMARKS.md (section AWS) explains each call.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use wxkf_aws::{clients, create_table, DynamoStore, TableConfig};
use wxkf_core::config::HubSettings;
use wxkf_core::hub::{Hub, Received};
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId, MessageId, OpenId};
use wxkf_core::memory::RecordingPusher;
use wxkf_core::message::{Inbound, InboundKind, MessageBody, Profile};
use wxkf_core::time::{Clock, ManualClock, Timestamp};
use wxkf_core::token::AgentClaims;

/// DynamoDB operations by name (`GetItem`, `TransactWriteItems`, …), read from the
/// `x-amz-target` header of each request sent.
#[derive(Debug, Default, Clone)]
struct CallCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl CallCounter {
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}

fn text_message(id: &str, at: Timestamp) -> Inbound {
    Inbound {
        company: CompanyId::parse("acme").unwrap(),
        user: OpenId::parse("oUser1").unwrap(),
        profile: Profile::default(),
        sent_at: at,
        kind: InboundKind::Message {
            id: MessageId::parse(id).unwrap(),
            body: MessageBody::Text {
                content: "你好".into(),
            },
        },
    }
}

fn total(calls: &BTreeMap<String, usize>) -> usize {
    calls.values().sum()
}

#[tokio::test]
async fn text_message_call_counts() {
    let sdk = clients::local_sdk_config(&support::moto_endpoint()).await;
    let counter = CallCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = TableConfig::new(support::fresh_table_name());
    create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoStore::new(client, table));
    let pusher = Arc::new(RecordingPusher::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let hub = Hub::new(store, pusher.clone(), clock.clone(), HubSettings::default());

    let claims = AgentClaims {
        agent: AgentId::parse("kf01").unwrap(),
        company: CompanyId::parse("acme").unwrap(),
        expires_at: Timestamp::from_secs(1_900_000_000),
    };
    let socket = ConnectionId::parse("TWegAcC4EowCHnA=").unwrap();
    hub.connect(&claims, socket.clone(), None).await.unwrap();
    hub.handle_frame(&socket, r#"{"action":"heartbeat"}"#)
        .await
        .unwrap();
    counter.take();
    pusher.take(&socket);

    let first = hub
        .receive(text_message("1001", clock.now()))
        .await
        .unwrap();
    let first_calls = counter.take();
    let first_pushes = pusher.take(&socket).len();
    clock.advance_secs(5);
    let next = hub
        .receive(text_message("1002", clock.now()))
        .await
        .unwrap();
    let next_calls = counter.take();
    let next_pushes = pusher.take(&socket).len();

    println!("first message (assigns the user): {first_calls:?} + {first_pushes} PostToConnection");
    println!(
        "next message (user already assigned): {next_calls:?} + {next_pushes} PostToConnection"
    );
    assert!(
        matches!(first, Received::Delivered { sockets: 1, .. }),
        "got {first:?}"
    );
    assert!(
        matches!(next, Received::Delivered { sockets: 1, .. }),
        "got {next:?}"
    );
    assert_eq!(next_pushes, 1, "one push for one socket");
    assert_eq!(
        next_calls,
        BTreeMap::from([
            ("GetItem".to_owned(), 2),
            ("Query".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1),
            ("UpdateItem".to_owned(), 1),
        ]),
        "a message to an assigned user: contact, stream counter, write, sockets, delivered"
    );
    assert_eq!(
        total(&next_calls) + next_pushes,
        6,
        "AWS calls per message in all"
    );
    assert_eq!(first_pushes, 2, "the assignment notice and the message");
    assert_eq!(
        total(&first_calls),
        16,
        "a message that assigns its user also reads the queue and the agents' loads: {first_calls:?}"
    );
}
