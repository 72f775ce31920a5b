//! Property and fuzz tests of `tokenflow.toml` and the `TOKENFLOW_*` overrides
//! (docs/testing.md): any file and any environment loads or fails with a message that never
//! shows a secret's value; what loads is within the documented bounds. Provider presets and
//! their parameters (`tenant`, `domain`, `realm`, `base_url`) are generated too.

use proptest::prelude::*;
use tokenflow_config::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, Sources, load};
use tokenflow_core::limits::{MAX_STEPS_LIMIT_MAX, MONITOR_VALUE_LIMIT_MAX, RUN_DATA_LIMIT_MAX};
use tokenflow_testkit::fuzz::{check, clear_error, mutated, nasty_number, nasty_string, secret};

/// A TOML value: right and wrong types, nasty numbers, nested tables and arrays.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_string().prop_map(|s| toml_string(&s)),
        nasty_number(),
        Just("true".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("[1, \"a\", [true]]".to_owned()),
        Just("{ env = \"TOKENFLOW_FUZZ_UNSET\" }".to_owned()),
        Just("{ file = \"/nonexistent/secret\" }".to_owned()),
        (1usize..2000).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth))),
        (1usize..2000).prop_map(|depth| format!(
            "{}{}",
            "{ a = ".repeat(depth),
            "1 }".repeat(depth)
        )),
    ]
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

const TOP_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "oauth_redirect_uri",
    "data_dir",
    "flows_dir",
    "log_format",
    "run_lease",
    "header_read_timeout",
    "body_read_timeout",
    "max_connections",
    "max_steps_limit",
    "run_data_limit",
    "monitor_value_limit",
    "unknown_key",
];
const SERVER_KEYS: &[&str] = &[
    "client_id",
    "token_url",
    "authorization_url",
    "issuer",
    "scope",
    "timeout",
    "pkce",
    "token_endpoint_auth_method",
    "tenant",
    "domain",
    "realm",
    "base_url",
    "audience",
];
const PROVIDERS: &[&str] = &[
    "microsoft-entra",
    "okta",
    "auth0",
    "keycloak",
    "google",
    "slack-user",
    "nope",
];

/// A configuration file: generated keys, a server with a provider preset and its parameters,
/// and the secret as the server's `client_secret` and an API key.
fn config_file(secret: String) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((proptest::sample::select(TOP_KEYS), toml_value()), 0..5),
        proptest::sample::select(PROVIDERS),
        proptest::collection::vec((proptest::sample::select(SERVER_KEYS), toml_value()), 0..5),
    )
        .prop_map(move |(top, provider, server)| {
            let mut text = format!("api_keys = [\"{secret}\"]\n");
            for (key, value) in dedup(top) {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text.push_str(&format!(
                "[oauth_servers.main]\nprovider = \"{provider}\"\nclient_secret = \"{secret}\"\n"
            ));
            for (key, value) in dedup(server) {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text
        })
}

/// TOML refuses a key written twice; keep the generated files to their first occurrence.
fn dedup(pairs: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut seen = std::collections::BTreeSet::new();
    pairs
        .into_iter()
        .filter(|(key, _)| seen.insert(*key))
        .collect()
}

/// `TOKENFLOW_*` variables: real keys (some nested), wrong values, nonsense names, and the
/// secret in secret-holding keys.
fn environment(secret: String) -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        proptest::sample::select(TOP_KEYS).prop_map(|k| format!("TOKENFLOW_{}", k.to_uppercase())),
        proptest::sample::select(SERVER_KEYS)
            .prop_map(|k| format!("TOKENFLOW_OAUTH_SERVERS__MAIN__{}", k.to_uppercase())),
        Just("TOKENFLOW_OAUTH_SERVERS__MAIN".to_owned()),
        Just("TOKENFLOW___".to_owned()),
        Just("TOKENFLOW_LISTEN__X__Y".to_owned()),
        "TOKENFLOW_[A-Z_]{0,30}",
    ];
    let value = prop_oneof![nasty_string(), nasty_number(), Just("true".to_owned())];
    let secret_pair = proptest::sample::select(vec![
        "TOKENFLOW_OAUTH_SERVERS__MAIN__CLIENT_SECRET",
        "TOKENFLOW_API_KEYS",
        "TOKENFLOW_DATABASE_URL",
        "TOKENFLOW_OAUTH_SERVERS__MAIN__PKCS12_PASSWORD",
    ])
    .prop_map(move |name| (name.to_owned(), secret.clone()));
    (
        proptest::collection::vec((name, value), 0..5),
        proptest::option::of(secret_pair),
    )
        .prop_map(|(mut pairs, secret)| {
            pairs.extend(secret);
            pairs
        })
}

#[test]
fn any_file_and_environment_load_within_bounds_or_fail_without_showing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenflow.toml");
    let input = secret().prop_flat_map(|secret| {
        let file = prop_oneof![
            3 => config_file(secret.clone()),
            2 => config_file(secret.clone()).prop_flat_map(mutated),
        ];
        (file, environment(secret.clone()), Just(secret))
    });
    check("config", input, |(file, env, secret)| {
        std::fs::write(&path, &file).unwrap();
        match load(&Sources {
            file: Some(&path),
            env,
        }) {
            Ok(config) => {
                prop_assert!(config.max_connections as u64 <= MAX_CONNECTIONS.max);
                prop_assert!(config.header_read_timeout.as_secs() <= HEADER_READ_TIMEOUT.max);
                prop_assert!(config.body_read_timeout.as_secs() <= BODY_READ_TIMEOUT.max);
                prop_assert!(config.run_limits.max_steps <= MAX_STEPS_LIMIT_MAX);
                prop_assert!(config.run_limits.run_data <= RUN_DATA_LIMIT_MAX);
                prop_assert!(config.run_limits.monitor_value <= MONITOR_VALUE_LIMIT_MAX);
                let shown = format!("{config:?}");
                prop_assert!(
                    !shown.contains(&secret),
                    "a secret in the configuration's Debug output"
                );
            }
            Err(err) => clear_error(&format!("{err:#}"), usize::MAX, &secret)?,
        }
        Ok(())
    });
}
