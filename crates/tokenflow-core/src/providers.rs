//! The provider catalogue (docs/connectors.md, "Provider catalogue"): presets for well-known OAuth
//! servers, and the provider quirks an OAuth server carries.
//!
//! The catalogue is data, not code: `providers.toml` beside this crate's manifest, embedded at
//! build time and parsed once. A server with `provider = "NAME"` takes every field of the entry
//! that it does not set itself (explicit fields win), with the entry's templates filled from the
//! preset parameters `tenant`, `domain`, `realm` and `base_url`. The parameters are checked
//! against a strict shape before they go into a URL, so a parameter cannot add a path, a query or
//! another host. The quirks ([`ProviderQuirks`]) are plain server fields that the connectors
//! read; no connector asks which provider a server is.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::oauth_server::{OAuthServerSpec, Prompt, TokenEndpointAuthMethod};
pub use crate::provider_quirks::{
    MAX_PARAMETER_LEN, Parameter, PresetRef, ProviderQuirks, ScopeSeparator,
};

/// The catalogue's source, embedded so the binary needs no data files.
pub const CATALOGUE_TOML: &str = include_str!("../providers.toml");

/// One entry of the catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub display_name: String,
    /// The provider's documentation page the entry was taken from.
    pub docs: String,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub defaults: BTreeMap<Parameter, String>,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    /// RFC 8628 device authorization endpoint (shown; used by the device flow).
    pub device_authorization_url: Option<String>,
    /// OpenID Connect UserInfo or the provider's "who am I" endpoint (shown, for flows).
    pub userinfo_url: Option<String>,
    pub scope_separator: Option<ScopeSeparator>,
    pub pkce: Option<bool>,
    pub request_refresh_token: Option<bool>,
    pub prompt: Option<Prompt>,
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    pub extra_token_params: BTreeMap<String, String>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub token_path: Option<String>,
    #[serde(default)]
    pub bearer_token_types: Vec<String>,
    #[serde(default)]
    pub response_fields: Vec<String>,
    #[serde(default)]
    pub quirks: Vec<String>,
}

impl Provider {
    /// Every templated field with its name, for checks and display.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        [
            ("issuer", &self.issuer),
            ("authorization_url", &self.authorization_url),
            ("token_url", &self.token_url),
            ("revocation_url", &self.revocation_url),
            ("device_authorization_url", &self.device_authorization_url),
            ("userinfo_url", &self.userinfo_url),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| (name, value)))
        .collect()
    }

    /// The parameters a server must give (those without a default).
    pub fn required_parameters(&self) -> Vec<Parameter> {
        self.parameters
            .iter()
            .copied()
            .filter(|parameter| !self.defaults.contains_key(parameter))
            .collect()
    }
}

/// The whole catalogue, by provider name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub providers: BTreeMap<String, Provider>,
}

impl Catalogue {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err| err.to_string())
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }
}

static CATALOGUE: LazyLock<Result<Catalogue, String>> =
    LazyLock::new(|| Catalogue::parse(CATALOGUE_TOML));

/// The embedded catalogue (a test proves it parses).
pub fn catalogue() -> Result<&'static Catalogue, &'static str> {
    CATALOGUE.as_ref().map_err(String::as_str)
}

/// Fills `{parameter}` placeholders. Every placeholder must name a given parameter.
pub fn expand(template: &str, values: &BTreeMap<Parameter, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("`{template}` has an unclosed `{{`"));
        };
        let name = &after[..close];
        let value = Parameter::ALL
            .iter()
            .find(|parameter| parameter.as_str() == name)
            .and_then(|parameter| values.get(parameter))
            .ok_or_else(|| format!("`{template}` uses `{{{name}}}`, which is not a parameter"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The preset parameters as written in a spec.
fn given_parameters<S>(spec: &OAuthServerSpec<S>) -> Vec<(Parameter, &Option<String>)> {
    vec![
        (Parameter::Tenant, &spec.tenant),
        (Parameter::Domain, &spec.domain),
        (Parameter::Realm, &spec.realm),
        (Parameter::BaseUrl, &spec.base_url),
    ]
}

/// Applies the spec's `provider` preset to its unset fields; every problem (unknown provider, a
/// missing, unused or malformed parameter) goes to `problem` with its field. Returns the preset
/// used, if any.
impl<S> OAuthServerSpec<S> {
    pub(crate) fn apply_preset(
        &mut self,
        problem: &mut impl FnMut(&str, String),
    ) -> Option<PresetRef> {
        let spec = self;
        let given = given_parameters(spec);
        let Some(name) = spec.provider.clone() else {
            for (parameter, value) in given {
                if value.is_some() {
                    problem(
                        parameter.as_str(),
                        "is a parameter of a provider preset; set `provider` too, or remove it"
                            .to_owned(),
                    );
                }
            }
            return None;
        };
        let provider = match catalogue() {
            Ok(catalogue) => match catalogue.get(&name) {
                Some(provider) => provider,
                None => {
                    problem(
                        "provider",
                        format!(
                            "unknown provider `{name}`; `tokenflow providers list` shows the catalogue ({})",
                            catalogue
                                .providers
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    return None;
                }
            },
            Err(err) => {
                problem(
                    "provider",
                    format!("the provider catalogue is unreadable: {err}"),
                );
                return None;
            }
        };
        let mut values = BTreeMap::new();
        let mut complete = true;
        for (parameter, value) in given {
            let used = provider.parameters.contains(&parameter);
            match (value, used) {
                (Some(_), false) => {
                    complete = false;
                    problem(
                        parameter.as_str(),
                        format!("is not a parameter of provider `{name}`{}", takes(provider)),
                    );
                }
                (Some(value), true) => match parameter.check(value) {
                    Ok(value) => {
                        values.insert(parameter, value);
                    }
                    Err(text) => {
                        complete = false;
                        problem(parameter.as_str(), text);
                    }
                },
                (None, true) => match provider.defaults.get(&parameter) {
                    Some(default) => {
                        values.insert(parameter, default.clone());
                    }
                    None => {
                        complete = false;
                        problem(
                            parameter.as_str(),
                            format!("is required by provider `{name}`: {}", parameter.shape()),
                        );
                    }
                },
                (None, false) => {}
            }
        }
        if !complete {
            return None;
        }
        let mut fill = |field: &str, slot: &mut Option<String>, template: &Option<String>| {
            if slot.is_some() {
                return;
            }
            if let Some(template) = template {
                match expand(template, &values) {
                    Ok(value) => *slot = Some(value),
                    Err(text) => problem(field, format!("provider `{name}`: {text}")),
                }
            }
        };
        fill("issuer", &mut spec.issuer, &provider.issuer);
        fill(
            "authorization_url",
            &mut spec.authorization_url,
            &provider.authorization_url,
        );
        fill("token_url", &mut spec.token_url, &provider.token_url);
        fill(
            "revocation_url",
            &mut spec.revocation_url,
            &provider.revocation_url,
        );
        spec.pkce = spec.pkce.or(provider.pkce);
        spec.request_refresh_token = spec
            .request_refresh_token
            .or(provider.request_refresh_token);
        spec.prompt = spec.prompt.or(provider.prompt);
        if spec.token_endpoint_auth_method.is_none() && spec.client_credentials_delivery.is_none() {
            spec.token_endpoint_auth_method = provider.token_endpoint_auth_method;
        }
        for (key, value) in &provider.extra_authorize_params {
            spec.extra_authorize_params
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        for (key, value) in &provider.extra_token_params {
            spec.extra_token_params
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        spec.scope_separator = spec.scope_separator.or(provider.scope_separator);
        if spec.token_path.is_none() {
            spec.token_path.clone_from(&provider.token_path);
        }
        if spec.bearer_token_types.is_none() && !provider.bearer_token_types.is_empty() {
            spec.bearer_token_types = Some(provider.bearer_token_types.clone());
        }
        if spec.response_fields.is_none() && !provider.response_fields.is_empty() {
            spec.response_fields = Some(provider.response_fields.clone());
        }
        Some(PresetRef {
            provider: name,
            parameters: values
                .into_iter()
                .filter(|(parameter, _)| {
                    given_parameters(spec)
                        .iter()
                        .any(|(given, value)| given == parameter && value.is_some())
                })
                .collect(),
        })
    }
}

fn takes(provider: &Provider) -> String {
    if provider.parameters.is_empty() {
        " (it takes none)".to_owned()
    } else {
        format!(
            " (it takes {})",
            provider
                .parameters
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl<S> OAuthServerSpec<S> {
    /// Checks the quirk fields of a spec and returns them with defaults.
    pub(crate) fn quirks(&self, problem: &mut impl FnMut(&str, String)) -> ProviderQuirks {
        let spec = self;
        let token_path = spec.token_path.clone().filter(|path| !path.is_empty());
        if let Some(path) = &token_path
            && !path.split('.').all(|segment| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        {
            problem(
                "token_path",
                format!("`{path}` must be member names joined by `.`, e.g. `authed_user`"),
            );
        }
        let response_fields = spec.response_fields.clone().unwrap_or_default();
        if response_fields.len() > MAX_RESPONSE_FIELDS {
            problem(
                "response_fields",
                format!("may name at most {MAX_RESPONSE_FIELDS} members"),
            );
        }
        if response_fields.iter().any(|field| field.trim().is_empty()) {
            problem("response_fields", "must not hold an empty name".to_owned());
        }
        ProviderQuirks {
            scope_separator: spec.scope_separator.unwrap_or_default(),
            token_path,
            bearer_token_types: spec.bearer_token_types.clone().unwrap_or_default(),
            response_fields,
        }
    }
}

/// Bound on `response_fields` (docs/connectors.md).
pub const MAX_RESPONSE_FIELDS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_refuse_what_could_change_the_url() {
        assert!(Parameter::Tenant.check("contoso.onmicrosoft.com").is_ok());
        assert!(
            Parameter::Tenant
                .check("72f988bf-86f1-41af-91ab-2d7cd011db47")
                .is_ok()
        );
        for bad in [
            "a/b",
            "a?x=1",
            "a#b",
            "evil.com/x",
            "..",
            "a..b",
            "a b",
            "%2F",
        ] {
            assert!(Parameter::Tenant.check(bad).is_err(), "{bad}");
        }
        assert!(Parameter::Domain.check("dev-1.okta.com:8443").is_ok());
        assert!(Parameter::Domain.check("dev-1.okta.com@evil").is_err());
        assert!(Parameter::Realm.check("my_realm-1").is_ok());
        assert!(Parameter::Realm.check("..").is_err());
        assert!(Parameter::Realm.check("a/b").is_err());
        assert_eq!(
            Parameter::BaseUrl
                .check("https://sso.example.com/auth/")
                .unwrap(),
            "https://sso.example.com/auth"
        );
        assert!(
            Parameter::BaseUrl
                .check("https://u:p@sso.example.com")
                .is_err()
        );
        assert!(
            Parameter::BaseUrl
                .check("https://sso.example.com?x=1")
                .is_err()
        );
        assert!(Parameter::BaseUrl.check("ftp://sso.example.com").is_err());
    }

    #[test]
    fn expand_fills_parameters_and_refuses_unknown_placeholders() {
        let values = BTreeMap::from([(Parameter::Tenant, "t1".to_owned())]);
        assert_eq!(
            expand("https://x/{tenant}/token", &values).unwrap(),
            "https://x/t1/token"
        );
        assert!(expand("https://x/{realm}", &values).is_err());
        assert!(expand("https://x/{tenant", &values).is_err());
    }

    fn validate(json: serde_json::Value) -> Result<crate::OAuthServer, Vec<crate::ConfigError>> {
        serde_json::from_value::<OAuthServerSpec>(json)
            .unwrap()
            .validate("graph-app")
    }

    #[test]
    fn microsoft_entra_with_a_tenant_resolves_to_the_v2_endpoints() {
        let server = validate(serde_json::json!({
            "provider": "microsoft-entra",
            "tenant": "contoso.onmicrosoft.com",
            "client_id": "app",
            "client_secret": "s",
        }))
        .unwrap();
        assert_eq!(
            server.authorization_url.unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
        assert_eq!(
            server.token_url.unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(
            server.request_refresh_token,
            "offline_access for user logins"
        );
        assert!(server.issuer.is_none());
        let preset = server.preset.unwrap();
        assert_eq!(preset.provider, "microsoft-entra");
        assert_eq!(
            preset
                .parameters
                .get(&Parameter::Tenant)
                .map(String::as_str),
            Some("contoso.onmicrosoft.com")
        );
    }

    #[test]
    fn explicit_fields_win_over_the_preset() {
        let server = validate(serde_json::json!({
            "provider": "google",
            "client_id": "app",
            "token_url": "https://proxy.example/token",
            "pkce": false,
            "client_credentials_delivery": "basic_header",
            "extra_authorize_params": { "access_type": "online", "hd": "example.com" },
        }))
        .unwrap();
        assert_eq!(
            server.token_url.unwrap().as_str(),
            "https://proxy.example/token"
        );
        assert_eq!(
            server.authorization_url.unwrap().as_str(),
            "https://accounts.google.com/o/oauth2/v2/auth"
        );
        assert!(!server.pkce);
        assert_eq!(
            server.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(server.extra_authorize_params["access_type"], "online");
        assert_eq!(server.extra_authorize_params["hd"], "example.com");
    }

    #[test]
    fn an_unknown_provider_or_a_missing_parameter_is_an_error_naming_server_and_field() {
        let errors =
            validate(serde_json::json!({"provider": "nope", "client_id": "app"})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].server, "graph-app");
        assert_eq!(errors[0].field, "provider");
        assert!(
            errors[0].to_string().contains("unknown provider `nope`"),
            "{}",
            errors[0]
        );

        let errors =
            validate(serde_json::json!({"provider": "microsoft-entra", "client_id": "app"}))
                .unwrap_err();
        assert_eq!(errors[0].field, "tenant");
        assert!(
            errors[0]
                .to_string()
                .starts_with("oauth server `graph-app`, field `tenant`: is required by provider `microsoft-entra`"),
            "{}",
            errors[0]
        );

        let errors = validate(serde_json::json!({
            "provider": "keycloak", "client_id": "app", "base_url": "https://sso.example.com"
        }))
        .unwrap_err();
        assert_eq!(errors[0].field, "realm");
    }

    #[test]
    fn parameters_that_would_change_the_url_are_refused() {
        for tenant in ["evil.example/x?", "a/../b", "t#frag", "x@evil.example"] {
            let errors = validate(serde_json::json!({
                "provider": "microsoft-entra", "tenant": tenant, "client_id": "app"
            }))
            .unwrap_err();
            assert_eq!(errors[0].field, "tenant", "{tenant}");
        }
        let errors = validate(serde_json::json!({
            "provider": "okta", "domain": "evil.example/x", "client_id": "app"
        }))
        .unwrap_err();
        assert_eq!(errors[0].field, "domain");
    }

    #[test]
    fn a_parameter_without_its_provider_or_unused_by_it_is_refused() {
        let errors = validate(serde_json::json!({"tenant": "t", "client_id": "app"})).unwrap_err();
        assert_eq!(errors[0].field, "tenant");
        let errors = validate(serde_json::json!({
            "provider": "google", "realm": "r", "client_id": "app"
        }))
        .unwrap_err();
        assert_eq!(errors[0].field, "realm");
        assert!(
            errors[0]
                .problem
                .contains("not a parameter of provider `google`")
        );
    }

    #[test]
    fn presets_with_defaults_and_several_parameters_fill_their_templates() {
        let gitlab =
            validate(serde_json::json!({"provider": "gitlab", "client_id": "app"})).unwrap();
        assert_eq!(
            gitlab.token_url.unwrap().as_str(),
            "https://gitlab.com/oauth/token"
        );
        let keycloak = validate(serde_json::json!({
            "provider": "keycloak", "client_id": "app",
            "base_url": "https://sso.example.com/auth/", "realm": "acme"
        }))
        .unwrap();
        assert_eq!(
            keycloak.token_url.unwrap().as_str(),
            "https://sso.example.com/auth/realms/acme/protocol/openid-connect/token"
        );
        assert_eq!(
            keycloak.issuer.unwrap().as_str(),
            "https://sso.example.com/auth/realms/acme"
        );
        let slack =
            validate(serde_json::json!({"provider": "slack-user", "client_id": "app"})).unwrap();
        assert_eq!(slack.quirks.scope_separator, ScopeSeparator::Comma);
        assert_eq!(slack.quirks.token_path.as_deref(), Some("authed_user"));
    }

    #[test]
    fn scope_separator_joins_and_splits() {
        assert_eq!(ScopeSeparator::Comma.join("a  b c"), "a,b,c");
        assert_eq!(ScopeSeparator::Comma.normalize("a,b, c"), "a b c");
        assert_eq!(ScopeSeparator::Space.join("a  b"), "a b");
    }
}
