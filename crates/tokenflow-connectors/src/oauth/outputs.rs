//! The outputs every OAuth connector produces (docs/connectors.md, docs/flows.md), typed by its status enum.

use std::collections::BTreeMap;

use serde_json::Value;
use tokenflow_core::SecretString;

use super::token_endpoint::TokenError;
use super::token_response::{TokenResponse, Warning};
use crate::status::ConnectorStatus;

/// A connector's outputs. Which fields a connector fills follows Thinkwise's documentation: `oauth_server_login`
/// has no `granted_scopes`/`refresh_token`; the others have all of them.
#[derive(Debug, Clone)]
pub struct TokenOutputs<S> {
    pub status: S,
    pub access_token: Option<SecretString>,
    pub granted_scopes: Option<String>,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<SecretString>,
    pub token_type: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type` (token exchange only).
    pub issued_token_type: Option<String>,
    /// RFC 6749 §5.2 error code from the provider, or tokenflow's own reason code.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Tolerated deviations of the provider's response (docs/connectors.md).
    pub warnings: Vec<Warning>,
    /// Unknown response members (`id_token`, `ext_expires_in`, Entra's `trace_id`, …); secret-looking
    /// values are fingerprints. For the monitor.
    pub response: BTreeMap<String, Value>,
    /// The `response_fields` output: the response members the server's `response_fields` names
    /// (Salesforce's `instance_url`), masked like `response`.
    pub response_fields: BTreeMap<String, Value>,
}

impl<S: ConnectorStatus> TokenOutputs<S> {
    /// Outputs with only a status, to be filled in.
    pub fn with_status(status: S) -> Self {
        Self {
            status,
            access_token: None,
            granted_scopes: None,
            expires_in: None,
            refresh_token: None,
            token_type: None,
            issued_token_type: None,
            error: None,
            error_description: None,
            warnings: Vec::new(),
            response: BTreeMap::new(),
            response_fields: BTreeMap::new(),
        }
    }

    /// A failure with tokenflow's or the provider's reason.
    pub fn failure(status: S, error: impl Into<String>, description: impl Into<String>) -> Self {
        let mut outputs = Self::with_status(status);
        outputs.error = Some(error.into());
        outputs.error_description = Some(description.into());
        outputs
    }

    /// A failure caused by the token endpoint, keeping the provider's extra members.
    pub fn from_token_error(status: S, err: &TokenError) -> Self {
        let mut outputs = Self::failure(status, err.error_code(), err.description());
        if let TokenError::Provider { error, .. } = err {
            outputs.response = error.extra.clone();
        }
        outputs
    }

    /// A success from a token response.
    pub fn success(status: S, response: TokenResponse) -> Self {
        Self {
            status,
            token_type: Some(response.token_type_or_bearer()),
            access_token: Some(response.access_token),
            granted_scopes: response.scope,
            expires_in: response.expires_in,
            refresh_token: response.refresh_token,
            issued_token_type: response.issued_token_type,
            error: None,
            error_description: None,
            warnings: response.warnings,
            response: response.extra,
            response_fields: response.fields,
        }
    }

    pub fn status_code(&self) -> i32 {
        self.status.code()
    }
}
