//! `http_connector` with `retry` (docs/connectors.md, "Retries"): statuses and connection errors
//! sent again, `Retry-After` honoured, non-idempotent methods left alone, and every attempt in the
//! monitor record. The APIs are local fakes: the test IdP cannot answer 429 or 503 on demand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenflow_core::flow::{ParseOptions, parse_flow};
use tokenflow_engine::{Engine, Run, RunStatus};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{engine, flow};

/// Answers with `responses` in turn (the last one from then on) and notes when each request came.
#[derive(Clone)]
pub struct Script {
    responses: Vec<ResponseTemplate>,
    pub times: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    pub fn new(responses: Vec<ResponseTemplate>) -> Self {
        Self {
            responses,
            times: Arc::default(),
        }
    }

    pub fn count(&self) -> usize {
        self.times.lock().unwrap().len()
    }
}

impl Respond for Script {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let mut times = self.times.lock().unwrap();
        times.push(Instant::now());
        let index = (times.len() - 1).min(self.responses.len() - 1);
        self.responses[index].clone()
    }
}

/// A server that answers every request with `script`.
pub async fn scripted(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

/// One `http_connector` call with the extra `input` members, writing every output.
pub fn call_yaml(url: &str, input: &str) -> String {
    format!(
        "id: call\nvariables:\n  code: {{}}\n  attempts: {{}}\n  content: {{}}\n  pages: {{}}\n  status: {{}}\n  error: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"{url}\", {input} }}\n    output: {{ http_status_code: code, attempts: attempts, content: content, pages: pages, status_code: status, error: error }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    )
}

pub async fn run_call(engine: &Engine, url: &str, input: &str) -> Run {
    let flow = flow(&call_yaml(url, input));
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    run
}

pub fn var(run: &Run, name: &str) -> Value {
    run.variables.get(name).map_or(Value::Null, |v| v.expose())
}

#[tokio::test]
async fn a_429_with_retry_after_is_sent_again_after_the_wait() {
    let script = Script::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        ResponseTemplate::new(200).set_body_string("done"),
    ]);
    let api = scripted(&script).await;
    let run = run_call(
        &engine(Vec::new()),
        &api.uri(),
        "retry: { attempts: 3, backoff_ms: 10 }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(200));
    assert_eq!(var(&run, "content"), json!("done"));
    assert_eq!(var(&run, "attempts"), json!(2));
    let times = script.times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    // Retry-After: 1 — the backoff alone (at most 10 ms) would have come back much sooner.
    assert!(times[1] - times[0] >= Duration::from_millis(900));
    let record = &run.records[0];
    assert_eq!(
        record.response["attempt_http_status_codes"],
        json!([429, 200])
    );
    let log = record.response["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["http_status_code"], json!(429));
    assert!(log[1]["after_ms"].as_u64().unwrap() >= 900, "{log:?}");
}

#[tokio::test]
async fn a_503_is_retried_until_the_api_answers() {
    let script = Script::new(vec![
        ResponseTemplate::new(503),
        ResponseTemplate::new(502),
        ResponseTemplate::new(200),
    ]);
    let api = scripted(&script).await;
    let run = run_call(
        &engine(Vec::new()),
        &api.uri(),
        "retry: { attempts: 4, backoff_ms: 5 }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(200));
    assert_eq!(var(&run, "attempts"), json!(3));
    assert_eq!(script.count(), 3);
    assert_eq!(
        run.records[0].response["attempt_http_status_codes"],
        json!([503, 502, 200])
    );
}

#[tokio::test]
async fn the_last_answer_is_kept_when_the_attempts_run_out() {
    let script = Script::new(vec![ResponseTemplate::new(503)]);
    let api = scripted(&script).await;
    let run = run_call(
        &engine(Vec::new()),
        &api.uri(),
        "retry: { attempts: 2, backoff_ms: 5 }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(503));
    assert_eq!(var(&run, "status"), json!(0));
    assert_eq!(var(&run, "attempts"), json!(2));
    assert_eq!(script.count(), 2);
    assert_eq!(
        run.records[0].warnings,
        ["HTTP 503: still failing after 2 attempts"]
    );
}

#[tokio::test]
async fn post_is_not_retried_unless_retry_non_idempotent() {
    let engine = engine(Vec::new());
    let script = Script::new(vec![ResponseTemplate::new(503), ResponseTemplate::new(201)]);
    let api = scripted(&script).await;
    let run = run_call(
        &engine,
        &api.uri(),
        "method: POST, content: \"{}\", retry: { attempts: 3, backoff_ms: 5 }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(503));
    assert_eq!(var(&run, "attempts"), json!(1));
    assert_eq!(script.count(), 1);
    assert!(
        run.records[0].warnings[0].contains("POST is not idempotent"),
        "{:?}",
        run.records[0].warnings
    );

    let run = run_call(
        &engine,
        &api.uri(),
        "method: POST, content: \"{}\", retry: { attempts: 3, backoff_ms: 5, retry_non_idempotent: true }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(201));
    assert_eq!(
        var(&run, "attempts"),
        json!(1),
        "the second answer of the script"
    );
    assert_eq!(script.count(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = run_call(
        &engine(Vec::new()),
        &format!("http://127.0.0.1:{port}/v1"),
        "retry: { attempts: 3, backoff_ms: 5 }",
    )
    .await;
    assert_eq!(var(&run, "status"), json!(-1));
    assert_eq!(var(&run, "error"), json!("connection_error"));
    assert_eq!(var(&run, "attempts"), json!(3));
    let record = &run.records[0];
    assert_eq!(
        record.response["attempt_http_status_codes"],
        json!([null, null, null])
    );
    assert_eq!(
        record.response["attempt_log"][2]["error"],
        json!("connection_error")
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_not_waited_for() {
    let script = Script::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "3600"),
        ResponseTemplate::new(200),
    ]);
    let api = scripted(&script).await;
    let run = run_call(
        &engine(Vec::new()),
        &api.uri(),
        "retry: { attempts: 3, backoff_ms: 5 }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(429));
    assert_eq!(var(&run, "attempts"), json!(1));
    assert_eq!(script.count(), 1);
    assert_eq!(
        run.records[0].warnings,
        ["HTTP 429: not retried, Retry-After asks for 3600 s, more than the 120 s honoured"]
    );
}

#[tokio::test]
async fn bad_retry_inputs_are_refused_at_load_and_before_anything_is_sent() {
    let problems = parse_flow(
        "test.yaml",
        &call_yaml("http://127.0.0.1:9/", "retry: { attempts: 11 }"),
        &ParseOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        problems.contains("retry.attempts must be a whole number from 1 to 10"),
        "{problems}"
    );

    let script = Script::new(vec![ResponseTemplate::new(200)]);
    let api = scripted(&script).await;
    let yaml = call_yaml(&api.uri(), "retry: { var: retry }").replace(
        "variables:\n",
        "variables:\n  retry: { default: { on_status: [200] } }\n",
    );
    let flow = flow(&yaml);
    let engine = engine(Vec::new());
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(var(&run, "status"), json!(-1));
    assert_eq!(var(&run, "error"), json!("invalid_retry"));
    assert_eq!(var(&run, "attempts"), json!(0));
    assert_eq!(script.count(), 0);
}
