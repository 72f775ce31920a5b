//! Loading `tokenflow.toml` and `TOKENFLOW_*` overrides.

use std::path::Path;

use tokenflow_config::{Config, ConfigError, LogFormat, Sources, load};
use tokenflow_core::{SigningAlg, TokenEndpointAuthMethod};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_with(file: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load(&Sources {
        file: Some(file),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

const EXAMPLE: &str = r#"
listen = "127.0.0.1:9090"
public_url = "https://flows.example"
flows_dir = "my-flows"
api_keys = ["inline-key", { env = "API_KEY_2" }]
log_format = "json"

[oauth_servers.entra]
client_id = "11111111-2222"
client_secret = { env = "ENTRA_SECRET" }
issuer = "https://login.microsoftonline.com/contoso/v2.0"
scope = "User.Read"
request_refresh_token = true
client_credentials_delivery = "basic_header"

[oauth_servers.entra.extra_token_params]
resource = "https://graph.microsoft.com"

[oauth_servers.local]
client_id = "svc"
client_secret = { file = "secret.txt" }
token_url = "http://127.0.0.1:9400/token"
timeout = "5s"
"#;

#[test]
fn example_file_loads_with_secrets_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "file-secret-value\n");
    let file = write(dir.path(), "tokenflow.toml", EXAMPLE);
    let config = load_with(
        &file,
        &[
            ("ENTRA_SECRET", "env-secret-value"),
            ("API_KEY_2", "key-two"),
        ],
    )
    .unwrap();

    assert_eq!(config.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        config.default_redirect_uri().as_str(),
        "https://flows.example/oauth-callback"
    );
    assert_eq!(config.flows_dir, dir.path().join("my-flows"));
    assert_eq!(config.data_dir, dir.path().join("tokenflow-data"));
    assert_eq!(config.log_format, LogFormat::Json);
    let keys: Vec<&str> = config.api_keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, ["inline-key", "key-two"]);
    let entra = &config.oauth_servers["entra"];
    assert_eq!(
        entra.client_secret.as_ref().unwrap().expose(),
        "env-secret-value"
    );
    assert_eq!(
        entra.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic
    );
    assert!(entra.request_refresh_token);
    assert_eq!(
        entra.extra_token_params["resource"],
        "https://graph.microsoft.com"
    );
    let local = &config.oauth_servers["local"];
    assert_eq!(
        local.client_secret.as_ref().unwrap().expose(),
        "file-secret-value"
    );
    assert_eq!(local.timeout, std::time::Duration::from_secs(5));

    let debug = format!("{config:?}");
    for secret in [
        "env-secret-value",
        "file-secret-value",
        "inline-key",
        "key-two",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn defaults_without_a_file() {
    let config = load(&Sources::default()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(
        config.default_redirect_uri().as_str(),
        "http://127.0.0.1:8080/oauth-callback"
    );
    assert!(config.oauth_servers.is_empty() && config.api_keys.is_empty());
    assert_eq!(config.log_format, LogFormat::Text);
}

#[test]
fn environment_overrides_are_typed_by_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.txt", "s");
    let file = write(dir.path(), "tokenflow.toml", EXAMPLE);
    let config = load_with(
        &file,
        &[
            ("ENTRA_SECRET", "x"),
            ("API_KEY_2", "y"),
            ("TOKENFLOW_LISTEN", "0.0.0.0:8181"),
            ("TOKENFLOW_API_KEYS", "k1, k2"),
            ("TOKENFLOW_OAUTH_SERVERS__ENTRA__CLIENT_SECRET", "from-env"),
            ("TOKENFLOW_OAUTH_SERVERS__ENTRA__PKCE", "false"),
            ("TOKENFLOW_OAUTH_SERVERS__NEW__CLIENT_ID", "123"),
            (
                "TOKENFLOW_OAUTH_SERVERS__NEW__TOKEN_URL",
                "https://idp.example/token",
            ),
            ("TOKENFLOW_MASTER_KEY", "not-a-config-key"),
        ],
    )
    .unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:8181");
    let keys: Vec<&str> = config.api_keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, ["k1", "k2"]);
    assert_eq!(
        config.oauth_servers["entra"]
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
        "from-env"
    );
    assert!(!config.oauth_servers["entra"].pkce);
    assert_eq!(
        config.oauth_servers["new"].client_id, "123",
        "stays a string"
    );
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err = load(&Sources {
        file: None,
        env: vec![("TOKENFLOW_OAUTH_SERVERS__X__PKCE".into(), "maybe".into())],
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { var, .. } if var == "TOKENFLOW_OAUTH_SERVERS__X__PKCE"),
        "{err}"
    );
    let err = load(&Sources {
        file: None,
        env: vec![("TOKENFLOW_LISTN".into(), "x".into())],
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("TOKENFLOW_LISTN")
            && err.to_string().contains("not a configuration key")
    );
}

#[test]
fn syntax_and_unknown_keys_report_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "a.toml",
        "listen = \"127.0.0.1:1\"\nlisten_port = 3\n",
    );
    let err = load_with(&file, &[]).unwrap_err().to_string();
    assert!(
        err.contains("unknown field `listen_port`") && err.contains("line 2"),
        "{err}"
    );

    let file = write(
        dir.path(),
        "b.toml",
        "[oauth_servers.x]\nclient_id = \"a\"\nclient_scret = \"s\"\n",
    );
    let err = load_with(&file, &[]).unwrap_err().to_string();
    assert!(
        err.contains("unknown field `client_scret`") && err.contains("line 3"),
        "{err}"
    );

    let file = write(
        dir.path(),
        "c.toml",
        "[oauth_servers.x]\nclient_id = \"a\"\npkce = \"yes\"\n",
    );
    let err = load_with(&file, &[]).unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");

    let file = write(dir.path(), "d.toml", "listen = \n");
    assert!(matches!(
        load_with(&file, &[]).unwrap_err(),
        ConfigError::Syntax { .. }
    ));
}

#[test]
fn the_fuzz_test_variables_are_not_configuration_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "a.toml", "");
    load_with(
        &file,
        &[
            ("TOKENFLOW_FUZZ_CASES", "1000"),
            ("TOKENFLOW_FUZZ_SECONDS", "60"),
        ],
    )
    .unwrap();
}

#[test]
fn a_syntax_error_on_a_line_with_an_inline_secret_does_not_show_the_line() {
    // Found by the fuzz tests: the TOML parser's message quoted the whole line.
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "a.toml",
        "[oauth_servers.x]\nclient_secret = \"inline-s3cret\" x\n",
    );
    let err = load_with(&file, &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{text}");
    assert!(!text.contains("inline-s3cret"), "{text}");
    assert!(text.contains("line 2, column 33"), "{text}");
}

#[test]
fn validation_reports_every_problem_naming_server_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        r#"
public_url = "ftp://x"
[oauth_servers.a]
token_url = "not a url"
[oauth_servers.b]
client_id = "b"
client_secret = { env = "MISSING_VAR" }
prompt = "consent"
"#,
    );
    let ConfigError::Invalid(problems) = load_with(&file, &[]).unwrap_err() else {
        panic!()
    };
    let text = problems.join("\n");
    assert!(text.contains("`public_url`"), "{text}");
    assert!(
        text.contains("oauth server `a`, field `client_id`: is required"),
        "{text}"
    );
    assert!(
        text.contains("oauth server `a`, field `token_url`"),
        "{text}"
    );
    assert!(
        text.contains("oauth_servers.b.client_secret") && text.contains("MISSING_VAR"),
        "{text}"
    );
}

#[test]
fn missing_secret_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "t.toml",
        "[oauth_servers.a]\nclient_id = \"a\"\nclient_secret = { file = \"nope.txt\" }\n",
    );
    let err = load_with(&file, &[]).unwrap_err().to_string();
    assert!(
        err.contains("oauth_servers.a.client_secret") && err.contains("nope.txt"),
        "{err}"
    );
}

#[test]
fn connection_limits_have_safe_defaults_and_are_set_by_file_or_environment() {
    let config = load(&Sources::default()).unwrap();
    assert_eq!(
        config.header_read_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(config.body_read_timeout, std::time::Duration::from_secs(30));
    assert_eq!(config.max_connections, 1024);

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "header_read_timeout = 3\nbody_read_timeout = 7\nmax_connections = 20\n",
    );
    let config = load_with(&file, &[]).unwrap();
    assert_eq!(
        config.header_read_timeout,
        std::time::Duration::from_secs(3)
    );
    assert_eq!(config.body_read_timeout, std::time::Duration::from_secs(7));
    assert_eq!(config.max_connections, 20);
    let config = load_with(
        &file,
        &[
            ("TOKENFLOW_HEADER_READ_TIMEOUT", "5"),
            ("TOKENFLOW_BODY_READ_TIMEOUT", "9"),
            ("TOKENFLOW_MAX_CONNECTIONS", "64"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.header_read_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(config.body_read_timeout, std::time::Duration::from_secs(9));
    assert_eq!(config.max_connections, 64);
}

#[test]
fn connection_limits_out_of_bounds_are_refused_naming_the_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key, range) in [
        (
            "header_read_timeout = 0\n",
            "`header_read_timeout`",
            "1 to 300 seconds",
        ),
        (
            "header_read_timeout = 301\n",
            "`header_read_timeout`",
            "1 to 300 seconds",
        ),
        (
            "header_read_timeout = -5\n",
            "`header_read_timeout`",
            "1 to 300 seconds",
        ),
        (
            "body_read_timeout = 0\n",
            "`body_read_timeout`",
            "1 to 600 seconds",
        ),
        (
            "body_read_timeout = 601\n",
            "`body_read_timeout`",
            "1 to 600 seconds",
        ),
        ("max_connections = 0\n", "`max_connections`", "1 to 65536"),
        (
            "max_connections = 1000000\n",
            "`max_connections`",
            "1 to 65536",
        ),
    ] {
        let file = write(dir.path(), "tokenflow.toml", text);
        let err = load_with(&file, &[]).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(range), "{text}: {err}");
    }
    let err = load(&Sources {
        file: None,
        env: vec![("TOKENFLOW_MAX_CONNECTIONS".into(), "many".into())],
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { var, .. } if var == "TOKENFLOW_MAX_CONNECTIONS"),
        "{err}"
    );
}

#[test]
fn basic_auth_encoding_comes_from_the_file_or_the_environment_and_is_checked() {
    use tokenflow_core::BasicAuthEncoding;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "[oauth_servers.glewlwyd]\nclient_id = \"app\"\ntoken_url = \"http://127.0.0.1:9/token\"\nclient_credentials_delivery = \"basic_header\"\nbasic_auth_encoding = \"raw\"\n\n[oauth_servers.other]\nclient_id = \"b\"\n",
    );
    let config = load_with(
        &file,
        &[("TOKENFLOW_OAUTH_SERVERS__OTHER__BASIC_AUTH_ENCODING", "raw")],
    )
    .unwrap();
    assert_eq!(
        config.oauth_servers["glewlwyd"].basic_auth_encoding,
        BasicAuthEncoding::Raw
    );
    assert_eq!(
        config.oauth_servers["other"].basic_auth_encoding,
        BasicAuthEncoding::Raw
    );
    let config = load_with(&file, &[]).unwrap();
    assert_eq!(
        config.oauth_servers["other"].basic_auth_encoding,
        BasicAuthEncoding::FormUrlencoded,
        "the default follows RFC 6749 §2.3.1"
    );
    let err = load_with(
        &file,
        &[(
            "TOKENFLOW_OAUTH_SERVERS__OTHER__BASIC_AUTH_ENCODING",
            "percent",
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown variant `percent`, expected `form_urlencoded` or `raw`"),
        "{err}"
    );
}

#[test]
fn run_limits_default_and_are_set_by_file_or_environment() {
    let defaults = load(&Sources::default()).unwrap().run_limits;
    assert_eq!(defaults, tokenflow_core::RunLimits::default());
    assert_eq!(defaults.max_steps, 10_000);
    assert_eq!(defaults.run_data, 32 * 1024 * 1024);
    assert_eq!(defaults.monitor_value, 8 * 1024);

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "max_steps_limit = 500\nrun_data_limit = 2097152\n",
    );
    let limits = load_with(&file, &[("TOKENFLOW_MONITOR_VALUE_LIMIT", "2048")])
        .unwrap()
        .run_limits;
    assert_eq!(limits.max_steps, 500);
    assert_eq!(limits.run_data, 2 * 1024 * 1024);
    assert_eq!(limits.monitor_value, 2048);
    let limits = load_with(&file, &[("TOKENFLOW_MAX_STEPS_LIMIT", "20000")])
        .unwrap()
        .run_limits;
    assert_eq!(limits.max_steps, 20_000, "the environment wins");
}

#[test]
fn run_limits_outside_their_safe_range_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "max_steps_limit = 4294967295\nrun_data_limit = 1099511627776\nmonitor_value_limit = 10\n",
    );
    let ConfigError::Invalid(problems) = load_with(&file, &[]).unwrap_err() else {
        panic!()
    };
    let text = problems.join("\n");
    assert!(
        text.contains("`max_steps_limit`: 4294967295 is outside the allowed range 1..=100000"),
        "{text}"
    );
    assert!(
        text.contains("`run_data_limit`: 1099511627776 is outside the allowed range"),
        "{text}"
    );
    assert!(
        text.contains("`monitor_value_limit`: 10 is outside the allowed range"),
        "{text}"
    );
    let err = load(&Sources {
        file: None,
        env: vec![("TOKENFLOW_RUN_DATA_LIMIT".into(), "lots".into())],
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { var, .. } if var == "TOKENFLOW_RUN_DATA_LIMIT"),
        "{err}"
    );
}

/// docs/security.md repeats the settings' defaults and ranges in its tables: they match the code.
#[test]
fn the_limits_in_the_security_docs_match_the_settings() {
    use tokenflow_config::{
        BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_WAITING_RUNS_PER_FLOW,
        RETENTION_MAX_AGE_DAYS, RETENTION_MAX_RUNS_PER_FLOW,
    };
    use tokenflow_core::limits::*;
    let doc = include_str!("../../../../docs/security.md");
    let thousands = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let mut rows = vec![
        format!(
            "| `header_read_timeout` | {} s | {}–{} s |",
            HEADER_READ_TIMEOUT.default, HEADER_READ_TIMEOUT.min, HEADER_READ_TIMEOUT.max
        ),
        format!(
            "| `body_read_timeout` | {} s | {}–{} s |",
            BODY_READ_TIMEOUT.default, BODY_READ_TIMEOUT.min, BODY_READ_TIMEOUT.max
        ),
        format!(
            "| `max_connections` | {} | {}–{} |",
            MAX_CONNECTIONS.default, MAX_CONNECTIONS.min, MAX_CONNECTIONS.max
        ),
        format!(
            "| `retention.max_age` | \"{}d\" | \"1h\"–\"{}d\", or \"off\" |",
            RETENTION_MAX_AGE_DAYS.default, RETENTION_MAX_AGE_DAYS.max
        ),
        format!(
            "| `retention.max_runs_per_flow` | {} | {}–{}, or 0 (off) |",
            thousands(RETENTION_MAX_RUNS_PER_FLOW.default),
            thousands(RETENTION_MAX_RUNS_PER_FLOW.min),
            thousands(RETENTION_MAX_RUNS_PER_FLOW.max)
        ),
        format!(
            "| `max_waiting_runs_per_flow` | {} | {}–{} |",
            thousands(MAX_WAITING_RUNS_PER_FLOW.default),
            thousands(MAX_WAITING_RUNS_PER_FLOW.min),
            thousands(MAX_WAITING_RUNS_PER_FLOW.max)
        ),
    ];
    rows.push(format!(
        "`max_steps_limit`: {} (1 to {})",
        thousands(u64::from(DEFAULT_MAX_STEPS_LIMIT)),
        thousands(u64::from(MAX_STEPS_LIMIT_MAX))
    ));
    rows.push(format!(
        "`run_data_limit`: {DEFAULT_RUN_DATA_LIMIT} bytes ({} MiB to {} MiB)",
        RUN_DATA_LIMIT_MIN >> 20,
        RUN_DATA_LIMIT_MAX >> 20
    ));
    rows.push(format!(
        "`monitor_value_limit`: {DEFAULT_MONITOR_VALUE_LIMIT} bytes ({} KiB to {} KiB)",
        MONITOR_VALUE_LIMIT_MIN >> 10,
        MONITOR_VALUE_LIMIT_MAX >> 10
    ));
    for row in rows {
        assert!(doc.contains(&row), "docs/security.md should say: {row}");
    }
}

/// A test-only key or certificate of the connectors' fixtures.
fn client_key_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tokenflow-connectors/tests/fixtures/client-keys")
        .join(name)
}

fn server_errors(dir: &Path, server: &str, env: &[(&str, &str)]) -> Vec<String> {
    let file = write(
        dir,
        "tokenflow.toml",
        &format!("[oauth_servers.s]\nclient_id = \"app\"\n{server}"),
    );
    match load_with(&file, env) {
        Err(ConfigError::Invalid(errors)) => errors,
        other => panic!("expected configuration errors, got {other:?}"),
    }
}

#[test]
fn private_key_jwt_reads_the_key_and_certificate_from_files_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_key_fixture("test-only-ec-p256.sec1.pem");
    let cert = client_key_fixture("test-only-rsa.cert.pem");
    let file = write(
        dir.path(),
        "tokenflow.toml",
        &format!(
            "[oauth_servers.file]\nclient_id = \"app\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\nsigning_alg = \"ES256\"\nprivate_key = {{ file = {key:?} }}\n\n\
             [oauth_servers.env]\nclient_id = \"app\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\nprivate_key = {{ env = \"RSA_KEY\" }}\ncertificate = {{ file = {cert:?} }}\nx5t_sha1 = true\n\n\
             [oauth_servers.jwt]\nclient_id = \"app\"\nclient_secret = \"hs256-secret\"\ntoken_endpoint_auth_method = \"client_secret_jwt\"\n"
        ),
    );
    let rsa = std::fs::read_to_string(client_key_fixture("test-only-rsa.pkcs8.pem")).unwrap();
    let config = load_with(&file, &[("RSA_KEY", &rsa)]).unwrap();

    let from_file = &config.oauth_servers["file"];
    assert_eq!(
        from_file.token_endpoint_auth_method,
        TokenEndpointAuthMethod::PrivateKeyJwt
    );
    assert_eq!(
        from_file.client_key.as_ref().unwrap().alg(),
        SigningAlg::ES256
    );
    let from_env = config.oauth_servers["env"].client_key.as_ref().unwrap();
    assert_eq!(from_env.alg(), SigningAlg::RS256, "the default");
    assert!(from_env.x5t_s256().is_some() && from_env.x5t().is_some());
    assert_eq!(
        config.oauth_servers["jwt"].token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretJwt
    );
    let shown = format!("{config:?}");
    for line in rsa.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!shown.contains(line), "key material in Debug");
    }
}

#[test]
fn client_authentication_errors_name_the_server_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad_pem = write(
        dir.path(),
        "bad.pem",
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n",
    );
    let cases: Vec<(String, &str)> = vec![
        (
            format!("token_endpoint_auth_method = \"private_key_jwt\"\nprivate_key = {{ file = {bad_pem:?} }}\n"),
            "oauth server `s`, field `private_key`: is not a PEM private key",
        ),
        (
            "token_endpoint_auth_method = \"private_key_jwt\"\n".to_owned(),
            "oauth server `s`, field `private_key`: is required with token_endpoint_auth_method = \"private_key_jwt\"",
        ),
        (
            "token_endpoint_auth_method = \"private_key_jwt\"\nprivate_key = { env = \"NO_SUCH_KEY\" }\n".to_owned(),
            "`oauth_servers.s.private_key`: environment variable `NO_SUCH_KEY` is not set",
        ),
        (
            "token_endpoint_auth_method = \"tls_client_auth\"\n".to_owned(),
            "oauth server `s`, field `private_key`: is required with token_endpoint_auth_method = \"tls_client_auth\"",
        ),
        (
            "client_secret = \"x\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_credentials_delivery = \"body\"\n".to_owned(),
            "oauth server `s`, field `token_endpoint_auth_method`: `client_secret_basic` contradicts client_credentials_delivery = \"body\"",
        ),
        (
            "token_endpoint_auth_method = \"client_secret_jwt\"\n".to_owned(),
            "oauth server `s`, field `client_secret`: is required with token_endpoint_auth_method = \"client_secret_jwt\"",
        ),
        (
            "client_secret = \"x\"\nsigning_alg = \"PS256\"\n".to_owned(),
            "oauth server `s`, field `signing_alg`: is only used with token_endpoint_auth_method = \"private_key_jwt\"",
        ),
    ];
    for (server, expected) in cases {
        let errors = server_errors(dir.path(), &server, &[]);
        assert!(
            errors.iter().any(|error| error.starts_with(expected)),
            "{server}: {errors:?}"
        );
    }
    // Consistent pairs are fine: `body` is `client_secret_post`, `basic_header` is
    // `client_secret_basic`.
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "[oauth_servers.s]\nclient_id = \"app\"\nclient_secret = \"x\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_credentials_delivery = \"basic_header\"\n",
    );
    assert_eq!(
        load_with(&file, &[]).unwrap().oauth_servers["s"].token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic
    );
}

#[test]
fn pkcs12_files_are_read_as_bytes_and_tls_ca_from_a_file() {
    let pki = tokenflow_testkit::TestPki::generate();
    pki.pkcs12("client", "client.p12", "cfg-Pfx-1", false);
    let file = write(
        pki.dir(),
        "tokenflow.toml",
        "tls_ca = { file = \"ca.pem\" }\n[oauth_servers.s]\nclient_id = \"app\"\ntoken_url = \"https://idp.example/token\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\npkcs12 = { file = \"client.p12\" }\npkcs12_password = { env = \"PFX_PW\" }\ntls_ca = { file = \"ca.pem\" }\n",
    );
    let config = load_with(&file, &[("PFX_PW", "cfg-Pfx-1")]).unwrap();
    let server = &config.oauth_servers["s"];
    let certificate = server.client_certificate.as_ref().unwrap();
    assert!(certificate.certificates_pem().contains("BEGIN CERTIFICATE"));
    assert!(
        config
            .tls_ca
            .as_deref()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(server.tls_ca, config.tls_ca);
    assert!(!format!("{config:?}").contains("cfg-Pfx-1"));

    let bad = write(pki.dir(), "bad.toml", "tls_ca = \"not a certificate\"\n");
    let err = load_with(&bad, &[]).unwrap_err().to_string();
    assert!(err.contains("`tls_ca`"), "{err}");
}

#[test]
fn retention_and_waiting_runs_have_defaults_and_are_set_by_file_or_environment() {
    use std::time::Duration;
    let config = load(&Sources::default()).unwrap();
    assert_eq!(
        config.retention.max_age,
        Some(Duration::from_secs(30 * 24 * 3600))
    );
    assert_eq!(config.retention.max_runs_per_flow, Some(10_000));
    assert_eq!(config.max_waiting_runs_per_flow, 1000);

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "max_waiting_runs_per_flow = 5\nretention = { max_age = \"12h\", max_runs_per_flow = 0 }\n",
    );
    let config = load_with(&file, &[]).unwrap();
    assert_eq!(
        config.retention.max_age,
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(
        config.retention.max_runs_per_flow, None,
        "0 keeps any number"
    );
    assert_eq!(config.max_waiting_runs_per_flow, 5);

    let config = load_with(
        &file,
        &[
            ("TOKENFLOW_RETENTION__MAX_AGE", "off"),
            ("TOKENFLOW_RETENTION__MAX_RUNS_PER_FLOW", "200"),
            ("TOKENFLOW_MAX_WAITING_RUNS_PER_FLOW", "7"),
        ],
    )
    .unwrap();
    assert_eq!(config.retention.max_age, None);
    assert_eq!(config.retention.max_runs_per_flow, Some(200));
    assert_eq!(config.max_waiting_runs_per_flow, 7);
}

#[test]
fn retention_and_waiting_runs_out_of_range_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "retention = { max_age = \"30m\" }\n",
            "`retention.max_age`: `30m`",
        ),
        (
            "retention = { max_age = \"0d\" }\n",
            "`retention.max_age`: `0d`",
        ),
        (
            "retention = { max_age = \"3651d\" }\n",
            "`retention.max_age`: `3651d`",
        ),
        (
            "retention = { max_age = \"forever\" }\n",
            "`retention.max_age`",
        ),
        (
            "retention = { max_runs_per_flow = -1 }\n",
            "`retention.max_runs_per_flow`: -1 is out of range; use 1 to 10000000",
        ),
        (
            "retention = { max_runs_per_flow = 10000001 }\n",
            "`retention.max_runs_per_flow`",
        ),
        (
            "max_waiting_runs_per_flow = 0\n",
            "`max_waiting_runs_per_flow`: 0 is out of range; use 1 to 1000000",
        ),
    ] {
        let file = write(dir.path(), "tokenflow.toml", text);
        let Err(ConfigError::Invalid(problems)) = load_with(&file, &[]) else {
            panic!("{text} should be refused");
        };
        let problems = problems.join("\n");
        assert!(problems.contains(expected), "{text}: {problems}");
    }
    let file = write(
        dir.path(),
        "tokenflow.toml",
        "retention = { max_age = \"30d\", keep = 3 }\n",
    );
    assert!(load_with(&file, &[]).is_err(), "unknown keys are refused");
}
