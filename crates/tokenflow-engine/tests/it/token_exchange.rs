//! `oauth_token_exchange` in a flow, against the real test IdP: the tokens and the service account
//! key never reach the monitor records or the run's variables in clear.

use serde_json::json;
use tokenflow_engine::RunStatus;
use tokenflow_testkit::{Idp, unique};

use crate::support::{engine, flow, server, trail};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const PRIVATE_KEY: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.pkcs8.pem"
);
const PUBLIC_KEY: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.public.pem"
);

#[tokio::test]
async fn a_flow_exchanges_a_token_and_signs_a_service_account_assertion_with_everything_masked() {
    let idp = Idp::start().await;
    let id = unique("flow-exchange");
    idp.register(
        json!({ "client_id": id, "client_secret": "flow-exchange-secret",
                "grant_types": ["client_credentials", TOKEN_EXCHANGE],
                "response_types": [], "redirect_uris": [], "scope": "api:read" }),
        json!({}),
    )
    .await;
    let email = format!("{}@tokenflow-test.iam.example.test", unique("flow-sa"));
    idp.register(
        json!({ "client_id": email, "token_endpoint_auth_method": "none",
                "grant_types": [JWT_BEARER], "response_types": [], "redirect_uris": [],
                "scope": "api:read" }),
        json!({ "public_key_pem": PUBLIC_KEY, "public_key_kid": "flow-key" }),
    )
    .await;
    let key_json = json!({ "type": "service_account", "client_email": email,
        "private_key_id": "flow-key", "private_key": PRIVATE_KEY, "token_uri": idp.token_url() })
    .to_string();
    let engine = engine(vec![
        server(
            "svc",
            json!({ "client_id": id, "client_secret": "flow-exchange-secret",
                    "issuer": idp.issuer(), "scope": "api:read", "token_cache": false }),
        ),
        server(
            "google",
            json!({ "service_account_key": key_json, "scope": "api:read" }),
        ),
    ]);
    let flow = flow(
        "id: exchange\nvariables:\n  token: {}\n  exchanged: {}\n  kind: {}\n  sa: {}\n  missing: {}\nactions:\n  get:\n    type: oauth_server_login\n    oauth_server: svc\n    output: { access_token: token }\n  exchange:\n    type: oauth_token_exchange\n    oauth_server: svc\n    input: { subject_token: { var: token }, resource: \"https://api.example.test/\" }\n    output: { access_token: exchanged, issued_token_type: kind }\n  service_account:\n    type: oauth_token_exchange\n    oauth_server: google\n    input: { mode: jwt_bearer }\n    output: { access_token: sa }\n  nothing:\n    type: oauth_token_exchange\n    oauth_server: svc\n    input: { mode: on_behalf_of, scope: api:read }\n    output: { status_code: missing }\nsteps:\n  - { from: start, to: get }\n  - { from: get, to: exchange, when: successful }\n  - { from: exchange, to: service_account, when: successful }\n  - { from: service_account, to: nothing, when: successful }\n  - { from: nothing, to: stop }\n",
    );

    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;

    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(
        trail(&run),
        [
            ("get".to_owned(), Some(0)),
            ("exchange".to_owned(), Some(0)),
            ("service_account".to_owned(), Some(0)),
            ("nothing".to_owned(), Some(-3)),
        ]
    );
    assert_eq!(
        run.variables.get("kind").unwrap().expose(),
        json!("urn:ietf:params:oauth:token-type:access_token")
    );
    let text = |name: &str| {
        let value = run.variables.get(name).unwrap().expose();
        value.as_str().unwrap().to_owned()
    };
    let tokens = [text("token"), text("exchanged"), text("sa")];
    let key_body: String = PRIVATE_KEY
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let records = serde_json::to_string(&run.records).unwrap();
    for secret in tokens.iter().map(String::as_str).chain([&key_body[..40]]) {
        assert!(
            !records.contains(secret),
            "a secret is in the monitor: {records}"
        );
    }
    assert!(run.records[1].inputs.contains_key("subject_token"));
    assert!(!format!("{engine:?}").contains(&key_body[..40]));
}
