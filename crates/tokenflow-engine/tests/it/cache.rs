//! The client-credentials cache seen from flows: many runs, one token request per expiry.

use std::sync::Arc;

use serde_json::json;
use tokenflow_core::{Clock, ManualClock, SystemClock};
use tokenflow_engine::RunStatus;
use tokenflow_testkit::{Idp, unique};

use crate::support::{engine_with_clock, flow, server};

#[tokio::test]
async fn a_hundred_parallel_runs_of_a_client_credentials_flow_make_one_token_request() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("runs-cc"), "runs-cc-secret")
        .await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let engine = engine_with_clock(
        vec![server(
            "svc",
            json!({ "client_id": client.id, "client_secret": "runs-cc-secret", "token_url": idp.token_url(), "scope": "api:read" }),
        )],
        clock.clone(),
    );
    let flow = Arc::new(flow(&format!(
        "id: cc\nvariables:\n  token: {{}}\n  code: {{}}\nactions:\n  get:\n    type: oauth_server_login\n    oauth_server: svc\n    output: {{ access_token: token }}\n  call:\n    type: http_connector\n    input: {{ url: \"{}/api/whoami\", bearer_token: {{ var: token }} }}\n    output: {{ http_status_code: code }}\nsteps:\n  - {{ from: start, to: get }}\n  - {{ from: get, to: call, when: successful }}\n  - {{ from: call, to: stop }}\n",
        idp.issuer()
    )));
    let run_many = |count: usize| {
        let (engine, flow) = (engine.clone(), flow.clone());
        async move {
            let mut tasks = Vec::new();
            for _ in 0..count {
                let (engine, flow) = (engine.clone(), flow.clone());
                tasks.push(tokio::spawn(async move {
                    let mut run = engine.start(&flow, Default::default()).unwrap();
                    engine.run_until_blocked(&flow, &mut run).await;
                    run
                }));
            }
            let mut runs = Vec::new();
            for task in tasks {
                runs.push(task.await.unwrap());
            }
            runs
        }
    };
    for run in run_many(100).await {
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
        assert_eq!(
            run.variables.get("code").unwrap().expose(),
            json!(200),
            "the cached token works"
        );
    }
    assert_eq!(
        idp.token_requests(&client.id).await.len(),
        1,
        "one token request for 100 runs"
    );
    // Past expiry minus skew (the IdP's client-credentials tokens live 600 s; skew 60 s): one more.
    clock.advance(time::Duration::seconds(541));
    run_many(10).await;
    assert_eq!(idp.token_requests(&client.id).await.len(), 2);
}
