//! A bounded load run of the local hub over loopback. It starts `wxkf serve` as a separate
//! process, connects agent WebSockets and POSTs WeChat text messages to `send_xml` with
//! bounded concurrency. It measures the time from each POST's start to the frame's arrival on
//! the agent's socket.
//!
//! It prints throughput, latency percentiles, lost messages and the server's peak memory and
//! CPU time. It exits with an error when a message was lost or a request failed; it asserts
//! nothing about speed. Everything it opens is on 127.0.0.1, and every wait is bounded by
//! `--timeout-secs`.
//!
//! - `server`: the `wxkf serve` child process and its `/proc` figures.
//! - `agents`: agent sockets and their readers.
//! - `senders`: the HTTP workers.
//! - `tracker`: per-message send and receipt instants.

mod agents;
mod proc_stats;
mod senders;
mod server;
mod tracker;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::time::Instant;
use wxkf_bench::stats::percentile;
use wxkf_core::token::TokenSigner;

use senders::{SendReport, Workload};
use server::Server;
use tracker::Tracker;

/// How often the run checks whether every accepted message has arrived.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Parser)]
#[command(about = "Load the local wxkf hub over loopback and print throughput and latency")]
struct Args {
    /// Agent WebSockets to connect.
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// Text messages to POST to send_xml.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Distinct WeChat users (OpenIDs) the messages come from, in turn.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// HTTP requests in flight, one keep-alive connection each.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server's store: sqlite or memory.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "memory"])]
    store: String,
    /// Hard limit for the whole run, from the first connection to the last receipt, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// The wxkf binary; by default the one next to this program (target/release/wxkf).
    #[arg(long)]
    wxkf: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for (name, value) in [
        ("--agents", args.agents),
        ("--messages", args.messages),
        ("--users", args.users),
        ("--concurrency", args.concurrency),
    ] {
        if value == 0 {
            anyhow::bail!("{name} must be at least 1");
        }
    }
    let binary = match &args.wxkf {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot locate this program")?
            .with_file_name("wxkf"),
    };

    let server = Server::start(&binary, &args.store).await?;
    println!(
        "wxkf load run: {} agents, {} messages from {} users, {} in flight, store {}",
        args.agents, args.messages, args.users, args.concurrency, args.store
    );
    println!(
        "server: {} (pid {}) on {}",
        binary.display(),
        server.pid,
        server.addr
    );

    let outcome = run(&args, &server).await;
    let peak_rss = server.peak_rss_kib();
    let log_path = server.log_path();
    let log_summary = summarize_log(&log_path);
    server.stop().await?;

    let figures = outcome?;
    match peak_rss {
        Ok(kib) => println!("server peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        Err(error) => println!("server peak RSS: unknown ({error:#})"),
    }
    println!("server log: {log_summary}");
    figures.check()
}

/// The figures that decide whether the run counts.
struct Figures {
    lost: usize,
    failed_requests: usize,
}

impl Figures {
    fn check(&self) -> anyhow::Result<()> {
        if self.lost > 0 || self.failed_requests > 0 {
            anyhow::bail!(
                "run invalid: {} messages lost, {} requests failed",
                self.lost,
                self.failed_requests
            );
        }
        Ok(())
    }
}

async fn run(args: &Args, server: &Server) -> anyhow::Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let tracker = Arc::new(Tracker::new(args.messages));
    let signer = TokenSigner::new(server.token_secret()?);

    let connect_started = Instant::now();
    let readers = tokio::time::timeout_at(
        deadline,
        agents::connect_all(&server.addr, &signer, args.agents, &tracker),
    )
    .await
    .context("the time limit passed while agents were connecting")??;
    println!(
        "agents connected and greeted in {:.2} s",
        connect_started.elapsed().as_secs_f64()
    );

    let server_cpu_before = server.cpu_time()?;
    let client_cpu_before = proc_stats::cpu_time("/proc/self/stat")?;
    let machine_busy_before = proc_stats::machine_busy_time()?;
    let workload = Arc::new(Workload {
        messages: args.messages,
        users: args.users,
    });
    let send_started = Instant::now();
    let sent = senders::send_all(
        &server.addr,
        workload,
        args.concurrency,
        tracker.clone(),
        deadline,
    )
    .await;
    let send_elapsed = send_started.elapsed();
    wait_for_receipts(&tracker, sent.accepted, deadline).await;
    let run_elapsed = send_started.elapsed();
    let cpu = CpuFigures {
        server: server.cpu_time()?.saturating_sub(server_cpu_before),
        client: proc_stats::cpu_time("/proc/self/stat")?.saturating_sub(client_cpu_before),
        machine: proc_stats::machine_busy_time()?.saturating_sub(machine_busy_before),
        wall: run_elapsed,
    };

    for reader in readers {
        reader.abort();
    }

    print_figures(args, &tracker, &sent, send_elapsed);
    cpu.print();

    let received = tracker.received.load(Ordering::Relaxed);
    Ok(Figures {
        lost: sent.accepted.saturating_sub(received),
        failed_requests: sent.failed,
    })
}

/// CPU time used while messages were sent and received.
struct CpuFigures {
    server: Duration,
    client: Duration,
    /// Every process on the machine, these two included.
    machine: Duration,
    wall: Duration,
}

impl CpuFigures {
    fn print(&self) {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let available = cores as f64 * self.wall.as_secs_f64();
        let others = self.machine.saturating_sub(self.server + self.client);
        println!(
            "CPU time in {:.2} s wall ({cores} cores = {available:.2} s): server {:.2} s, \
             load client {:.2} s, rest of the machine (other processes, interrupts) {:.2} s, idle {:.2} s",
            self.wall.as_secs_f64(),
            self.server.as_secs_f64(),
            self.client.as_secs_f64(),
            others.as_secs_f64(),
            (available - self.machine.as_secs_f64()).max(0.0),
        );
    }
}

/// Waits until `expected` distinct messages arrived on the sockets, or until `deadline`.
async fn wait_for_receipts(tracker: &Tracker, expected: usize, deadline: Instant) {
    while tracker.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Prints what was sent and received, throughput and latency percentiles.
fn print_figures(args: &Args, tracker: &Tracker, sent: &SendReport, send_elapsed: Duration) {
    print_counts(tracker, sent, send_elapsed);

    let received = tracker.received.load(Ordering::Relaxed);
    if let Some(span) = tracker.span_ns(0..args.messages) {
        let seconds = span as f64 / 1e9;
        println!(
            "throughput: {:.0} messages/s ({received} messages, first POST to last receipt {seconds:.2} s)",
            received as f64 / seconds
        );
    }
    print_latencies(args, tracker);

    let mut round_trips = sent.round_trips_ns.clone();
    round_trips.sort_unstable();
    println!("HTTP round trip (ms): {}", latency_line(&round_trips));
    if args.users < args.agents {
        println!("note: fewer users than agents, so some agents received nothing");
    }
}

fn print_counts(tracker: &Tracker, sent: &SendReport, send_elapsed: Duration) {
    println!(
        "sent: {} accepted (200 success), {} failed, in {:.2} s = {:.0} requests/s",
        sent.accepted,
        sent.failed,
        send_elapsed.as_secs_f64(),
        sent.accepted as f64 / send_elapsed.as_secs_f64()
    );
    if let Some(failure) = &sent.first_failure {
        println!("  first failure: {failure}");
    }

    let received = tracker.received.load(Ordering::Relaxed);
    println!(
        "received: {received} messages, lost {}, duplicates {}, system frames {}, \
         sockets closed early {}",
        sent.accepted.saturating_sub(received),
        tracker.duplicates.load(Ordering::Relaxed),
        tracker.other_frames.load(Ordering::Relaxed),
        tracker.closed_sockets.load(Ordering::Relaxed),
    );
}

/// Prints latency percentiles of all messages, then separately of the messages that assign a
/// new contact and of the rest.
fn print_latencies(args: &Args, tracker: &Tracker) {
    println!(
        "latency POST start -> socket receipt (ms): {}",
        latency_line(&tracker.latencies_ns(0..args.messages))
    );

    // Message `index` comes from user `index % users`, so the first `users` messages are the
    // ones that assign a new contact.
    let first_messages = args.users.min(args.messages);
    println!(
        "  first message of each user ({first_messages}, assigns a contact): {}",
        latency_line(&tracker.latencies_ns(0..first_messages))
    );
    if first_messages == args.messages {
        return;
    }

    let later = first_messages..args.messages;
    println!(
        "  later messages ({}): {}",
        later.len(),
        latency_line(&tracker.latencies_ns(later.clone()))
    );
    if let Some(span) = tracker.span_ns(later.clone()) {
        println!(
            "  later messages' throughput: {:.0} messages/s",
            later.len() as f64 / (span as f64 / 1e9)
        );
    }
}

/// `p50 …, p90 …, p99 …, max …` in milliseconds from ascending nanoseconds.
fn latency_line(sorted_ns: &[u64]) -> String {
    let ms = |p: f64| {
        percentile(sorted_ns, p)
            .map_or_else(|| "-".to_owned(), |ns| format!("{:.2}", ns as f64 / 1e6))
    };
    format!(
        "p50 {}, p90 {}, p99 {}, max {}",
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(100.0)
    )
}

/// Counts the warnings and errors in the server's log and quotes the first one.
fn summarize_log(path: &std::path::Path) -> String {
    let Ok(log) = std::fs::read_to_string(path) else {
        return format!("cannot read {}", path.display());
    };
    let problems: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    match problems.first() {
        None => format!("{} lines, no warnings or errors", log.lines().count()),
        Some(first) => format!(
            "{} warnings or errors; first: {}",
            problems.len(),
            first.trim()
        ),
    }
}
