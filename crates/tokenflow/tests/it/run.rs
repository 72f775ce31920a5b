use serde_json::Value;
use tokenflow_testkit::{Decision, DeviceDecision, Idp, approve_device, sign_in, unique};

use crate::support::{
    Cli, SECRETS_ENV, SERVICE_SECRET, WEB_SECRET, assert_no_tokens, demo_config, example,
    redirect_uri_of,
};

struct World {
    idp: Idp,
    _dir: tempfile::TempDir,
    config: String,
    service: String,
    web: String,
}

async fn world() -> World {
    let idp = Idp::start().await;
    let service = unique("svc");
    let web = unique("web");
    idp.client_credentials_client(&service, SERVICE_SECRET)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &idp, &service, &web)
        .display()
        .to_string();
    World {
        idp,
        _dir: dir,
        config,
        service,
        web,
    }
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|err| panic!("not one JSON document ({err}):\n{stdout}"))
}

fn trail(run: &Value) -> Vec<(String, i64)> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["status_code"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_client_credentials_flow_calls_the_api_with_its_token() {
    let w = world().await;
    let api = format!("api_url={}", w.idp.url("/api/whoami"));
    let flow = example("service_call.yaml").display().to_string();
    let cli = Cli::spawn(
        &[
            "run", &flow, "--config", &w.config, "--input", &api, "--format", "json",
        ],
        SECRETS_ENV,
    );
    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}\n{stdout}");
    let run = json(&stdout);
    assert_eq!(run["status"], "completed");
    assert_eq!(
        trail(&run),
        [
            ("get_token".into(), 0),
            ("call_api".into(), 0),
            ("read_client".into(), 0)
        ]
    );
    assert_eq!(
        run["variables"]["http_status"], 200,
        "the API accepted the token"
    );
    assert_eq!(run["variables"]["client"], w.service.as_str());
    assert!(
        run["variables"]["token"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_no_tokens(&w.idp, &w.service, &format!("{stdout}{stderr}")).await;
}

#[tokio::test]
async fn a_user_login_flow_completes_through_the_loopback_listener() {
    let w = world().await;
    let userinfo = format!("userinfo_url={}", w.idp.url("/me"));
    let flow = example("user_profile.yaml").display().to_string();
    let mut cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &w.config,
            "--input",
            &userinfo,
            "--format",
            "json",
            "--callback-port",
            "0",
        ],
        SECRETS_ENV,
    );
    let url = cli.authorization_url().await;
    let redirect = redirect_uri_of(&url);
    // RFC 8252 §7.3/§8.3: the loopback IP literal the listener is bound to, not `localhost`.
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/oauth-callback"),
        "{redirect}"
    );
    w.idp
        .web_client(&w.web, WEB_SECRET, &redirect, serde_json::json!({}))
        .await;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A stray or forged callback is refused and changes nothing.
    let bogus = http
        .get(format!("{redirect}?state=not-the-state&code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 400);

    let landed = sign_in(&url, &redirect, "alice", "alice-password", Decision::Allow).await;
    let page = http.get(landed.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("received the sign-in response")
    );

    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}\n{stdout}");
    let run = json(&stdout);
    assert_eq!(run["status"], "completed");
    assert_eq!(
        trail(&run),
        [
            ("login".into(), 0),
            ("read_profile".into(), 0),
            ("read_name".into(), 0)
        ]
    );
    assert_eq!(
        run["variables"]["name"], "Alice Example",
        "the next action used the token"
    );
    assert!(
        run["actions"][0]["outputs"]["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_no_tokens(&w.idp, &w.web, &format!("{stdout}{stderr}")).await;
}

#[tokio::test]
async fn cancel_at_the_idp_routes_minus_two_to_the_failure_branch() {
    let w = world().await;
    let flow = example("user_profile.yaml").display().to_string();
    let mut cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &w.config,
            "--format",
            "json",
            "--callback-port",
            "0",
        ],
        SECRETS_ENV,
    );
    let url = cli.authorization_url().await;
    let redirect = redirect_uri_of(&url);
    w.idp
        .web_client(&w.web, WEB_SECRET, &redirect, serde_json::json!({}))
        .await;
    let landed = sign_in(
        &url,
        &redirect,
        "alice",
        "alice-password",
        Decision::CancelLogin,
    )
    .await;
    let http = reqwest::Client::builder().build().unwrap();
    let page = http
        .get(landed.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("cancelled"), "{page}");

    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "the run completes through its failure branch: {stderr}");
    let run = json(&stdout);
    assert_eq!(
        trail(&run),
        [("login".into(), -2), ("login_failed".into(), 0)]
    );
    assert_eq!(run["actions"][0]["outputs"]["error"], "access_denied");
}

#[tokio::test]
async fn an_expired_pending_login_ends_minus_two() {
    let w = world().await;
    let flow = example("user_profile.yaml").display().to_string();
    let mut cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &w.config,
            "--format",
            "json",
            "--callback-port",
            "0",
            "--login-timeout",
            "1s",
        ],
        SECRETS_ENV,
    );
    let _ = cli.authorization_url().await;
    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}");
    let run = json(&stdout);
    assert_eq!(
        trail(&run),
        [("login".into(), -2), ("login_failed".into(), 0)]
    );
    assert_eq!(run["actions"][0]["outputs"]["error"], "login_expired");
    assert!(stderr.contains("not completed in time"), "{stderr}");
}

#[tokio::test]
async fn a_failing_run_exits_non_zero_with_the_reason_and_text_output_shows_meanings() {
    let w = world().await;
    // The service client is registered, but the flow's API URL refuses the connection: the flow
    // routes call_api (-1) to api_refused, which completes. Use an unknown server to fail instead.
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("f.yaml");
    std::fs::write(
        &flow,
        "id: f\nvariables:\n  s: {}\nactions:\n  t:\n    type: oauth_server_login\n    oauth_server: demo-service\n    input: { scope: \"\" }\n    output: { status_code: s }\nsteps:\n  - { from: start, to: t }\n  - { from: t, to: stop, when: \"s == 0\" }\n",
    )
    .unwrap();
    let flow = flow.display().to_string();
    let cli = Cli::spawn(&["run", &flow, "--config", &w.config], SECRETS_ENV);
    let (ok, stdout, stderr) = cli.finish().await;
    assert!(!ok);
    assert!(stdout.contains("Unsuccessful (no scope)"), "{stdout}");
    assert!(
        stderr.contains("the run ended failed: no step from `t` holds (status code -3"),
        "{stderr}"
    );
}

/// Runs `user_profile.yaml` with `args` to its authorization URL, signs alice in through
/// `redirect`, and checks the run completed.
async fn sign_in_through(w: &World, cli: Cli, url: &str, redirect: &str) {
    w.idp
        .web_client(&w.web, WEB_SECRET, redirect, serde_json::json!({}))
        .await;
    let landed = sign_in(url, redirect, "alice", "alice-password", Decision::Allow).await;
    let http = reqwest::Client::builder().build().unwrap();
    let page = http.get(landed.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}\n{stdout}");
    let run = json(&stdout);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["variables"]["name"], "Alice Example");
}

#[tokio::test]
async fn callback_host_ipv6_uses_the_bracketed_ip_literal_and_completes() {
    let w = world().await;
    let userinfo = format!("userinfo_url={}", w.idp.url("/me"));
    let flow = example("user_profile.yaml").display().to_string();
    let mut cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &w.config,
            "--input",
            &userinfo,
            "--format",
            "json",
            "--callback-port",
            "0",
            "--callback-host",
            "::1",
        ],
        SECRETS_ENV,
    );
    let url = cli.authorization_url().await;
    let redirect = redirect_uri_of(&url);
    assert!(
        redirect.starts_with("http://[::1]:") && redirect.ends_with("/oauth-callback"),
        "{redirect}"
    );
    sign_in_through(&w, cli, &url, &redirect).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo configuration with `redirect_uri` set on the user-login server.
fn with_redirect_uri(w: &World, redirect: &str) -> String {
    let text = std::fs::read_to_string(&w.config).unwrap().replace(
        "request_refresh_token = true\n",
        &format!("request_refresh_token = true\nredirect_uri = \"{redirect}\"\n"),
    );
    assert!(text.contains(redirect));
    let path = std::path::Path::new(&w.config).with_file_name("configured.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_configured_localhost_redirect_uri_is_sent_unchanged_and_the_run_completes_through_it() {
    let w = world().await;
    let configured = format!("http://localhost:{}/oauth-callback", free_port());
    let config = with_redirect_uri(&w, &configured);
    let userinfo = format!("userinfo_url={}", w.idp.url("/me"));
    let flow = example("user_profile.yaml").display().to_string();
    let mut cli = Cli::spawn(
        &[
            "run", &flow, "--config", &config, "--input", &userinfo, "--format", "json",
        ],
        SECRETS_ENV,
    );
    let url = cli.authorization_url().await;
    assert_eq!(
        redirect_uri_of(&url),
        configured,
        "sent exactly as configured"
    );
    sign_in_through(&w, cli, &url, &configured).await;
}

#[tokio::test]
async fn a_busy_callback_port_is_reported_with_the_address_and_the_reason() {
    let w = world().await;
    let flow = example("user_profile.yaml").display().to_string();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &w.config,
            "--callback-port",
            &port,
        ],
        SECRETS_ENV,
    );
    let (ok, _, stderr) = cli.finish().await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "error: cannot listen on 127.0.0.1:{port} for the sign-in redirect: Address already in use"
        )) && stderr.contains("--callback-port"),
        "{stderr}"
    );

    // The same for a configured redirect URI, which is where the IdP will send the person.
    let configured = format!("http://localhost:{port}/oauth-callback");
    let config = with_redirect_uri(&w, &configured);
    let cli = Cli::spawn(&["run", &flow, "--config", &config], SECRETS_ENV);
    let (ok, _, stderr) = cli.finish().await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "error: cannot listen on 127.0.0.1:{port} for the sign-in redirect: Address already in use"
        )) && stderr.contains(&format!("the redirect URI {configured} names this address")),
        "{stderr}"
    );
    drop(busy);
}

#[tokio::test]
async fn a_device_login_prints_the_code_and_the_address_and_completes_once_approved() {
    let idp = Idp::start().await;
    let client = unique("cli-device");
    idp.device_client(
        &client,
        "cli-device-secret",
        serde_json::json!({ "device_interval": 1 }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenflow.toml");
    std::fs::write(
        &config,
        format!(
            "[oauth_servers.dev]\nclient_id = \"{client}\"\nclient_secret = {{ env = \"E2E_DEVICE_SECRET\" }}\nissuer = \"{}\"\n",
            idp.issuer()
        ),
    )
    .unwrap();
    let flow = dir.path().join("device.yaml");
    std::fs::write(
        &flow,
        "id: device\nvariables:\n  status: {}\n  code: {}\nactions:\n  login:\n    type: oauth_device_login\n    oauth_server: dev\n    input: { scope: openid }\n    output: { status_code: status, user_code: code }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n",
    )
    .unwrap();
    let mut cli = Cli::spawn(
        &[
            "run",
            &flow.display().to_string(),
            "--config",
            &config.display().to_string(),
            "--format",
            "json",
        ],
        &[("E2E_DEVICE_SECRET", "cli-device-secret")],
    );

    // The address, then the code, then the address with the code in it.
    let address = cli.line(|line| line.trim_start().starts_with("http")).await;
    assert!(address.trim().starts_with(&idp.url("/device")), "{address}");
    cli.line(|line| line == "and enter the code").await;
    let user_code = cli.line(|_| true).await.trim().to_owned();
    assert!(!user_code.is_empty());
    let complete = cli.line(|line| line.starts_with("(or open ")).await;
    let complete = complete
        .trim_start_matches("(or open ")
        .trim_end_matches(')');
    approve_device(complete, "alice", "alice-password", DeviceDecision::Approve).await;

    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}");
    let run = json(&stdout);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["variables"]["status"], 0, "{run}");
    assert_eq!(run["variables"]["code"], user_code.as_str());
    // The device code and the tokens are never printed.
    let device_codes = idp.issued_tokens(&client).await;
    assert!(!device_codes.is_empty());
    for secret in device_codes {
        assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    }
}

#[tokio::test]
async fn the_top_level_tls_ca_is_trusted_by_discovery_the_token_request_and_http_calls() {
    // The IdP's only address is HTTPS with a private CA, which only `tls_ca` vouches for.
    let pki = tokenflow_testkit::TestPki::generate();
    let idp = Idp::start_with_tls_issuer(&pki).await;
    let service = unique("svc-ca");
    idp.client_credentials_client(&service, SERVICE_SECRET)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenflow.toml");
    std::fs::write(
        &config,
        format!(
            "tls_ca = {{ file = \"{}\" }}\n\n[oauth_servers.demo-service]\nclient_id = \"{service}\"\nclient_secret = {{ env = \"E2E_SERVICE_SECRET\" }}\nissuer = \"{}\"\nscope = \"api:read\"\n",
            pki.path("ca.pem").display(),
            idp.issuer()
        ),
    )
    .unwrap();
    let api = format!("api_url={}", idp.url("/api/whoami"));
    let flow = example("service_call.yaml").display().to_string();
    let cli = Cli::spawn(
        &[
            "run",
            &flow,
            "--config",
            &config.display().to_string(),
            "--input",
            &api,
            "--format",
            "json",
        ],
        SECRETS_ENV,
    );
    let (ok, stdout, stderr) = cli.finish().await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(!stderr.contains("warning"), "discovery worked: {stderr}");
    let run = json(&stdout);
    assert_eq!(run["variables"]["http_status"], 200, "{run}");
    assert_eq!(run["variables"]["client"], service.as_str());
}
