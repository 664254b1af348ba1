//! The HTTP side: `concurrency` workers, each with one keep-alive HTTP/1.1 connection, take
//! the next message index in turn and POST its WeChat XML to `send_xml`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::tracker::{Tracker, FIRST_MSG_ID};

const SEND_XML_PATH: &str = "/im_component/wx_official_account/send_xml";

/// Outcome of all requests.
#[derive(Default)]
pub struct SendReport {
    /// Requests with the response `200 success`.
    pub accepted: usize,
    /// Requests that failed or got another response.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    /// Request round trips in nanoseconds, unsorted.
    pub round_trips_ns: Vec<u64>,
}

/// The run's messages: the sender and content of message `index`.
pub struct Workload {
    pub messages: usize,
    pub users: usize,
}

impl Workload {
    /// WeChat's text message XML for message `index`, from user `index % users`.
    fn xml(&self, index: usize, created_at: u64) -> String {
        let user = index % self.users;
        let msg_id = FIRST_MSG_ID + index as u64;
        format!(
            "<xml><ToUserName><![CDATA[gh_3f9a2c71d4e8]]></ToUserName>\
             <FromUserName><![CDATA[oLoadTest{user:019}]]></FromUserName>\
             <CreateTime>{created_at}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[压测消息 {index}：你好，请问订单什么时候发货？😀]]></Content>\
             <MsgId>{msg_id}</MsgId></xml>"
        )
    }
}

/// Sends every message of `workload` with `concurrency` requests in flight, stopping early at
/// `deadline`.
pub async fn send_all(
    addr: &str,
    workload: Arc<Workload>,
    concurrency: usize,
    tracker: Arc<Tracker>,
    deadline: Instant,
) -> SendReport {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(worker(
                addr.to_owned(),
                workload.clone(),
                next.clone(),
                tracker.clone(),
                deadline,
            ))
        })
        .collect();

    let mut total = SendReport::default();
    for worker in workers {
        let report = match worker.await {
            Ok(report) => report,
            Err(error) => SendReport {
                failed: 1,
                first_failure: Some(format!("a sender task panicked: {error}")),
                ..SendReport::default()
            },
        };
        total.accepted += report.accepted;
        total.failed += report.failed;
        total.first_failure = total.first_failure.or(report.first_failure);
        total.round_trips_ns.extend(report.round_trips_ns);
    }
    total
}

async fn worker(
    addr: String,
    workload: Arc<Workload>,
    next: Arc<AtomicUsize>,
    tracker: Arc<Tracker>,
    deadline: Instant,
) -> SendReport {
    let mut report = SendReport::default();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());

    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= workload.messages || Instant::now() >= deadline {
            return report;
        }
        let body = Bytes::from(workload.xml(index, created_at));

        let started = tracker.now_ns();
        tracker.mark_sent(index);
        let outcome = tokio::time::timeout_at(deadline, post(&addr, &mut connection, body)).await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("{error:#}")),
            Err(_) => Some("the run's time limit passed during the request".to_owned()),
        };
        match failure {
            None => {
                report.accepted += 1;
                report.round_trips_ns.push(tracker.now_ns() - started);
            }
            Some(failure) => {
                // A failed connection is not reused; the next request opens a new one.
                connection = None;
                report.failed += 1;
                report.first_failure.get_or_insert(failure);
            }
        }
    }
}

/// POSTs one body on the worker's connection, opening it first if needed, and checks for
/// WeChat's expected `200 success`.
async fn post(
    addr: &str,
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    body: Bytes,
) -> anyhow::Result<()> {
    let sender = match connection {
        Some(sender) => sender,
        None => connection.insert(open(addr).await?),
    };
    let request = Request::post(SEND_XML_PATH)
        .header(header::HOST, addr)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Full::new(body))
        .context("cannot build the request")?;
    sender.ready().await.context("the connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .context("the request failed")?;
    let status = response.status();
    let response_body = response
        .into_body()
        .collect()
        .await
        .context("cannot read the response")?
        .to_bytes();
    if status != StatusCode::OK || response_body.as_ref() != b"success" {
        anyhow::bail!(
            "send_xml responded {status}: {}",
            String::from_utf8_lossy(&response_body)
        );
    }
    Ok(())
}

async fn open(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(connection);
    Ok(sender)
}
