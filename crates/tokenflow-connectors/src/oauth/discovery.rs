//! OpenID Connect Discovery 1.0 §4: fills an OAuth server's missing endpoints from
//! `<issuer>/.well-known/openid-configuration`.
//!
//! The document's `issuer` must equal the configured one (§4.3), with one documented exception:
//! Microsoft Entra ID's multi-tenant documents (`common`, `organizations`) carry the literal
//! template `https://login.microsoftonline.com/{tenantid}/v2.0`, so a template `{tenantid}` segment
//! matches any configured tenant path. That template is accepted here only: the `iss` of an
//! authorization response is compared exactly (see `authorize::check_callback_issuer`).
//! Explicitly configured endpoints always win over discovered ones.
//!
//! Every discovery goes through [`discovery_client`]: the server's own `tls_ca` (an issuer behind
//! a private CA), never its client certificate (the document is public). The registry's start-up
//! discovery and each connector's use the same rule, so a server that works later also resolves
//! at start-up.

use serde::Deserialize;
use tokenflow_core::{DiscoveredIssuer, OAuthServer};
use url::Url;

use crate::http::{
    MAX_RESPONSE_BYTES, ReadBodyError, TlsClients, error_chain, json_problem, read_body_limited,
};

/// The members of the discovery document that tokenflow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207 §3: the provider puts `iss` into every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("OAuth server `{server}` has no `issuer` to discover endpoints from")]
    NoIssuer { server: String },
    #[error("could not fetch {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is not a valid discovery document: {reason}")]
    Invalid { url: String, reason: String },
    #[error("the discovery document's issuer `{found}` does not match the configured `{expected}`")]
    IssuerMismatch { expected: String, found: String },
}

/// The discovery URL for an issuer (OIDC Discovery §4: append to the issuer, keeping its path).
pub fn discovery_url(issuer: &Url) -> Result<Url, url::ParseError> {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration"))
}

/// Fetches and checks the issuer's metadata.
pub async fn fetch_metadata(
    http: &reqwest::Client,
    server: &OAuthServer,
) -> Result<ProviderMetadata, DiscoveryError> {
    let issuer = server
        .issuer
        .as_ref()
        .ok_or_else(|| DiscoveryError::NoIssuer {
            server: server.id.clone(),
        })?;
    let url = discovery_url(issuer).map_err(|err| DiscoveryError::Invalid {
        url: issuer.to_string(),
        reason: err.to_string(),
    })?;
    let shown = url.to_string();
    let response = http
        .get(url)
        .timeout(server.timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| DiscoveryError::Transport {
            url: shown.clone(),
            detail: error_chain(&err),
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DiscoveryError::Status { url: shown, status });
    }
    let body = read_body_limited(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|err| match err {
            ReadBodyError::TooLarge { .. } => DiscoveryError::Invalid {
                url: shown.clone(),
                reason: err.to_string(),
            },
            ReadBodyError::Transport(err) => DiscoveryError::Transport {
                url: shown.clone(),
                detail: error_chain(&err),
            },
        })?;
    parse_metadata(issuer, &shown, &body)
}

/// Reads and checks a discovery document fetched from `url` for `issuer`.
pub fn parse_metadata(
    issuer: &Url,
    url: &str,
    body: &[u8],
) -> Result<ProviderMetadata, DiscoveryError> {
    let metadata: ProviderMetadata =
        serde_json::from_slice(body).map_err(|err| DiscoveryError::Invalid {
            url: url.to_owned(),
            reason: json_problem(&err),
        })?;
    if !issuer_matches(issuer.as_str(), &metadata.issuer) {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

/// The server with endpoints it lacks taken from `metadata`.
pub fn apply_metadata(server: &OAuthServer, metadata: &ProviderMetadata) -> OAuthServer {
    let mut resolved = server.clone();
    if resolved.authorization_url.is_none() {
        resolved.authorization_url = metadata.authorization_endpoint.clone();
    }
    if resolved.token_url.is_none() {
        resolved.token_url = metadata.token_endpoint.clone();
    }
    if resolved.revocation_url.is_none() {
        resolved.revocation_url = metadata.revocation_endpoint.clone();
    }
    if resolved.device_authorization_url.is_none() {
        resolved
            .device_authorization_url
            .clone_from(&metadata.device_authorization_endpoint);
    }
    resolved.discovered = DiscoveredIssuer {
        // A template names no tenant; responses carry the configured (tenant-specific) issuer.
        issuer: (!metadata.issuer.contains("{tenantid}")).then(|| metadata.issuer.clone()),
        iss_parameter_supported: metadata.authorization_response_iss_parameter_supported,
    };
    resolved
}

/// The client a discovery document of `server` is fetched with: trusting the server's `tls_ca`
/// (besides the global one and the system's roots), without its client certificate. A `tls_ca`
/// that cannot be used fails the discovery with its reason.
pub fn discovery_client(
    tls: &TlsClients,
    server: &OAuthServer,
) -> Result<reqwest::Client, DiscoveryError> {
    tls.client(None, server.tls_ca.as_deref())
        .map_err(|err| DiscoveryError::Transport {
            url: server
                .issuer
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            detail: err.to_string(),
        })
}

/// Fetches the document with [`discovery_client`] and fills what `server` lacks.
async fn discover(tls: &TlsClients, server: &OAuthServer) -> Result<OAuthServer, DiscoveryError> {
    let http = discovery_client(tls, server)?;
    let metadata = fetch_metadata(&http, server).await?;
    Ok(apply_metadata(server, &metadata))
}

/// Fills missing endpoints by discovery when an issuer is configured; otherwise returns the server
/// unchanged.
pub async fn resolve_endpoints(
    tls: &TlsClients,
    server: &OAuthServer,
) -> Result<OAuthServer, DiscoveryError> {
    let complete = server.token_url.is_some() && server.authorization_url.is_some();
    if complete || server.issuer.is_none() {
        return Ok(server.clone());
    }
    discover(tls, server).await
}

/// [`resolve_endpoints`], and also discovery when the revocation endpoint (RFC 7009) is missing
/// and an issuer is configured: what `oauth_revoke_token` needs.
pub async fn resolve_revocation_endpoints(
    tls: &TlsClients,
    server: &OAuthServer,
) -> Result<OAuthServer, DiscoveryError> {
    if server.revocation_url.is_some() || server.issuer.is_none() {
        return resolve_endpoints(tls, server).await;
    }
    discover(tls, server).await
}

/// [`resolve_endpoints`], and also discovery when the device authorization endpoint (RFC 8628
/// §4) is missing and an issuer is configured: what `oauth_device_login` needs.
pub async fn resolve_device_endpoints(
    tls: &TlsClients,
    server: &OAuthServer,
) -> Result<OAuthServer, DiscoveryError> {
    if server.device_authorization_url.is_some() || server.issuer.is_none() {
        return resolve_endpoints(tls, server).await;
    }
    discover(tls, server).await
}

/// Every endpoint a server may use, discovered once when a server is loaded: the document is
/// read when any of them is missing and an issuer is configured.
pub async fn resolve_every_endpoint(
    tls: &TlsClients,
    server: &OAuthServer,
) -> Result<OAuthServer, DiscoveryError> {
    if server.device_authorization_url.is_some() {
        return resolve_revocation_endpoints(tls, server).await;
    }
    resolve_device_endpoints(tls, server).await
}

/// Issuer comparison of OIDC Discovery §4.3 (exact, ignoring one trailing slash), plus the Entra
/// `{tenantid}` template segment. Only for the discovery document (and ID tokens checked against
/// the configured issuer), never for the `iss` of an authorization response.
pub fn issuer_matches(configured: &str, found: &str) -> bool {
    let configured = configured.trim_end_matches('/');
    let found = found.trim_end_matches('/');
    if configured == found {
        return true;
    }
    if !found.contains("{tenantid}") {
        return false;
    }
    let configured_parts: Vec<&str> = configured.split('/').collect();
    let found_parts: Vec<&str> = found.split('/').collect();
    configured_parts.len() == found_parts.len()
        && configured_parts
            .iter()
            .zip(&found_parts)
            .all(|(c, f)| *f == "{tenantid}" || c == f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_of_the_wrong_shape_is_refused_without_quoting_its_values() {
        // serde's message quotes a wrong-typed member whole, of any length.
        let issuer = Url::parse("https://idp.example").unwrap();
        let long = "x".repeat(100_000);
        let body = format!(
            r#"{{"issuer":"https://idp.example","code_challenge_methods_supported":"{long}"}}"#
        );
        let err = parse_metadata(
            &issuer,
            "https://idp.example/.well-known/openid-configuration",
            body.as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.len() < 300, "{} bytes", err.len());
        assert!(err.contains("expected a sequence"), "{err}");
        let err = parse_metadata(&issuer, "u", b"{}").unwrap_err().to_string();
        assert!(err.contains("missing field `issuer`"), "{err}");
    }

    #[test]
    fn issuers_match_exactly_or_through_the_entra_template() {
        assert!(issuer_matches("http://127.0.0.1:9/", "http://127.0.0.1:9"));
        assert!(!issuer_matches("http://127.0.0.1:9", "http://127.0.0.1:10"));
        assert!(issuer_matches(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        ));
        assert!(!issuer_matches(
            "https://evil.example/contoso/v2.0",
            "https://login.microsoftonline.com/{tenantid}/v2.0"
        ));
    }

    #[test]
    fn discovery_url_keeps_the_issuer_path() {
        let url = discovery_url(&Url::parse("https://login.microsoftonline.com/t/v2.0").unwrap())
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
        );
    }
}
