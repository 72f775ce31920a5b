//! Where the engine finds OAuth servers: a trait so the server can back it with its store (servers
//! created through the API) while the CLI uses the configuration file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tokenflow_connectors::oauth::discovery::resolve_endpoints;
use tokenflow_core::OAuthServer;

/// Looks OAuth servers up by id.
pub trait ServerDirectory: Send + Sync + fmt::Debug {
    fn get(&self, id: &str) -> Option<OAuthServer>;
    fn ids(&self) -> BTreeSet<String>;
}

/// A fixed set of servers (from the configuration file).
#[derive(Debug, Clone, Default)]
pub struct StaticServers {
    servers: BTreeMap<String, OAuthServer>,
}

impl StaticServers {
    pub fn new(servers: BTreeMap<String, OAuthServer>) -> Self {
        Self { servers }
    }

    /// Fills missing endpoints by discovery once, so runs do not repeat it. A server whose
    /// discovery fails is kept as it is (its actions will report the failure) and named in the
    /// returned warnings.
    pub async fn resolve_endpoints(
        &mut self,
        tls: &tokenflow_connectors::http::TlsClients,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        for (id, server) in &mut self.servers {
            match resolve_endpoints(tls, server).await {
                Ok(resolved) => *server = resolved,
                Err(err) => warnings.push(format!("OAuth server `{id}`: {err}")),
            }
        }
        warnings
    }
}

impl ServerDirectory for StaticServers {
    fn get(&self, id: &str) -> Option<OAuthServer> {
        self.servers.get(id).cloned()
    }

    fn ids(&self) -> BTreeSet<String> {
        self.servers.keys().cloned().collect()
    }
}
