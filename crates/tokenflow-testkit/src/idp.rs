//! The local test identity provider: a real `oidc-provider` process per test.
//!
//! Contract (see `tests/idp/README.md`): `node tests/idp/server.mjs` listens on 127.0.0.1:0,
//! prints `IDP_READY <issuer>`, exits when its stdin closes, and offers `/_test/*` admin routes to
//! register clients, read token-endpoint counters and revoke grants.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// The `tests/idp` folder of the repository.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp")
}

/// The client for the IdP's admin routes: trusting the PKI's CA when the issuer is HTTPS.
fn admin_client(pki: Option<&crate::TestPki>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(pki) = pki {
        let ca = reqwest::Certificate::from_pem(pki.read("ca.pem").as_bytes()).expect("ca.pem");
        builder = builder.add_root_certificate(ca);
    }
    builder.build().expect("client builds")
}

/// A running test IdP; the process is killed when this is dropped.
#[derive(Debug)]
pub struct Idp {
    _child: Child,
    issuer: Url,
    /// The HTTPS listener that asks for client certificates, when started with a PKI.
    tls_base: Option<String>,
    http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
}

/// One request that reached the IdP's token endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequestRecord {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    /// `basic`, `post`, `jwt` (a `client_assertion`) or `none`.
    pub auth_method: String,
    /// Whether the body carried a `client_secret`.
    #[serde(default)]
    pub client_secret_in_body: bool,
    /// The decoded JOSE header of the `client_assertion`, if one was sent.
    #[serde(default)]
    pub assertion_header: Option<serde_json::Value>,
    /// The decoded JOSE header of the JWT bearer grant's `assertion` (RFC 7523 §2.1), if any.
    #[serde(default)]
    pub grant_assertion_header: Option<serde_json::Value>,
    /// The RFC 8707 `resource` parameter as sent: a string, a list of them, or none.
    #[serde(default)]
    pub resource: Option<serde_json::Value>,
    pub status: u16,
    pub error: Option<String>,
    /// Why the provider refused, beyond `error` (oidc-provider's `error_detail`, which its
    /// answer leaves out).
    #[serde(default)]
    pub error_detail: Option<String>,
    /// When the request reached the IdP, in milliseconds since the Unix epoch (the IdP's clock).
    #[serde(default)]
    pub at: u64,
    /// Whether the request came over the HTTPS listener.
    #[serde(default)]
    pub tls: bool,
    /// The subject of the client certificate presented in the TLS handshake, e.g.
    /// `CN=tokenflow-client`.
    #[serde(default)]
    pub client_certificate_subject: Option<String>,
}

/// A client registered at the IdP by a test.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl Idp {
    /// Installs the IdP's npm packages if needed, starts it and waits until it listens.
    pub async fn start() -> Idp {
        Self::start_with(None).await
    }

    /// Also listens with HTTPS (the PKI's `server.pem`), asking for client certificates and
    /// trusting those `ca.pem` signed (RFC 8705 `tls_client_auth`; see [`Idp::tls_url`]).
    pub async fn start_with_tls(pki: &crate::TestPki) -> Idp {
        Self::start_with(Some(pki)).await
    }

    /// Like [`Idp::start_with_tls`], but the HTTPS listener is the issuer: its discovery
    /// document and endpoints are reached only by a client that trusts the PKI's `ca.pem`.
    pub async fn start_with_tls_issuer(pki: &crate::TestPki) -> Idp {
        Self::spawn(Some(pki), true).await
    }

    async fn start_with(pki: Option<&crate::TestPki>) -> Idp {
        Self::spawn(pki, false).await
    }

    async fn spawn(pki: Option<&crate::TestPki>, tls_issuer: bool) -> Idp {
        ensure_installed();
        let script = idp_dir().join("server.mjs");
        let mut command = Command::new("node");
        if let Some(pki) = pki {
            command
                .env("IDP_TLS_CERT", pki.path("server.pem"))
                .env("IDP_TLS_KEY", pki.path("server.key"))
                .env("IDP_TLS_CA", pki.path("ca.pem"));
            if tls_issuer {
                command.env("IDP_TLS_ISSUER", "1");
            }
        }
        let mut child = command
            .arg(&script)
            .env("IDP_PORT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start the test IdP with `node {}`: {err}. Install Node.js >= 20.",
                    script.display()
                )
            });
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut tls_base = None;
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(base) = line.strip_prefix("IDP_TLS ") {
                    tls_base = Some(base.trim().to_owned());
                }
                if let Some(issuer) = line.strip_prefix("IDP_READY ") {
                    return Some(issuer.trim().to_owned());
                }
            }
            None
        })
        .await;
        let issuer = match ready {
            Ok(Some(issuer)) => issuer,
            _ => panic!(
                "the test IdP did not print IDP_READY within 30 s; its stderr:\n{}",
                stderr.lock().map(|s| s.clone()).unwrap_or_default()
            ),
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Idp {
            _child: child,
            issuer: Url::parse(&issuer).expect("IDP_READY carries a URL"),
            tls_base,
            http: admin_client(pki.filter(|_| tls_issuer)),
            stderr,
        }
    }

    /// The issuer, e.g. `http://127.0.0.1:40123` (no trailing slash in the IdP's own metadata).
    pub fn issuer(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// An absolute URL on the IdP.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// An absolute URL on the HTTPS listener (started with [`Idp::start_with_tls`]).
    pub fn tls_url(&self, path: &str) -> String {
        let base = self
            .tls_base
            .as_deref()
            .expect("the IdP was started with start_with_tls");
        format!("{base}{path}")
    }

    pub fn token_url(&self) -> String {
        self.url("/token")
    }

    pub fn authorization_url(&self) -> String {
        self.url("/auth")
    }

    /// What the IdP wrote to stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Registers a client; `options` may hold `rotate_refresh_token`, `issue_refresh_token`,
    /// `token_type`, `access_token_ttl`, `refresh_token_ttl` (see `tests/idp/README.md`).
    pub async fn register(&self, metadata: Value, options: Value) {
        let mut body = json!({ "metadata": metadata });
        if let (Some(body), Some(options)) = (body.as_object_mut(), options.as_object()) {
            for (key, value) in options {
                body.insert(key.clone(), value.clone());
            }
        }
        let response = self
            .http
            .post(self.url("/_test/clients"))
            .json(&body)
            .send()
            .await
            .expect("IdP admin reachable");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 201, "client registration failed: {text}");
    }

    /// A confidential client-credentials client with scopes `api:read api:write`.
    pub async fn client_credentials_client(&self, id: &str, secret: &str) -> TestClient {
        self.register(
            json!({
                "client_id": id,
                "client_secret": secret,
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": "api:read api:write",
            }),
            json!({}),
        )
        .await;
        TestClient {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
        }
    }

    /// A confidential authorization-code client with the refresh grant.
    pub async fn web_client(
        &self,
        id: &str,
        secret: &str,
        redirect_uri: &str,
        options: Value,
    ) -> TestClient {
        self.register(
            json!({
                "client_id": id,
                "client_secret": secret,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "redirect_uris": [redirect_uri],
                "scope": "openid profile email offline_access api:read",
            }),
            options,
        )
        .await;
        TestClient {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
        }
    }

    /// A confidential client of the device authorization grant (RFC 8628) that may also
    /// refresh; `options` as for `POST /_test/clients` (`device_code_ttl`, `device_interval`).
    pub async fn device_client(&self, id: &str, secret: &str, options: Value) -> TestClient {
        self.register(
            json!({
                "client_id": id,
                "client_secret": secret,
                "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
                "response_types": [],
                "redirect_uris": [],
                "scope": "openid profile offline_access api:read",
            }),
            options,
        )
        .await;
        TestClient {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
        }
    }

    /// Every token-endpoint request of `client_id`, in order.
    pub async fn token_requests(&self, client_id: &str) -> Vec<TokenRequestRecord> {
        #[derive(Deserialize)]
        struct Stats {
            token_requests: Vec<TokenRequestRecord>,
        }
        let mut url = Url::parse(&self.url("/_test/stats")).expect("valid");
        url.query_pairs_mut().append_pair("client_id", client_id);
        let stats: Stats = self
            .http
            .get(url)
            .send()
            .await
            .expect("IdP admin reachable")
            .json()
            .await
            .expect("stats JSON");
        stats.token_requests
    }

    /// Every token value the IdP ever issued to `client_id` (access, refresh, client-credentials
    /// tokens and authorization codes), to assert that none of them leaked anywhere.
    pub async fn issued_tokens(&self, client_id: &str) -> Vec<String> {
        let mut url = Url::parse(&self.url("/_test/tokens")).expect("valid");
        url.query_pairs_mut().append_pair("client_id", client_id);
        let value: Value = self
            .http
            .get(url)
            .send()
            .await
            .expect("IdP admin reachable")
            .json()
            .await
            .expect("tokens JSON");
        let mut tokens = Vec::new();
        if let Some(groups) = value.as_object() {
            for list in groups.values() {
                for token in list.as_array().into_iter().flatten() {
                    if let Some(token) = token.as_str() {
                        tokens.push(token.to_owned());
                    }
                }
            }
        }
        tokens
    }

    /// Every refresh token the IdP issued to `client_id` (whether still valid or not).
    pub async fn refresh_tokens(&self, client_id: &str) -> Vec<String> {
        let mut url = Url::parse(&self.url("/_test/tokens")).expect("valid");
        url.query_pairs_mut().append_pair("client_id", client_id);
        let value: Value = self
            .http
            .get(url)
            .send()
            .await
            .expect("IdP admin reachable")
            .json()
            .await
            .expect("tokens JSON");
        value["refresh_tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|token| token.as_str().map(str::to_owned))
            .collect()
    }

    /// A refresh-token grant sent straight to the IdP as `client` (secret in the body), to see
    /// whether a refresh token still works there: (HTTP status, body).
    pub async fn refresh_directly(&self, client: &TestClient, refresh_token: &str) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.id.as_str()),
        ];
        if let Some(secret) = &client.secret {
            form.push(("client_secret", secret.as_str()));
        }
        let response = self
            .http
            .post(self.token_url())
            .form(&form)
            .send()
            .await
            .expect("IdP reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Revokes every grant of `client_id`; returns how many were revoked.
    pub async fn revoke_grants(&self, client_id: &str) -> u64 {
        let value: Value = self
            .http
            .post(self.url("/_test/revoke"))
            .json(&json!({ "client_id": client_id }))
            .send()
            .await
            .expect("IdP admin reachable")
            .json()
            .await
            .expect("revoke JSON");
        value["revoked"].as_u64().unwrap_or(0)
    }

    /// RFC 7009 revocation of one access token, authenticated as `client`: the token dies, its
    /// grant (and refresh token) lives on.
    pub async fn revoke_access_token(&self, client: &TestClient, token: &str) {
        let mut form = vec![
            ("token", token),
            ("token_type_hint", "access_token"),
            ("client_id", client.id.as_str()),
        ];
        if let Some(secret) = &client.secret {
            form.push(("client_secret", secret.as_str()));
        }
        let response = self
            .http
            .post(self.url("/token/revocation"))
            .form(&form)
            .send()
            .await
            .expect("IdP reachable");
        assert_eq!(response.status().as_u16(), 200, "revocation refused");
    }

    /// RFC 7662 introspection of `token`, authenticated as `client`.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let mut form = vec![("token", token), ("client_id", client.id.as_str())];
        if let Some(secret) = &client.secret {
            form.push(("client_secret", secret.as_str()));
        }
        self.http
            .post(self.url("/token/introspection"))
            .form(&form)
            .send()
            .await
            .expect("IdP reachable")
            .json()
            .await
            .expect("introspection JSON")
    }

    /// The userinfo endpoint with `token` as bearer: (HTTP status, body).
    pub async fn userinfo(&self, token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("IdP reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Runs `npm ci` in `tests/idp` once (under a file lock, since test processes run in parallel).
fn ensure_installed() {
    let dir = idp_dir();
    let marker = dir.join("node_modules/oidc-provider/package.json");
    if marker.exists() {
        return;
    }
    let lock_path = dir.join(".install.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|err| panic!("cannot lock {}: {err}", lock_path.display()));
    if marker.exists() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run `npm ci` in {}: {err}. Install Node.js >= 20 and npm.",
                dir.display()
            )
        });
    assert!(status.success(), "`npm ci` in {} failed", dir.display());
}
