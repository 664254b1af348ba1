//! The `wxkf serve` process under test: started on a free loopback port with a fresh data
//! folder, watched through `/proc`, and killed when the run ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proc_stats;

/// How long the server may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Server {
    child: Child,
    pub pid: u32,
    /// `127.0.0.1:PORT`, as the banner printed it.
    pub addr: String,
    data: tempfile::TempDir,
}

impl Server {
    /// Starts `wxkf serve` on `127.0.0.1:0` and waits for the banner that names the bound
    /// address. Every `WXKF_…` variable is removed from the child's environment, so the server
    /// runs on its defaults and reads the token secret from its data folder.
    pub async fn start(binary: &Path, store: &str) -> anyhow::Result<Server> {
        let data = tempfile::Builder::new()
            .prefix("wxkf-load-")
            .tempdir()
            .context("cannot create a data folder for the server")?;
        let log = std::fs::File::create(data.path().join("server.log"))
            .context("cannot create the server log file")?;

        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--store", store, "--data-dir"])
            .arg(data.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WXKF_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let addr = tokio::time::timeout(START_TIMEOUT, read_banner(stdout))
            .await
            .with_context(|| {
                format!("the server printed no banner within {START_TIMEOUT:?}; see its log")
            })??;
        Ok(Server {
            child,
            pid,
            addr,
            data,
        })
    }

    /// Reads the secret `wxkf serve` generated to sign agent tokens.
    pub fn token_secret(&self) -> anyhow::Result<SecretString> {
        let path = self.data.path().join("data").join("token-secret");
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(SecretString::from(secret.trim().to_owned()))
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("server.log")
    }

    /// Reads the server's peak resident set size (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM line in {path}"))
    }

    /// CPU time the server has used so far, user and system together.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        proc_stats::cpu_time(&format!("/proc/{}/stat", self.pid))
    }

    /// Kills the server and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("cannot kill the server")
    }
}

/// Reads the banner up to the line `wxkf is serving on http://ADDR …` and returns `ADDR`. A
/// background task then reads stdout to its end, so the server cannot block on a full pipe.
async fn read_banner(stdout: tokio::process::ChildStdout) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("wxkf is serving on http://") {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(addr);
        }
    }
    anyhow::bail!("the server exited before printing its address; see its log")
}
