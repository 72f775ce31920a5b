//! OAuth servers: those of the configuration file, overridden by those created through the API
//! (kept in the store, secret encrypted). Endpoints are discovered once when a server is loaded or
//! saved, not on every token request. The engine reads servers synchronously from memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tokenflow_connectors::http::TlsClients;
use tokenflow_connectors::oauth::discovery::resolve_every_endpoint;
use tokenflow_connectors::oauth::{ConnectorStatus, OAuthConnectors};
use tokenflow_core::providers::Parameter;
use tokenflow_core::{Input, OAuthServer, OAuthServerSpec};
use tokenflow_engine::ServerDirectory;
use tokenflow_store::{OAuthServerRow, Store};

use crate::error::RuntimeError;

/// Where a server's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    Store,
}

/// An OAuth server as the API, the UI and the secret-change check see it: every field of the
/// validated server (defaults applied, URLs normalised) without the secret, plus where it comes
/// from, whether it has a secret and the endpoints discovery resolved. This is the one list of a
/// server's fields outside the configuration's own parser; the store keeps a server as this view
/// without the fields below `token_cache_skew` ([`VIEW_ONLY_FIELDS`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OAuthServerView {
    pub id: String,
    pub client_id: String,
    /// `body` or `basic_header`; `null` for the other client authentication methods.
    pub client_credentials_delivery: Option<String>,
    /// `client_secret_post`, `client_secret_basic`, `client_secret_jwt`, `private_key_jwt` or
    /// `none` (docs/connectors.md, "Client authentication").
    pub token_endpoint_auth_method: String,
    /// With `private_key_jwt`: `RS256`, `PS256` or `ES256`.
    pub signing_alg: Option<String>,
    /// With `private_key_jwt`: the PEM certificate of the key, if configured; with
    /// `tls_client_auth`: the client certificate (public).
    pub certificate: Option<String>,
    /// With a certificate: `true` when the SHA-1 thumbprint `x5t` is sent too.
    pub x5t_sha1: Option<bool>,
    /// With `basic_header`: `form_urlencoded` (RFC 6749 §2.3.1) or `raw`.
    pub basic_auth_encoding: String,
    /// Extra trusted CA certificates (PEM) for this server's endpoints, if configured.
    pub tls_ca: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    /// The RFC 7009 revocation endpoint (`oauth_revoke_token`), if configured.
    pub revocation_url: Option<String>,
    /// The RFC 8628 device authorization endpoint (`oauth_device_login`), if configured.
    pub device_authorization_url: Option<String>,
    pub issuer: Option<String>,
    pub scope: Option<String>,
    pub pkce: bool,
    pub request_refresh_token: bool,
    /// `consent`, `login`, `select_account`, `none`.
    pub prompt: String,
    pub redirect_uri: Option<String>,
    pub extra_authorize_params: BTreeMap<String, String>,
    pub extra_token_params: BTreeMap<String, String>,
    /// e.g. `"30000ms"`.
    pub timeout: String,
    /// e.g. `"43200s"`; absent: no keep-alive.
    pub vault_keep_alive: Option<String>,
    /// The API statuses after which `http_connector` renews the token once.
    pub reauth_on_status: Vec<u16>,
    pub token_cache: bool,
    /// Seconds.
    pub token_cache_skew: u64,
    /// The provider catalogue preset the server was built from (docs/connectors.md, "Provider
    /// catalogue"), and the preset parameters it was given.
    pub provider: Option<String>,
    pub tenant: Option<String>,
    pub domain: Option<String>,
    pub realm: Option<String>,
    pub base_url: Option<String>,
    /// `" "` or `","`.
    pub scope_separator: String,
    pub token_path: Option<String>,
    pub bearer_token_types: Vec<String>,
    pub response_fields: Vec<String>,
    pub source: Source,
    pub has_client_secret: bool,
    /// With `private_key_jwt` or `tls_client_auth`: whether a private key is configured (never
    /// the key).
    pub has_private_key: bool,
    /// With a certificate: its `x5t#S256` thumbprint (sent in the assertion's header with
    /// `private_key_jwt`).
    pub certificate_x5t_s256: Option<String>,
    pub resolved_token_url: Option<String>,
    pub resolved_authorization_url: Option<String>,
    pub resolved_revocation_url: Option<String>,
    pub resolved_device_authorization_url: Option<String>,
    /// `PUT` only: e.g. discovery failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

/// The members of [`OAuthServerView`] that are not part of a server's configuration.
const VIEW_ONLY_FIELDS: &[&str] = &[
    "id",
    "source",
    "has_client_secret",
    "has_private_key",
    "certificate_x5t_s256",
    "resolved_token_url",
    "resolved_authorization_url",
    "resolved_revocation_url",
    "resolved_device_authorization_url",
    "warnings",
];

impl OAuthServerView {
    /// The view of a validated server (its endpoints as configured, not yet resolved).
    pub fn of(server: &OAuthServer, source: Source) -> Self {
        fn url<T: ToString>(url: &Option<T>) -> Option<String> {
            url.as_ref().map(ToString::to_string)
        }
        Self {
            id: server.id.clone(),
            client_id: server.client_id.clone(),
            client_credentials_delivery: server
                .token_endpoint_auth_method
                .delivery()
                .map(|delivery| delivery.to_string()),
            token_endpoint_auth_method: server.token_endpoint_auth_method.to_string(),
            signing_alg: server.client_key.as_ref().map(|key| key.alg().to_string()),
            certificate: server
                .client_key
                .as_ref()
                .and_then(|key| key.certificate())
                .or(server
                    .client_certificate
                    .as_ref()
                    .map(|certificate| certificate.certificates_pem()))
                .map(str::to_owned),
            x5t_sha1: server
                .client_key
                .as_ref()
                .and_then(|key| key.x5t().map(|_| true)),
            basic_auth_encoding: server.basic_auth_encoding.to_string(),
            tls_ca: server.tls_ca.clone(),
            authorization_url: url(&server.authorization_url),
            token_url: url(&server.token_url),
            revocation_url: url(&server.revocation_url),
            device_authorization_url: url(&server.device_authorization_url),
            issuer: url(&server.issuer),
            scope: server.scope.clone(),
            pkce: server.pkce,
            request_refresh_token: server.request_refresh_token,
            prompt: server.prompt.as_str().to_owned(),
            redirect_uri: url(&server.redirect_uri),
            extra_authorize_params: server.extra_authorize_params.clone(),
            extra_token_params: server.extra_token_params.clone(),
            timeout: format!("{}ms", server.timeout.as_millis()),
            vault_keep_alive: server.vault_keep_alive.map(|d| format!("{}s", d.as_secs())),
            reauth_on_status: server.reauth_on_status.clone(),
            token_cache: server.token_cache,
            token_cache_skew: server.token_cache_skew.as_secs(),
            provider: server.preset.as_ref().map(|preset| preset.provider.clone()),
            tenant: preset_parameter(server, Parameter::Tenant),
            domain: preset_parameter(server, Parameter::Domain),
            realm: preset_parameter(server, Parameter::Realm),
            base_url: preset_parameter(server, Parameter::BaseUrl),
            scope_separator: server.quirks.scope_separator.as_str().to_owned(),
            token_path: server.quirks.token_path.clone(),
            bearer_token_types: server.quirks.bearer_token_types.clone(),
            response_fields: server.quirks.response_fields.clone(),
            source,
            has_client_secret: server.client_secret.is_some(),
            has_private_key: server.client_key.is_some() || server.client_certificate.is_some(),
            certificate_x5t_s256: server
                .client_key
                .as_ref()
                .and_then(|key| key.x5t_s256())
                .map(str::to_owned)
                .or(server
                    .client_certificate
                    .as_ref()
                    .map(tokenflow_core::ClientCertificate::x5t_s256)),
            resolved_token_url: url(&server.token_url),
            resolved_authorization_url: url(&server.authorization_url),
            resolved_revocation_url: url(&server.revocation_url),
            resolved_device_authorization_url: url(&server.device_authorization_url),
            warnings: None,
        }
    }

    /// The configuration fields only, as a JSON object (what the store keeps, and what the
    /// secret-change check compares).
    fn configuration(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut object = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => serde_json::Map::new(),
        };
        object
            .retain(|field, value| !VIEW_ONLY_FIELDS.contains(&field.as_str()) && !value.is_null());
        object
    }
}

/// A preset parameter the server was given.
fn preset_parameter(server: &OAuthServer, parameter: Parameter) -> Option<String> {
    server
        .preset
        .as_ref()
        .and_then(|preset| preset.parameters.get(&parameter).cloned())
}

/// The outcome of testing a server with client credentials (`oauth_server_login`): the connector's
/// outputs, the token only as a fingerprint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerTestOutcome {
    pub oauth_server: String,
    /// The connector's status code (docs/connectors.md).
    pub status_code: i32,
    pub meaning: String,
    pub token_type: Option<String>,
    pub expires_in: Option<u64>,
    /// A fingerprint, never the token.
    pub access_token: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Tolerated deviations of the provider's response.
    pub warnings: Vec<ServerTestWarning>,
    /// Whether the connector's status is a success.
    #[serde(skip)]
    pub succeeded: bool,
}

/// A tolerated deviation of a token response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerTestWarning {
    /// Stable machine-readable code, e.g. `expires_in_string`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Endpoints resolved.
    server: OAuthServer,
    /// Endpoints as configured.
    view: OAuthServerView,
}

/// The OAuth servers the engine can use.
#[derive(Debug)]
pub struct ServerRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    config: BTreeMap<String, OAuthServer>,
    /// Discovery's clients: each server's own `tls_ca` is trusted (`discovery_client`).
    tls: TlsClients,
}

impl ServerRegistry {
    /// The configuration's servers only, as configured: endpoints are not discovered here (the
    /// connectors discover them when a server is used). For the command line, which has no store
    /// and should not reach every issuer to use one server.
    pub fn from_config(config: BTreeMap<String, OAuthServer>, tls: TlsClients) -> Self {
        let entries = config
            .iter()
            .map(|(id, server)| {
                let mut view = OAuthServerView::of(server, Source::Config);
                view.id.clone_from(id);
                let entry = Entry {
                    server: server.clone(),
                    view,
                };
                (id.clone(), entry)
            })
            .collect();
        Self {
            entries: RwLock::new(entries),
            config,
            tls,
        }
    }

    /// Loads the configuration's servers, then the store's (which win), resolving endpoints.
    pub async fn load(
        config: BTreeMap<String, OAuthServer>,
        store: &dyn Store,
        tls: TlsClients,
    ) -> Result<(Self, Vec<String>), RuntimeError> {
        let registry = Self::from_config(config.clone(), tls);
        let mut warnings = Vec::new();
        for (id, server) in config {
            warnings.extend(registry.insert(id, server, Source::Config).await);
        }
        for row in store.list_oauth_servers().await? {
            match server_from_row(&row) {
                Ok(server) => {
                    warnings.extend(registry.insert(row.id.clone(), server, Source::Store).await)
                }
                Err(message) => warnings.push(format!(
                    "stored OAuth server `{}` is invalid: {message}",
                    row.id
                )),
            }
        }
        Ok((registry, warnings))
    }

    async fn insert(&self, id: String, server: OAuthServer, source: Source) -> Option<String> {
        let mut view = OAuthServerView::of(&server, source);
        view.id.clone_from(&id);
        let (server, warning) = match resolve_every_endpoint(&self.tls, &server).await {
            Ok(resolved) => (resolved, None),
            Err(err) => (server, Some(format!("OAuth server `{id}`: {err}"))),
        };
        view.resolved_token_url = server.token_url.as_ref().map(ToString::to_string);
        view.resolved_authorization_url =
            server.authorization_url.as_ref().map(ToString::to_string);
        view.resolved_revocation_url = server.revocation_url.as_ref().map(ToString::to_string);
        view.resolved_device_authorization_url = server
            .device_authorization_url
            .as_ref()
            .map(ToString::to_string);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id, Entry { server, view });
        }
        warning
    }

    /// Creates or replaces a stored server. A missing `client_secret` keeps the stored one; an
    /// empty one removes it (a public client). The stored secret is write-only, so it may only
    /// be kept while it goes where, and how, it went before: a change of any field outside
    /// [`SECRET_NEUTRAL_FIELDS`] (the endpoints, the issuer, the client authentication) without
    /// the secret is refused ([`RuntimeError::SecretRequired`]), or the caller could have it sent to
    /// an address of their choice. A server of the configuration file is changed there, not here
    /// ([`RuntimeError::DefinedInConfiguration`]).
    pub async fn put(
        &self,
        store: &dyn Store,
        id: &str,
        mut spec: OAuthServerSpec,
        now: time::OffsetDateTime,
    ) -> Result<(bool, Option<String>), RuntimeError> {
        if self.config.contains_key(id) {
            return Err(RuntimeError::DefinedInConfiguration(format!(
                "OAuth server `{id}` is defined in the configuration file: edit tokenflow.toml \
                 (and restart) to change it"
            )));
        }
        if spec.service_account_key.is_some() {
            // Not stored through the API (docs/connectors.md, "`oauth_token_exchange`").
            return Err(RuntimeError::InvalidInput(format!(
                "OAuth server `{id}`: `service_account_key` is set in tokenflow.toml only (as \
                 {{ file = \"sa.json\" }} or {{ env = \"NAME\" }})"
            )));
        }
        let existing = store.get_oauth_server(id).await?;
        let secret_given = spec.client_secret.is_some();
        let secret = match spec.client_secret.take() {
            Some(secret) if secret.is_empty() => None,
            Some(secret) => Some(secret),
            None => existing.as_ref().and_then(|row| row.client_secret.clone()),
        };
        spec.client_secret = secret.clone();
        let key_given = spec.private_key.is_some() || spec.pkcs12.is_some();
        unpack_pkcs12(id, &mut spec)?;
        let private_key = match spec.private_key.take() {
            Some(key) if key.is_empty() => None,
            Some(key) => Some(key),
            None => existing.as_ref().and_then(|row| row.private_key.clone()),
        };
        spec.private_key = private_key.clone();
        let server = spec.validate(id).map_err(|errors| {
            RuntimeError::InvalidInput(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        // The stored credentials kept without being given again: each only goes where, and the
        // way, it went when it was set.
        let kept: Vec<&str> = existing
            .as_ref()
            .map(|row| {
                [
                    (
                        "client_secret",
                        row.client_secret.is_some() && !secret_given,
                    ),
                    ("private_key", row.private_key.is_some() && !key_given),
                ]
                .into_iter()
                .filter_map(|(field, kept)| kept.then_some(field))
                .collect()
            })
            .unwrap_or_default();
        if let (Some(previous), false) = (existing.as_ref(), kept.is_empty()) {
            let changed = secret_bound_changes(previous, &server);
            if !changed.is_empty() {
                return Err(RuntimeError::SecretRequired(format!(
                    "changing {} of OAuth server `{id}` needs its {} again (or \"\" to remove \
                     it): a stored secret or key is never used for a changed endpoint or in a \
                     changed way",
                    changed.join(", "),
                    kept.join(" and ")
                )));
            }
        }
        let row = OAuthServerRow {
            id: id.to_owned(),
            spec_json: serde_json::Value::Object(
                OAuthServerView::of(&server, Source::Store).configuration(),
            )
            .to_string(),
            client_secret: secret,
            private_key,
            updated_at: now,
        };
        store.put_oauth_server(&row).await?;
        let warning = self.insert(id.to_owned(), server, Source::Store).await;
        Ok((existing.is_none(), warning))
    }

    /// Deletes a stored server; a server of the same id from the configuration comes back.
    pub async fn delete(&self, store: &dyn Store, id: &str) -> Result<bool, RuntimeError> {
        let deleted = store.delete_oauth_server(id).await?;
        if deleted {
            let fallback = self.config.get(id).cloned();
            if let Ok(mut entries) = self.entries.write() {
                entries.remove(id);
            }
            if let Some(server) = fallback {
                self.insert(id.to_owned(), server, Source::Config).await;
            }
        }
        Ok(deleted)
    }

    /// The view of one server (the API's and the UI's).
    pub fn view(&self, id: &str) -> Option<OAuthServerView> {
        Some(self.entries.read().ok()?.get(id)?.view.clone())
    }

    /// Every server's view, by id.
    pub fn views(&self) -> Vec<OAuthServerView> {
        self.entries
            .read()
            .map(|entries| entries.values().map(|entry| entry.view.clone()).collect())
            .unwrap_or_default()
    }

    /// Tests a server with client credentials (`oauth_server_login`, docs/connectors.md): with
    /// `scope`, or else the server's own. An unknown id is [`RuntimeError::NotFound`], for every
    /// caller alike (API, UI and command line).
    pub async fn test(
        &self,
        connectors: &OAuthConnectors,
        id: &str,
        scope: Option<String>,
    ) -> Result<ServerTestOutcome, RuntimeError> {
        let Some(server) = self.get(id) else {
            return Err(RuntimeError::NotFound(format!("OAuth server `{id}`")));
        };
        let scope = scope.map_or(Input::Unassigned, Input::Assigned);
        let out = connectors.server_login(id, Some(&server), &scope).await;
        Ok(ServerTestOutcome {
            oauth_server: id.to_owned(),
            succeeded: out.status.is_success(),
            status_code: out.status.code(),
            meaning: out.status.meaning().to_owned(),
            token_type: out.token_type,
            expires_in: out.expires_in,
            access_token: out.access_token.as_ref().map(|t| t.fingerprint()),
            error: out.error,
            error_description: out.error_description,
            warnings: out
                .warnings
                .into_iter()
                .map(|w| ServerTestWarning {
                    code: w.code.to_owned(),
                    message: w.message,
                })
                .collect(),
        })
    }
}

impl ServerDirectory for ServerRegistry {
    fn get(&self, id: &str) -> Option<OAuthServer> {
        self.entries
            .read()
            .ok()?
            .get(id)
            .map(|entry| entry.server.clone())
    }

    fn ids(&self) -> BTreeSet<String> {
        self.entries
            .read()
            .map(|entries| entries.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A PKCS#12 file given through the API is unpacked on arrival: its key is kept like
/// `private_key` (encrypted, write-only) and its certificates like `certificate`; neither the
/// file nor its password is stored.
fn unpack_pkcs12(id: &str, spec: &mut OAuthServerSpec) -> Result<(), RuntimeError> {
    let Some(pkcs12) = spec.pkcs12.take().filter(|file| !file.is_empty()) else {
        return Ok(());
    };
    let invalid = |field: &str, problem: String| {
        RuntimeError::InvalidInput(format!("oauth server `{id}`, field `{field}`: {problem}"))
    };
    if spec.private_key.is_some() || spec.certificate.is_some() {
        return Err(invalid(
            "pkcs12",
            "give either `pkcs12` or `private_key` and `certificate`, not both".to_owned(),
        ));
    }
    let password = spec
        .pkcs12_password
        .take()
        .unwrap_or_else(|| tokenflow_core::SecretString::new(""));
    let contents = tokenflow_core::client_cert::open_pkcs12(&pkcs12, &password)
        .map_err(|problem| invalid(problem.field, problem.problem))?;
    spec.private_key = Some(contents.private_key);
    spec.certificate = Some(tokenflow_core::SecretString::new(contents.certificates));
    Ok(())
}

/// Fields whose change cannot send the client secret anywhere else, or in another way: it still
/// goes only to the same token endpoint with the same client authentication. Every other field
/// of a server's view (the endpoints, the issuer whose discovery finds them, the client
/// authentication, and any field added later) is bound to the secret.
const SECRET_NEUTRAL_FIELDS: &[&str] = &[
    "client_id",
    "scope",
    "pkce",
    "request_refresh_token",
    "prompt",
    "redirect_uri",
    "extra_authorize_params",
    "extra_token_params",
    "timeout",
    "vault_keep_alive",
    "reauth_on_status",
    "token_cache",
    "token_cache_skew",
    "scope_separator",
    "token_path",
    "bearer_token_types",
    "response_fields",
];

/// The secret-bound fields in which `new` differs from the stored server, compared on their views
/// (defaults applied, URLs normalised). A stored server that no longer validates counts as all
/// changed.
fn secret_bound_changes(stored: &OAuthServerRow, new: &OAuthServer) -> Vec<String> {
    let new_view = OAuthServerView::of(new, Source::Store).configuration();
    let old_view = server_from_row(stored)
        .ok()
        .map(|old| OAuthServerView::of(&old, Source::Store).configuration());
    let mut fields: BTreeSet<&String> = new_view.keys().collect();
    if let Some(old) = &old_view {
        fields.extend(old.keys());
    }
    fields
        .into_iter()
        .filter(|field| !SECRET_NEUTRAL_FIELDS.contains(&field.as_str()))
        .filter(|field| {
            old_view
                .as_ref()
                .is_none_or(|old| old.get(field.as_str()) != new_view.get(field.as_str()))
        })
        .cloned()
        .collect()
}

/// A stored server back as a validated server. Rows hold the configuration part of the server's
/// view; older rows hold the spec as written, with `null` for what was not.
fn server_from_row(row: &OAuthServerRow) -> Result<OAuthServer, String> {
    let mut clean: serde_json::Value =
        serde_json::from_str(&row.spec_json).map_err(|e| e.to_string())?;
    if let Some(object) = clean.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    let mut spec: OAuthServerSpec = serde_json::from_value(clean).map_err(|e| e.to_string())?;
    spec.client_secret = row.client_secret.clone();
    spec.private_key = row.private_key.clone();
    spec.validate(&row.id).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> OAuthServerSpec {
        serde_json::from_value(json).unwrap()
    }

    /// A stored row as earlier versions wrote it (the spec as written), with a secret.
    fn stored(json: serde_json::Value) -> OAuthServerRow {
        OAuthServerRow {
            id: "s".into(),
            spec_json: json.to_string(),
            client_secret: Some(tokenflow_core::SecretString::new("secret")),
            private_key: None,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn changes(old: serde_json::Value, new: serde_json::Value) -> Vec<String> {
        let mut new = spec(new);
        new.client_secret = Some(tokenflow_core::SecretString::new("secret"));
        secret_bound_changes(&stored(old), &new.validate("s").unwrap())
    }

    #[test]
    fn only_fields_that_decide_where_or_how_the_secret_goes_need_it_again() {
        let old = serde_json::json!({ "client_id": "c", "token_url": "https://idp.example/token" });
        let same = serde_json::json!({ "client_id": "c", "token_url": "https://IDP.example:443/token",
            "client_credentials_delivery": "body", "prompt": "consent", "timeout": 30 });
        assert!(
            changes(old.clone(), same).is_empty(),
            "defaults and normalised URLs are no change"
        );
        let neutral = serde_json::json!({ "client_id": "other", "token_url": "https://idp.example/token",
            "scope": "a b", "pkce": false, "prompt": "login", "redirect_uri": "https://app.example/cb",
            "extra_token_params": { "resource": "r" }, "timeout": "5s", "token_cache": false });
        assert!(changes(old.clone(), neutral).is_empty());
        for (field, value) in [
            ("token_url", "https://evil.example/token"),
            ("revocation_url", "https://evil.example/revoke"),
            ("authorization_url", "https://evil.example/authorize"),
            ("issuer", "https://evil.example"),
        ] {
            let mut new = old.clone();
            new[field] = value.into();
            assert_eq!(changes(old.clone(), new), vec![field.to_owned()]);
        }
        // The client authentication, however it is written, is bound to the secret.
        for (field, value) in [
            ("client_credentials_delivery", "basic_header"),
            ("token_endpoint_auth_method", "client_secret_basic"),
            ("token_endpoint_auth_method", "client_secret_jwt"),
        ] {
            let mut new = old.clone();
            new[field] = value.into();
            assert_eq!(
                changes(old.clone(), new),
                ["client_credentials_delivery", "token_endpoint_auth_method"],
                "{field} = {value}"
            );
        }
    }

    #[test]
    fn a_stored_server_is_its_view_and_reads_back_as_the_same_server() {
        let mut written = spec(
            serde_json::json!({ "client_id": "c", "issuer": "https://IDP.example/",
            "client_credentials_delivery": "basic_header", "basic_auth_encoding": "raw",
            "scope": "a b", "prompt": "login", "redirect_uri": "https://app.example/cb",
            "extra_authorize_params": { "audience": "x" }, "timeout": "5s",
            "vault_keep_alive": "12h", "token_cache_skew": 30 }),
        );
        written.client_secret = Some(tokenflow_core::SecretString::new("secret"));
        let server = written.validate("s").unwrap();
        let view = OAuthServerView::of(&server, Source::Store);
        let row = OAuthServerRow {
            id: "s".into(),
            spec_json: serde_json::Value::Object(view.configuration()).to_string(),
            client_secret: Some(tokenflow_core::SecretString::new("secret")),
            private_key: None,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!row.spec_json.contains("secret\""), "{}", row.spec_json);
        let back = server_from_row(&row).unwrap();
        assert_eq!(OAuthServerView::of(&back, Source::Store), view);
        assert!(secret_bound_changes(&row, &server).is_empty());
        let mut moved = server.clone();
        moved.token_url = Some("https://evil.example/token".parse().unwrap());
        assert_eq!(
            secret_bound_changes(&row, &moved),
            vec!["token_url".to_owned()]
        );
    }

    #[test]
    fn a_stored_private_key_jwt_server_reads_back_with_the_same_key_header_and_no_key_in_the_spec()
    {
        const KEY: &str = include_str!(
            "../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.pkcs1.pem"
        );
        const CERT: &str = include_str!(
            "../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.cert.pem"
        );
        let mut written = spec(serde_json::json!({ "client_id": "c",
            "token_url": "https://idp.example/token", "token_endpoint_auth_method": "private_key_jwt",
            "signing_alg": "PS256", "certificate": CERT, "x5t_sha1": true }));
        written.private_key = Some(tokenflow_core::SecretString::new(KEY));
        let server = written.validate("s").unwrap();
        let view = OAuthServerView::of(&server, Source::Store);
        let row = OAuthServerRow {
            id: "s".into(),
            spec_json: serde_json::Value::Object(view.configuration()).to_string(),
            client_secret: None,
            private_key: Some(tokenflow_core::SecretString::new(KEY)),
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        for line in KEY.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!row.spec_json.contains(line), "key material in the spec");
            assert!(
                !format!("{view:?}").contains(line),
                "key material in the view"
            );
        }
        let back = server_from_row(&row).unwrap();
        assert_eq!(OAuthServerView::of(&back, Source::Store), view);
        let (old, new) = (server.client_key.unwrap(), back.client_key.unwrap());
        assert_eq!(old.header().x5t_s256, new.header().x5t_s256);
        assert_eq!(old.header().x5t, new.header().x5t);
        assert!(new.x5t().is_some());
        assert_eq!(new.alg(), tokenflow_core::SigningAlg::PS256);
    }

    #[test]
    fn the_view_shows_every_field_of_the_configuration_and_never_the_secret() {
        let mut written = spec(
            serde_json::json!({ "client_id": "c", "token_url": "https://idp.example/token",
                "revocation_url": "https://idp.example/revoke" }),
        );
        written.client_secret = Some(tokenflow_core::SecretString::new("do-not-show-me"));
        let server = written.validate("s").unwrap();
        let json = serde_json::to_value(OAuthServerView::of(&server, Source::Config)).unwrap();
        assert!(!json.to_string().contains("do-not-show-me"));
        assert_eq!(json["has_client_secret"], true);
        assert_eq!(json["source"], "config");
        assert_eq!(json["resolved_token_url"], "https://idp.example/token");
        assert_eq!(json["revocation_url"], "https://idp.example/revoke");
        assert_eq!(
            json["resolved_revocation_url"],
            "https://idp.example/revoke"
        );
        assert!(
            json.get("warnings").is_none(),
            "only PUT adds warnings: {json}"
        );
    }

    #[tokio::test]
    async fn testing_an_unknown_server_is_not_found() {
        let http =
            tokenflow_connectors::http::build_client(std::time::Duration::from_secs(5)).unwrap();
        let connectors = OAuthConnectors::new(
            http.clone(),
            std::sync::Arc::new(tokenflow_core::SystemClock),
        );
        let registry = ServerRegistry::from_config(BTreeMap::new(), connectors.tls().clone());
        let err = registry.test(&connectors, "ghost", None).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::NotFound(what) if what == "OAuth server `ghost`"),
            "{err:?}"
        );
    }
}
