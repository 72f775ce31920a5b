use std::path::Path;
use std::process::Output;

use tokenflow_testkit::{Idp, unique};

fn tokenflow(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TOKENFLOW_CONFIG")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn config_for(dir: &Path, idp: &Idp, client_id: &str, secret_env: &str) -> std::path::PathBuf {
    let path = dir.join("tokenflow.toml");
    std::fs::write(
        &path,
        format!(
            "[oauth_servers.idp]\nclient_id = \"{client_id}\"\nclient_secret = {{ env = \"{secret_env}\" }}\nissuer = \"{}\"\nscope = \"api:read\"\nclient_credentials_delivery = \"basic_header\"\n",
            idp.issuer()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn servers_test_gets_a_token_and_prints_only_its_fingerprint() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cli"), "cli-secret-value")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &idp, &client.id, "CLI_TEST_SECRET_OK");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "servers",
            "test",
            "idp",
        ])
        .env("CLI_TEST_SECRET_OK", "cli-secret-value")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("status_code        0 (Successful)"), "{out}");
    assert!(out.contains("access_token       sha256:"), "{out}");
    assert!(!out.contains("cli-secret-value"));
    let requests = idp.token_requests(&client.id).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].auth_method, "basic");
}

#[tokio::test]
async fn servers_test_with_a_wrong_secret_fails_with_the_provider_error() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cli"), "right-one")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &idp, &client.id, "CLI_TEST_SECRET_BAD");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "servers",
            "test",
            "idp",
        ])
        .env("CLI_TEST_SECRET_BAD", "wrong-one-value")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(!output.status.success());
    assert!(
        out.contains("-1 (Unsuccessful (unknown))") && out.contains("invalid_client"),
        "{out}"
    );
    assert!(!out.contains("wrong-one-value"));
}

#[test]
fn invalid_configuration_names_the_server_and_field_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenflow.toml");
    std::fs::write(&path, "[oauth_servers.entra]\ntoken_url = \"nope\"\n").unwrap();
    let output = tokenflow(&path, &["servers", "list"]);
    let out = text(&output);
    assert!(!output.status.success());
    assert!(out.contains("cannot load the configuration"), "{out}");
    assert!(
        out.contains("oauth server `entra`, field `client_id`: is required"),
        "{out}"
    );
    assert!(
        out.contains("oauth server `entra`, field `token_url`"),
        "{out}"
    );
}

#[test]
fn servers_list_shows_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenflow.toml");
    std::fs::write(
        &path,
        "[oauth_servers.entra]\nclient_id = \"app-1\"\nclient_secret = \"inline-secret-xyz\"\ntoken_url = \"https://login.example/token\"\n",
    )
    .unwrap();
    let output = tokenflow(&path, &["servers", "list"]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("entra") && out.contains("app-1") && out.contains("client_secret  set"));
    assert!(!out.contains("inline-secret-xyz"));
}

#[test]
fn servers_test_of_an_unknown_server_says_so_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenflow.toml");
    std::fs::write(
        &path,
        "[oauth_servers.entra]\nclient_id = \"app-1\"\ntoken_url = \"https://login.example/token\"\n",
    )
    .unwrap();
    let output = tokenflow(&path, &["servers", "test", "ghost"]);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("no OAuth server `ghost`"), "{out}");
    assert!(
        !out.contains("status_code"),
        "nothing was tried against any server: {out}"
    );
}
