//! The `wxkf` command: `serve` runs the hub, `token` mints an agent token, `api-key` prints the
//! key the JSON route accepts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;
use wxkf::app::{self, ServeOptions, StoreKind};
use wxkf::data_dir::DataDir;
use wxkf::server::BASE_PATH;
use wxkf_core::config::Config;
use wxkf_core::ids::{AgentId, CompanyId};
use wxkf_core::time::{Clock, SystemClock};
use wxkf_core::token::TokenSigner;

/// mimalloc, as the hub allocates a few short strings per message and mimalloc serves those
/// faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wxkf",
    version,
    about = "WeChat Official Account customer-service hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: HTTP routes, agent WebSocket and the local @connections endpoint.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Folder for the database and generated secrets; created when missing.
        #[arg(long, default_value = "wxkf-data")]
        data_dir: PathBuf,
        /// Where state is kept.
        #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
        store: StoreKind,
    },
    /// Print a token for an agent's WebSocket URL (only the token, on stdout).
    Token {
        /// The agent's id, as passed in `userid`.
        agent_id: String,
        /// Folder holding the token secret (ignored when WXKF_TOKEN_SECRET is set).
        #[arg(long, default_value = "wxkf-data")]
        data_dir: PathBuf,
        /// The agent's company; defaults to WXKF_DEFAULT_COMPANY or "default".
        #[arg(long)]
        company: Option<String>,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24.0)]
        ttl_hours: f64,
    },
    /// Print the API key the JSON `send` route accepts (only the key, on stdout).
    ApiKey {
        /// Folder holding the generated key (ignored when WXKF_API_KEYS is set).
        #[arg(long, default_value = "wxkf-data")]
        data_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config =
        Config::from_lookup(|name| std::env::var(name).ok()).context("invalid configuration")?;

    match Cli::parse().command {
        Command::Serve {
            addr,
            data_dir,
            store,
        } => serve(addr, data_dir, store, config).await,
        Command::Token {
            agent_id,
            data_dir,
            company,
            ttl_hours,
        } => {
            let agent = AgentId::parse(agent_id).context("invalid AGENT_ID")?;
            let company = match company {
                Some(company) => CompanyId::parse(company).context("invalid --company")?,
                None => config.directory.default_company.clone(),
            };
            if !(ttl_hours > 0.0 && ttl_hours.is_finite()) {
                anyhow::bail!("--ttl-hours must be a positive number, got {ttl_hours}");
            }
            let signer = signer(&config, &data_dir)?;
            let expires_at = SystemClock.now().plus_secs((ttl_hours * 3600.0) as i64);
            println!("{}", signer.mint(&agent, &company, expires_at));
            Ok(())
        }
        Command::ApiKey { data_dir } => {
            match config.api_keys.first() {
                Some(key) => println!("{}", key.expose_secret()),
                None => println!("{}", DataDir::open(&data_dir)?.api_key()?.expose_secret()),
            }
            Ok(())
        }
    }
}

fn signer(config: &Config, data_dir: &std::path::Path) -> anyhow::Result<TokenSigner> {
    Ok(TokenSigner::new(match config.token_secret.clone() {
        Some(secret) => secret,
        None => DataDir::open(data_dir)?.token_secret()?,
    }))
}

async fn serve(
    addr: SocketAddr,
    data_dir: PathBuf,
    store: StoreKind,
    config: Config,
) -> anyhow::Result<()> {
    let options = ServeOptions {
        addr,
        data_dir: data_dir.clone(),
        store,
    };
    let server = app::start(options, config.clone()).await?;
    print_banner(server.addr, &data_dir, &config)?;
    server.wait().await;
    Ok(())
}

/// Prints a ready-to-use agent URL and a sample request for each route.
fn print_banner(
    addr: SocketAddr,
    data_dir: &std::path::Path,
    config: &Config,
) -> anyhow::Result<()> {
    let agent = AgentId::parse("agent01").expect("agent01 is a valid agent id");
    let company = &config.directory.default_company;
    let token =
        signer(config, data_dir)?.mint(&agent, company, SystemClock.now().plus_secs(24 * 3600));
    let api_key = match config.api_keys.first() {
        Some(key) => key.expose_secret().to_owned(),
        None => DataDir::open(data_dir)?
            .api_key()?
            .expose_secret()
            .to_owned(),
    };
    let base = format!("http://{addr}{BASE_PATH}");
    println!(
        r#"wxkf is serving on http://{addr} (data in {data})

Agent WebSocket for agent01 of company {company} (token valid 24 h; mint others with `wxkf token ID`):
  ws://{addr}{BASE_PATH}/msg?userid=agent01&token={token}
  Send {{"action":"heartbeat"}} first: the contact list and waiting messages follow.

JSON route:
  curl -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \
    -d '{{"data":{{"msg_type":"text","contact_id":"oUser123","data":{{"content":"你好"}}}},"result":{{"code":1001,"message":"common"}}}}' \
    {base}/send

WeChat XML route:
  curl -H 'Content-Type: text/xml' \
    -d '<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId></xml>' \
    {base}/send_xml

WeChat server verification (answers echostr once WXKF_WECHAT_TOKEN is set and the signature is right):
  curl '{base}/send_xml?signature=SIGNATURE&timestamp=TIMESTAMP&nonce=NONCE&echostr=ECHOSTR'

Liveness:
  curl http://{addr}/healthz
"#,
        data = data_dir.display(),
    );
    Ok(())
}
