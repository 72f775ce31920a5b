//! OAuth server configuration (docs/connectors.md): one client registration at one authorization server.
//!
//! [`OAuthServerSpec`] is what a user writes (config file table or API body, unknown fields
//! rejected); [`OAuthServerSpec::validate`] turns it into an [`OAuthServer`] with defaults applied,
//! or reports *every* problem at once, each naming the server and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::client_cert::ClientCertificate;
use crate::client_key::{ClientKey, SigningAlg};
use crate::provider_quirks::{PresetRef, ProviderQuirks, ScopeSeparator};
use crate::secret::SecretString;
use crate::service_account::ServiceAccountKey;
use client_auth::{ClientAuthFields, client_authentication};

mod client_auth;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsDelivery {
    /// `client_id` and `client_secret` as form fields in the request body (Thinkwise's default).
    #[default]
    Body,
    /// HTTP Basic with the form-urlencoded id and secret.
    BasicHeader,
}

/// How the client authenticates at the token endpoint (docs/connectors.md, "Client
/// authentication"; the names of the OAuth Dynamic Client Registration registry, RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// `client_id` and `client_secret` in the body (`client_credentials_delivery = "body"`).
    #[default]
    ClientSecretPost,
    /// HTTP Basic (`client_credentials_delivery = "basic_header"`).
    ClientSecretBasic,
    /// A JWT signed HS256 with the client secret (RFC 7523 §2.2, OpenID Connect Core §9).
    ClientSecretJwt,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
    /// No client authentication: the `client_id` in the body (RFC 6749 §3.2.1).
    None,
    /// Mutual TLS with a CA-issued certificate (RFC 8705 §2.1.1): the client certificate is
    /// presented in the TLS handshake, `client_id` goes in the body.
    TlsClientAuth,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }

    /// The `client_credentials_delivery` that means the same, if any.
    pub fn delivery(self) -> Option<CredentialsDelivery> {
        match self {
            Self::ClientSecretPost => Some(CredentialsDelivery::Body),
            Self::ClientSecretBasic => Some(CredentialsDelivery::BasicHeader),
            _ => None,
        }
    }
}

impl fmt::Display for TokenEndpointAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the client id and secret are put into HTTP Basic (`client_credentials_delivery =
/// "basic_header"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasicAuthEncoding {
    /// Each form-urlencoded before `id:secret` is Base64-encoded (RFC 6749 §2.3.1, Appendix B).
    #[default]
    FormUrlencoded,
    /// As they are, for providers that do not decode them (`id:secret`, then Base64). An id with
    /// `:` cannot be sent this way (RFC 7617 §2).
    Raw,
}

/// The `prompt` sent when an action's `UsePrompt` is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    #[default]
    Consent,
    Login,
    SelectAccount,
    None,
}

impl Prompt {
    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::Consent => "consent",
            Prompt::Login => "login",
            Prompt::SelectAccount => "select_account",
            Prompt::None => "none",
        }
    }
}

/// A timeout written as whole seconds (`30`) or with a unit (`"30s"`, `"500ms"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum TimeoutSpec {
    Seconds(u64),
    Text(String),
}

impl TimeoutSpec {
    fn to_duration(&self) -> Option<Duration> {
        match self {
            TimeoutSpec::Seconds(secs) => Some(Duration::from_secs(*secs)),
            TimeoutSpec::Text(text) => {
                let text = text.trim();
                if let Some(ms) = text.strip_suffix("ms") {
                    ms.trim().parse().ok().map(Duration::from_millis)
                } else if let Some(s) = text.strip_suffix('s') {
                    s.trim().parse().ok().map(Duration::from_secs)
                } else if let Some(m) = text.strip_suffix('m') {
                    m.trim()
                        .parse::<u64>()
                        .ok()
                        .map(|m| Duration::from_secs(m * 60))
                } else if let Some(h) = text.strip_suffix('h') {
                    h.trim()
                        .parse::<u64>()
                        .ok()
                        .map(|h| Duration::from_secs(h * 3600))
                } else {
                    text.parse().ok().map(Duration::from_secs)
                }
            }
        }
    }
}

/// An OAuth server as written by a user, before validation. The configuration loader reads the
/// secret-valued fields as sources (`{ env = … }`, `{ file = … }`) and resolves them with
/// [`Self::map_secrets`]. The API accepts it as JSON (docs/connectors.md), the `client_secret` and
/// the `private_key` write-only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = OAuthServerInput, bound = "")
)]
pub struct OAuthServerSpec<Secret = SecretString> {
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub client_id: Option<String>,
    /// Write-only. Omitted: the stored secret is kept, unless an endpoint, the issuer or the
    /// client authentication changes (then `secret_required`); `""` removes it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub client_secret: Option<Secret>,
    /// `body` (≙ `client_secret_post`) or `basic_header` (≙ `client_secret_basic`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub client_credentials_delivery: Option<CredentialsDelivery>,
    /// `client_secret_post` (default), `client_secret_basic`, `client_secret_jwt`,
    /// `private_key_jwt`, `tls_client_auth` or `none`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    /// With `private_key_jwt` or `tls_client_auth`: the PEM private key (PKCS#8, PKCS#1 RSA or
    /// SEC1 EC). Write-only
    /// like `client_secret`: omitted, the stored key is kept (with the same rule); `""` removes it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub private_key: Option<Secret>,
    /// With `private_key_jwt`: `RS256` (default), `PS256` or `ES256`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub signing_alg: Option<SigningAlg>,
    /// With `private_key_jwt`: the PEM certificate of the key; the assertion's header then
    /// carries its `x5t#S256` thumbprint. Not secret, but read like `private_key`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub certificate: Option<Secret>,
    /// With `certificate`: also send the SHA-1 thumbprint `x5t`.
    pub x5t_sha1: Option<bool>,
    /// A Google-style service account key (JSON): the credential of `oauth_token_exchange` with
    /// `mode: jwt_bearer` (RFC 7523 §2.1). Configuration file only.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service_account_key: Option<Secret>,
    /// Instead of `private_key` + `certificate`: a PKCS#12 file, as Base64 (the config file's
    /// `{ file }` reads the file itself). Write-only: the API unpacks it into `private_key` and
    /// `certificate` and keeps neither the file nor its password.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pkcs12: Option<Secret>,
    /// The password of `pkcs12` (empty when absent). Write-only, never stored.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pkcs12_password: Option<Secret>,
    /// Extra trusted CA certificate(s), PEM, for this server's endpoints (a private CA). Not
    /// secret, but read like `certificate`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tls_ca: Option<Secret>,
    /// With `basic_header`: `form_urlencoded` (default, RFC 6749 §2.3.1) or `raw` (for providers
    /// that do not decode the credentials).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub basic_auth_encoding: Option<BasicAuthEncoding>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    /// The RFC 7009 revocation endpoint (`oauth_revoke_token`); from discovery when absent.
    pub revocation_url: Option<String>,
    /// The RFC 8628 device authorization endpoint (`oauth_device_login`); from discovery's
    /// `device_authorization_endpoint` when absent.
    pub device_authorization_url: Option<String>,
    pub issuer: Option<String>,
    pub scope: Option<String>,
    pub pkce: Option<bool>,
    pub request_refresh_token: Option<bool>,
    /// `consent`, `login`, `select_account`, `none`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub prompt: Option<Prompt>,
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    pub extra_token_params: BTreeMap<String, String>,
    /// Seconds, or text such as `"30s"`, `"500ms"`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub timeout: Option<TimeoutSpec>,
    pub token_cache: Option<bool>,
    pub token_cache_skew: Option<u64>,
    /// Refresh vault entries of this server that were not refreshed for this long, so their
    /// refresh tokens do not lapse (e.g. `"12h"`). Off when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub vault_keep_alive: Option<TimeoutSpec>,
    /// A catalogue preset (`tokenflow providers list`) filling every unset field.
    pub provider: Option<String>,
    /// Preset parameters: Entra's `tenant`, Okta's `domain`, Keycloak's `realm` and `base_url`.
    pub tenant: Option<String>,
    pub domain: Option<String>,
    pub realm: Option<String>,
    pub base_url: Option<String>,
    /// Provider quirks: `" "` (default) or `","`; the token's object path (`authed_user`); the
    /// provider's bearer `token_type` names; response members output as `response_fields`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub scope_separator: Option<ScopeSeparator>,
    pub token_path: Option<String>,
    pub bearer_token_types: Option<Vec<String>>,
    pub response_fields: Option<Vec<String>>,
    /// The API statuses after which `http_connector` with `auth.oauth_server` or `auth.vault`
    /// gets a new token and sends the request once more; default `[401]`, each a 4xx status.
    pub reauth_on_status: Option<Vec<u16>>,
}

pub use crate::flow::http_options::DEFAULT_REAUTH_ON_STATUS;

/// A validated OAuth server configuration with every default applied.
#[derive(Debug, Clone)]
pub struct OAuthServer {
    pub id: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub basic_auth_encoding: BasicAuthEncoding,
    /// With `private_key_jwt` only: the parsed private key and certificate thumbprints.
    pub client_key: Option<ClientKey>,
    /// The service account key of the JWT bearer grant, parsed.
    pub service_account_key: Option<ServiceAccountKey>,
    /// With `tls_client_auth` only: the certificate and key presented in the TLS handshake.
    pub client_certificate: Option<ClientCertificate>,
    /// Extra trusted CA certificates (PEM) for this server's endpoints.
    pub tls_ca: Option<String>,
    pub authorization_url: Option<Url>,
    pub token_url: Option<Url>,
    /// The RFC 7009 revocation endpoint; filled from discovery's `revocation_endpoint` when absent.
    pub revocation_url: Option<Url>,
    /// The RFC 8628 device authorization endpoint; filled from discovery when absent.
    pub device_authorization_url: Option<Url>,
    pub issuer: Option<Url>,
    pub scope: Option<String>,
    pub pkce: bool,
    pub request_refresh_token: bool,
    pub prompt: Prompt,
    pub redirect_uri: Option<Url>,
    pub extra_authorize_params: BTreeMap<String, String>,
    pub extra_token_params: BTreeMap<String, String>,
    pub timeout: Duration,
    pub token_cache: bool,
    pub token_cache_skew: Duration,
    pub vault_keep_alive: Option<Duration>,
    /// API statuses that make `http_connector` renew the token and send again once.
    pub reauth_on_status: Vec<u16>,
    /// What the provider's discovery document says about authorization responses; filled in by
    /// discovery, never configured (empty when no document was read).
    pub discovered: DiscoveredIssuer,
    /// The catalogue preset the server was built from, with the parameters it was given.
    pub preset: Option<PresetRef>,
    /// Provider behaviour the connectors follow (scope separator, token path, …).
    pub quirks: ProviderQuirks,
}

impl OAuthServer {
    /// Whether the client authenticates at the token endpoint (a confidential client): with a
    /// client secret, or with `private_key_jwt`. The client credentials grant needs it.
    pub fn authenticates_client(&self) -> bool {
        match self.token_endpoint_auth_method {
            TokenEndpointAuthMethod::PrivateKeyJwt => self.client_key.is_some(),
            TokenEndpointAuthMethod::TlsClientAuth => self.client_certificate.is_some(),
            TokenEndpointAuthMethod::None => false,
            _ => self.client_secret.is_some(),
        }
    }
}

/// What discovery learnt about the issuer, for the RFC 9207 check of authorization responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveredIssuer {
    /// The document's `issuer`, exactly as written, unless it is a template (Entra's
    /// `{tenantid}`): then the configured issuer is the one responses carry.
    pub issuer: Option<String>,
    /// `authorization_response_iss_parameter_supported: true` (RFC 9207 §3): every authorization
    /// response must then carry `iss`.
    pub iss_parameter_supported: bool,
}

/// Default per-request timeout at the token endpoint (docs/connectors.md).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default remaining lifetime below which a cached token is no longer served (docs/connectors.md).
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Parameters tokenflow sets itself; an `extra_*_params` entry may not replace them, because that
/// would silently break PKCE, `state` or client authentication.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
];
const RESERVED_TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code",
    "code_verifier",
    "redirect_uri",
    "refresh_token",
    "device_code",
    "scope",
];

/// One problem with one field of one OAuth server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("oauth server `{server}`, field `{field}`: {problem}")]
pub struct ConfigError {
    pub server: String,
    pub field: String,
    pub problem: String,
}

impl<Secret> Default for OAuthServerSpec<Secret> {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            client_credentials_delivery: None,
            token_endpoint_auth_method: None,
            private_key: None,
            signing_alg: None,
            certificate: None,
            x5t_sha1: None,
            service_account_key: None,
            pkcs12: None,
            pkcs12_password: None,
            tls_ca: None,
            basic_auth_encoding: None,
            authorization_url: None,
            token_url: None,
            revocation_url: None,
            device_authorization_url: None,
            issuer: None,
            scope: None,
            pkce: None,
            request_refresh_token: None,
            prompt: None,
            redirect_uri: None,
            extra_authorize_params: BTreeMap::new(),
            extra_token_params: BTreeMap::new(),
            timeout: None,
            token_cache: None,
            token_cache_skew: None,
            vault_keep_alive: None,
            provider: None,
            tenant: None,
            domain: None,
            realm: None,
            base_url: None,
            scope_separator: None,
            token_path: None,
            bearer_token_types: None,
            response_fields: None,
            reauth_on_status: None,
        }
    }
}

impl<Secret> OAuthServerSpec<Secret> {
    /// The same spec with its secret-valued fields (`client_secret`, `private_key`, `certificate`)
    /// turned into another type (e.g. a source resolved to a value); `f` gets the field's name.
    pub fn map_secrets<T>(
        self,
        mut f: impl FnMut(&str, Secret) -> Option<T>,
    ) -> OAuthServerSpec<T> {
        OAuthServerSpec {
            client_id: self.client_id,
            client_secret: self
                .client_secret
                .and_then(|secret| f("client_secret", secret)),
            client_credentials_delivery: self.client_credentials_delivery,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            private_key: self.private_key.and_then(|key| f("private_key", key)),
            signing_alg: self.signing_alg,
            certificate: self
                .certificate
                .and_then(|certificate| f("certificate", certificate)),
            x5t_sha1: self.x5t_sha1,
            service_account_key: self
                .service_account_key
                .and_then(|key| f("service_account_key", key)),
            pkcs12: self.pkcs12.and_then(|file| f("pkcs12", file)),
            pkcs12_password: self
                .pkcs12_password
                .and_then(|password| f("pkcs12_password", password)),
            tls_ca: self.tls_ca.and_then(|ca| f("tls_ca", ca)),
            basic_auth_encoding: self.basic_auth_encoding,
            authorization_url: self.authorization_url,
            token_url: self.token_url,
            revocation_url: self.revocation_url,
            device_authorization_url: self.device_authorization_url,
            issuer: self.issuer,
            scope: self.scope,
            pkce: self.pkce,
            request_refresh_token: self.request_refresh_token,
            prompt: self.prompt,
            redirect_uri: self.redirect_uri,
            extra_authorize_params: self.extra_authorize_params,
            extra_token_params: self.extra_token_params,
            timeout: self.timeout,
            token_cache: self.token_cache,
            token_cache_skew: self.token_cache_skew,
            vault_keep_alive: self.vault_keep_alive,
            provider: self.provider,
            tenant: self.tenant,
            domain: self.domain,
            realm: self.realm,
            base_url: self.base_url,
            scope_separator: self.scope_separator,
            token_path: self.token_path,
            bearer_token_types: self.bearer_token_types,
            response_fields: self.response_fields,
            reauth_on_status: self.reauth_on_status,
        }
    }
}

impl OAuthServerSpec {
    /// Applies defaults and checks every field; returns all problems, not only the first.
    pub fn validate(mut self, id: &str) -> Result<OAuthServer, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut problem = |field: &str, text: String| {
            errors.push(ConfigError {
                server: id.to_owned(),
                field: field.to_owned(),
                problem: text,
            })
        };

        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            problem(
                "id",
                "must be non-empty and use only letters, digits, `-`, `_` and `.`".to_owned(),
            );
        }
        // docs/connectors.md, "Provider catalogue": the preset fills what is unset.
        let preset = self.apply_preset(&mut problem);
        let quirks = self.quirks(&mut problem);
        let service_account_key = self
            .service_account_key
            .filter(|key| !key.is_empty())
            .and_then(|key| match ServiceAccountKey::from_json(&key) {
                Ok(key) => Some(key),
                Err(text) => {
                    problem("service_account_key", text);
                    None
                }
            });
        let client_id = match self.client_id {
            Some(value) if !value.trim().is_empty() => value,
            // A service account is its own client (docs/connectors.md, "Google service accounts").
            None if service_account_key.is_some() => service_account_key
                .as_ref()
                .map(|key| key.client_email().to_owned())
                .unwrap_or_default(),
            Some(_) => {
                problem("client_id", "must not be empty".to_owned());
                String::new()
            }
            None => {
                problem("client_id", "is required".to_owned());
                String::new()
            }
        };
        let mut url_field = |field: &str, value: Option<String>| -> Option<Url> {
            let value = value?;
            match parse_http_url(&value) {
                Ok(url) => Some(url),
                Err(text) => {
                    problem(field, text);
                    None
                }
            }
        };
        let authorization_url = url_field("authorization_url", self.authorization_url);
        let token_url = url_field("token_url", self.token_url);
        let revocation_url = url_field("revocation_url", self.revocation_url);
        let device_authorization_url =
            url_field("device_authorization_url", self.device_authorization_url);
        let issuer = url_field("issuer", self.issuer);
        let redirect_uri = url_field("redirect_uri", self.redirect_uri);
        if redirect_uri
            .as_ref()
            .is_some_and(|url| url.fragment().is_some())
        {
            // RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment.
            problem(
                "redirect_uri",
                "must not contain a fragment (`#…`)".to_owned(),
            );
        }
        for key in self.extra_authorize_params.keys() {
            if RESERVED_AUTHORIZE_PARAMS.contains(&key.as_str()) {
                problem(
                    "extra_authorize_params",
                    format!("`{key}` is set by tokenflow and cannot be overridden"),
                );
            }
        }
        for key in self.extra_token_params.keys() {
            if RESERVED_TOKEN_PARAMS.contains(&key.as_str()) {
                problem(
                    "extra_token_params",
                    format!("`{key}` is set by tokenflow and cannot be overridden"),
                );
            }
        }
        let timeout = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(spec) => match spec.to_duration() {
                Some(duration) if !duration.is_zero() && duration <= MAX_TIMEOUT => duration,
                _ => {
                    problem(
                        "timeout",
                        "must be a duration between 1ms and 600s, e.g. `30` or \"500ms\""
                            .to_owned(),
                    );
                    DEFAULT_TIMEOUT
                }
            },
        };
        let basic_auth_encoding = self.basic_auth_encoding.unwrap_or_default();
        if basic_auth_encoding == BasicAuthEncoding::Raw && client_id.contains(':') {
            // RFC 7617 §2: the user-id ends at the first colon, so a raw id cannot hold one.
            problem(
                "basic_auth_encoding",
                "`raw` cannot send a client id that contains `:` (HTTP Basic splits at the first colon); use `form_urlencoded` or `body` delivery".to_owned(),
            );
        }
        let client_secret = self.client_secret.filter(|secret| !secret.is_empty());
        let (token_endpoint_auth_method, client_key, client_certificate) = client_authentication(
            ClientAuthFields {
                method: self.token_endpoint_auth_method,
                delivery: self.client_credentials_delivery,
                has_secret: client_secret.is_some(),
                private_key: self.private_key,
                signing_alg: self.signing_alg,
                certificate: self.certificate,
                x5t_sha1: self.x5t_sha1,
                pkcs12: self.pkcs12,
                pkcs12_password: self.pkcs12_password,
            },
            &mut problem,
        );
        let tls_ca = self.tls_ca.and_then(|ca| {
            crate::client_cert::check_ca_pem(ca.expose())
                .map_err(|text| problem("tls_ca", text))
                .ok()
        });
        let scope = self.scope.map(|scope| normalize_scope(&scope));
        let vault_keep_alive = match &self.vault_keep_alive {
            None => None,
            Some(spec) => match spec.to_duration() {
                Some(duration) if duration >= Duration::from_secs(60) => Some(duration),
                _ => {
                    problem(
                        "vault_keep_alive",
                        "must be a duration of at least 60 s, e.g. \"12h\" or \"90m\"".to_owned(),
                    );
                    None
                }
            },
        };
        let reauth_on_status = crate::flow::http_options::reauth_on_status(self.reauth_on_status)
            .unwrap_or_else(|text| {
                problem("reauth_on_status", text);
                Vec::new()
            });

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(OAuthServer {
            id: id.to_owned(),
            client_id,
            client_secret,
            token_endpoint_auth_method,
            basic_auth_encoding,
            client_key,
            service_account_key,
            client_certificate,
            tls_ca,
            authorization_url,
            token_url,
            revocation_url,
            device_authorization_url,
            issuer,
            scope,
            pkce: self.pkce.unwrap_or(true),
            request_refresh_token: self.request_refresh_token.unwrap_or(false),
            prompt: self.prompt.unwrap_or_default(),
            redirect_uri,
            extra_authorize_params: self.extra_authorize_params,
            extra_token_params: self.extra_token_params,
            timeout,
            token_cache: self.token_cache.unwrap_or(true),
            token_cache_skew: self
                .token_cache_skew
                .map_or(DEFAULT_SKEW, Duration::from_secs),
            vault_keep_alive,
            reauth_on_status,
            discovered: DiscoveredIssuer::default(),
            preset,
            quirks,
        })
    }
}

/// Collapses runs of white space in a scope string (RFC 6749 §3.3: space-delimited).
pub fn normalize_scope(scope: &str) -> String {
    scope.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|err| format!("`{value}` is not a valid URL ({err})"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("`{value}` must use http or https, not `{other}`")),
    }
}

impl fmt::Display for BasicAuthEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BasicAuthEncoding::FormUrlencoded => "form_urlencoded",
            BasicAuthEncoding::Raw => "raw",
        })
    }
}

impl fmt::Display for CredentialsDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialsDelivery::Body => "body",
            CredentialsDelivery::BasicHeader => "basic_header",
        })
    }
}

#[cfg(test)]
mod tests;
