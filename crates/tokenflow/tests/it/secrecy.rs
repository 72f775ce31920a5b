//! The credentials of the newer OAuth features never reach `tokenflow serve`'s trace log or its
//! API answers: a device login's device code, a Google service account's private key, a PKCS#12
//! file's password and key, and every token the IdP issued (docs/security.md). A service account
//! key given through the API is refused, so it is never stored.

use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_testkit::pki::CLIENT_SUBJECT;
use tokenflow_testkit::{DeviceDecision, Idp, TestPki, approve_device, unique};

use crate::serve::{API_KEY, Site, contains, get_run, http, post_run_with, terminate};
use crate::support::repo;

const PFX_PASSWORD: &str = "secrecy-Pfx-Pw-93";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A flow of one action on `server` whose `status_code` goes into `status`.
fn one_action_flow(id: &str, kind: &str, server: &str, input: &str) -> String {
    format!(
        "id: {id}\nvariables:\n  status: {{}}\nactions:\n  one:\n    type: {kind}\n    oauth_server: {server}\n    input: {input}\n    output: {{ status_code: status }}\nsteps:\n  - {{ from: start, to: one }}\n  - {{ from: one, to: stop }}\n"
    )
}

/// The body lines of a PEM block: each is a distinctive piece of the key.
fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 32)
        .map(str::to_owned)
        .collect()
}

/// Waits (with a deadline) until the run no longer waits; the device poller is external.
async fn ended(site: &Site, id: &str) -> (Value, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (run, text) = get_run(site, id).await;
        if run["status"] != "waiting" && run["status"] != "running" {
            return (run, text);
        }
        assert!(tokio::time::Instant::now() < deadline, "still waits: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn api(
    method: reqwest::Method,
    site: &Site,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = http().request(method, site.url(path)).bearer_auth(API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn no_device_code_service_account_key_pkcs12_password_or_token_reaches_the_trace_log() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    // A device client, a service account (RFC 7523 jwt_bearer) and a tls_client_auth client.
    let device = unique("secrecy-device");
    idp.device_client(
        &device,
        "secrecy-device-secret",
        json!({ "device_interval": 1 }),
    )
    .await;
    let key_dir = repo().join("crates/tokenflow-connectors/tests/fixtures/client-keys");
    let private_key = std::fs::read_to_string(key_dir.join("test-only-rsa.pkcs8.pem")).unwrap();
    let public_key = std::fs::read_to_string(key_dir.join("test-only-rsa.public.pem")).unwrap();
    let email = format!("{}@tokenflow-test.iam.example.test", unique("secrecy-sa"));
    idp.register(
        json!({ "client_id": email, "token_endpoint_auth_method": "none",
                "grant_types": [JWT_BEARER], "response_types": [], "redirect_uris": [],
                "scope": "api:read" }),
        json!({ "public_key_pem": public_key, "public_key_kid": "secrecy-key" }),
    )
    .await;
    let mtls = unique("secrecy-mtls");
    idp.register(
        json!({ "client_id": mtls, "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": CLIENT_SUBJECT, "grant_types": ["client_credentials"],
                "response_types": [], "redirect_uris": [], "scope": "api:read" }),
        json!({}),
    )
    .await;
    let key_json = json!({ "type": "service_account", "client_email": email,
        "private_key_id": "secrecy-key", "private_key": private_key, "token_uri": idp.token_url() })
    .to_string();
    pki.pkcs12("client", "client.p12", PFX_PASSWORD, false);
    std::fs::write(pki.path("sa.json"), &key_json).unwrap();
    let servers = format!(
        "[oauth_servers.dev]\nclient_id = \"{device}\"\nclient_secret = \"secrecy-device-secret\"\nissuer = \"{iss}\"\n\n\
         [oauth_servers.google]\nservice_account_key = {{ file = \"{sa}\" }}\nscope = \"api:read\"\n\n\
         [oauth_servers.mtls]\nclient_id = \"{mtls}\"\ntoken_url = \"{token}\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\n\
         pkcs12 = {{ file = \"{p12}\" }}\npkcs12_password = \"{PFX_PASSWORD}\"\ntls_ca = {{ file = \"{ca}\" }}\nscope = \"api:read\"\n",
        iss = idp.issuer(),
        sa = pki.path("sa.json").display(),
        token = idp.tls_url("/token"),
        p12 = pki.path("client.p12").display(),
        ca = pki.path("ca.pem").display(),
    );
    let site = Site::new(
        &servers,
        &[
            (
                "device.yaml",
                one_action_flow("device", "oauth_device_login", "dev", "{ scope: openid }"),
            ),
            (
                "sa.yaml",
                one_action_flow(
                    "sa",
                    "oauth_token_exchange",
                    "google",
                    "{ mode: jwt_bearer }",
                ),
            ),
            (
                "mtls.yaml",
                one_action_flow("mtls", "oauth_server_login", "mtls", "{}"),
            ),
        ],
    );
    let child = site.start().await;
    let mut responses = String::new();

    let (status, run, text) = post_run_with(&site, "device", json!({})).await;
    assert_eq!(status, 201, "{run}");
    responses.push_str(&text);
    let complete = run["device"]["verification_uri_complete"].as_str().unwrap();
    approve_device(complete, "alice", "alice-password", DeviceDecision::Approve).await;
    let (done, text) = ended(&site, run["id"].as_str().unwrap()).await;
    assert_eq!(done["variables"]["status"], 0, "{done}");
    responses.push_str(&text);
    for flow in ["sa", "mtls"] {
        let (_, run, text) = post_run_with(&site, flow, json!({})).await;
        assert_eq!(run["variables"]["status"], 0, "{flow}: {run}");
        responses.push_str(&text);
    }

    // The API refuses a service account key (it is set in tokenflow.toml only) and keeps nothing.
    let (status, text) = api(
        reqwest::Method::PUT,
        &site,
        "/api/oauth-servers/sa2",
        Some(json!({ "service_account_key": key_json, "scope": "api:read" })),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_input"), "{text}");
    responses.push_str(&text);
    let (status, _) = api(reqwest::Method::GET, &site, "/api/oauth-servers/sa2", None).await;
    assert_eq!(status, 404, "nothing was stored");
    for path in [
        "/api/oauth-servers",
        "/api/oauth-servers/google",
        "/api/oauth-servers/mtls",
        "/api/runs",
    ] {
        let (status, text) = api(reqwest::Method::GET, &site, path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        responses.push_str(&text);
    }
    terminate(child).await;

    let mut secrets: Vec<String> = Vec::new();
    for client in [device.as_str(), email.as_str(), mtls.as_str()] {
        let issued = idp.issued_tokens(client).await;
        assert!(!issued.is_empty(), "{client} was issued tokens");
        secrets.extend(issued);
    }
    secrets.extend(pem_lines(&private_key));
    secrets.extend(pem_lines(&pki.read("client.key")));
    secrets.push(PFX_PASSWORD.to_owned());
    let log = std::fs::read_to_string(site.log()).unwrap();
    // tokenflow writes no `trace!` of its own: its `debug!` lines show the level was below info.
    assert!(log.contains("DEBUG"), "trace logging was on");
    for (name, text) in [("server.log", &log), ("API answers", &responses)] {
        for secret in &secrets {
            assert!(
                !contains(text.as_bytes(), secret.as_bytes()),
                "{name} contains a secret ({} chars)",
                secret.len()
            );
        }
    }
}
