//! The `extract_json` action (docs/connectors.md): reads a value out of a JSON document with an RFC 9535
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
//! - **The result is bounded** ([`extract_json_limited`]): the matches are references into the
//!   document, and their size as JSON text is counted (stopping at the limit) before any is
//!   copied. A path such as `$..*` repeats every nested value once per ancestor, so a 1 MB
//!   document can match hundreds of MB; that ends with `-3` (`too_large`) instead.

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

/// The default bound on a result, as JSON text (the default `run_data_limit`, 32 MiB).
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 32 * 1024 * 1024;

/// Runs `extract_json` with the default bound on the result. Never panics; every outcome is a
/// [`JsonOutputs`].
pub fn extract_json(json: Option<&Value>, path: Option<&str>) -> JsonOutputs {
    extract_json_limited(json, path, DEFAULT_MAX_RESULT_BYTES)
}

/// Runs `extract_json`; a result larger than `max_bytes` as JSON text ends with `-3`.
pub fn extract_json_limited(
    json: Option<&Value>,
    path: Option<&str>,
    max_bytes: u64,
) -> JsonOutputs {
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
    if !nodes.is_empty() && !fits(&nodes, max_bytes) {
        return JsonOutputs::failure(
            ExtractJsonStatus::TooLarge,
            "too_large",
            format!(
                "the matched values are larger than {max_bytes} bytes as JSON text (the run's run_data_limit)"
            ),
        );
    }
    match nodes.len() {
        0 => JsonOutputs::matched(ExtractJsonStatus::NotFound, None),
        1 => JsonOutputs::matched(ExtractJsonStatus::Found, nodes.pop().cloned()),
        _ => JsonOutputs::matched(
            ExtractJsonStatus::Found,
            Some(Value::Array(nodes.into_iter().cloned().collect())),
        ),
    }
}

/// Whether the result (the one match, or the array of all) is at most `max_bytes` as JSON text.
/// Counts without allocating and stops as soon as the bound is passed.
fn fits(nodes: &[&Value], max_bytes: u64) -> bool {
    let mut budget = Budget { left: max_bytes };
    let brackets_and_commas = if nodes.len() == 1 {
        0
    } else {
        nodes.len() as u64 + 1
    };
    if budget.take(brackets_and_commas).is_err() {
        return false;
    }
    nodes
        .iter()
        .all(|node| serde_json::to_writer(&mut budget, node).is_ok())
}

/// A writer that only counts, and fails once more than `left` bytes were written.
struct Budget {
    left: u64,
}

impl Budget {
    fn take(&mut self, bytes: u64) -> std::io::Result<()> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or_else(|| std::io::Error::other("over the bound"))?;
        Ok(())
    }
}

impl std::io::Write for Budget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.take(buf.len() as u64)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    fn a_result_exactly_at_the_bound_fits_and_one_byte_more_does_not() {
        let doc = json!({"a": "xyz", "b": 1});
        // `"xyz"` is 5 bytes; both matches as an array `["xyz",1]` are 9.
        assert_eq!(
            extract_json_limited(Some(&doc), Some("$.a"), 5).status,
            ExtractJsonStatus::Found
        );
        assert_eq!(
            extract_json_limited(Some(&doc), Some("$.a"), 4).status,
            ExtractJsonStatus::TooLarge
        );
        let both = extract_json_limited(Some(&doc), Some("$.*"), 9);
        assert_eq!(both.value, Some(json!(["xyz", 1])));
        let out = extract_json_limited(Some(&doc), Some("$.*"), 8);
        assert_eq!(out.status, ExtractJsonStatus::TooLarge);
        assert_eq!(out.value, None);
        assert_eq!(out.error.as_deref(), Some("too_large"));
    }

    #[test]
    fn missing_path_is_an_invalid_path() {
        let out = extract_json(Some(&json!({})), None);
        assert_eq!(out.status, ExtractJsonStatus::InvalidPath);
    }
}
