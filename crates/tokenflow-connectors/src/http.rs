//! The HTTP client used for token requests and the bounded reading of response bodies.
//!
//! One client is built at start-up and injected everywhere (connection pooling, one TLS config).
//! It follows no redirects (docs/security.md: a token endpoint that redirects is misconfigured or hostile,
//! and following it could post credentials elsewhere) and always has timeouts.
//!
//! A connection that must present a client certificate (`tls_client_auth`, RFC 8705; the
//! `client_certificate` of `http_connector`) or trust an extra CA (`tls_ca`) needs a client of its
//! own, because reqwest fixes both when a client is built. [`TlsClients`] builds those on first
//! use and keeps them by what they present and trust, at most [`MAX_TLS_CLIENTS`] (the oldest is
//! dropped first), so an OAuth server keeps one client for all its requests and everything else
//! shares the default client (ARCHITECTURE.md, "Per-certificate HTTP clients").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokenflow_core::ClientCertificate;

/// The HTTP client type used throughout, so other crates need no direct reqwest dependency.
pub use reqwest::Client;
/// reqwest's error type, for callers that build clients.
pub use reqwest::Error as ReqwestError;

/// Largest token-endpoint or discovery body read; larger ones are rejected, not truncated.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Connection-establishment timeout; the per-request timeout comes from the OAuth server config.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds tokenflow's HTTP client: rustls, no redirects, a connect timeout and a default overall
/// timeout that per-request settings override.
pub fn build_client(default_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    token_client_builder(default_timeout).build()
}

fn token_client_builder(default_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(default_timeout)
        .user_agent(concat!("tokenflow/", env!("CARGO_PKG_VERSION")))
}

/// The settings of `http_connector`'s clients: rustls, a 10 s connect timeout, no redirects, no
/// `Referer`, no overall timeout (every call sets its own).
pub fn action_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("tokenflow/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
}

/// The most clients [`TlsClients`] keeps (each holds its own connection pool).
pub const MAX_TLS_CLIENTS: usize = 64;

/// Why a client with a client certificate or an extra CA could not be built. Names no key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_ca is not usable: {0}")]
    Ca(String),
    #[error(
        "the client certificate or its private key is not usable (do they belong together?): {0}"
    )]
    Identity(String),
}

/// Clients for connections that present a client certificate or trust extra CAs, built on
/// first use and kept (bounded) by what they present and trust; plus the default client, which
/// trusts the global `tls_ca`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsClients {
    inner: Arc<TlsInner>,
}

#[derive(Debug)]
struct TlsInner {
    kind: ClientKind,
    global_ca: Option<String>,
    default: reqwest::Client,
    cache: Mutex<VecDeque<(String, reqwest::Client)>>,
}

/// Which settings a client is built with.
#[derive(Debug, Clone, Copy)]
enum ClientKind {
    /// Token, revocation and discovery requests ([`build_client`]).
    Token { default_timeout: Duration },
    /// `http_connector` (its own settings, see `http_action`).
    Action,
}

impl TlsClients {
    /// For token, revocation and discovery requests: [`build_client`]'s settings, trusting
    /// `global_ca` (PEM) besides the system's roots.
    pub fn for_tokens(
        default_timeout: Duration,
        global_ca: Option<String>,
    ) -> Result<Self, TlsError> {
        Self::new(ClientKind::Token { default_timeout }, global_ca)
    }

    /// For `http_connector` calls, trusting `global_ca` (PEM) besides the system's roots.
    pub fn for_actions(global_ca: Option<String>) -> Result<Self, TlsError> {
        Self::new(ClientKind::Action, global_ca)
    }

    /// Token clients around an existing default client (no global CA).
    pub fn around(default: reqwest::Client, default_timeout: Duration) -> Self {
        Self::with_default(ClientKind::Token { default_timeout }, None, default)
    }

    /// `http_connector` clients around an existing default client (no global CA).
    pub fn around_actions(default: reqwest::Client) -> Self {
        Self::with_default(ClientKind::Action, None, default)
    }

    fn new(kind: ClientKind, global_ca: Option<String>) -> Result<Self, TlsError> {
        let default = build(kind, global_ca.as_deref(), None, None)?;
        Ok(Self::with_default(kind, global_ca, default))
    }

    fn with_default(kind: ClientKind, global_ca: Option<String>, default: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(TlsInner {
                kind,
                global_ca,
                default,
                cache: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// The client without a client certificate or an extra CA.
    pub fn default_client(&self) -> &reqwest::Client {
        &self.inner.default
    }

    /// The client that presents `identity` and trusts `ca` (PEM) too; the default client when
    /// both are absent.
    pub fn client(
        &self,
        identity: Option<&ClientCertificate>,
        ca: Option<&str>,
    ) -> Result<reqwest::Client, TlsError> {
        if identity.is_none() && ca.is_none() {
            return Ok(self.inner.default.clone());
        }
        let mut digest = Sha256::new();
        digest.update(identity.map_or("", ClientCertificate::identity_digest));
        digest.update([0]);
        digest.update(ca.unwrap_or(""));
        let key: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Ok(cache) = self.inner.cache.lock()
            && let Some((_, client)) = cache.iter().find(|(k, _)| *k == key)
        {
            return Ok(client.clone());
        }
        let client = build(
            self.inner.kind,
            self.inner.global_ca.as_deref(),
            ca,
            identity,
        )?;
        if let Ok(mut cache) = self.inner.cache.lock()
            && !cache.iter().any(|(k, _)| *k == key)
        {
            if cache.len() >= MAX_TLS_CLIENTS {
                cache.pop_front();
            }
            cache.push_back((key, client.clone()));
        }
        Ok(client)
    }

    /// How many clients are kept besides the default one.
    pub fn cached(&self) -> usize {
        self.inner.cache.lock().map_or(0, |cache| cache.len())
    }
}

fn build(
    kind: ClientKind,
    global_ca: Option<&str>,
    ca: Option<&str>,
    identity: Option<&ClientCertificate>,
) -> Result<reqwest::Client, TlsError> {
    let mut builder = match kind {
        ClientKind::Token { default_timeout } => token_client_builder(default_timeout),
        ClientKind::Action => action_client_builder(),
    };
    for pem in [global_ca, ca].into_iter().flatten() {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|err| TlsError::Ca(error_chain(&err)))?;
        builder = builder.tls_certs_merge(certificates);
    }
    if let Some(identity) = identity {
        let identity = reqwest::Identity::from_pem(identity.identity_pem().expose().as_bytes())
            .map_err(|err| TlsError::Identity(error_chain(&err)))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|err| match identity {
        Some(_) => TlsError::Identity(error_chain(&err)),
        None => TlsError::Ca(error_chain(&err)),
    })
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("the response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the response body could not be read")]
    Transport(#[source] reqwest::Error),
}

/// Reads a response body of at most `limit` bytes, stopping as soon as the limit is passed so a
/// hostile or broken server cannot make tokenflow buffer an unbounded body.
pub async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadBodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ReadBodyError::TooLarge { limit });
    }
    // Sized once from Content-Length (already checked against the limit) rather than doubled.
    let announced = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(ReadBodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadBodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What is wrong with a JSON body, without repeating the body: serde's messages quote an
/// offending value whole (a string of any length, perhaps a credential), so only its own words
/// are kept — the category, a missing field's name, what was expected — and the position.
pub fn json_problem(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = err.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    let what = match err.classify() {
        Category::Eof => "it ends early".to_owned(),
        Category::Syntax => "a syntax error".to_owned(),
        Category::Io => "a read error".to_owned(),
        Category::Data if text.starts_with("missing field `") => text.to_owned(),
        // The last ", expected " is serde's own: it follows the quoted value.
        Category::Data => match text.rsplit_once(", expected ") {
            Some((_, expected)) => format!("a value of the wrong type (expected {expected})"),
            None => "a value of the wrong type".to_owned(),
        },
    };
    format!("{what} at line {} column {}", err.line(), err.column())
}

/// The error and all its causes on one line, for `error_description` outputs. Token endpoint URLs
/// never carry secrets, so reqwest's messages (which name the URL) are safe to show.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
