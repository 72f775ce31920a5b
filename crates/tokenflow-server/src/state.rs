//! The application state: data only, built once by the composition root ([`crate::startup`]) and
//! shared by every handler. The background tasks belong to the run lifecycle
//! ([`tokenflow_runtime::Runtime::spawn`]), which [`crate::serve`] starts and stops.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokenflow_runtime::Runtime;
use url::Url;

use crate::auth::attempts::FailedAttempts;
use crate::auth::tokens::SessionKeys;
use crate::ui::templates::Templates;

/// Settings of the server that handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of links and of the default redirect URI.
    pub public_url: Url,
    /// How long a client may take to send a request's head (also how long a keep-alive
    /// connection may stay idle).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
    /// How long one server-sent event stream of the UI lives at most; the browser reconnects.
    pub event_stream_max: Duration,
}
impl Settings {
    /// Cookies get `Secure` when the server is reached over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// An absolute link under the public URL.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The run lifecycle (store, runner, catalog, registry, metrics, clock); its parts are
    /// reached through the state directly (`state.runner`), see the `Deref` below.
    pub runtime: Runtime,
    pub settings: Arc<Settings>,
    /// SHA-256 (hex) of the API keys from the configuration; keys created through the CLI live
    /// hashed in the store.
    pub config_key_hashes: Arc<BTreeSet<String>>,
    /// Derives the web UI sessions' CSRF tokens and key references.
    pub session_keys: SessionKeys,
    /// The web UI's page templates.
    pub templates: Arc<Templates>,
    /// Failed API-key checks and UI sign-ins per client address (docs/security.md).
    pub failed_attempts: Arc<FailedAttempts>,
}

/// Handlers use the lifecycle's parts as the state's own (`state.store`, `state.catalog`): the
/// state is the runtime plus what only HTTP needs.
impl Deref for AppState {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}
