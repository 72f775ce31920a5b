//! `oauth_revoke_token` in a flow, against the real test IdP.

use serde_json::json;
use tokenflow_engine::RunStatus;
use tokenflow_testkit::{Idp, unique};

use crate::support::{engine, flow, server, trail};

#[tokio::test]
async fn a_flow_revokes_the_token_it_obtained_and_the_monitor_masks_it() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("flow-revoke"), "flow-revoke-secret")
        .await;
    let engine = engine(vec![server(
        "svc",
        json!({ "client_id": client.id, "client_secret": "flow-revoke-secret",
                "issuer": idp.issuer(), "scope": "api:read", "token_cache": false }),
    )]);
    let flow = flow(
        "id: revoke\nvariables:\n  token: {}\n  revoked: {}\n  why: {}\nactions:\n  get:\n    type: oauth_server_login\n    oauth_server: svc\n    output: { access_token: token }\n  revoke:\n    type: oauth_revoke_token\n    oauth_server: svc\n    input: { token: { var: token }, token_type_hint: access_token }\n    output: { status_code: revoked, error: why }\nsteps:\n  - { from: start, to: get }\n  - { from: get, to: revoke, when: successful }\n  - { from: revoke, to: stop }\n",
    );

    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;

    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(
        trail(&run),
        [("get".to_owned(), Some(0)), ("revoke".to_owned(), Some(0))]
    );
    assert_eq!(run.variables.get("revoked").unwrap().expose(), json!(0));
    assert_eq!(run.variables.get("why").unwrap().expose(), json!(null));
    let token = run.variables.get("token").unwrap().expose();
    let token = token.as_str().unwrap().to_owned();
    assert_eq!(
        idp.introspect(&client, &token).await["active"],
        false,
        "the flow revoked the token"
    );
    let record = serde_json::to_string(&run.records[1]).unwrap();
    assert!(
        !record.contains(&token),
        "the token input is masked: {record}"
    );
    assert!(run.records[1].inputs.contains_key("token"));
}
