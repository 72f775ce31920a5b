//! `http_connector` with `client_certificate` in a flow (docs/connectors.md, "Client
//! certificates"): the certificate from variables, PEM and PKCS#12, against a server that
//! requires one; the key, the PKCS#12 file and its password never in the run's JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_connectors::http::{TlsClients, build_client};
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_core::{Clock, SystemClock};
use tokenflow_engine::{Engine, RunStatus, StaticServers};
use tokenflow_testkit::TestPki;
use url::Url;

use crate::support::{REDIRECT_URI, flow, inputs};

const PFX_PASSWORD: &str = "flow-Pfx-Secret-3";

fn engine_trusting(ca: String) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Engine::new(
        OAuthConnectors::new(
            build_client(Duration::from_secs(30)).unwrap(),
            clock.clone(),
        ),
        HttpConnector::with_tls(TlsClients::for_actions(Some(ca)).unwrap()),
        Arc::new(StaticServers::new(BTreeMap::new())),
        clock,
        RedirectSettings {
            global: None,
            default: Url::parse(REDIRECT_URI).unwrap(),
            pending_ttl: Duration::from_secs(600),
        },
    )
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_flow_presents_a_client_certificate_from_variables_and_never_shows_the_key() {
    let pki = TestPki::generate();
    let api = pki.mtls_server().await;
    let engine = engine_trusting(pki.read("ca.pem"));
    let url = format!("{}/me", api.url());
    let flow = flow(&format!(
        r#"id: mtls
variables:
  cert: {{}}
  key: {{ secret: true }}
  pfx: {{ secret: true }}
  pw: {{ secret: true }}
  pem_code: {{}}
  p12_code: {{}}
  bare_status: {{}}
actions:
  pem:
    type: http_connector
    input: {{ url: "{url}", client_certificate: {{ certificate: {{ var: cert }}, private_key: {{ var: key }} }} }}
    output: {{ http_status_code: pem_code }}
  p12:
    type: http_connector
    input: {{ url: "{url}", client_certificate: {{ pkcs12: {{ var: pfx }}, pkcs12_password: {{ var: pw }} }} }}
    output: {{ http_status_code: p12_code }}
  bare:
    type: http_connector
    input: {{ url: "{url}" }}
    output: {{ status_code: bare_status }}
steps:
  - {{ from: start, to: pem }}
  - {{ from: pem, to: p12 }}
  - {{ from: p12, to: bare }}
  - {{ from: bare, to: stop }}
"#
    ));
    let key = pki.read("client.key");
    let pfx = base64(&pki.pkcs12("client", "client.p12", PFX_PASSWORD, false));
    let mut run = engine
        .start(
            &flow,
            inputs(json!({ "cert": pki.read("client.pem"), "key": key, "pfx": pfx, "pw": PFX_PASSWORD })),
        )
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;

    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    let var = |name: &str| run.variables.get(name).map_or(Value::Null, |v| v.expose());
    assert_eq!(var("pem_code"), json!(200), "{:?}", run.records);
    assert_eq!(var("p12_code"), json!(200), "{:?}", run.records);
    // Without a certificate the server ends the handshake: a connection error.
    assert_eq!(var("bare_status"), json!(-1), "{:?}", run.records);
    let shown = run.to_json(&flow).to_string();
    for secret in key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .chain([PFX_PASSWORD, &pfx[..60]])
    {
        assert!(!shown.contains(secret), "a secret is shown: {shown}");
    }
    let pem_record = &run.records[0];
    let shown_input = pem_record.inputs["client_certificate"].as_str().unwrap();
    assert!(shown_input.starts_with("sha256:"), "{shown_input}");
}

#[tokio::test]
async fn a_client_certificate_that_cannot_be_read_is_minus_four_before_anything_is_sent() {
    let pki = TestPki::generate();
    let engine = engine_trusting(pki.read("ca.pem"));
    let flow = flow(
        r#"id: bad
variables:
  pfx: { secret: true }
  status: {}
  error: {}
actions:
  call:
    type: http_connector
    input: { url: "https://127.0.0.1:9/x", client_certificate: { pkcs12: { var: pfx }, pkcs12_password: "Wrong-Password-5" } }
    output: { status_code: status, error: error }
steps:
  - { from: start, to: call }
  - { from: call, to: stop }
"#,
    );
    let pfx = base64(&pki.pkcs12("client", "client.p12", PFX_PASSWORD, true));
    let mut run = engine.start(&flow, inputs(json!({ "pfx": pfx }))).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    let var = |name: &str| run.variables.get(name).map_or(Value::Null, |v| v.expose());
    assert_eq!(var("status"), json!(-4), "{:?}", run.records);
    assert_eq!(var("error"), json!("invalid_client_certificate"));
    let shown = run.to_json(&flow).to_string();
    assert!(shown.contains("wrong pkcs12_password"), "{shown}");
    assert!(!shown.contains("Wrong-Password-5"), "{shown}");
}
