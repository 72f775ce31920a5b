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
            // The default log level (`info`: a line per run), written to a file as a service
            // manager would take it.
            .env_remove("TOKENFLOW_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(
                dir.path().join("tokenflow.log"),
            )?))
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

    /// The file its log (standard error) goes to.
    pub fn log_path(&self) -> PathBuf {
        self._dir.path().join("tokenflow.log")
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

/// The n8n peer from `bench/peers/n8n` (installed by `bench/run` with `npm ci`).
#[derive(Debug)]
pub struct N8n {
    pub process: Process,
    /// From `n8n start` to the first right answer of the webhook.
    pub ready_after: Duration,
    _dir: tempfile::TempDir,
}

/// The encryption key of every n8n user folder the suite creates (fresh ones, thrown away after
/// the run): fixed so the credential can be imported before n8n first starts.
const N8N_ENCRYPTION_KEY: &str = "tokenflow-bench-n8n-encryption-key";

/// Where the n8n peer gets its token and calls the stub.
#[derive(Debug)]
pub struct N8nSetup {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: String,
    pub stub_url: String,
}

impl N8n {
    pub async fn start(peers: &Path, setup: &N8nSetup) -> anyhow::Result<N8n> {
        let folder = peers.join("n8n");
        let bin = folder.join("node_modules/n8n/bin/n8n");
        if !bin.exists() {
            bail!(
                "n8n is not installed in {}: run `npm ci` there (bench/run does)",
                folder.display()
            );
        }
        let dir = tempfile::tempdir()?;
        // The credential is written at run time (it holds the IdP's URL and the client secret)
        // into the throw-away folder; `import:credentials` encrypts it with the key above.
        let credentials = dir.path().join("credentials.json");
        let credential = serde_json::json!([{
            "id": "benchCredential1",
            "name": "test IdP client credentials",
            "type": "oAuth2Api",
            "data": {
                "grantType": "clientCredentials",
                "accessTokenUrl": setup.token_url,
                "clientId": setup.client_id,
                "clientSecret": setup.client_secret,
                "scope": setup.scope,
                "authentication": "header",
            },
        }]);
        std::fs::write(&credentials, serde_json::to_vec(&credential)?)?;
        let port = free_port()?;
        let env = n8n_env(dir.path(), port, setup);
        let cli = |args: &[&str]| {
            let mut command = Command::new("node");
            command
                .arg(&bin)
                .args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            command
        };
        let workflow = folder.join("workflow.json");
        let credentials_arg = format!("--input={}", credentials.display());
        let workflow_arg = format!("--input={}", workflow.display());
        for args in [
            &["import:credentials", credentials_arg.as_str()][..],
            &["import:workflow", workflow_arg.as_str()][..],
            &["update:workflow", "--id=benchWorkflow001", "--active=true"][..],
        ] {
            let out = cli(args)
                .output()
                .await
                .context("cannot start n8n (node)")?;
            if !out.status.success() {
                bail!(
                    "`n8n {}` failed ({}): {}{}",
                    args[0],
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let begun = Instant::now();
        let child = cli(&["start"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start n8n (node)")?;
        let url = format!("http://127.0.0.1:{port}");
        // n8n answers `/healthz` before it has registered the webhooks of active workflows, so
        // readiness is the webhook's first right answer.
        let webhook = format!("{url}/webhook/run");
        let http = reqwest::Client::builder().build()?;
        loop {
            if let Ok(response) = http.post(&webhook).send().await
                && response.status().is_success()
                && let Ok(body) = response.json::<serde_json::Value>().await
                && body["name"] == crate::servers::EXPECTED_NAME
            {
                break;
            }
            if begun.elapsed() > Duration::from_secs(180) {
                bail!("n8n's webhook {webhook} did not answer within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(N8n {
            process: Process { child, url },
            ready_after: begun.elapsed(),
            _dir: dir,
        })
    }
}

/// n8n's whole environment (nothing inherited): a fresh user folder with the default SQLite
/// database, loopback only, and everything that would call out switched off; the endpoints of
/// those features point at a closed loopback port too, so nothing can leave the machine.
fn n8n_env(folder: &Path, port: u16, setup: &N8nSetup) -> Vec<(String, String)> {
    let nowhere = "http://127.0.0.1:9/";
    let mut env: Vec<(String, String)> = [
        ("N8N_LISTEN_ADDRESS", "127.0.0.1"),
        ("N8N_HOST", "127.0.0.1"),
        ("N8N_PROTOCOL", "http"),
        ("N8N_ENCRYPTION_KEY", N8N_ENCRYPTION_KEY),
        ("N8N_LOG_LEVEL", "warn"),
        // n8n writes its settings file itself; 0600 instead of a warning on every start.
        ("N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS", "true"),
        ("N8N_DIAGNOSTICS_ENABLED", "false"),
        ("N8N_DIAGNOSTICS_CONFIG_FRONTEND", ""),
        ("N8N_DIAGNOSTICS_CONFIG_BACKEND", ""),
        ("N8N_DIAGNOSTICS_POSTHOG_API_HOST", nowhere),
        ("N8N_VERSION_NOTIFICATIONS_ENABLED", "false"),
        ("N8N_VERSION_NOTIFICATIONS_ENDPOINT", nowhere),
        ("N8N_VERSION_NOTIFICATIONS_INFO_URL", nowhere),
        ("N8N_TEMPLATES_ENABLED", "false"),
        ("N8N_TEMPLATES_HOST", nowhere),
        ("N8N_HIRING_BANNER_ENABLED", "false"),
        ("N8N_PERSONALIZATION_ENABLED", "false"),
        ("N8N_DYNAMIC_BANNERS_ENABLED", "false"),
        ("N8N_DYNAMIC_BANNERS_ENDPOINT", nowhere),
        ("N8N_COMMUNITY_PACKAGES_ENABLED", "false"),
        ("N8N_COMMUNITY_PACKAGES_REGISTRY", nowhere),
        ("N8N_LICENSE_AUTO_RENEW_ENABLED", "false"),
        ("N8N_LICENSE_SERVER_URL", nowhere),
        ("EXTERNAL_FRONTEND_HOOKS_URLS", ""),
        ("N8N_PUBLIC_API_DISABLED", "true"),
        ("N8N_AI_ENABLED", "false"),
        ("N8N_RUNNERS_ENABLED", "false"),
        // The workflow reads the stub's URL with `$env.STUB_URL`.
        ("N8N_BLOCK_ENV_ACCESS_IN_NODE", "false"),
        ("NO_PROXY", "*"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.push(("N8N_PORT".to_owned(), port.to_string()));
    env.push(("N8N_USER_FOLDER".to_owned(), folder.display().to_string()));
    env.push(("STUB_URL".to_owned(), setup.stub_url.clone()));
    // Its home is the throw-away folder too, so nothing is written elsewhere.
    env.push(("HOME".to_owned(), folder.display().to_string()));
    for key in ["PATH", "LANG", "TZ"] {
        if let Ok(value) = std::env::var(key) {
            env.push((key.to_owned(), value));
        }
    }
    env
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n8n_gets_every_outside_call_switched_off_and_only_loopback_urls() {
        let setup = N8nSetup {
            token_url: "http://127.0.0.1:1/token".to_owned(),
            client_id: "c".to_owned(),
            client_secret: "the-client-secret".to_owned(),
            scope: "api:read".to_owned(),
            stub_url: "http://127.0.0.1:2".to_owned(),
        };
        let env = n8n_env(Path::new("/tmp/n8n-user"), 5678, &setup);
        // The secret goes into the imported credential, never into n8n's environment.
        assert!(
            env.iter()
                .all(|(_, value)| !value.contains("the-client-secret"))
        );
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{key} is not set"))
        };
        for key in [
            "N8N_DIAGNOSTICS_ENABLED",
            "N8N_VERSION_NOTIFICATIONS_ENABLED",
            "N8N_TEMPLATES_ENABLED",
            "N8N_HIRING_BANNER_ENABLED",
            "N8N_PERSONALIZATION_ENABLED",
            "N8N_DYNAMIC_BANNERS_ENABLED",
            "N8N_COMMUNITY_PACKAGES_ENABLED",
            "N8N_LICENSE_AUTO_RENEW_ENABLED",
        ] {
            assert_eq!(get(key), "false", "{key}");
        }
        assert_eq!(get("N8N_LISTEN_ADDRESS"), "127.0.0.1");
        assert_eq!(get("N8N_USER_FOLDER"), "/tmp/n8n-user");
        assert_eq!(get("HOME"), "/tmp/n8n-user");
        for (key, value) in &env {
            if value.contains("://") {
                assert!(value.starts_with("http://127.0.0.1:"), "{key}={value}");
            }
        }
    }
}
