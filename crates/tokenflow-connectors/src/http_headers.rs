//! The request and response headers of `http_connector` (docs/connectors.md): the `headers`
//! input in its three forms, `content_type`, `bearer_token` and the credentials of `auth` on top,
//! and the response headers in the list form flows also use as input. Messages name headers,
//! never their values: any header can carry a credential.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use tokenflow_core::SecretString;
use tokenflow_core::flow::excerpt;

/// Credentials of the `auth` input as the connector applies them (docs/connectors.md,
/// "Authentication"). `Debug` shows no secret: they are [`SecretString`]s.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    /// `Authorization: Basic base64(username ":" password)` (RFC 7617).
    Basic {
        username: String,
        password: SecretString,
    },
    /// An API key in the named header, replacing one from `headers`.
    Header { name: String, value: SecretString },
    /// An API key as a query parameter, appended to the URL's query.
    Query { name: String, value: SecretString },
    /// `Authorization: Bearer …`.
    Bearer(SecretString),
}

/// The inputs that make the request's headers.
#[derive(Default)]
pub(crate) struct HeaderInputs<'a> {
    pub(crate) headers: Option<&'a Value>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) bearer_token: Option<&'a SecretString>,
    pub(crate) auth: Option<&'a HttpAuth>,
}

/// `name` quoted for a message, cut short: it comes from the flow's input and may be of any
/// length.
fn shown(name: &str) -> String {
    format!("{:?}", excerpt(name))
}

/// The request's headers: `headers`, then `content_type` and `bearer_token` on top.
pub(crate) fn request_headers(
    input: &HeaderInputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in header_pairs(input.headers)? {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{} is not a valid HTTP header name", shown(&name)))?;
        let mut header_value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
            format!(
                "the value of header {} is not a valid HTTP header value (control characters?)",
                shown(&name)
            )
        })?;
        header_value.set_sensitive(is_sensitive(&header_name));
        // `append`, not `insert`: the list form may repeat a header on purpose.
        map.append(header_name, header_value);
    }

    if let Some(content_type) = input.content_type.filter(|t| !t.trim().is_empty()) {
        let value = HeaderValue::from_str(content_type)
            .map_err(|_| "content_type is not a valid HTTP header value".to_owned())?;
        map.insert(CONTENT_TYPE, value);
    }

    if let Some(token) = input.bearer_token.filter(|t| !t.is_empty()) {
        // Never mention the token in the message: it would end up in error_description.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| "bearer_token contains characters not allowed in a header".to_owned())?;
        value.set_sensitive(true);
        if map.contains_key(AUTHORIZATION) {
            warnings
                .push("bearer_token replaced the Authorization header given in headers".to_owned());
        }
        map.insert(AUTHORIZATION, value);
    }

    // Values are never named in messages: they would end up in error_description.
    let (name, value, what) = match input.auth {
        None | Some(HttpAuth::Query { .. }) => return Ok(map),
        Some(HttpAuth::Bearer(token)) => (
            AUTHORIZATION,
            format!("Bearer {}", token.expose()),
            "the token",
        ),
        Some(HttpAuth::Basic { username, password }) => {
            if username.contains(':') {
                // RFC 7617 §2: the user-id cannot contain a colon.
                return Err(
                    "auth.basic.username contains `:`, which HTTP Basic does not allow".to_owned(),
                );
            }
            let pair = format!("{username}:{}", password.expose());
            (
                AUTHORIZATION,
                format!("Basic {}", base64_encode(pair.as_bytes())),
                "auth.basic",
            )
        }
        Some(HttpAuth::Header { name, value }) => (
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!(
                    "auth.api_key.header {} is not a valid HTTP header name",
                    shown(name)
                )
            })?,
            value.expose().to_owned(),
            "auth.api_key.value",
        ),
    };
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| format!("{what} contains characters not allowed in a header"))?;
    header.set_sensitive(true);
    if map.contains_key(&name) {
        warnings.push(format!(
            "auth replaced the {} header given in headers",
            name.as_str()
        ));
    }
    map.insert(name, header);
    Ok(map)
}

/// Standard Base64 with padding (RFC 4648 §4), for HTTP Basic.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Headers whose values reqwest/hyper must keep out of HTTP/2 header compression tables and out
/// of their own `Debug` output.
fn is_sensitive(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    )
}

/// The `headers` input as name/value pairs, in the order given.
fn header_pairs(headers: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    match headers {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Vec::new()),
        // Thinkwise flows usually hold the headers as text in a variable.
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ (Value::Array(_) | Value::Object(_))) => structured_pairs(&parsed),
            Ok(other) => Err(format!(
                "headers text holds a JSON {}, not a list of {{\"Key\", \"Value\"}} or an object",
                kind(&other)
            )),
            // serde_json's message gives line and column only, never the text.
            Err(err) => Err(format!("headers text is not JSON: {err}")),
        },
        Some(structured @ (Value::Array(_) | Value::Object(_))) => structured_pairs(structured),
        Some(other) => Err(format!(
            "headers is a JSON {}, not a list of {{\"Key\", \"Value\"}} or an object",
            kind(other)
        )),
    }
}

fn structured_pairs(headers: &Value) -> Result<Vec<(String, String)>, String> {
    match headers {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let name = item
                    .get("Key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("headers[{index}] has no string \"Key\""))?;
                let value = item
                    .get("Value")
                    .ok_or_else(|| format!("headers[{index}] ({}) has no \"Value\"", shown(name)))
                    .and_then(|value| {
                        header_text(value).ok_or_else(|| {
                            format!(
                                "headers[{index}] ({}) has a \"Value\" that is not a string, number or boolean", shown(name)
                            )
                        })
                    })?;
                Ok((name.to_owned(), value))
            })
            .collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| {
                header_text(value)
                    .map(|text| (name.clone(), text))
                    .ok_or_else(|| {
                        format!("header {} has a value that is not a string, number or boolean", shown(name))
                    })
            })
            .collect(),
        other => Err(format!("headers is a JSON {}", kind(other))),
    }
}

/// A header value from JSON: strings as they are, numbers and booleans as their JSON text
/// (`"Max-Forwards": 3` is a natural thing to write).
fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// The response headers in the list form flows also use as input.
pub(crate) fn response_headers(headers: &HeaderMap, warnings: &mut Vec<String>) -> Value {
    let list = headers
        .iter()
        .map(|(name, value)| {
            // `to_str` refuses any non-ASCII byte, yet UTF-8 values do occur; only bytes that are
            // not UTF-8 at all get replaced, with a warning.
            let text = match std::str::from_utf8(value.as_bytes()) {
                Ok(text) => text.to_owned(),
                Err(_) => {
                    warnings.push(format!(
                        "the value of response header {:?} is not UTF-8; invalid bytes were replaced",
                        name.as_str()
                    ));
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                }
            };
            json!({ "Key": name.as_str(), "Value": text })
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(value: Value) -> Result<Vec<(String, String)>, String> {
        header_pairs(Some(&value))
    }

    #[test]
    fn a_long_invalid_header_name_is_quoted_cut_short() {
        // Found by the fuzz tests: a 64 KiB name made a 64 KiB error_description.
        let name = format!("{}\n", "a".repeat(65_536));
        let err = request_headers(
            &HeaderInputs {
                headers: Some(&json!({ name: "v" })),
                ..HeaderInputs::default()
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        assert!(err.contains("…\" is not a valid HTTP header name"), "{err}");
    }

    #[test]
    fn list_map_and_text_forms_give_the_same_pairs() {
        let expected = vec![("Accept".to_owned(), "application/json".to_owned())];
        assert_eq!(
            pairs(json!([{"Key": "Accept", "Value": "application/json"}])).unwrap(),
            expected
        );
        assert_eq!(
            pairs(json!({"Accept": "application/json"})).unwrap(),
            expected
        );
        assert_eq!(
            pairs(json!(r#"[{"Key":"Accept","Value":"application/json"}]"#)).unwrap(),
            expected
        );
        assert_eq!(
            pairs(json!(r#"{"Accept":"application/json"}"#)).unwrap(),
            expected
        );
    }

    #[test]
    fn numbers_and_booleans_are_stringified_but_nested_values_are_refused() {
        assert_eq!(
            pairs(json!({"Max-Forwards": 3, "X-Flag": true})).unwrap(),
            vec![
                ("Max-Forwards".to_owned(), "3".to_owned()),
                ("X-Flag".to_owned(), "true".to_owned())
            ]
        );
        assert!(pairs(json!({"X": {"nested": 1}})).is_err());
        assert!(pairs(json!([{"Key": "X", "Value": null}])).is_err());
    }

    #[test]
    fn empty_headers_are_no_headers() {
        assert!(header_pairs(None).unwrap().is_empty());
        assert!(pairs(Value::Null).unwrap().is_empty());
        assert!(pairs(json!("  ")).unwrap().is_empty());
        assert!(pairs(json!([])).unwrap().is_empty());
    }

    #[test]
    fn text_that_holds_neither_a_list_nor_an_object_is_refused() {
        assert!(pairs(json!("\"just a string\"")).is_err());
        assert!(pairs(json!("{not json")).is_err());
        assert!(pairs(json!(42)).is_err());
    }

    #[test]
    fn header_errors_never_show_header_values() {
        let headers = json!({"X-Api-Key": "key-with\nnewline-s3cr3t"});
        let input = HeaderInputs {
            headers: Some(&headers),
            ..HeaderInputs::default()
        };
        let err = request_headers(&input, &mut Vec::new()).unwrap_err();
        assert!(err.contains("X-Api-Key"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
