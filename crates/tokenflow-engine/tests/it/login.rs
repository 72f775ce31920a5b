use std::sync::Arc;

use serde_json::json;
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_core::ManualClock;
use tokenflow_core::flow::Flow;
use tokenflow_engine::{Engine, Progress, Run, RunStatus};
use tokenflow_testkit::{Decision, Idp, sign_in, unique};

use crate::support::{REDIRECT_URI, engine, engine_with_clock, flow, server, trail};

fn profile_flow(idp: &Idp) -> Flow {
    flow(&format!(
        r#"
id: profile
variables:
  token: {{}}
  refresh: {{}}
  status: {{}}
  body: {{}}
  name: {{}}
actions:
  login:
    type: oauth_user_login
    oauth_server: idp
    input: {{ scope: "openid profile offline_access" }}
    output: {{ access_token: token, refresh_token: refresh, status_code: status }}
  me:
    type: http_connector
    input: {{ url: "{}/me", bearer_token: {{ var: token }} }}
    output: {{ content: body }}
  pick:
    type: extract_json
    input: {{ json: {{ var: body }}, path: "$.name" }}
    output: {{ value: name }}
  denied: {{ type: stop }}
steps:
  - {{ from: start, to: login }}
  - {{ from: login, to: me, when: successful }}
  - {{ from: login, to: denied, when: not_successful }}
  - {{ from: me, to: pick }}
  - {{ from: pick, to: stop }}
"#,
        idp.issuer()
    ))
}

async fn setup(clock: Option<Arc<ManualClock>>) -> (Idp, Flow, Engine) {
    let idp = Idp::start().await;
    let id = unique("engine-web");
    idp.web_client(&id, "engine-secret", REDIRECT_URI, json!({}))
        .await;
    let server = server(
        "idp",
        json!({"client_id": id, "client_secret": "engine-secret", "issuer": idp.issuer()}),
    );
    let engine = match clock {
        Some(clock) => engine_with_clock(vec![server], clock),
        None => engine(vec![server]),
    };
    let flow = profile_flow(&idp);
    (idp, flow, engine)
}

async fn suspended(engine: &Engine, flow: &Flow) -> Run {
    let mut run = engine.start(flow, Default::default()).unwrap();
    assert_eq!(
        engine.run_until_blocked(flow, &mut run).await,
        Progress::Suspended
    );
    assert_eq!(run.status, RunStatus::Waiting);
    run
}

#[tokio::test]
async fn a_user_login_suspends_and_the_callback_resumes_the_run_with_the_token() {
    let (_idp, flow, engine) = setup(None).await;
    let mut run = suspended(&engine, &flow).await;
    let url = run.waiting.as_ref().unwrap().authorization_url.clone();
    assert!(run.to_json(&flow)["authorization_url"].as_str() == Some(url.as_str()));
    assert!(
        run.records.is_empty(),
        "the login is recorded when it completes"
    );

    let landed = sign_in(
        &url,
        REDIRECT_URI,
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(
        engine
            .resume(&flow, &mut run, &CallbackParams::from_url(&landed))
            .await,
        Progress::Continued
    );
    assert_eq!(
        engine.run_until_blocked(&flow, &mut run).await,
        Progress::Finished
    );

    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(
        trail(&run),
        [
            ("login".into(), Some(0)),
            ("me".into(), Some(0)),
            ("pick".into(), Some(0))
        ]
    );
    assert_eq!(
        run.variables.get("name").unwrap().expose(),
        json!("Alice Example"),
        "the next action used the token"
    );
    let token = run.variables.get("token").unwrap();
    let refresh = run.variables.get("refresh").unwrap();
    assert!(
        token.is_secret() && refresh.is_secret(),
        "token outputs make variables secret"
    );
    let shown = run.to_json(&flow).to_string();
    for secret in [token.expose(), refresh.expose()] {
        let secret = secret.as_str().unwrap().to_owned();
        assert!(!shown.contains(&secret), "a raw token reached the run JSON");
    }
    assert!(shown.contains("sha256:"));
    let restored = Run::from_stored(
        run.id.clone(),
        run.flow_id.clone(),
        run.status,
        &run.state_json(),
        run.records.clone(),
        0,
        run.started_at,
        run.ended_at,
    )
    .unwrap();
    assert_eq!(
        restored.variables, run.variables,
        "secret variables survive the round trip"
    );
    assert!(restored.variables.get("token").unwrap().is_secret());
    assert!(run.to_json(&flow).get("authorization_url").is_none());
}

#[tokio::test]
async fn deny_at_the_idp_routes_to_the_failure_branch_with_minus_two() {
    let (_idp, flow, engine) = setup(None).await;
    let mut run = suspended(&engine, &flow).await;
    let url = run.waiting.as_ref().unwrap().authorization_url.clone();
    let landed = sign_in(
        &url,
        REDIRECT_URI,
        "alice",
        "alice-password",
        Decision::Deny,
    )
    .await;
    engine
        .resume(&flow, &mut run, &CallbackParams::from_url(&landed))
        .await;
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        trail(&run),
        [("login".into(), Some(-2)), ("denied".into(), Some(0))]
    );
    assert_eq!(run.records[0].outputs["error"], "access_denied");
}

#[tokio::test]
async fn an_expired_pending_login_ends_minus_two_and_the_run_goes_on() {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-06-01 12:00 UTC),
    ));
    let (_idp, flow, engine) = setup(Some(clock.clone())).await;
    let mut run = suspended(&engine, &flow).await;
    clock.advance(time::Duration::minutes(11));
    assert_eq!(engine.expire(&flow, &mut run), Progress::Continued);
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(
        trail(&run),
        [("login".into(), Some(-2)), ("denied".into(), Some(0))]
    );
    assert_eq!(run.records[0].outputs["error"], "login_expired");
    assert_eq!(
        run.records[0].duration_ms,
        11 * 60 * 1000,
        "the wait counts in the action's duration"
    );
}

#[tokio::test]
async fn a_waiting_run_can_be_cancelled_and_then_ignores_callbacks() {
    let (_idp, flow, engine) = setup(None).await;
    let mut run = suspended(&engine, &flow).await;
    assert!(engine.cancel(&mut run, "cancelled by the user"));
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.waiting.is_none());
    assert_eq!(
        engine
            .resume(&flow, &mut run, &CallbackParams::default())
            .await,
        Progress::Finished
    );
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(!engine.cancel(&mut run, "again"));
}
