use serde_json::json;
use tokenflow_engine::{Progress, RunStatus, StartError};

use crate::support::{engine, flow, inputs, server, trail};

const BRANCHING: &str = r#"
id: branching
variables:
  doc: { required: true }
  value: {}
  status: {}
actions:
  pick:
    type: extract_json
    input: { json: { var: doc }, path: "$.user.name" }
    output: { value: value, status_code: status }
  ok: { type: stop }
  missing: { type: stop }
  broken: { type: stop }
steps:
  - { from: start, to: pick }
  - { from: pick, to: broken, when: not_successful }
  - { from: pick, to: missing, when: "status == 1" }
  - { from: pick, to: ok, when: successful }
"#;

#[tokio::test]
async fn a_successful_action_follows_the_first_matching_step() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    let mut run = engine
        .start(
            &flow,
            inputs(json!({ "doc": r#"{"user":{"name":"Alice"}}"# })),
        )
        .unwrap();
    assert_eq!(
        engine.run_until_blocked(&flow, &mut run).await,
        Progress::Finished
    );
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert_eq!(
        trail(&run),
        [("pick".into(), Some(0)), ("ok".into(), Some(0))]
    );
    assert_eq!(run.variables.get("value").unwrap().expose(), json!("Alice"));
}

#[tokio::test]
async fn status_one_is_successful_but_the_expression_step_comes_first() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    let mut run = engine
        .start(&flow, inputs(json!({ "doc": r#"{"user":{}}"# })))
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(
        trail(&run),
        [("pick".into(), Some(1)), ("missing".into(), Some(0))]
    );
}

#[tokio::test]
async fn a_failing_action_takes_the_not_successful_step() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    let mut run = engine
        .start(&flow, inputs(json!({ "doc": "not json" })))
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(
        trail(&run),
        [("pick".into(), Some(-1)), ("broken".into(), Some(0))]
    );
    assert_eq!(run.status, RunStatus::Completed);
}

const SERVER_LOGIN: &str = r#"
id: login_routing
variables:
  token: {}
  status: {}
  scope: {}
actions:
  login:
    type: oauth_server_login
    oauth_server: SERVER
    input: { scope: { var: scope } }
    output: { access_token: token, status_code: status }
  failed: { type: stop }
steps:
  - { from: start, to: login }
  - { from: login, to: stop, when: successful }
  - { from: login, to: failed, when: not_successful }
"#;

#[tokio::test]
async fn no_configuration_and_no_scope_route_to_the_failure_branch() {
    // -2: the server is unknown. -3: the server is complete but the assigned scope is empty.
    let (_, complete) = server(
        "complete",
        json!({"client_id": "a", "client_secret": "s", "token_url": "http://127.0.0.1:1/token", "scope": "x"}),
    );
    let engine = engine(vec![("complete".into(), complete)]);
    for (server_id, expected) in [("ghost", -2), ("complete", -3)] {
        let flow = flow(&SERVER_LOGIN.replace("SERVER", server_id));
        let mut run = engine.start(&flow, inputs(json!({ "scope": "" }))).unwrap();
        engine.run_until_blocked(&flow, &mut run).await;
        assert_eq!(
            trail(&run),
            [("login".into(), Some(expected)), ("failed".into(), Some(0))]
        );
        assert_eq!(
            run.variables.get("status").unwrap().expose(),
            json!(expected)
        );
        assert!(run.variables.get("token").unwrap().expose().is_null());
        assert!(
            run.records[0]
                .error
                .as_ref()
                .unwrap()
                .starts_with(if expected == -2 {
                    "no_configuration"
                } else {
                    "no_scope"
                })
        );
    }
}

#[tokio::test]
async fn max_steps_stops_a_loop_with_a_clear_reason() {
    let flow = flow(
        "id: loop\nmax_steps: 5\nvariables:\n  v: {}\nactions:\n  again:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: again }\n  - { from: again, to: again, when: \"v == 1\" }\n  - { from: again, to: stop }\n",
    );
    let engine = engine(vec![]);
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.records.len(), 5);
    assert!(
        run.reason
            .as_deref()
            .unwrap()
            .contains("max_steps (5) reached"),
        "{:?}",
        run.reason
    );
}

#[tokio::test]
async fn no_holding_step_fails_the_run_and_names_what_was_tried() {
    let flow = flow(
        "id: f\nvariables:\n  s: {}\nactions:\n  a:\n    type: extract_json\n    input: { json: \"{}\", path: \"$.x\" }\n    output: { status_code: s }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop, when: \"s == 0\" }\n  - { from: a, to: stop, when: not_successful }\n",
    );
    let engine = engine(vec![]);
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.reason.unwrap();
    assert!(
        reason.contains("no step from `a` holds (status code 1"),
        "{reason}"
    );
    assert!(
        reason.contains("s == 0 -> stop; not_successful -> stop"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_expression_that_fails_to_evaluate_fails_the_run() {
    let flow = flow(
        "id: f\nvariables:\n  s: {}\nsteps:\n  - { from: start, to: stop, when: \"s.deep == 1\" }\n",
    );
    let engine = engine(vec![]);
    let mut run = engine.start(&flow, Default::default()).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.reason
            .as_deref()
            .unwrap()
            .contains("condition on the step from `start` to `stop`")
    );
    assert_eq!(engine.step(&flow, &mut run).await, Progress::Finished);
}

#[tokio::test]
async fn the_engine_can_be_driven_one_action_at_a_time() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    let mut run = engine.start(&flow, inputs(json!({ "doc": "{}" }))).unwrap();
    assert_eq!(run.next.as_deref(), Some("pick"));
    assert_eq!(engine.step(&flow, &mut run).await, Progress::Continued);
    assert_eq!(run.next.as_deref(), Some("missing"));
    assert_eq!(run.records.len(), 1);
    assert_eq!(engine.step(&flow, &mut run).await, Progress::Finished);
    assert_eq!(run.status, RunStatus::Completed);
}

#[test]
fn inputs_must_be_declared_and_required_ones_given() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    assert_eq!(
        engine
            .start(&flow, inputs(json!({ "doc": "{}", "extra": 1 })))
            .unwrap_err(),
        StartError::UnknownVariable("extra".into())
    );
    assert_eq!(
        engine.start(&flow, Default::default()).unwrap_err(),
        StartError::MissingInput("doc".into())
    );
}

#[tokio::test]
async fn run_json_has_the_spec_shape() {
    let flow = flow(BRANCHING);
    let engine = engine(vec![]);
    let mut run = engine
        .start(&flow, inputs(json!({ "doc": r#"{"user":{"name":"A"}}"# })))
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    let json = run.to_json(&flow);
    assert_eq!(json["flow"], "branching");
    assert_eq!(json["status"], "completed");
    assert!(json["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(json["ended_at"].is_string());
    let first = &json["actions"][0];
    assert_eq!(first["action"], "pick");
    assert_eq!(first["type"], "extract_json");
    assert_eq!(first["status_code"], 0);
    assert_eq!(first["inputs"]["path"], "$.user.name");
    assert_eq!(first["outputs"]["value"], "A");
    assert!(first["duration_ms"].is_u64());
    assert_eq!(json["variables"]["value"], "A");
    assert!(json.get("authorization_url").is_none());
}
