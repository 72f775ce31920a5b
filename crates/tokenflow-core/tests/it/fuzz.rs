//! Property and fuzz tests of the parsers in the core that read outside input (docs/testing.md):
//! flow YAML (with anchors, aliases, deep nesting and huge scalars), CEL conditions and their
//! evaluation, `http_connector`'s `retry` and `paginate` inputs, provider preset templates and
//! service account key files. Each must not panic and must answer Ok within the documented
//! bounds or a clear error that does not echo a secret.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokenflow_core::flow::expr::{
    MAX_EXPRESSION_BYTES, MAX_EXPRESSION_NESTING, MAX_EXPRESSION_OPERATORS,
};
use tokenflow_core::flow::http_options::{
    MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_PAGES, Paginate, Retry, reauth_on_status,
};
use tokenflow_core::flow::parse::MAX_FLOW_BYTES;
use tokenflow_core::flow::{Expression, ParseOptions, parse_flow};
use tokenflow_core::provider_quirks::Parameter;
use tokenflow_core::providers::expand;
use tokenflow_core::{SecretString, ServiceAccountKey};
use tokenflow_testkit::fuzz::{
    check, clear_error, json_value, mutated, nasty_number, nasty_string, nested_json, secret,
};

/// Longest message one rejected input may produce.
const MESSAGE_BYTES: usize = 1024;

/// A CEL-like expression from real syntax: literals (huge numbers included), variables,
/// operators, calls, macros and their nesting.
fn cel_expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("status".to_owned()),
        Just("token".to_owned()),
        Just("body.items".to_owned()),
        Just("successful".to_owned()),
        nasty_number(),
        Just("18446744073709551615u".to_owned()),
        Just("18446744073709551616u".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("1e400".to_owned()),
        Just("b'\\xff'".to_owned()),
        Just("r'\\d+'".to_owned()),
        Just("'''a\nb'''".to_owned()),
        Just("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]".to_owned()),
        Just("{'a': 1, 'b': [true, null]}".to_owned()),
        "'[a-z\\\\\"]{0,12}'",
        "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let op = proptest::sample::select(vec![
            "||", "&&", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in",
        ]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("!({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("{a} ? {b} : {c}")),
            inner.clone().prop_map(|a| format!("size({a})")),
            inner.clone().prop_map(|a| format!("string({a})")),
            inner.clone().prop_map(|a| format!("int({a})")),
            inner
                .clone()
                .prop_map(|a| format!("({a}).matches('(a+)+$')")),
            inner.clone().prop_map(|a| format!("has({a}.x)")),
            inner.clone().prop_map(|a| format!("[{a}, {a}]")),
            inner.clone().prop_map(|a| format!("({a})[0]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}).map(x, {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}).all(x, {b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}).filter(x, {b})")),
        ]
    })
}

/// Expressions that stress the bounds: deep brackets, long chains, comprehensions nested in
/// comprehensions (each multiplies the work), long literals.
fn cel_extreme() -> impl Strategy<Value = String> {
    let list = "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]";
    prop_oneof![
        (1usize..64).prop_map(|depth| format!("{}1{}", "(".repeat(depth), ")".repeat(depth))),
        (1usize..400).prop_map(|n| vec!["status"; n].join(" + ")),
        (1usize..400).prop_map(|n| format!("status{}", ".a".repeat(n))),
        (1usize..10).prop_map(move |n| {
            let mut text = "x".to_owned();
            for level in 0..n {
                text = format!("{list}.map(x{level}, {text})");
            }
            format!("size({text}) > 0")
        }),
        (1usize..6000).prop_map(|n| format!("'{}' == token", "a".repeat(n))),
        (1usize..30).prop_map(|n| format!(
            "size({}'ab'{}) > 0",
            "(".repeat(n),
            " + 'ab')".repeat(n)
        )),
    ]
}

fn variables(secret: String) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("status".to_owned(), json!(0)),
        ("token".to_owned(), Value::String(secret)),
        (
            "body".to_owned(),
            json!({"items": [1, "two", null, {"x": 18_446_744_073_709_551_615u64}]}),
        ),
        ("successful".to_owned(), json!(true)),
    ])
}

#[test]
fn conditions_compile_and_evaluate_to_a_boolean_or_a_clear_error() {
    let input = (
        prop_oneof![3 => cel_expression(), 1 => cel_extreme(), 1 => cel_expression().prop_flat_map(mutated)],
        secret(),
    );
    check("cel_condition", input, |(source, secret)| {
        let expression = match Expression::compile(&source) {
            Ok(expression) => expression,
            Err(message) => return clear_error(&message, MESSAGE_BYTES + source.len(), ""),
        };
        prop_assert!(source.len() <= MAX_EXPRESSION_BYTES);
        prop_assert!(
            expression.depth() <= 2 * (MAX_EXPRESSION_NESTING + MAX_EXPRESSION_OPERATORS) + 2
        );
        if let Err(message) = expression.evaluate(&variables(secret.clone())) {
            clear_error(&message, MESSAGE_BYTES + source.len(), &secret)?;
        }
        Ok(())
    });
}

/// A flow: valid structure with generated ids, defaults, inputs and conditions.
fn flow_yaml(secret: String) -> impl Strategy<Value = String> {
    let kind = proptest::sample::select(vec![
        "http_connector",
        "extract_json",
        "oauth_server_login",
        "oauth_user_login",
        "oauth_refresh_token",
        "stop",
        "no_such_kind",
    ]);
    let scalar = prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        nasty_number(),
        Just("{ var: token }".to_owned()),
        Just("{ var: missing }".to_owned()),
        nasty_string().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    let action = (
        kind,
        proptest::collection::vec(("[a-z_]{1,10}", scalar), 0..4),
    );
    (
        "[a-z_]{1,12}",
        proptest::collection::vec(action, 1..5),
        proptest::collection::vec(proptest::option::of(cel_expression()), 1..6),
        proptest::option::of(prop_oneof![nasty_number(), nasty_string()]),
        proptest::option::of(prop_oneof![Just("*/5 * * * *".to_owned()), nasty_string()]),
    )
        .prop_map(move |(id, actions, whens, max_steps, schedule)| {
            let mut text = format!(
                "id: {id}\nvariables:\n  token: {{ secret: true, default: \"{secret}\" }}\n  status: {{}}\nactions:\n"
            );
            for (i, (kind, inputs)) in actions.iter().enumerate() {
                text.push_str(&format!("  a{i}:\n    type: {kind}\n    input:\n"));
                for (name, value) in inputs {
                    text.push_str(&format!("      {name}: {value}\n"));
                }
                if inputs.is_empty() {
                    text.push_str("      {}\n");
                }
            }
            text.push_str("steps:\n  - { from: start, to: a0 }\n");
            for (i, when) in whens.iter().enumerate() {
                let from = format!("a{}", i % actions.len());
                let to = format!("a{}", (i + 1) % actions.len());
                match when {
                    Some(when) => text.push_str(&format!(
                        "  - {{ from: {from}, to: {to}, when: {} }}\n",
                        serde_json::to_string(when).unwrap_or_default()
                    )),
                    None => text.push_str(&format!("  - {{ from: {from}, to: stop }}\n")),
                }
            }
            if let Some(max_steps) = max_steps {
                text.push_str(&format!("max_steps: {}\n", serde_json::to_string(&max_steps).unwrap_or_default()));
            }
            if let Some(schedule) = schedule {
                text.push_str(&format!("schedule: {}\n", serde_json::to_string(&schedule).unwrap_or_default()));
            }
            text
        })
}

/// YAML that attacks the parser: alias bombs, deep nesting, huge scalars, tags, merge keys.
fn yaml_attack(secret: String) -> impl Strategy<Value = String> {
    prop_oneof![
        // "Billion laughs": each level refers to the previous one `width` times.
        (2usize..12, 2usize..12).prop_map(|(levels, width)| {
            let mut text = "id: bomb\nvariables:\n  v0: { default: &a0 [lol, lol, lol, lol, lol, lol, lol, lol] }\n".to_owned();
            for level in 1..levels {
                let refs = vec![format!("*a{}", level - 1); width].join(", ");
                text.push_str(&format!("  v{level}: {{ default: &a{level} [{refs}] }}\n"));
            }
            text
        }),
        (1usize..20_000).prop_map(|depth| format!("id: deep\nvariables:\n  v: {{ default: {} }}\n", nested_json(depth, "1"))),
        (1usize..20_000).prop_map(|depth| format!("id: deep\nvariables:\n  v:\n    default:\n{}x\n", (0..depth.min(2000)).map(|d| format!("{}- ", " ".repeat(6 + d * 2))).collect::<Vec<_>>().join("\n"))),
        (MAX_FLOW_BYTES - 64..MAX_FLOW_BYTES + 64).prop_map(|n| format!("id: big\ndescription: \"{}\"\n", "a".repeat(n))),
        Just("id: &x tagged\ndescription: !!binary aGVsbG8=\nvariables: { <<: {a: {}} }\n".to_owned()),
        Just("id: *undefined\n".to_owned()),
        Just(format!("id: x\nvariables:\n  token: {{ secret: true, default: \"{secret}\" }}\n  token: {{}}\n")),
        Just(format!("id: x\nvariables:\n  token: {{ secret: true, default: {{ nested: \"{secret}\" }}, unknown: 1 }}\n")),
        nasty_string(),
    ]
}

#[test]
fn flow_yaml_parses_or_names_every_problem_without_echoing_secret_defaults() {
    let input = secret().prop_flat_map(|secret| {
        let text = prop_oneof![
            4 => flow_yaml(secret.clone()),
            2 => flow_yaml(secret.clone()).prop_flat_map(mutated),
            2 => yaml_attack(secret.clone()),
        ];
        (text, Just(secret))
    });
    check("flow_yaml", input, |(text, secret)| {
        match parse_flow("fuzz.yaml", &text, &ParseOptions::default()) {
            Ok(parsed) => {
                prop_assert!(text.len() <= MAX_FLOW_BYTES);
                prop_assert!(
                    parsed.flow.max_steps <= tokenflow_core::limits::DEFAULT_MAX_STEPS_LIMIT
                );
                // What the file expands to stays proportionate to the file (no alias bomb).
                let defaults: usize = parsed
                    .flow
                    .variables
                    .values()
                    .filter_map(|v| v.default.as_ref())
                    .map(|v| v.to_string().len())
                    .sum();
                prop_assert!(
                    defaults <= 16 * text.len() + 1024,
                    "{defaults} bytes of defaults from {} bytes",
                    text.len()
                );
                for warning in &parsed.warnings {
                    clear_error(
                        &warning.to_string(),
                        MESSAGE_BYTES + MAX_EXPRESSION_BYTES,
                        &secret,
                    )?;
                }
            }
            Err(problems) => {
                prop_assert!(!problems.0.is_empty());
                for problem in &problems.0 {
                    clear_error(
                        &problem.to_string(),
                        MESSAGE_BYTES + MAX_EXPRESSION_BYTES,
                        &secret,
                    )?;
                }
            }
        }
        Ok(())
    });
}

#[test]
fn retry_paginate_and_reauth_inputs_are_within_their_bounds_or_refused() {
    let field = proptest::sample::select(vec![
        "attempts",
        "backoff_ms",
        "on_status",
        "retry_non_idempotent",
        "next",
        "items",
        "max_pages",
        "allowed_origins",
        "other",
    ]);
    let value = prop_oneof![
        json_value(),
        nasty_number().prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::String(n))),
        Just(json!("link")),
        Just(json!("$.next")),
        Just(json!(["https://api.example", "https://a.example:8443/"])),
        proptest::collection::vec(0u16..1000, 0..20).prop_map(|list| json!(list)),
    ];
    let object = prop_oneof![
        4 => proptest::collection::btree_map(field, value, 0..6)
            .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => json_value(),
    ];
    let statuses = proptest::option::of(proptest::collection::vec(any::<u16>(), 0..40));
    check("http_options", (object, statuses), |(value, statuses)| {
        match Retry::from_value(&value) {
            Ok(retry) => {
                prop_assert!((1..=MAX_ATTEMPTS).contains(&retry.attempts));
                prop_assert!(retry.backoff_ms <= MAX_BACKOFF_MS);
                prop_assert!(retry.on_status.iter().all(|s| (400..=599).contains(s)));
            }
            Err(message) => clear_error(&message, MESSAGE_BYTES, "")?,
        }
        match Paginate::from_value(&value) {
            Ok(paginate) => prop_assert!((1..=MAX_PAGES).contains(&paginate.max_pages)),
            Err(message) => clear_error(&message, MESSAGE_BYTES, "")?,
        }
        match reauth_on_status(statuses) {
            Ok(list) => prop_assert!(list.iter().all(|s| (400..=599).contains(s))),
            Err(message) => clear_error(&message, MESSAGE_BYTES, "")?,
        }
        Ok(())
    });
}

#[test]
fn provider_templates_expand_only_known_parameters() {
    let template = prop_oneof![
        Just("https://login.example/{tenant}/oauth2/v2.0/token".to_owned()),
        Just("https://{domain}/oauth/token".to_owned()),
        Just("{base_url}/realms/{realm}/protocol".to_owned()),
        nasty_string(),
        "[a-z{}/]{0,40}",
    ];
    let values = proptest::collection::btree_map(
        proptest::sample::select(Parameter::ALL.to_vec()),
        nasty_string(),
        0..4,
    );
    check(
        "provider_template",
        (template, values),
        |(template, values)| {
            match expand(&template, &values) {
                Ok(out) => {
                    let longest = values.values().map(String::len).max().unwrap_or(0);
                    prop_assert!(out.len() <= template.len() * (longest + 1));
                }
                Err(message) => clear_error(&message, MESSAGE_BYTES + template.len(), "")?,
            }
            Ok(())
        },
    );
}

#[test]
fn service_account_key_files_fail_without_showing_the_key() {
    let input = secret().prop_flat_map(|secret| {
        let key = json!({
            "type": "service_account", "client_email": "a@b.example",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
            "private_key_id": "k1", "token_uri": "https://oauth2.example/token",
        });
        let field = proptest::sample::select(vec!["type", "client_email", "private_key", "private_key_id", "token_uri"]);
        let text = prop_oneof![
            2 => (field, json_value()).prop_map(move |(name, value)| {
                let mut key = key.clone();
                key[name] = value;
                key.to_string()
            }),
            2 => mutated(key_text(&secret)),
            1 => Just(Value::String(secret.clone()).to_string()),
        ];
        (text, Just(secret))
    });
    check("service_account_key", input, |(text, secret)| {
        if let Err(message) = ServiceAccountKey::from_json(&SecretString::new(text)) {
            clear_error(&message, MESSAGE_BYTES, &secret)?;
        }
        Ok(())
    });
}

fn key_text(secret: &str) -> String {
    json!({
        "type": "service_account", "client_email": "a@b.example",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        "private_key_id": "k1",
    })
    .to_string()
}
