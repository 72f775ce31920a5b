//! What executing an action needs: the connectors, the OAuth servers, the callback settings, the
//! vault and the run limits. The [`crate::Engine`] owns one and hands it to [`crate::actions`], so
//! executing an action does not depend on the engine that routes between actions.

use std::sync::Arc;

use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_core::RunLimits;

use crate::servers::ServerDirectory;
use crate::vault::StoreVault;

/// The injected clients and settings that actions run against.
#[derive(Debug, Clone)]
pub struct ActionContext {
    pub(crate) oauth: OAuthConnectors,
    pub(crate) http: HttpConnector,
    pub(crate) servers: Arc<dyn ServerDirectory>,
    pub(crate) redirect: RedirectSettings,
    pub(crate) vault: Option<Arc<StoreVault>>,
    pub(crate) limits: RunLimits,
}

impl ActionContext {
    pub fn limits(&self) -> &RunLimits {
        &self.limits
    }

    pub fn vault(&self) -> Option<&StoreVault> {
        self.vault.as_deref()
    }

    pub fn oauth(&self) -> &OAuthConnectors {
        &self.oauth
    }

    pub fn http(&self) -> &HttpConnector {
        &self.http
    }

    pub fn servers(&self) -> &dyn ServerDirectory {
        self.servers.as_ref()
    }

    pub fn redirect(&self) -> &RedirectSettings {
        &self.redirect
    }
}
