//! Provider quirks and preset parameters (docs/connectors.md, "Provider catalogue"): the values
//! an OAuth server carries so the connectors can follow a provider's deviations from RFC 6749
//! without knowing which provider it is. The catalogue that sets them is [`crate::providers`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Bound on a preset parameter's length (a DNS name is at most 253 characters).
pub const MAX_PARAMETER_LEN: usize = 253;

/// A preset parameter: what a provider's templates may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    /// A directory: a GUID, a domain name or a word such as `common` (Entra).
    Tenant,
    /// A host name, optionally with `:port` (Okta, Auth0).
    Domain,
    /// One path segment (Keycloak).
    Realm,
    /// An `http(s)` address without query or fragment, trailing `/` removed (Keycloak, GitLab).
    BaseUrl,
}

impl Parameter {
    pub const ALL: [Parameter; 4] = [
        Parameter::Tenant,
        Parameter::Domain,
        Parameter::Realm,
        Parameter::BaseUrl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::Tenant => "tenant",
            Parameter::Domain => "domain",
            Parameter::Realm => "realm",
            Parameter::BaseUrl => "base_url",
        }
    }

    /// What a valid value looks like, for messages and the CLI.
    pub fn shape(self) -> &'static str {
        match self {
            Parameter::Tenant => {
                "a tenant ID (GUID), a domain such as contoso.onmicrosoft.com, or common, organizations or consumers"
            }
            Parameter::Domain => "a host name such as dev-123456.okta.com (optionally with :port)",
            Parameter::Realm => "a realm name (letters, digits, `.`, `_`, `-`)",
            Parameter::BaseUrl => {
                "an http(s) address without query or fragment, e.g. https://sso.example.com"
            }
        }
    }

    /// The value as it goes into a template, or why it cannot.
    pub fn check(self, value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if value.len() > MAX_PARAMETER_LEN {
            return Err(format!("must be at most {MAX_PARAMETER_LEN} characters"));
        }
        let ok = match self {
            Parameter::Tenant => is_dns_like(value),
            Parameter::Domain => match value.split_once(':') {
                Some((host, port)) => {
                    is_dns_like(host)
                        && !port.is_empty()
                        && port.len() <= 5
                        && port.bytes().all(|b| b.is_ascii_digit())
                }
                None => is_dns_like(value),
            },
            Parameter::Realm => {
                value != "."
                    && value != ".."
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            }
            Parameter::BaseUrl => return check_base_url(value),
        };
        if ok {
            Ok(value.to_owned())
        } else {
            Err(format!("`{value}` is not {}", self.shape()))
        }
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Labels of letters, digits and `-`, separated by single dots: a DNS name, a GUID or a word.
fn is_dns_like(value: &str) -> bool {
    value.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn check_base_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|err| format!("`{value}` is not a URL ({err})"))?;
    let fits = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !fits {
        return Err(format!("`{value}` is not {}", Parameter::BaseUrl.shape()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// How scopes are joined when tokenflow sends them (RFC 6749 §3.3 says space; some providers
/// want commas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ScopeSeparator {
    #[default]
    #[serde(rename = " ")]
    Space,
    #[serde(rename = ",")]
    Comma,
}

impl ScopeSeparator {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeSeparator::Space => " ",
            ScopeSeparator::Comma => ",",
        }
    }

    /// A normalised (space-separated) scope as the provider wants it sent.
    pub fn join(self, scope: &str) -> String {
        scope
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(self.as_str())
    }

    /// A scope the provider returned, space-separated again.
    pub fn normalize(self, scope: &str) -> String {
        match self {
            ScopeSeparator::Space => scope.split_whitespace().collect::<Vec<_>>().join(" "),
            ScopeSeparator::Comma => scope
                .replace(',', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Provider behaviour the connectors follow, read from the server's configuration (set by hand or
/// by a preset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderQuirks {
    /// How scopes are joined in the authorization request and the client credentials grant, and
    /// split in the token response's `scope`.
    pub scope_separator: ScopeSeparator,
    /// The dotted path of the object in the token response that holds the token (Slack's user
    /// tokens: `authed_user`); `None`: the top level (RFC 6749 §5.1).
    pub token_path: Option<String>,
    /// The provider's own `token_type` names for bearer tokens (Slack: `bot`, `user`).
    pub bearer_token_types: Vec<String>,
    /// Token response members output as the `response_fields` object (Salesforce: `instance_url`).
    pub response_fields: Vec<String>,
}

/// The preset a server was built from, for its view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetRef {
    pub provider: String,
    pub parameters: BTreeMap<Parameter, String>,
}
