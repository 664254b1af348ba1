//! Measures the per-message cost of turning WeChat message XML into the JSON text an agent's
//! socket receives: `wechat::parse_xml`, then the frame as the hub builds it (see
//! `wxkf_bench::render`). Storing and pushing are not included.
//!
//! Each round converts every corpus message `--iterations` times; one untimed warm-up round
//! runs first and the median round is reported. `scripts/bench-xml.sh` runs this next to
//! `bench/wechatpy_parse.py` on the same corpus and reads the `median:` line.

/// The allocator `wxkf serve` uses, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use wxkf_bench::{corpus, render, stats};
use wxkf_core::config::AccountDirectory;
use wxkf_core::ids::{CompanyId, Seq};

#[derive(Parser)]
#[command(about = "Time WeChat XML to agent frame conversion per message")]
struct Args {
    /// Corpus file: XML messages separated by blank lines, or a JSON array of XML strings.
    corpus: PathBuf,
    /// Passes over the corpus in each timed round.
    #[arg(long, default_value_t = 2000)]
    iterations: u64,
    /// Timed rounds; the median round is reported.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Print each message's frame as one JSON line and exit without timing.
    #[arg(long)]
    dump: bool,
    /// Also time each corpus message on its own and print one line per message.
    #[arg(long)]
    per_message: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.iterations == 0 || args.rounds == 0 {
        anyhow::bail!("--iterations and --rounds must be at least 1");
    }
    let messages = corpus::read(&args.corpus)?;
    let directory = AccountDirectory::single(
        CompanyId::parse("default").expect("\"default\" is a valid company id"),
    );

    // Every message must convert before timing starts, so the timed loop measures only
    // successful conversions.
    for (index, xml) in messages.iter().enumerate() {
        let frame = render::frame_json(xml.as_bytes(), &directory, Seq(index as u64 + 1))
            .with_context(|| format!("corpus message {index} is invalid"))?;
        if args.dump {
            println!("{}", frame.unwrap_or_else(|| "null".to_owned()));
        }
    }
    if args.dump {
        return Ok(());
    }

    println!(
        "wxkf parse_xml + frame JSON: {} messages, {} iterations per round, {} rounds",
        messages.len(),
        args.iterations,
        args.rounds
    );
    run_round(&messages, &directory, args.iterations)?;
    let mut ns_per_message = Vec::with_capacity(args.rounds as usize);
    for round in 1..=args.rounds {
        let ns = run_round(&messages, &directory, args.iterations)?;
        println!("  round {round}: {ns:.1} ns/message");
        ns_per_message.push(ns);
    }
    let median = stats::median(&mut ns_per_message).expect("at least one round ran");
    println!(
        "median: {median:.1} ns/message, {:.0} messages/s",
        1e9 / median
    );
    // The median sorted the rounds, so the first is the fastest.
    println!("best round: {:.1} ns/message", ns_per_message[0]);

    if args.per_message {
        print_per_message(&messages, &directory, args.iterations, args.rounds)?;
    }
    Ok(())
}

/// Converts the corpus `iterations` times and returns the mean nanoseconds per message.
fn run_round(
    messages: &[String],
    directory: &AccountDirectory,
    iterations: u64,
) -> anyhow::Result<f64> {
    let mut seq = 0;
    let mut output_bytes = 0usize;
    let start = Instant::now();
    for _ in 0..iterations {
        for xml in messages {
            seq += 1;
            let frame = render::frame_json(black_box(xml.as_bytes()), directory, Seq(seq))?;
            output_bytes += black_box(frame).map_or(0, |json| json.len());
        }
    }
    let elapsed = start.elapsed();
    black_box(output_bytes);
    Ok(elapsed.as_nanos() as f64 / (iterations * messages.len() as u64) as f64)
}

/// Times each message alone (median of `rounds`) and prints it with its size and frame kind.
fn print_per_message(
    messages: &[String],
    directory: &AccountDirectory,
    iterations: u64,
    rounds: u32,
) -> anyhow::Result<()> {
    println!("per message (median ns, XML bytes, frame kind):");
    for (index, xml) in messages.iter().enumerate() {
        let single = std::slice::from_ref(xml);
        let mut samples = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
            samples.push(run_round(single, directory, iterations)?);
        }
        let ns = stats::median(&mut samples).expect("at least one round ran");
        let kind = render::frame_json(xml.as_bytes(), directory, Seq(1))?
            .and_then(|json| frame_kind(&json))
            .unwrap_or_else(|| "not forwarded".to_owned());
        println!("  {index:>3} {ns:>8.1} ns {:>5} B  {kind}", xml.len());
    }
    Ok(())
}

/// Returns the `msg_type` of a frame, or the `event` of a system frame.
fn frame_kind(json: &str) -> Option<String> {
    let frame: serde_json::Value = serde_json::from_str(json).ok()?;
    let data = &frame["data"];
    let kind = match data["msg_type"].as_str()? {
        "system" => data["data"]["event"].as_str()?,
        msg_type => msg_type,
    };
    Some(kind.to_owned())
}
