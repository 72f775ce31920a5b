//! The `extract_json` action (SPEC §5): reads a value out of a JSON document with an RFC 9535
//! JSONPath, evaluated by the `serde_json_path` crate (a complete, conformance-tested RFC 9535
//! implementation, so flows get the standard's semantics rather than one of the older dialects).
//!
//! Key design decisions:
//! - **A JSON string input is parsed as a document** (once, not recursively): the common input is
//!   the `http_connector`'s `content`, which is text. Any other JSON value is the document itself.
//! - **Several matches give one JSON array** of all of them, in the order RFC 9535 yields them, so
//!   `value` is always a single JSON value; one match gives that value itself (not a one-element
//!   array), which is what a flow reading `$.access_token` expects. A caller that needs to tell
//!   "one match that is an array" from "several matches" should write a path that cannot match
//!   several nodes.
//! - **Check order: JSON first (`-1`), then the path (`-2`)**, like the connectors' "inputs in
//!   order" rule: the document is the first input, and a flow that got no usable response should
//!   learn that before a path problem.
//! - A match whose value is JSON `null` is found (`0`) with `value` `Some(Null)`; "nothing matched"
//!   is status `1` with no value. Not found is not a failure, so it carries no `error`.

use serde_json::Value;
use serde_json_path::JsonPath;
use tokenflow_core::flow::check_bounds;

use crate::status::ExtractJsonStatus;

/// The action's outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonOutputs {
    pub status: ExtractJsonStatus,
    /// The single match, or an array of all matches when several nodes matched.
    pub value: Option<Value>,
    /// `invalid_json` or `invalid_path`; `None` when found or not found.
    pub error: Option<String>,
    /// Human text (the JSON or JSONPath parser's message).
    pub error_description: Option<String>,
}

impl JsonOutputs {
    fn failure(status: ExtractJsonStatus, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            value: None,
            error: Some(error.to_owned()),
            error_description: Some(description.into()),
        }
    }

    fn matched(status: ExtractJsonStatus, value: Option<Value>) -> Self {
        Self {
            status,
            value,
            error: None,
            error_description: None,
        }
    }
}

/// Runs `extract_json`. Never panics; every outcome is a [`JsonOutputs`].
pub fn extract_json(json: Option<&Value>, path: Option<&str>) -> JsonOutputs {
    let parsed;
    let document = match json {
        None => {
            return JsonOutputs::failure(
                ExtractJsonStatus::InvalidJson,
                "invalid_json",
                "no JSON was given",
            );
        }
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                parsed = value;
                &parsed
            }
            Err(err) => {
                return JsonOutputs::failure(
                    ExtractJsonStatus::InvalidJson,
                    "invalid_json",
                    format!("the JSON text could not be parsed: {err}"),
                );
            }
        },
        Some(value) => value,
    };

    let Some(path_text) = path else {
        return JsonOutputs::failure(
            ExtractJsonStatus::InvalidPath,
            "invalid_path",
            "no JSONPath was given",
        );
    };
    // The path may come from a variable, so from outside: bound it before the (recursive) parser
    // sees it, as flow validation does for a path written in the flow.
    if let Err(message) = check_bounds("the JSONPath", path_text, false) {
        return JsonOutputs::failure(ExtractJsonStatus::InvalidPath, "invalid_path", message);
    }
    let parsed = std::panic::catch_unwind(|| JsonPath::parse(path_text).map_err(|e| e.to_string()))
        .unwrap_or_else(|_| Err("the JSONPath parser failed on this path".to_owned()));
    let path = match parsed {
        Ok(path) => path,
        Err(message) => {
            return JsonOutputs::failure(ExtractJsonStatus::InvalidPath, "invalid_path", message);
        }
    };

    let mut nodes = path.query(document).all();
    match nodes.len() {
        0 => JsonOutputs::matched(ExtractJsonStatus::NotFound, None),
        1 => JsonOutputs::matched(ExtractJsonStatus::Found, nodes.pop().cloned()),
        _ => JsonOutputs::matched(
            ExtractJsonStatus::Found,
            Some(Value::Array(nodes.into_iter().cloned().collect())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_null_match_is_found_not_missing() {
        let out = extract_json(Some(&json!({"a": null})), Some("$.a"));
        assert_eq!(out.status, ExtractJsonStatus::Found);
        assert_eq!(out.value, Some(Value::Null));
    }

    #[test]
    fn a_string_is_parsed_only_once() {
        // The text holds a JSON string whose content is itself JSON text: it stays a string.
        let doc = json!(serde_json::to_string(&json!("{\"a\":1}")).unwrap());
        let out = extract_json(Some(&doc), Some("$"));
        assert_eq!(out.value, Some(json!("{\"a\":1}")));
    }

    #[test]
    fn paths_over_the_limits_are_invalid_before_parsing_and_paths_at_them_work() {
        let doc = json!({"a": 1});
        let out = extract_json(Some(&doc), Some(&format!("$[?{}", "(".repeat(100_000))));
        assert_eq!(out.status, ExtractJsonStatus::InvalidPath);
        assert_eq!(
            out.error_description.as_deref(),
            Some("the JSONPath is 100003 bytes long; at most 4096 bytes are allowed")
        );
        let deep = format!("$[?{}@.a == 1{}]", "(".repeat(40), ")".repeat(40));
        let out = extract_json(Some(&doc), Some(&deep));
        assert_eq!(
            out.error_description.as_deref(),
            Some("the JSONPath nests brackets 41 levels deep; at most 32 levels are allowed")
        );
        let at_limit = format!("$[?{}@ == 1{}]", "(".repeat(31), ")".repeat(31));
        let out = extract_json(Some(&json!([1, 2])), Some(&at_limit));
        assert_eq!(out.status, ExtractJsonStatus::Found, "{out:?}");
        assert_eq!(out.value, Some(json!(1)));
    }

    #[test]
    fn missing_path_is_an_invalid_path() {
        let out = extract_json(Some(&json!({})), None);
        assert_eq!(out.status, ExtractJsonStatus::InvalidPath);
    }
}
