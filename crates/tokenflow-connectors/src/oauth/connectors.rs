//! The three OAuth connectors as library functions, with Thinkwise's inputs, outputs and status codes.
//!
//! Each function checks configuration, then inputs, then talks to the provider, and maps every
//! failure to its connector's own code (docs/connectors.md). The order of the checks is documented in
//! `docs/connectors.md` because it decides which code a doubly-broken call gets.

use std::sync::Arc;
use std::time::Duration;

use tokenflow_core::token_life::still_fresh;
use tokenflow_core::{Clock, Input, OAuthServer, SecretString};
use url::Url;

use super::authorize::{
    AuthorizationRequest, CallbackParams, PendingAuthorization, UserLoginInput,
    build_authorization_request, check_callback_issuer, resolve_redirect_uri,
};
use super::discovery::{DiscoveryError, resolve_endpoints, resolve_revocation_endpoints};
use super::id_token::{Expected, check_id_token};
use super::outputs::TokenOutputs;
use super::token_endpoint::{Grant, TokenError, request_token};
use crate::http::{TlsClients, TlsError};
use crate::status::{RefreshStatus, RevokeStatus, ServerLoginStatus, UserLoginStatus};

/// Where a user login sends the person back to, and how long it waits.
#[derive(Debug, Clone)]
pub struct RedirectSettings {
    /// The global `oauth_redirect_uri` override, if configured.
    pub global: Option<Url>,
    /// `<public_url>/oauth-callback` (server) or `http://127.0.0.1:<port>/oauth-callback` (CLI).
    pub default: Url,
    /// How long the pending authorization lives (default 10 minutes).
    pub pending_ttl: Duration,
}

/// Told about every token-endpoint request (for metrics): the grant type, how long it took and
/// whether a token came back.
pub trait TokenObserver: Send + Sync + std::fmt::Debug {
    fn token_request(&self, grant_type: &'static str, elapsed: Duration, success: bool);
}

/// The OAuth connectors with their injected HTTP client and clock.
#[derive(Debug, Clone)]
pub struct OAuthConnectors {
    http: reqwest::Client,
    /// Clients for servers with a client certificate or their own `tls_ca`.
    tls: TlsClients,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn TokenObserver>>,
    cache: Arc<TokenCache>,
}

/// What identifies a cached client-credentials token: the server's identity as the token endpoint
/// sees it, and the effective scope.
type CacheKey = (String, String, String, String, String);

/// A cached client-credentials token.
#[derive(Debug)]
struct Cached {
    access_token: SecretString,
    token_type: String,
    obtained_at: time::OffsetDateTime,
    expires_at: time::OffsetDateTime,
    response_fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The client-credentials cache (docs/connectors.md): one slot per server and scope, each behind an async
/// mutex, so concurrent callers for one slot cause at most one token request (single-flight) and
/// the rest get its result.
#[derive(Debug, Default)]
struct TokenCache {
    slots: std::sync::Mutex<
        std::collections::HashMap<CacheKey, Arc<tokio::sync::Mutex<Option<Cached>>>>,
    >,
}

impl TokenCache {
    fn slot(&self, key: CacheKey) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }
}

impl OAuthConnectors {
    pub fn new(http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            tls: TlsClients::around(http.clone(), tokenflow_core::oauth_server::DEFAULT_TIMEOUT),
            http,
            clock,
            observer: None,
            cache: Arc::default(),
        }
    }

    /// Uses `tls`'s clients: its default one for servers without a client certificate or
    /// `tls_ca` of their own, one per certificate and CA for the others.
    pub fn with_tls(mut self, tls: TlsClients) -> Self {
        self.http = tls.default_client().clone();
        self.tls = tls;
        self
    }

    /// The client for `server`'s endpoints: with its client certificate (`tls_client_auth`)
    /// and its `tls_ca`, else the shared default client.
    pub fn http_for(&self, server: &OAuthServer) -> Result<reqwest::Client, TlsError> {
        self.tls
            .client(server.client_certificate.as_ref(), server.tls_ca.as_deref())
    }

    /// Reports every token-endpoint request to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn TokenObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub(super) async fn request(
        &self,
        server: &OAuthServer,
        token_url: &Url,
        grant: &Grant<'_>,
    ) -> Result<super::token_response::TokenResponse, TokenError> {
        let started = std::time::Instant::now();
        let http = self.http_for(server).map_err(|err| TokenError::Transport {
            timed_out: false,
            detail: err.to_string(),
        })?;
        let result = request_token(&http, server, token_url, grant, self.clock.now()).await;
        if let Some(observer) = &self.observer {
            observer.token_request(grant.grant_type(), started.elapsed(), result.is_ok());
        }
        result
    }

    /// The injected clock's now.
    pub(super) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The clients by client certificate and CA (discovery picks one with
    /// `discovery::discovery_client`).
    pub fn tls(&self) -> &TlsClients {
        &self.tls
    }

    pub(super) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Drops `rejected` from the client-credentials cache after an API refused it (HTTP 401;
    /// docs/connectors.md, "Authentication"), so the next `server_login` for its slot asks for a
    /// new token. Only a slot that still holds `rejected` is cleared: when several callers saw
    /// the same token refused, the first one's new token is kept and shared (one token request).
    pub async fn forget_token(&self, rejected: &SecretString) {
        let slots: Vec<_> = match self.cache.slots.lock() {
            Ok(slots) => slots.values().cloned().collect(),
            Err(_) => return,
        };
        for slot in slots {
            let mut cached = slot.lock().await;
            if cached
                .as_ref()
                .is_some_and(|token| token.access_token == *rejected)
            {
                *cached = None;
            }
        }
    }

    /// `oauth_server_login`: the client credentials grant (RFC 6749 §4.4).
    pub async fn server_login(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        scope: &Input<String>,
    ) -> TokenOutputs<ServerLoginStatus> {
        self.server_login_for(server_id, server, scope, &Input::Unassigned)
            .await
    }

    /// `oauth_server_login` with its `resource` input (RFC 8707 resource indicators, separated
    /// by white space; cached apart from other resources).
    pub async fn server_login_for(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        scope: &Input<String>,
        resource: &Input<String>,
    ) -> TokenOutputs<ServerLoginStatus> {
        use ServerLoginStatus as S;
        let resource = resource
            .assigned()
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let Some(server) = server else {
            return unknown_server(S::NoConfiguration, server_id);
        };
        let server = match self.endpoints(server).await {
            Ok(server) => server,
            Err(err) => {
                return TokenOutputs::failure(S::Unknown, "discovery_failed", err.to_string());
            }
        };
        let Some(token_url) = server.token_url.as_ref() else {
            return missing_field(S::NoConfiguration, &server, "token_url");
        };
        if !server.authenticates_client() {
            return missing_field(S::NoConfiguration, &server, "client_secret");
        }
        if server.client_id.is_empty() {
            return missing_field(S::NoConfiguration, &server, "client_id");
        }
        let scope = tokenflow_core::oauth_server::normalize_scope(
            scope.or_fallback(server.scope.as_deref()),
        );
        if scope.is_empty() {
            return TokenOutputs::failure(
                S::NoScope,
                "no_scope",
                "the scope is empty: assign `scope` or configure the OAuth server's `scope`",
            );
        }
        if !server.token_cache {
            return self
                .client_credentials(&server, token_url, &scope, &resource)
                .await;
        }
        let key = (
            server.id.clone(),
            server.client_id.clone(),
            token_url.to_string(),
            scope.clone(),
            resource.clone(),
        );
        let slot = self.cache.slot(key);
        let mut cached = slot.lock().await;
        let now = self.clock.now();
        let skew =
            time::Duration::try_from(server.token_cache_skew).unwrap_or(time::Duration::minutes(1));
        if let Some(token) = cached.as_ref()
            && still_fresh(now, skew, token.obtained_at, token.expires_at)
        {
            let remaining = (token.expires_at - now).whole_seconds().max(0);
            let mut outputs = TokenOutputs::with_status(S::Successful);
            outputs.access_token = Some(token.access_token.clone());
            outputs.token_type = Some(token.token_type.clone());
            outputs.expires_in = u64::try_from(remaining).ok();
            outputs.response_fields = token.response_fields.clone();
            outputs.response.insert("token_cache".into(), "hit".into());
            return outputs;
        }
        let outputs = self
            .client_credentials(&server, token_url, &scope, &resource)
            .await;
        *cached = match (&outputs.access_token, outputs.expires_in, outputs.status) {
            (Some(token), Some(secs), S::Successful) => Some(Cached {
                access_token: token.clone(),
                token_type: outputs
                    .token_type
                    .clone()
                    .unwrap_or_else(|| "Bearer".to_owned()),
                obtained_at: now,
                expires_at: now + time::Duration::seconds(i64::try_from(secs).unwrap_or(0)),
                response_fields: outputs.response_fields.clone(),
            }),
            // Without an expiry a token cannot be cached safely.
            _ => None,
        };
        outputs
    }

    async fn client_credentials(
        &self,
        server: &OAuthServer,
        token_url: &Url,
        scope: &str,
        resource: &str,
    ) -> TokenOutputs<ServerLoginStatus> {
        use ServerLoginStatus as S;
        match self
            .request(
                server,
                token_url,
                &Grant::ClientCredentials { scope, resource },
            )
            .await
        {
            Ok(response) if !response.is_bearer() => {
                unsupported_type(S::Unknown, &response.token_type)
            }
            Ok(response) => {
                let mut outputs = TokenOutputs::success(S::Successful, response);
                // Thinkwise's server login has no `Granted scopes` or `Refresh token` outputs.
                outputs.granted_scopes = None;
                outputs.refresh_token = None;
                outputs
            }
            Err(err) => TokenOutputs::from_token_error(S::Unknown, &err),
        }
    }

    /// `oauth_user_login`, first half: the authorization URL and what to store until the callback.
    pub async fn start_user_login(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        input: &UserLoginInput,
        redirect: &RedirectSettings,
    ) -> Result<AuthorizationRequest, TokenOutputs<UserLoginStatus>> {
        use UserLoginStatus as S;
        let Some(server) = server else {
            return Err(unknown_server(S::Unknown, server_id));
        };
        let server = self
            .endpoints(server)
            .await
            .map_err(|err| discovery_failure(&err))?;
        let Some(authorization_url) = server.authorization_url.as_ref() else {
            return Err(missing_field(S::Unknown, &server, "authorization_url"));
        };
        let redirect_uri =
            resolve_redirect_uri(&server, redirect.global.as_ref(), &redirect.default);
        build_authorization_request(
            &server,
            authorization_url,
            input,
            &redirect_uri,
            self.clock.now(),
            redirect.pending_ttl,
        )
        .map_err(|err| TokenOutputs::failure(S::Unknown, "internal_error", err.to_string()))
    }

    /// `oauth_user_login`, second half: the identity provider redirected back. `server` is the
    /// configuration the pending authorization names (looked up again: it may have changed).
    pub async fn finish_user_login(
        &self,
        server: Option<&OAuthServer>,
        pending: &PendingAuthorization,
        callback: &CallbackParams,
    ) -> TokenOutputs<UserLoginStatus> {
        use UserLoginStatus as S;
        if !callback
            .state
            .as_deref()
            .is_some_and(|state| pending.state.ct_eq(state))
        {
            return TokenOutputs::failure(
                S::Unknown,
                "invalid_state",
                "the callback's `state` does not belong to this login",
            );
        }
        if pending.is_expired(self.clock.now()) {
            return self.expire_user_login();
        }
        // RFC 9207 §2.4, before anything else of the response is used (error responses carry
        // `iss` too). A pending authorization stored before the issuer was kept in it falls back
        // to the configured issuer.
        let expected = pending.issuer.clone().or_else(|| {
            server
                .and_then(|server| server.issuer.as_ref())
                .map(ToString::to_string)
        });
        if let Err(description) = check_callback_issuer(
            expected.as_deref(),
            pending.iss_required,
            callback.iss.as_deref(),
        ) {
            return TokenOutputs::failure(S::Unknown, "invalid_issuer", description);
        }
        if let Some(error) = &callback.error {
            // RFC 6749 §4.1.2.1. The provider's description is shown as given: it is text the
            // provider chose to put in a URL, not a secret.
            let status = if error == "access_denied" {
                S::Aborted
            } else {
                S::Unknown
            };
            let description = callback
                .error_description
                .clone()
                .unwrap_or_else(|| format!("the identity provider returned `{error}`"));
            return TokenOutputs::failure(status, error.clone(), description);
        }
        let Some(server) = server else {
            return unknown_server(S::Unknown, &pending.server_id);
        };
        let server = match self.endpoints(server).await {
            Ok(server) => server,
            Err(err) => return discovery_failure(&err),
        };
        let Some(code) = &callback.code else {
            return TokenOutputs::failure(
                S::Unknown,
                "invalid_request",
                "the callback has neither `code` nor `error`",
            );
        };
        let Some(token_url) = server.token_url.as_ref() else {
            return missing_field(S::Unknown, &server, "token_url");
        };
        let grant = Grant::AuthorizationCode {
            code,
            redirect_uri: &pending.redirect_uri,
            code_verifier: pending.code_verifier.as_ref(),
            resource: &pending.resource,
        };
        let response = match self.request(&server, token_url, &grant).await {
            Ok(response) => response,
            Err(err) => {
                let status = if err.is_connection_problem() {
                    S::ConnectionError
                } else {
                    S::Unknown
                };
                return TokenOutputs::from_token_error(status, &err);
            }
        };
        if !response.is_bearer() {
            return unsupported_type(S::UnsupportedTokenType, &response.token_type);
        }
        if let Some(id_token) = &response.id_token {
            let expected = Expected {
                nonce: pending.nonce.as_ref(),
                client_id: &server.client_id,
                issuer: server.issuer.as_ref().map(Url::as_str),
                now: self.clock.now(),
            };
            if let Err(err) = check_id_token(id_token, &expected) {
                return TokenOutputs::failure(S::Unknown, "invalid_id_token", err.to_string());
            }
        }
        let mut outputs = TokenOutputs::success(S::Successful, response);
        if outputs.granted_scopes.is_none() {
            // RFC 6749 §5.1: no `scope` in the response means the requested scope was granted.
            outputs.granted_scopes = Some(pending.requested_scope.clone());
        }
        outputs
    }

    /// `oauth_user_login` whose person never came back before the pending authorization expired.
    pub fn expire_user_login(&self) -> TokenOutputs<UserLoginStatus> {
        TokenOutputs::failure(
            UserLoginStatus::Aborted,
            "login_expired",
            "the user did not complete the sign-in before the pending authorization expired",
        )
    }

    /// `oauth_refresh_token` (RFC 6749 §6).
    pub async fn refresh_token(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        refresh_token: &Input<SecretString>,
    ) -> TokenOutputs<RefreshStatus> {
        self.refresh_token_for(server_id, server, refresh_token, &Input::Unassigned)
            .await
    }

    /// `oauth_refresh_token` with its `resource` input (RFC 8707 §2.2: a token for these
    /// resources, separated by white space).
    pub async fn refresh_token_for(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        refresh_token: &Input<SecretString>,
        resource: &Input<String>,
    ) -> TokenOutputs<RefreshStatus> {
        use RefreshStatus as S;
        let resource = resource.assigned().map(String::as_str).unwrap_or("");
        let Some(server) = server else {
            return unknown_server(S::NoServer, server_id);
        };
        let Some(refresh_token) = refresh_token.assigned().filter(|token| !token.is_empty()) else {
            return TokenOutputs::failure(
                S::InputMissing,
                "input_missing",
                "the refresh token is empty",
            );
        };
        let server = match self.endpoints(server).await {
            Ok(server) => server,
            Err(err) => {
                return TokenOutputs::failure(S::Unknown, "discovery_failed", err.to_string());
            }
        };
        let Some(token_url) = server.token_url.as_ref() else {
            return missing_field(S::NoServer, &server, "token_url");
        };
        match self
            .request(
                &server,
                token_url,
                &Grant::RefreshToken {
                    refresh_token,
                    resource,
                },
            )
            .await
        {
            Ok(response) if !response.is_bearer() => {
                unsupported_type(S::Unknown, &response.token_type)
            }
            Ok(response) => {
                let mut outputs = TokenOutputs::success(S::Successful, response);
                if outputs.refresh_token.is_none() {
                    // No rotation: the input token stays valid and is passed on (docs/connectors.md).
                    outputs.refresh_token = Some(refresh_token.clone());
                }
                outputs
            }
            Err(TokenError::Unusable { status, reason }) if matches!(status, 400 | 401) => {
                refused_without_error_code(status, &reason)
            }
            Err(err) => TokenOutputs::from_token_error(S::Unknown, &err),
        }
    }

    /// `oauth_revoke_token` (RFC 7009). Outputs only a status and the error: the token itself is
    /// neither echoed nor logged.
    pub async fn revoke_token(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        token: &Input<SecretString>,
        token_type_hint: &Input<String>,
    ) -> TokenOutputs<RevokeStatus> {
        use RevokeStatus as S;
        let Some(server) = server else {
            return unknown_server(S::NoEndpoint, server_id);
        };
        let Some(token) = token.assigned().filter(|token| !token.is_empty()) else {
            return TokenOutputs::failure(S::InputMissing, "input_missing", "the token is empty");
        };
        let hint = token_type_hint
            .assigned()
            .map(|hint| hint.trim())
            .filter(|hint| !hint.is_empty());
        if let Some(hint) = hint
            && !super::revocation::TOKEN_TYPE_HINTS.contains(&hint)
        {
            return TokenOutputs::failure(
                S::Unknown,
                "invalid_token_type_hint",
                format!(
                    "`token_type_hint` must be `access_token` or `refresh_token`, not `{hint}`"
                ),
            );
        }
        let http = match self.http_for(server) {
            Ok(http) => http,
            Err(err) => {
                return TokenOutputs::failure(S::Unknown, "connection_error", err.to_string());
            }
        };
        let server = match resolve_revocation_endpoints(&self.tls, server).await {
            Ok(server) => server,
            Err(err) => {
                return TokenOutputs::failure(S::Unknown, "discovery_failed", err.to_string());
            }
        };
        let Some(revocation_url) = server.revocation_url.as_ref() else {
            return missing_field(S::NoEndpoint, &server, "revocation_url");
        };
        let audience = server.token_url.as_ref().unwrap_or(revocation_url);
        match super::revocation::revoke(
            &http,
            &server,
            revocation_url,
            audience,
            token,
            hint,
            self.clock.now(),
        )
        .await
        {
            Ok(()) => TokenOutputs::with_status(S::Successful),
            Err(err) => {
                let mut outputs = TokenOutputs::failure(
                    S::Unknown,
                    err.error_code(),
                    super::revocation::description(&err),
                );
                if let TokenError::Provider { error, .. } = &err {
                    outputs.response = error.extra.clone();
                }
                outputs
            }
        }
    }

    pub(super) async fn endpoints(
        &self,
        server: &OAuthServer,
    ) -> Result<OAuthServer, DiscoveryError> {
        resolve_endpoints(&self.tls, server).await
    }
}

pub(super) fn unknown_server<S: crate::status::ConnectorStatus>(
    status: S,
    server_id: &str,
) -> TokenOutputs<S> {
    TokenOutputs::failure(
        status,
        "no_configuration",
        format!("OAuth server `{server_id}` is not configured"),
    )
}

pub(super) fn missing_field<S: crate::status::ConnectorStatus>(
    status: S,
    server: &OAuthServer,
    field: &str,
) -> TokenOutputs<S> {
    TokenOutputs::failure(
        status,
        "no_configuration",
        format!("OAuth server `{}` has no `{field}`", server.id),
    )
}

pub(super) fn unsupported_type<S: crate::status::ConnectorStatus>(
    status: S,
    token_type: &Option<String>,
) -> TokenOutputs<S> {
    TokenOutputs::failure(
        status,
        "unsupported_token_type",
        format!(
            "the token type is `{}`; only bearer tokens are supported",
            token_type.as_deref().unwrap_or("")
        ),
    )
}

/// A refresh answered 400 or 401 without the `error` member RFC 6749 §5.2 requires. Providers that
/// do this (an empty body for a used or revoked refresh token) mean the grant is gone; treating it
/// as `invalid_grant` lets a flow route to a new sign-in instead of failing with `-1` forever.
fn refused_without_error_code(status: u16, reason: &str) -> TokenOutputs<RefreshStatus> {
    let mut outputs = TokenOutputs::failure(
        RefreshStatus::Unknown,
        "invalid_grant",
        format!(
            "the token endpoint refused the refresh token with HTTP {status} and no error code ({reason}); treated as invalid_grant"
        ),
    );
    outputs.warnings.push(super::token_response::Warning {
        code: "error_missing",
        message: format!(
            "the provider answered {status} without an error code; treated as invalid_grant (RFC 6749 §5.2 requires `error`)"
        ),
    });
    outputs
}

fn discovery_failure(err: &DiscoveryError) -> TokenOutputs<UserLoginStatus> {
    let status = match err {
        DiscoveryError::Transport { .. } => UserLoginStatus::ConnectionError,
        DiscoveryError::Status { status, .. } if *status >= 500 => UserLoginStatus::ConnectionError,
        _ => UserLoginStatus::Unknown,
    };
    TokenOutputs::failure(status, "discovery_failed", err.to_string())
}

impl From<&TokenError> for UserLoginStatus {
    fn from(err: &TokenError) -> Self {
        if err.is_connection_problem() {
            Self::ConnectionError
        } else {
            Self::Unknown
        }
    }
}
