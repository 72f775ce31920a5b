//! The `auth` input of `http_connector` (docs/connectors.md, "Authentication"): how a call
//! authenticates, written as one small object instead of a token action and a header.
//!
//! ```yaml
//! auth: { oauth_server: svc, scope: "api:read" }     # client-credentials token, cached
//! auth: { vault: alice }                             # the vault entry's access token
//! auth: { basic: { username: app, password: { var: pw } } }
//! auth: { api_key: { header: X-Api-Key, value: { var: key } } }
//! auth: { api_key: { query: key, value: { var: key } } }
//! auth: { bearer: { var: token } }
//! ```
//!
//! The same shape is checked twice: when the flow is loaded (leaves may still be `{ var: name }`
//! or templates) and when the action runs (leaves are values). Messages name fields, never values.
//! [`mask`] is the monitor's view: the secret parts (`password`, an API key's `value`, `bearer`)
//! as fingerprints.

use serde_json::{Map, Value};

use crate::Input;
use crate::secret::{SecretString, fingerprint};

/// The kinds, for messages.
pub const KINDS: &str = "oauth_server, vault, basic, api_key, bearer";

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyPlace {
    Header,
    Query,
}

/// A resolved `auth` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A client-credentials token of the OAuth server, from the shared token cache.
    OauthServer {
        server: String,
        scope: Input<String>,
    },
    /// The access token of the vault entry.
    Vault {
        name: String,
    },
    Basic {
        username: String,
        password: SecretString,
    },
    ApiKey {
        place: ApiKeyPlace,
        name: String,
        value: SecretString,
    },
    Bearer(SecretString),
}

impl Auth {
    /// Whether the credential is a token that tokenflow obtains (and can renew after a 401).
    pub fn obtains_token(&self) -> bool {
        matches!(self, Auth::OauthServer { .. } | Auth::Vault { .. })
    }

    /// The kind, as flows write it.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::OauthServer { .. } => "oauth_server",
            Auth::Vault { .. } => "vault",
            Auth::Basic { .. } => "basic",
            Auth::ApiKey { .. } => "api_key",
            Auth::Bearer(_) => "bearer",
        }
    }

    /// Reads a resolved value (leaves are strings; numbers and booleans count as their text).
    pub fn from_value(value: &Value) -> Result<Auth, String> {
        check_shape(value, &|leaf| text(leaf).is_some())?;
        let field = |object: &Map<String, Value>, name: &str| {
            object.get(name).and_then(text).unwrap_or_default()
        };
        let Some(object) = value.as_object() else {
            return Err(not_an_object(value));
        };
        let required = |name: &str, what: &str| -> Result<String, String> {
            let value = field(object, name);
            if value.trim().is_empty() {
                Err(format!("auth.{what} is empty"))
            } else {
                Ok(value)
            }
        };
        if object.contains_key("oauth_server") {
            return Ok(Auth::OauthServer {
                server: required("oauth_server", "oauth_server")?.trim().to_owned(),
                scope: match object.get("scope") {
                    None => Input::Unassigned,
                    Some(scope) => Input::Assigned(text(scope).unwrap_or_default()),
                },
            });
        }
        if object.contains_key("vault") {
            return Ok(Auth::Vault {
                name: required("vault", "vault")?.trim().to_owned(),
            });
        }
        if object.contains_key("bearer") {
            let token = field(object, "bearer");
            if token.is_empty() {
                return Err("auth.bearer is empty".to_owned());
            }
            return Ok(Auth::Bearer(SecretString::new(token)));
        }
        if let Some(Value::Object(basic)) = object.get("basic") {
            return Ok(Auth::Basic {
                username: field(basic, "username"),
                password: SecretString::new(field(basic, "password")),
            });
        }
        if let Some(Value::Object(key)) = object.get("api_key") {
            // check_shape accepted exactly one of `header` and `query`.
            let (place, name) = match key.get("header") {
                Some(name) => (ApiKeyPlace::Header, name),
                None => (ApiKeyPlace::Query, key.get("query").unwrap_or(&Value::Null)),
            };
            let name = text(name).unwrap_or_default();
            if name.trim().is_empty() {
                let place = match place {
                    ApiKeyPlace::Header => "header",
                    ApiKeyPlace::Query => "query",
                };
                return Err(format!("auth.api_key.{place} is empty"));
            }
            return Ok(Auth::ApiKey {
                place,
                name,
                value: SecretString::new(field(key, "value")),
            });
        }
        Err(format!("auth must be one of: {KINDS}"))
    }
}

/// A leaf as text: strings as they are, numbers and booleans as their JSON text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn not_an_object(value: &Value) -> String {
    let what = match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    format!("auth must be an object with one of: {KINDS}; got {what}")
}

/// Checks the shape of an `auth` object: one kind, its required fields, nothing unknown.
/// `is_leaf` says whether a field's value is acceptable (at load: a constant, `{ var: name }` or a
/// template; at run time: a string, number or boolean).
pub fn check_shape(value: &Value, is_leaf: &dyn Fn(&Value) -> bool) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(not_an_object(value));
    };
    let kinds: Vec<&str> = ["oauth_server", "vault", "basic", "api_key", "bearer"]
        .into_iter()
        .filter(|kind| object.contains_key(*kind))
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(if keys.is_empty() {
                format!("auth is empty; give one of: {KINDS}")
            } else {
                format!("unknown auth kind `{}` (known: {KINDS})", keys.join("`, `"))
            });
        }
        several => {
            return Err(format!(
                "auth has several kinds ({}); give exactly one",
                several.join(", ")
            ));
        }
    };
    let allowed: &[&str] = match kind {
        "oauth_server" => &["oauth_server", "scope"],
        _ => &[kind],
    };
    if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!(
            "unknown field `{unknown}` in auth {kind} (known: {})",
            allowed.join(", ")
        ));
    }
    let leaf = |path: &str, value: Option<&Value>| -> Result<(), String> {
        match value {
            None => Err(format!("auth.{path} is missing")),
            Some(value) if is_leaf(value) => Ok(()),
            Some(_) => Err(format!(
                "auth.{path} must be a string, a template or {{ var: name }}"
            )),
        }
    };
    match kind {
        "oauth_server" => {
            leaf("oauth_server", object.get("oauth_server"))?;
            if let Some(scope) = object.get("scope") {
                leaf("scope", Some(scope))?;
            }
            Ok(())
        }
        "vault" | "bearer" => leaf(kind, object.get(kind)),
        "basic" => {
            let fields = sub_object(object, "basic", &["username", "password"])?;
            leaf("basic.username", fields.get("username"))?;
            leaf("basic.password", fields.get("password"))
        }
        _ => {
            let fields = sub_object(object, "api_key", &["header", "query", "value"])?;
            match (fields.get("header"), fields.get("query")) {
                (Some(name), None) => leaf("api_key.header", Some(name))?,
                (None, Some(name)) => leaf("api_key.query", Some(name))?,
                (Some(_), Some(_)) => {
                    return Err("auth.api_key takes `header` or `query`, not both".to_owned());
                }
                (None, None) => {
                    return Err(
                        "auth.api_key needs `header` or `query` (where the key goes)".to_owned(),
                    );
                }
            }
            leaf("api_key.value", fields.get("value"))
        }
    }
}

fn sub_object<'a>(
    object: &'a Map<String, Value>,
    kind: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let Some(Value::Object(fields)) = object.get(kind) else {
        return Err(format!(
            "auth.{kind} must be an object with {}",
            allowed.join(", ")
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!(
            "unknown field `{unknown}` in auth.{kind} (known: {})",
            allowed.join(", ")
        ));
    }
    Ok(fields)
}

/// The monitor's view of an `auth` input: `password`, an API key's `value` and `bearer` as
/// fingerprints; with `everything` (a value that came from a secret variable) every text. A
/// value that is not a valid `auth` is shown as one fingerprint.
pub fn mask(value: &Value, everything: bool) -> Value {
    mask_with(value, &|_| everything)
}

/// [`mask`], with `also_secret` naming further fields to fingerprint by their path (e.g.
/// `["basic", "username"]` when the username came from a secret variable).
pub fn mask_with(value: &Value, also_secret: &dyn Fn(&[&str]) -> bool) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if check_shape(value, &|leaf| text(leaf).is_some()).is_err() {
        return Value::String(fingerprint(&value.to_string()));
    }
    fn walk<'a>(
        value: &'a Value,
        path: &mut Vec<&'a str>,
        also_secret: &dyn Fn(&[&str]) -> bool,
    ) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, field)| {
                        path.push(name);
                        let shown = walk(field, path, also_secret);
                        path.pop();
                        (name.clone(), shown)
                    })
                    .collect(),
            ),
            leaf => {
                let secret = path
                    .iter()
                    .any(|name| matches!(*name, "password" | "value" | "bearer"));
                if secret || also_secret(path) {
                    Value::String(fingerprint(&text(leaf).unwrap_or_default()))
                } else {
                    leaf.clone()
                }
            }
        }
    }
    walk(value, &mut Vec::new(), also_secret)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn any_text(value: &Value) -> bool {
        text(value).is_some()
    }

    #[test]
    fn every_kind_reads_from_its_value() {
        assert_eq!(
            Auth::from_value(&json!({"oauth_server": "svc"})).unwrap(),
            Auth::OauthServer {
                server: "svc".into(),
                scope: Input::Unassigned
            }
        );
        assert_eq!(
            Auth::from_value(&json!({"oauth_server": "svc", "scope": ""})).unwrap(),
            Auth::OauthServer {
                server: "svc".into(),
                scope: Input::Assigned(String::new())
            }
        );
        assert_eq!(
            Auth::from_value(&json!({"vault": "alice"})).unwrap(),
            Auth::Vault {
                name: "alice".into()
            }
        );
        assert_eq!(
            Auth::from_value(&json!({"api_key": {"query": "key", "value": 42}})).unwrap(),
            Auth::ApiKey {
                place: ApiKeyPlace::Query,
                name: "key".into(),
                value: SecretString::new("42")
            }
        );
        assert!(matches!(
            Auth::from_value(&json!({"basic": {"username": "u", "password": "p"}})).unwrap(),
            Auth::Basic { .. }
        ));
        assert!(Auth::from_value(&json!({"bearer": ""})).is_err());
        assert!(Auth::from_value(&json!({"vault": " "})).is_err());
    }

    #[test]
    fn shape_problems_name_the_field_and_never_a_value() {
        let err = |value: Value| check_shape(&value, &any_text).unwrap_err();
        assert_eq!(
            err(json!({"oauth": "svc"})),
            "unknown auth kind `oauth` (known: oauth_server, vault, basic, api_key, bearer)"
        );
        assert_eq!(
            err(json!({"basic": {"username": "u"}})),
            "auth.basic.password is missing"
        );
        assert_eq!(
            err(json!({"api_key": {"value": "s3cr3t"}})),
            "auth.api_key needs `header` or `query` (where the key goes)"
        );
        assert_eq!(
            err(json!({"vault": "a", "bearer": "s3cr3t"})),
            "auth has several kinds (vault, bearer); give exactly one"
        );
        assert_eq!(
            err(json!({"vault": "a", "scope": "x"})),
            "unknown field `scope` in auth vault (known: vault)"
        );
        assert!(!err(json!({"bearer": ["s3cr3t"]})).contains("s3cr3t"));
        assert!(err(json!("s3cr3t")).ends_with("got a string"));
    }

    #[test]
    fn the_monitor_sees_fingerprints_of_the_secret_parts() {
        let shown = mask(
            &json!({"basic": {"username": "app", "password": "pw-s3cr3t"}}),
            false,
        )
        .to_string();
        assert!(
            shown.contains("\"app\"") && !shown.contains("pw-s3cr3t"),
            "{shown}"
        );
        let shown = mask(
            &json!({"api_key": {"header": "X-Key", "value": "key-s3cr3t"}}),
            false,
        )
        .to_string();
        assert!(
            shown.contains("X-Key") && !shown.contains("key-s3cr3t"),
            "{shown}"
        );
        let shown = mask(&json!({"bearer": "tok-s3cr3t"}), false).to_string();
        assert!(!shown.contains("tok-s3cr3t"), "{shown}");
        let shown = mask(&json!({"vault": "alice"}), true).to_string();
        assert!(!shown.contains("alice"), "{shown}");
        let shown = mask(&json!({"bearer": {"nested": "tok-s3cr3t"}}), false).to_string();
        assert!(!shown.contains("tok-s3cr3t"), "{shown}");
    }
}
