use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn example(name: &str) -> PathBuf {
    repo().join("examples/flows").join(name)
}

/// A running `tokenflow` process whose stderr is collected line by line.
pub struct Cli {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Cli {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Cli {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenflow"));
        command.args(args).env_remove("TOKENFLOW_CONFIG");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Cli {
            child,
            stderr,
            lines,
        }
    }

    /// Waits (at most 60 s) for the authorization URL the CLI prints.
    pub async fn authorization_url(&mut self) -> String {
        let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(line) = self.lines.recv().await {
                if let Some(url) = line.trim().strip_prefix("http") {
                    return Some(format!("http{url}"));
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => url,
            _ => panic!(
                "no authorization URL; stderr:\n{}",
                self.stderr().join("\n")
            ),
        }
    }

    /// Waits (at most 60 s) for the first stderr line not yet read that `wanted` accepts.
    pub async fn line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(line) = self.lines.recv().await {
                if wanted(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no such line; stderr:\n{}", self.stderr().join("\n")),
        }
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the exit; returns (success, stdout, stderr).
    pub async fn finish(mut self) -> (bool, String, String) {
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("tokenflow exits")
            .unwrap();
        // Let the stderr reader catch up with the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (status.success(), stdout, self.stderr().join("\n"))
    }
}

/// Writes a tokenflow.toml with the demo server ids pointing at `idp`.
pub fn demo_config(
    dir: &Path,
    idp: &tokenflow_testkit::Idp,
    service_client: &str,
    web_client: &str,
) -> PathBuf {
    let path = dir.join("tokenflow.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[oauth_servers.demo-service]
client_id = "{service_client}"
client_secret = {{ env = "E2E_SERVICE_SECRET" }}
issuer = "{issuer}"
scope = "api:read"

[oauth_servers.demo-web]
client_id = "{web_client}"
client_secret = {{ env = "E2E_WEB_SECRET" }}
issuer = "{issuer}"
scope = "openid profile email"
request_refresh_token = true
"#,
            issuer = idp.issuer()
        ),
    )
    .unwrap();
    path
}

pub const SERVICE_SECRET: &str = "e2e-service-secret-value";
pub const WEB_SECRET: &str = "e2e-web-secret-value";
pub const SECRETS_ENV: &[(&str, &str)] = &[
    ("E2E_SERVICE_SECRET", SERVICE_SECRET),
    ("E2E_WEB_SECRET", WEB_SECRET),
];

/// The `redirect_uri` parameter of an authorization URL.
pub fn redirect_uri_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// Fails when any token the IdP issued to `client`, or a client secret, appears in `text`.
pub async fn assert_no_tokens(idp: &tokenflow_testkit::Idp, client: &str, text: &str) {
    let tokens = idp.issued_tokens(client).await;
    assert!(!tokens.is_empty(), "the IdP issued tokens to {client}");
    for token in tokens
        .iter()
        .map(String::as_str)
        .chain([SERVICE_SECRET, WEB_SECRET])
    {
        assert!(
            !text.contains(token),
            "a raw token or secret leaked into the output"
        );
    }
}
