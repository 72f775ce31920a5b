//! OAuth servers: those of the configuration file, overridden by those created through the API
//! (kept in the store, secret encrypted). Endpoints are discovered once when a server is loaded or
//! saved, not on every token request. The engine reads servers synchronously from memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tokenflow_connectors::http::Client;
use tokenflow_connectors::oauth::discovery::resolve_endpoints;
use tokenflow_core::{OAuthServer, OAuthServerSpec};
use tokenflow_engine::ServerDirectory;
use tokenflow_store::{OAuthServerRow, Store};

use crate::error::RuntimeError;

/// Where a server's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    Store,
}

#[derive(Debug, Clone)]
struct Entry {
    server: OAuthServer,
    source: Source,
    /// The spec as written, without the secret (for the API's view).
    spec_json: serde_json::Value,
}

/// The OAuth servers the engine can use.
#[derive(Debug)]
pub struct ServerRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    config: BTreeMap<String, OAuthServer>,
    http: Client,
}

impl ServerRegistry {
    /// Loads the configuration's servers, then the store's (which win), resolving endpoints.
    pub async fn load(
        config: BTreeMap<String, OAuthServer>,
        store: &dyn Store,
        http: Client,
    ) -> Result<(Self, Vec<String>), RuntimeError> {
        let registry = Self {
            entries: RwLock::new(BTreeMap::new()),
            config: config.clone(),
            http,
        };
        let mut warnings = Vec::new();
        for (id, server) in config {
            let spec_json = view_of_config(&server);
            warnings.extend(registry.insert(id, server, Source::Config, spec_json).await);
        }
        for row in store.list_oauth_servers().await? {
            match server_from_row(&row) {
                Ok((server, spec_json)) => warnings.extend(
                    registry
                        .insert(row.id.clone(), server, Source::Store, spec_json)
                        .await,
                ),
                Err(message) => warnings.push(format!(
                    "stored OAuth server `{}` is invalid: {message}",
                    row.id
                )),
            }
        }
        Ok((registry, warnings))
    }

    async fn insert(
        &self,
        id: String,
        server: OAuthServer,
        source: Source,
        spec_json: serde_json::Value,
    ) -> Option<String> {
        let (server, warning) = match resolve_endpoints(&self.http, &server).await {
            Ok(resolved) => (resolved, None),
            Err(err) => (server, Some(format!("OAuth server `{id}`: {err}"))),
        };
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(
                id,
                Entry {
                    server,
                    source,
                    spec_json,
                },
            );
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
        let existing = store.get_oauth_server(id).await?;
        let secret_given = spec.client_secret.is_some();
        let secret = match spec.client_secret.take() {
            Some(secret) if secret.is_empty() => None,
            Some(secret) => Some(secret),
            None => existing.as_ref().and_then(|row| row.client_secret.clone()),
        };
        let spec_json = spec_view(&spec);
        spec.client_secret = secret.clone();
        let server = spec.validate(id).map_err(|errors| {
            RuntimeError::InvalidInput(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        if let Some(previous) = existing.as_ref().filter(|row| row.client_secret.is_some())
            && !secret_given
        {
            let changed = secret_bound_changes(previous, &server);
            if !changed.is_empty() {
                return Err(RuntimeError::SecretRequired(format!(
                    "changing {} of OAuth server `{id}` needs its client_secret again (or \
                     \"\" to remove it): a stored secret is never sent to a changed endpoint \
                     or in a changed way",
                    changed.join(", ")
                )));
            }
        }
        let row = OAuthServerRow {
            id: id.to_owned(),
            spec_json: spec_json.to_string(),
            client_secret: secret,
            updated_at: now,
        };
        store.put_oauth_server(&row).await?;
        let warning = self
            .insert(id.to_owned(), server, Source::Store, spec_json)
            .await;
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
                let spec_json = view_of_config(&server);
                self.insert(id.to_owned(), server, Source::Config, spec_json)
                    .await;
            }
        }
        Ok(deleted)
    }

    /// The API's view of one server: its spec without the secret, whether it has one, its source
    /// and its resolved endpoints.
    pub fn view(&self, id: &str) -> Option<serde_json::Value> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(id)?;
        let mut view = entry.spec_json.clone();
        if let Some(object) = view.as_object_mut() {
            object.insert("id".into(), id.into());
            object.insert(
                "source".into(),
                serde_json::to_value(entry.source).unwrap_or_default(),
            );
            object.insert(
                "has_client_secret".into(),
                entry.server.client_secret.is_some().into(),
            );
            object.insert(
                "resolved_token_url".into(),
                entry
                    .server
                    .token_url
                    .as_ref()
                    .map(ToString::to_string)
                    .into(),
            );
            object.insert(
                "resolved_authorization_url".into(),
                entry
                    .server
                    .authorization_url
                    .as_ref()
                    .map(ToString::to_string)
                    .into(),
            );
        }
        Some(view)
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
    "token_cache",
    "token_cache_skew",
];

/// The secret-bound fields in which `new` differs from the stored server, compared with defaults
/// applied and URLs normalised. A stored server that no longer validates counts as all changed.
fn secret_bound_changes(stored: &OAuthServerRow, new: &OAuthServer) -> Vec<String> {
    let new_view = view_of_config(new);
    let old_view = server_from_row(stored)
        .ok()
        .map(|(old, _)| view_of_config(&old));
    let Some(fields) = new_view.as_object() else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|(field, _)| !SECRET_NEUTRAL_FIELDS.contains(&field.as_str()))
        .filter(|(field, value)| {
            old_view
                .as_ref()
                .is_none_or(|old| old.get(field.as_str()) != Some(*value))
        })
        .map(|(field, _)| field.clone())
        .collect()
}

fn spec_view(spec: &OAuthServerSpec) -> serde_json::Value {
    // OAuthServerSpec is Deserialize-only (it can hold a secret); build the view field by field.
    serde_json::json!({
        "client_id": spec.client_id,
        "client_credentials_delivery": spec.client_credentials_delivery.map(|d| d.to_string()),
        "basic_auth_encoding": spec.basic_auth_encoding.map(|e| e.to_string()),
        "authorization_url": spec.authorization_url,
        "token_url": spec.token_url,
        "issuer": spec.issuer,
        "scope": spec.scope,
        "pkce": spec.pkce,
        "request_refresh_token": spec.request_refresh_token,
        "prompt": spec.prompt.map(|p| p.as_str()),
        "redirect_uri": spec.redirect_uri,
        "extra_authorize_params": spec.extra_authorize_params,
        "extra_token_params": spec.extra_token_params,
        "timeout": spec.timeout,
        "vault_keep_alive": spec.vault_keep_alive,
        "token_cache": spec.token_cache,
        "token_cache_skew": spec.token_cache_skew,
    })
}

fn view_of_config(server: &OAuthServer) -> serde_json::Value {
    serde_json::json!({
        "client_id": server.client_id,
        "client_credentials_delivery": server.client_credentials_delivery.to_string(),
        "basic_auth_encoding": server.basic_auth_encoding.to_string(),
        "authorization_url": server.authorization_url.as_ref().map(ToString::to_string),
        "token_url": server.token_url.as_ref().map(ToString::to_string),
        "issuer": server.issuer.as_ref().map(ToString::to_string),
        "scope": server.scope,
        "pkce": server.pkce,
        "request_refresh_token": server.request_refresh_token,
        "prompt": server.prompt.as_str(),
        "redirect_uri": server.redirect_uri.as_ref().map(ToString::to_string),
        "extra_authorize_params": server.extra_authorize_params,
        "extra_token_params": server.extra_token_params,
        "timeout": format!("{}ms", server.timeout.as_millis()),
        "vault_keep_alive": server.vault_keep_alive.map(|d| format!("{}s", d.as_secs())),
        "token_cache": server.token_cache,
        "token_cache_skew": server.token_cache_skew.as_secs(),
    })
}

/// A stored server back as a validated server and its view.
fn server_from_row(row: &OAuthServerRow) -> Result<(OAuthServer, serde_json::Value), String> {
    let view: serde_json::Value =
        serde_json::from_str(&row.spec_json).map_err(|e| e.to_string())?;
    let mut clean = view.clone();
    if let Some(object) = clean.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    let mut spec: OAuthServerSpec = serde_json::from_value(clean).map_err(|e| e.to_string())?;
    spec.client_secret = row.client_secret.clone();
    let server = spec.validate(&row.id).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((server, view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> OAuthServerSpec {
        serde_json::from_value(json).unwrap()
    }

    /// A stored row as `put` writes it, with a secret.
    fn stored(json: serde_json::Value) -> OAuthServerRow {
        OAuthServerRow {
            id: "s".into(),
            spec_json: spec_view(&spec(json)).to_string(),
            client_secret: Some(tokenflow_core::SecretString::new("secret")),
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
            ("authorization_url", "https://evil.example/authorize"),
            ("issuer", "https://evil.example"),
            ("client_credentials_delivery", "basic_header"),
        ] {
            let mut new = old.clone();
            new[field] = value.into();
            assert_eq!(changes(old.clone(), new), vec![field.to_owned()]);
        }
    }
}
