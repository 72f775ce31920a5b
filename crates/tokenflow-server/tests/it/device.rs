//! `oauth_device_login` (RFC 8628) end to end: the real test IdP's device authorization
//! endpoint, its user-code pages driven over HTTP, the runtime's device poller.

use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_testkit::{DeviceDecision, Idp, approve_device, unique};

use crate::support::{Options, TestApp, build_app, restart, spawn_app};
use crate::ui::signed_in;

/// A device login, then the IdP's userinfo with the token.
fn device_flow(idp: &Idp) -> String {
    format!(
        r#"id: device
variables:
  token: {{}}
  status: {{}}
  code: {{}}
  profile: {{}}
  name: {{}}
actions:
  login:
    type: oauth_device_login
    oauth_server: idp
    input: {{ scope: "openid profile" }}
    output: {{ access_token: token, status_code: status, user_code: code }}
  me:
    type: http_connector
    input: {{ url: "{}/me", bearer_token: {{ var: token }} }}
    output: {{ content: profile }}
  pick:
    type: extract_json
    input: {{ json: {{ var: profile }}, path: "$.name" }}
    output: {{ value: name }}
  not_signed_in: {{ type: stop }}
steps:
  - {{ from: start, to: login }}
  - {{ from: login, to: me, when: successful }}
  - {{ from: login, to: not_signed_in, when: not_successful }}
  - {{ from: me, to: pick }}
  - {{ from: pick, to: stop }}
"#,
        idp.issuer()
    )
}

pub(crate) struct DeviceWorld {
    pub idp: Idp,
    pub app: TestApp,
    pub client: String,
}

/// An IdP with a device client (`options` as for its registration) and an app whose server
/// `idp` discovers the device authorization endpoint.
pub(crate) async fn device_world(options: Value) -> DeviceWorld {
    let idp = Idp::start().await;
    let client = unique("device");
    idp.device_client(&client, "device-secret", options).await;
    let config = format!(
        "[oauth_servers.idp]\nclient_id = \"{client}\"\nclient_secret = \"device-secret\"\nissuer = \"{}\"\n",
        idp.issuer()
    );
    let app = spawn_app(Options {
        config,
        flows: vec![("device.yaml", device_flow(&idp))],
        ..Options::default()
    })
    .await;
    DeviceWorld { idp, app, client }
}

/// Starts the device flow over the API: 201 with the `device` member.
pub(crate) async fn start(app: &TestApp) -> Value {
    let (status, run, location) = app.post_json("/api/flows/device/runs", json!({})).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "waiting");
    assert!(location.is_some());
    run
}

/// Polls the run until it is no longer waiting (the IdP and the poller are external to the
/// test), with a deadline.
async fn ended(app: &TestApp, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = app.get_json(&format!("/api/runs/{id}")).await;
        if run["status"] != "waiting" && run["status"] != "running" {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run still waits: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn login_status(run: &Value) -> i64 {
    run["actions"][0]["status_code"].as_i64().unwrap()
}

#[tokio::test]
async fn a_device_login_approved_at_the_idp_completes_the_run_with_a_token() {
    let w = device_world(json!({ "device_interval": 1 })).await;
    let run = start(&w.app).await;
    let id = run["id"].as_str().unwrap();
    let device = &run["device"];
    let user_code = device["user_code"].as_str().unwrap();
    assert!(!user_code.is_empty());
    assert!(
        device["verification_uri"]
            .as_str()
            .unwrap()
            .starts_with(&w.idp.url("/device"))
    );
    assert!(device["expires_at"].is_string());
    let complete = device["verification_uri_complete"].as_str().unwrap();

    // The device code is a secret: neither the API answer nor the monitor page shows it.
    let device_codes = w.idp.issued_tokens(&w.client).await;
    assert!(!device_codes.is_empty());
    let (cookie, _) = signed_in(&w.app).await;
    let page = w
        .app
        .http
        .get(format!("{}/runs/{id}", w.app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(user_code), "the page shows the user code");
    assert!(page.contains("id=\"verification-uri\""), "{page}");
    for secret in &device_codes {
        assert!(!run.to_string().contains(secret.as_str()), "API answer");
        assert!(!page.contains(secret.as_str()), "monitor page");
    }

    let last = approve_device(complete, "alice", "alice-password", DeviceDecision::Approve).await;
    assert!(last.contains("device-success"), "{last}");
    let run = ended(&w.app, id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(login_status(&run), 0);
    assert_eq!(
        run["variables"]["name"], "Alice Example",
        "the token was used"
    );
    assert_eq!(run["variables"]["code"], user_code);
    assert!(run.get("device").is_none(), "only while waiting");
    for secret in w.idp.issued_tokens(&w.client).await {
        assert!(!run.to_string().contains(secret.as_str()));
    }
    let polls = w.idp.token_requests(&w.client).await;
    assert!(polls.iter().any(|r| r.grant_type.as_deref()
        == Some("urn:ietf:params:oauth:grant-type:device_code")
        && r.status == 200));
}

#[tokio::test]
async fn a_device_login_aborted_at_the_idp_ends_minus_two() {
    let w = device_world(json!({ "device_interval": 1 })).await;
    let run = start(&w.app).await;
    let complete = run["device"]["verification_uri_complete"].as_str().unwrap();
    approve_device(complete, "alice", "alice-password", DeviceDecision::Abort).await;
    let run = ended(&w.app, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(login_status(&run), -2);
    assert_eq!(run["variables"]["status"], -2);
    assert_eq!(run["actions"][1]["action"], "not_signed_in");
}

#[tokio::test]
async fn a_device_code_that_expires_ends_the_login_minus_four() {
    let w = device_world(json!({ "device_interval": 1, "device_code_ttl": 2 })).await;
    let run = start(&w.app).await;
    let run = ended(&w.app, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(login_status(&run), -4);
    assert_eq!(run["variables"]["status"], -4);
}

#[tokio::test]
async fn a_restarted_instance_finishes_the_polling_of_a_waiting_device_login() {
    let w = device_world(json!({ "device_interval": 1 })).await;
    let run = start(&w.app).await;
    let id = run["id"].as_str().unwrap().to_owned();
    let complete = run["device"]["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first process stops while the run waits; a new one on the same data takes over.
    let next = restart(w.app).await;
    let (_, waiting) = next.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    approve_device(
        &complete,
        "alice",
        "alice-password",
        DeviceDecision::Approve,
    )
    .await;
    let run = ended(&next, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["variables"]["name"], "Alice Example");
}

/// The token-endpoint requests the fake provider received so far.
async fn token_polls(provider: &wiremock::MockServer) -> usize {
    provider
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/token")
        .count()
}

#[tokio::test]
async fn the_poller_waits_five_seconds_longer_after_slow_down_by_the_injected_clock() {
    // A provider cannot be made to answer `slow_down` on demand: a fake one answers
    // `authorization_pending`, then `slow_down`, then a token (RFC 8628 §3.5).
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/device"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "device_code": "fake-device-code-4711", "user_code": "ABCD-EFGH",
            "verification_uri": format!("{}/activate", provider.uri()),
            "expires_in": 600, "interval": 1,
        })))
        .mount(&provider)
        .await;
    let refused = |error: &str| ResponseTemplate::new(400).set_body_json(json!({ "error": error }));
    let token_request = || {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("fake-device-code-4711"))
    };
    for (priority, answer) in [(1, "authorization_pending"), (2, "slow_down")] {
        token_request()
            .respond_with(refused(answer))
            .up_to_n_times(1)
            .with_priority(priority)
            .mount(&provider)
            .await;
    }
    token_request()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 3600,
        })))
        .with_priority(3)
        .mount(&provider)
        .await;
    let flow = "id: fake\nvariables:\n  status: {}\nactions:\n  login:\n    type: oauth_device_login\n    oauth_server: fake\n    output: { status_code: status }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n";
    // Built, not served: no poller of its own races the passes below.
    let app = build_app(Options {
        config: format!(
            "[oauth_servers.fake]\nclient_id = \"c\"\nclient_secret = \"s\"\ntoken_url = \"{0}/token\"\ndevice_authorization_url = \"{0}/device\"\n",
            provider.uri()
        ),
        flows: vec![("fake.yaml", flow.to_owned())],
        manual_clock: true,
        ..Options::default()
    })
    .await;
    let clock = app.clock.clone().unwrap();
    let runner = &app.state.runner;
    let run = runner
        .start("fake", serde_json::Map::new(), None)
        .await
        .unwrap();
    let id = run.run.id.clone();
    assert_eq!(run.run.status, tokenflow_core::RunStatus::Waiting);

    // Each step: advance the clock, run one poller pass, count the polls.
    let step = |seconds: i64| {
        clock.advance(time::Duration::seconds(seconds));
        async { runner.poll_devices_once().await.unwrap() }
    };
    assert_eq!(step(0).await, 0, "the first poll is one interval away");
    assert_eq!(step(1).await, 1);
    assert_eq!(token_polls(&provider).await, 1, "authorization_pending");
    assert_eq!(step(1).await, 1);
    assert_eq!(token_polls(&provider).await, 2, "slow_down");
    // The interval is now 1 s + 5 s: nothing is due one, two … five seconds later.
    for _ in 0..5 {
        assert_eq!(step(1).await, 0);
    }
    assert_eq!(token_polls(&provider).await, 2);
    assert_eq!(step(1).await, 1);
    assert_eq!(token_polls(&provider).await, 3);
    let ended = runner.load(&id).await.unwrap().unwrap();
    assert_eq!(ended.run.status, tokenflow_core::RunStatus::Completed);
    assert_eq!(
        ended.run.variables.get("status").map(|v| v.expose()),
        Some(json!(0))
    );
}
