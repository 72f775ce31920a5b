//! `extract_json`: RFC 9535 JSONPath over JSON values and JSON text.

use serde_json::{Value, json};
use tokenflow_connectors::json::{JsonOutputs, extract_json};
use tokenflow_connectors::status::{ConnectorStatus, ExtractJsonStatus};

fn document() -> Value {
    json!({
        "access_token": "at-1",
        "expires_in": 3600,
        "user": {"name": "Ada", "roles": ["admin", "dev"]},
        "items": [{"id": 1, "price": 5}, {"id": 2, "price": 50}, {"id": 3, "price": 500}]
    })
}

fn extract(json: &Value, path: &str) -> JsonOutputs {
    extract_json(Some(json), Some(path))
}

fn assert_found(out: &JsonOutputs, value: Value) {
    assert_eq!(out.status, ExtractJsonStatus::Found, "{out:?}");
    assert_eq!(out.status.code(), 0);
    assert_eq!(out.value, Some(value));
    assert_eq!(out.error, None);
}

#[test]
fn a_scalar_is_found_by_its_path() {
    assert_found(&extract(&document(), "$.access_token"), json!("at-1"));
    assert_found(&extract(&document(), "$.expires_in"), json!(3600));
    assert_found(&extract(&document(), "$.user.roles[1]"), json!("dev"));
}

#[test]
fn an_object_is_found_whole() {
    assert_found(
        &extract(&document(), "$.user"),
        json!({"name": "Ada", "roles": ["admin", "dev"]}),
    );
}

#[test]
fn a_path_that_matches_nothing_is_not_found() {
    let out = extract(&document(), "$.refresh_token");
    assert_eq!(out.status, ExtractJsonStatus::NotFound, "{out:?}");
    assert_eq!(out.status.code(), 1);
    assert_eq!(out.value, None);
    assert_eq!(out.error, None);
}

#[test]
fn several_matches_come_back_as_one_array() {
    assert_found(&extract(&document(), "$.items[*].id"), json!([1, 2, 3]));
    assert_found(
        &extract(&document(), "$.items[?@.price > 10].id"),
        json!([2, 3]),
    );
}

#[test]
fn a_filter_with_one_match_gives_the_value_itself() {
    assert_found(
        &extract(&document(), "$.items[?@.price > 100].id"),
        json!(3),
    );
}

#[test]
fn json_text_in_a_string_is_parsed_like_a_value() {
    let text = Value::String(document().to_string());
    assert_eq!(
        extract(&text, "$.user.name"),
        extract(&document(), "$.user.name")
    );
    assert_found(&extract(&text, "$.user.name"), json!("Ada"));
}

#[test]
fn text_that_is_not_json_is_invalid_json() {
    for text in ["{\"a\": ", "not json", ""] {
        let out = extract(&Value::String(text.into()), "$.a");
        assert_eq!(
            out.status,
            ExtractJsonStatus::InvalidJson,
            "{text:?}: {out:?}"
        );
        assert_eq!(out.status.code(), -1);
        assert_eq!(out.error.as_deref(), Some("invalid_json"));
        assert!(out.error_description.is_some());
        assert_eq!(out.value, None);
    }
}

#[test]
fn missing_json_is_invalid_json() {
    let out = extract_json(None, Some("$.a"));
    assert_eq!(out.status, ExtractJsonStatus::InvalidJson, "{out:?}");
}

#[test]
fn a_path_that_is_not_rfc_9535_is_invalid_with_the_parsers_message() {
    for path in ["access_token", "$.items[?(@.price > 10)", "$[", ""] {
        let out = extract(&document(), path);
        assert_eq!(
            out.status,
            ExtractJsonStatus::InvalidPath,
            "{path:?}: {out:?}"
        );
        assert_eq!(out.status.code(), -2);
        assert_eq!(out.error.as_deref(), Some("invalid_path"));
        let description = out.error_description.unwrap();
        assert!(!description.is_empty());
    }
}

#[test]
fn invalid_json_is_reported_before_an_invalid_path() {
    let out = extract(&Value::String("not json".into()), "not a path");
    assert_eq!(out.status, ExtractJsonStatus::InvalidJson, "{out:?}");
}
