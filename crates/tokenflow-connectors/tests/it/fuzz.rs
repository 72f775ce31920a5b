//! Property and fuzz tests of every parser here that reads what another system sent
//! (docs/testing.md): token responses, callback parameters, JSONPath inputs, `http_connector`
//! headers and paging links, device authorization responses, ID-token claims and discovery
//! documents. Each must not panic, must answer Ok or a clear error that does not echo a
//! secret-looking input, and must keep its result within the documented bound.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};
use tokenflow_connectors::http_action::{HttpConnector, HttpInput};
use tokenflow_connectors::http_paging::next_url;
use tokenflow_connectors::json::extract_json_limited;
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_connectors::oauth::device::{MAX_DEVICE_CODE_LIFETIME, parse_device_authorization};
use tokenflow_connectors::oauth::discovery::parse_metadata;
use tokenflow_connectors::oauth::id_token::{Expected, check_id_token};
use tokenflow_connectors::oauth::token_response::{
    ResponseProblem, is_secret_member, parse_token_response,
};
use tokenflow_connectors::status::ExtractJsonStatus;
use tokenflow_core::SecretString;
use tokenflow_core::flow::http_options::Paginate;
use tokenflow_testkit::fuzz::{
    callback_text, check, clear_error, json_value, mutated, nasty_number, nasty_string,
    nested_json, secret,
};
use url::Url;

/// Longest message a rejected input may produce (a sentence, not the input).
const MESSAGE_BYTES: usize = 1024;

/// A value for a member: the right type, a wrong type, a nasty number or a nested value.
fn member_value(secret: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::String(secret)),
        1 => json_value(),
        1 => nasty_number().prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::String(n))),
        1 => (1usize..300).prop_map(|depth| {
            serde_json::from_str(&nested_json(depth, "1")).unwrap_or(Value::Null)
        }),
    ]
}

/// A JSON object with some of `names` (and some unknown members), values from [`member_value`];
/// only members named in `secret_names` may hold the secret.
fn members(
    names: &'static [&'static str],
    secret_names: &'static [&'static str],
    secret: String,
) -> impl Strategy<Value = Map<String, Value>> {
    let known = proptest::sample::subsequence(names.to_vec(), 0..=names.len());
    (
        known,
        proptest::collection::vec(member_value(secret), names.len()),
        proptest::collection::vec(member_value("not-a-secret".to_owned()), names.len()),
        proptest::collection::btree_map("[a-z_]{1,16}", json_value(), 0..4),
    )
        .prop_map(move |(known, secret_values, values, unknown)| {
            let mut map: Map<String, Value> = unknown.into_iter().collect();
            for ((name, secret_value), value) in known.into_iter().zip(secret_values).zip(values) {
                let value = if secret_names.contains(&name) {
                    secret_value
                } else {
                    value
                };
                map.insert(name.to_owned(), value);
            }
            map
        })
}

/// A body: the members as JSON, as a form, mutated, deeply nested, or not JSON at all.
fn body(members: Map<String, Value>) -> impl Strategy<Value = String> {
    let json = Value::Object(members.clone()).to_string();
    let form = members
        .iter()
        .fold(
            url::form_urlencoded::Serializer::new(String::new()),
            |mut form, (key, value)| {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                form.append_pair(key, &text);
                form
            },
        )
        .finish();
    prop_oneof![
        4 => Just(json.clone()),
        2 => Just(form),
        2 => mutated(json),
        1 => (1usize..5000).prop_map(|depth| nested_json(depth, "{}")),
        1 => nasty_string(),
        1 => nasty_number(),
    ]
}

const TOKEN_MEMBERS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "id_token",
    "error",
    "error_description",
    "error_uri",
    "issued_token_type",
];

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("text/html".to_owned())),
        Just(Some("application/problem+json".to_owned())),
        nasty_string().prop_map(Some),
    ]
}

#[test]
fn token_responses_parse_or_fail_clearly_without_echoing_tokens() {
    let input = secret().prop_flat_map(|secret| {
        (
            prop_oneof![
                Just(200u16),
                Just(201),
                Just(400),
                Just(401),
                Just(500),
                0..1000u16
            ],
            content_type(),
            members(
                TOKEN_MEMBERS,
                &["access_token", "refresh_token", "id_token"],
                secret.clone(),
            )
            .prop_flat_map(body),
            Just(secret),
        )
    });
    check(
        "token_response",
        input,
        |(status, content_type, body, secret)| {
            match parse_token_response(status, content_type.as_deref(), body.as_bytes()) {
                Ok(response) => {
                    prop_assert!(!response.access_token.expose().is_empty());
                    masked(&response.extra, &secret)?;
                    let warnings = format!("{:?}", response.warnings);
                    prop_assert!(!warnings.contains(&secret), "a token in the warnings");
                }
                Err(problem @ ResponseProblem::Unusable(_)) => {
                    clear_error(&problem.to_string(), MESSAGE_BYTES, &secret)?;
                }
                Err(ResponseProblem::Provider(error)) => {
                    let message = ResponseProblem::Provider(error.clone()).to_string();
                    prop_assert!(!message.trim().is_empty());
                    masked(&error.extra, &secret)?;
                }
            }
            Ok(())
        },
    );
}

/// Members whose names suggest a credential show no credential (mutations may rename a
/// member, so a token under another name is kept as is).
fn masked(members: &BTreeMap<String, Value>, secret: &str) -> Result<(), TestCaseError> {
    for (name, value) in members {
        if is_secret_member(name) {
            prop_assert!(
                !value.to_string().contains(secret),
                "`{name}` shows a token: {value:.300}"
            );
        }
    }
    Ok(())
}

#[test]
fn callback_parameters_keep_one_value_per_name_and_never_show_the_code() {
    let input = secret().prop_flat_map(|code| {
        (
            any::<bool>(),
            callback_text(code.clone(), nasty_string()),
            callback_text(code.clone(), nasty_string()),
            Just(code),
        )
    });
    check("callback_params", input, |(post, query, body, code)| {
        let params = CallbackParams::from_request(post, Some(&query), body.as_bytes());
        let read = if post { &body } else { &query };
        let states: Vec<String> = url::form_urlencoded::parse(read.as_bytes())
            .filter(|(name, _)| name == "state")
            .map(|(_, value)| value.into_owned())
            .collect();
        match states.as_slice() {
            [one] => prop_assert_eq!(params.state.as_deref(), Some(one.as_str())),
            _ => prop_assert_eq!(params.state.as_deref(), None),
        }
        let shown = format!("{params:?}");
        prop_assert!(!shown.contains(&code), "the code in Debug output: {shown}");
        Ok(())
    });
}

/// JSONPath-like text: pieces of real syntax in random order, deep brackets, filters.
fn json_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".a".to_owned()),
        Just("..*".to_owned()),
        Just("[*]".to_owned()),
        Just("[0]".to_owned()),
        Just("[-1]".to_owned()),
        Just("[1:10:2]".to_owned()),
        Just("['a','b']".to_owned()),
        Just("[?@.a > 1]".to_owned()),
        Just("[?length(@) == 2]".to_owned()),
        Just("[?match(@, 'a.*')]".to_owned()),
        Just("[?search(@, '(((((a*)*)*)*)*b')]".to_owned()),
        Just("[18446744073709551616]".to_owned()),
        Just("[9007199254740993]".to_owned()),
        nasty_string(),
    ];
    prop_oneof![
        6 => proptest::collection::vec(piece, 0..12).prop_map(|pieces| format!("${}", pieces.concat())),
        1 => (1usize..200).prop_map(|depth| format!("$[?{}@.a{}]", "(".repeat(depth), ")".repeat(depth))),
        1 => (1usize..2000).prop_map(|n| format!("${}", ".a".repeat(n))),
        1 => nasty_string(),
    ]
}

#[test]
fn json_paths_over_any_document_answer_within_the_result_bound() {
    let document = prop_oneof![
        4 => json_value(),
        1 => (1usize..3000).prop_map(|depth| Value::String(nested_json(depth, "[1,2]"))),
        1 => json_value().prop_map(|value| Value::String(value.to_string())).prop_flat_map(|text| {
            mutated(text.as_str().unwrap_or_default().to_owned()).prop_map(Value::String)
        }),
    ];
    let limit = prop_oneof![Just(64u64), Just(4096), Just(1 << 20)];
    check(
        "extract_json",
        (document, json_path(), limit),
        |(document, path, limit)| {
            let out = extract_json_limited(Some(&document), Some(&path), limit);
            match out.status {
                ExtractJsonStatus::Found => {
                    let value = out.value.unwrap_or(Value::Null);
                    let size = serde_json::to_vec(&value).map_or(0, |bytes| bytes.len() as u64);
                    prop_assert!(
                        size <= limit,
                        "a result of {size} bytes over the bound {limit}"
                    );
                }
                ExtractJsonStatus::NotFound => prop_assert!(out.value.is_none()),
                _ => {
                    prop_assert!(out.error.is_some());
                    let description = out.error_description.unwrap_or_default();
                    prop_assert!(!description.trim().is_empty());
                }
            }
            Ok(())
        },
    );
}

/// The `headers` input in its forms: a list of `{Key, Value}`, an object, JSON text, or junk.
fn headers(value: String) -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        3 => "[A-Za-z][A-Za-z0-9-]{0,20}",
        1 => nasty_string(),
    ];
    let header_value = prop_oneof![
        3 => Just(value.clone()),
        1 => nasty_string().prop_map(move |junk| format!("{value}{junk}")),
    ];
    let pairs = proptest::collection::vec((name, header_value), 0..6);
    prop_oneof![
        3 => pairs.clone().prop_map(|pairs| {
            Value::Array(pairs.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect())
        }),
        2 => pairs.clone().prop_map(|pairs| {
            Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        }),
        1 => pairs.prop_map(|pairs| {
            let list: Vec<Value> = pairs.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
            Value::String(Value::Array(list).to_string())
        }),
        1 => json_value(),
    ]
}

#[test]
fn http_connector_header_inputs_are_checked_without_naming_their_values() {
    let connector = HttpConnector::build().unwrap();
    let input = secret().prop_flat_map(|value| {
        (
            headers(value.clone()),
            proptest::option::of(nasty_string()),
            Just(value),
        )
    });
    check("http_headers", input, |(headers, content_type, value)| {
        let input = HttpInput {
            url: Some("https://api.example/items".to_owned()),
            headers: Some(headers),
            content_type,
            bearer_token: Some(SecretString::new(value.clone())),
            ..HttpInput::default()
        };
        if let Err(out) = connector.check(&input) {
            prop_assert!(out.error.is_some());
            clear_error(
                out.error_description.as_deref().unwrap_or_default(),
                MESSAGE_BYTES,
                &value,
            )?;
        }
        Ok(())
    });
}

#[test]
fn next_page_links_from_headers_and_bodies_are_urls_or_clear_errors() {
    let paginate = prop_oneof![
        Just(json!({"next": "link"})),
        Just(json!({"next": "odata"})),
        json_path().prop_map(|path| json!({"next": path})),
    ];
    let link = prop_oneof![
        Just("<https://api.example/p2>; rel=\"next\"".to_owned()),
        secret().prop_map(|s| format!("<{s}>; rel=next, <x>; rel=prev")),
        nasty_string(),
        nasty_string()
            .prop_flat_map(|s| mutated(format!("<https://api.example/?{s}>; rel=\"next\""))),
    ];
    let input = (paginate, link, json_value(), nasty_string());
    check("next_page_link", input, |(paginate, link, body, odata)| {
        let Ok(paginate) = Paginate::from_value(&paginate) else {
            return Ok(());
        };
        let current = Url::parse("https://api.example/items").unwrap();
        let headers = json!([{"Key": "Link", "Value": link}]);
        let body = json!({"@odata.nextLink": odata, "next": body});
        match next_url(&paginate, &current, Some(&headers), &body) {
            Ok(Some(url)) => prop_assert!(matches!(url.scheme(), "http" | "https")),
            Ok(None) => {}
            Err(message) => clear_error(&message, MESSAGE_BYTES, "sEcReT")?,
        }
        Ok(())
    });
}

const DEVICE_MEMBERS: &[&str] = &[
    "device_code",
    "user_code",
    "verification_uri",
    "verification_url",
    "verification_uri_complete",
    "expires_in",
    "interval",
];

#[test]
fn device_authorization_responses_parse_within_bounds_or_fail_clearly() {
    let input = secret().prop_flat_map(|secret| {
        let valid = json!({
            "device_code": secret, "user_code": "ABCD-EFGH",
            "verification_uri": "https://idp.example/device", "expires_in": 600, "interval": 5,
        });
        let body = prop_oneof![
            3 => members(DEVICE_MEMBERS, &["device_code"], secret.clone()).prop_map(|m| Value::Object(m).to_string()),
            2 => (json_value(), proptest::sample::select(DEVICE_MEMBERS)).prop_map(move |(v, name)| {
                let mut valid = valid.clone();
                valid[name] = v;
                valid.to_string()
            }),
            1 => Just(Value::String(secret.clone()).to_string()),
            1 => members(DEVICE_MEMBERS, &["device_code"], secret.clone()).prop_flat_map(body),
        ];
        (body, Just(secret))
    });
    let now = time::macros::datetime!(2026-01-01 00:00 UTC);
    check("device_authorization", input, |(body, secret)| {
        match parse_device_authorization(body.as_bytes(), now) {
            Ok(found) => {
                prop_assert!(found.expires_at - now <= MAX_DEVICE_CODE_LIFETIME);
                prop_assert!(found.interval.as_secs() >= 1 && found.interval.as_secs() <= 300);
                prop_assert!(!found.user_code.chars().any(char::is_control));
            }
            Err(message) => clear_error(&message, MESSAGE_BYTES, &secret)?,
        }
        Ok(())
    });
}

#[test]
fn id_token_claims_of_any_shape_are_checked_without_panicking() {
    let claims = prop_oneof![
        3 => (
            proptest::option::of(prop_oneof![Just(json!("app")), Just(json!(["x", "app"])), json_value()]),
            proptest::option::of(prop_oneof![Just(json!("https://idp.example")), json_value()]),
            proptest::option::of(prop_oneof![Just(json!(4_102_444_800u64)), json_value()]),
            proptest::option::of(prop_oneof![Just(json!("n-1")), json_value()]),
        )
            .prop_map(|(aud, iss, exp, nonce)| {
                let mut claims = Map::new();
                for (name, value) in [("aud", aud), ("iss", iss), ("exp", exp), ("nonce", nonce)] {
                    if let Some(value) = value {
                        claims.insert(name.to_owned(), value);
                    }
                }
                Value::Object(claims).to_string()
            }),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => (1usize..3000).prop_map(|depth| nested_json(depth, "{}")),
    ];
    let token = prop_oneof![
        4 => claims.prop_map(|claims| format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", URL_SAFE_NO_PAD.encode(claims))),
        1 => nasty_string(),
        1 => "[A-Za-z0-9_=.-]{0,64}",
    ];
    let nonce = SecretString::new("n-1");
    check("id_token_claims", token, |token| {
        let expected = Expected {
            nonce: Some(&nonce),
            client_id: "app",
            issuer: Some("https://idp.example"),
            now: time::macros::datetime!(2026-01-01 00:00 UTC),
        };
        if let Err(err) = check_id_token(&SecretString::new(token), &expected) {
            clear_error(&err.to_string(), MESSAGE_BYTES, "")?;
        }
        Ok(())
    });
}

const DISCOVERY_MEMBERS: &[&str] = &[
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "device_authorization_endpoint",
    "jwks_uri",
    "code_challenge_methods_supported",
    "authorization_response_iss_parameter_supported",
];

#[test]
fn discovery_documents_parse_or_fail_with_a_bounded_message() {
    let body = members(
        DISCOVERY_MEMBERS,
        DISCOVERY_MEMBERS,
        "https://idp.example".to_owned(),
    )
    .prop_flat_map(body);
    let issuer = Url::parse("https://idp.example").unwrap();
    let url = "https://idp.example/.well-known/openid-configuration";
    check("discovery_document", body, |body| {
        match parse_metadata(&issuer, url, body.as_bytes()) {
            Ok(metadata) => {
                prop_assert_eq!(metadata.issuer.trim_end_matches('/'), "https://idp.example")
            }
            Err(err) => clear_error(&err.to_string(), MESSAGE_BYTES, "")?,
        }
        Ok(())
    });
}
