//! The processes a benchmark starts: the stub API and bare reference (this binary's own
//! subcommands), `tokenflow serve`, Node-RED; and what is read off them (RSS, start-up time).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The API key every benchmark's tokenflow accepts.
pub const API_KEY: &str = "bench-api-key";

/// A child process that is killed when dropped (and, for ours, exits when its stdin closes).
#[derive(Debug)]
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the process has exited")
    }

    /// Resident set size in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid()?)
    }
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// Waits for a stdout line containing `marker`, returns the `http://…` URL on it.
async fn ready_url(child: &mut Child, marker: &str, what: &str) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(marker)
                && let Some(start) = line.find("http://")
            {
                let url = line[start..].split_whitespace().next().unwrap_or_default();
                return Some(url.trim_end_matches('/').to_owned());
            }
        }
        None
    })
    .await;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match found {
        Ok(Some(url)) => Ok(url),
        _ => bail!("{what} did not print `{marker}` within 60 s"),
    }
}

/// Starts this binary with `args` (a server subcommand that prints `READY http://…`).
pub async fn spawn_self(
    args: &[&str],
    env: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<Process> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let url = ready_url(&mut child, "READY", what).await?;
    Ok(Process { child, url })
}

/// A free loopback port (bound and released; tokenflow needs its public URL before it listens).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A `tokenflow serve` with its own data folder.
#[derive(Debug)]
pub struct Tokenflow {
    pub process: Process,
    /// From spawn to the `listening` line.
    pub listening_after: Duration,
    /// From spawn to the first `200` of `/readyz`.
    pub ready_after: Duration,
    _dir: tempfile::TempDir,
}

/// What a tokenflow instance is started with.
#[derive(Debug, Default)]
pub struct TokenflowSetup {
    /// `[oauth_servers.*]` TOML sections.
    pub servers: String,
    /// `(file name, YAML)` flows.
    pub flows: Vec<(String, String)>,
    /// Environment variables (the client secrets; `TOKENFLOW_MASTER_KEY` for instances that
    /// share a database).
    pub env: Vec<(String, String)>,
    /// `database_url`: PostgreSQL instead of SQLite in the data folder.
    pub database_url: Option<String>,
}

impl Tokenflow {
    pub async fn start(bin: &Path, setup: &TokenflowSetup) -> anyhow::Result<Tokenflow> {
        let dir = tempfile::tempdir()?;
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&flows)?;
        for (name, yaml) in &setup.flows {
            std::fs::write(flows.join(name), yaml)?;
        }
        let port = free_port()?;
        let config = dir.path().join("tokenflow.toml");
        let database = setup
            .database_url
            .as_ref()
            .map(|url| format!("database_url = \"{url}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"data\"\n{database}flows_dir = \"flows\"\napi_keys = [\"{API_KEY}\"]\n\n{}",
                setup.servers
            ),
        )?;
        let begun = Instant::now();
        let mut command = Command::new(bin);
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("TOKENFLOW_CONFIG")
            .env_remove("TOKENFLOW_MASTER_KEY")
            .env("TOKENFLOW_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in &setup.env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let url = ready_url(&mut child, "listening on", "tokenflow serve").await?;
        let listening_after = begun.elapsed();
        wait_until_ok(
            &format!("{url}/readyz"),
            begun,
            60,
            Duration::from_millis(2),
        )
        .await?;
        Ok(Tokenflow {
            process: Process { child, url },
            listening_after,
            ready_after: begun.elapsed(),
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url)
    }

    /// Its data folder (`tokenflow.db` on SQLite, `master.key`).
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }
}

/// The Node-RED peer from `bench/peers` (installed by `bench/run` with `npm ci`).
#[derive(Debug)]
pub struct NodeRed {
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl NodeRed {
    pub async fn start(peers: &Path, env: &[(&str, String)]) -> anyhow::Result<NodeRed> {
        let red = peers.join("node_modules/node-red/red.js");
        if !red.exists() {
            bail!(
                "Node-RED is not installed in {}: run `npm ci` there (bench/run does)",
                peers.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut command = Command::new("node");
        command
            .arg(&red)
            .arg("--settings")
            .arg(peers.join("settings.js"))
            .arg("--userDir")
            .arg(dir.path())
            .env("NR_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().context("cannot start Node-RED (node)")?;
        let url = format!("http://127.0.0.1:{port}");
        let begun = Instant::now();
        wait_until_ok(
            &format!("{url}/ready"),
            begun,
            90,
            Duration::from_millis(100),
        )
        .await?;
        Ok(NodeRed {
            process: Process { child, url },
            _dir: dir,
        })
    }
}

/// Polls `url` every `every` until it answers a success, failing `limit_secs` after `begun`.
async fn wait_until_ok(
    url: &str,
    begun: Instant,
    limit_secs: u64,
    every: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().build()?;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if begun.elapsed() > Duration::from_secs(limit_secs) {
            bail!("{url} did not answer within {limit_secs} s");
        }
        tokio::time::sleep(every).await;
    }
}

/// The repository root (this crate sits in `bench/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
