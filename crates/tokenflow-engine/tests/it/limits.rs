//! What one run may hold is bounded: `max_steps_limit`, `run_data_limit`, `monitor_value_limit`,
//! the size of an `extract_json` result and of a rendered template.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokenflow_core::RunLimits;
use tokenflow_core::flow::{ParseOptions, parse_flow};
use tokenflow_engine::{RunStatus, monitor};

use crate::support::{engine, flow, inputs};

fn small_limits() -> RunLimits {
    RunLimits {
        run_data: 64 * 1024,
        ..RunLimits::default()
    }
}

const COPY_TWICE: &str = "id: copies\nvariables:\n  doc: { required: true }\n  a: {}\n  b: {}\nactions:\n  copy1:\n    type: extract_json\n    input: { json: { var: doc }, path: \"$.s\" }\n    output: { value: a }\n  copy2:\n    type: extract_json\n    input: { json: { var: doc }, path: \"$.s\" }\n    output: { value: b }\nsteps:\n  - { from: start, to: copy1 }\n  - { from: copy1, to: copy2 }\n  - { from: copy2, to: stop }\n";

fn doc_of(bytes: usize) -> Value {
    Value::String(json!({ "s": "x".repeat(bytes) }).to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_run_that_outgrows_run_data_limit_fails_naming_the_limit() {
    let flow = flow(COPY_TWICE);
    let start = inputs(json!({ "doc": doc_of(30_000) }));

    let unbounded = engine(vec![]);
    let mut run = unbounded.start(&flow, start.clone()).unwrap();
    unbounded.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);

    let bounded = engine(vec![]).with_limits(small_limits());
    let mut run = bounded.start(&flow, start).unwrap();
    bounded.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Failed);
    let reason = run.reason.clone().unwrap();
    assert!(
        reason.starts_with(
            "run_data_limit exceeded after `copy2`: the run's variables and monitor records hold"
        ),
        "{reason}"
    );
    assert!(reason.ends_with("the limit is 65536 bytes"), "{reason}");
    assert_eq!(run.records.len(), 2, "both actions are in the monitor");
    assert!(run.record_bytes > 0);
}

#[tokio::test]
async fn max_steps_limit_caps_a_flow_that_declares_more() {
    // A flow stored before the limit was lowered: it parses, and runs at most the limit.
    let yaml = "id: loop\nmax_steps: 50\nvariables:\n  v: {}\nactions:\n  again:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: again }\n  - { from: again, to: again, when: \"v == 1\" }\n  - { from: again, to: stop }\n";
    let options = ParseOptions {
        max_steps_limit: u32::MAX,
        ..ParseOptions::default()
    };
    let flow = parse_flow("loop.yaml", yaml, &options).unwrap().flow;
    let engine = engine(vec![]).with_limits(RunLimits {
        max_steps: 3,
        ..RunLimits::default()
    });
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.records.len(), 3);
    assert!(
        run.reason
            .as_deref()
            .unwrap()
            .starts_with("max_steps (3) reached before `again`"),
        "{:?}",
        run.reason
    );
}

#[tokio::test]
async fn large_monitor_values_are_kept_as_size_hash_and_preview() {
    let flow = flow(
        "id: big\nvariables:\n  doc: { required: true }\n  v: {}\n  key: { secret: true }\nactions:\n  pick:\n    type: extract_json\n    input: { json: { var: doc }, path: \"$.s\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: pick }\n  - { from: pick, to: stop }\n",
    );
    let doc = doc_of(20_000);
    let text = doc.as_str().unwrap().to_owned();
    let engine = engine(vec![]);
    let mut run = engine
        .start(
            &flow,
            inputs(json!({ "doc": doc, "key": "k".repeat(20_000) })),
        )
        .unwrap();
    engine.step(&flow, &mut run).await;
    // While the run goes on, the variable holds the whole value.
    assert_eq!(
        run.variables.get("v").unwrap().expose(),
        json!("x".repeat(20_000))
    );
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);

    let record = &run.records[0];
    let input = &record.inputs["json"];
    assert!(monitor::is_summary(input), "{input}");
    assert_eq!(input["bytes"], text.len());
    assert_eq!(input["sha256"], sha256_hex(text.as_bytes()));
    assert_eq!(input["preview"], text[..monitor::PREVIEW_BYTES]);
    assert_eq!(
        record.inputs["path"], "$.s",
        "small values stay as they are"
    );
    let output = &record.outputs["value"];
    assert_eq!(output["bytes"], 20_000);
    assert_eq!(output["sha256"], sha256_hex("x".repeat(20_000).as_bytes()));
    assert_eq!(record.outputs["status_code"], 0);
    let stored = serde_json::to_string(record).unwrap();
    assert!(stored.len() < 4096, "the record is small: {}", stored.len());

    // Once the run ended, the variable keeps only what the monitor shows: its summary; a secret
    // stays whole (encrypted at rest) and is shown as its fingerprint.
    let summary = run.variables.get("v").unwrap().expose();
    assert_eq!(summary, *output, "{summary}");
    assert!(run.variables.get("key").unwrap().is_secret());
    let shown = run.to_json(&flow);
    assert_eq!(shown["variables"]["v"]["bytes"], 20_000);
    assert!(
        shown["variables"]["key"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{}",
        shown["variables"]["key"]
    );
    assert!(shown.to_string().len() < 8192);
}

/// About 1 MB nested 100 levels deep: `$..*` matches every level's subtree (about 50 MB).
fn nested_document() -> String {
    let numbers = vec!["1"; 5000].join(",");
    let mut text = String::new();
    for _ in 0..100 {
        text.push_str(&format!("{{\"n\":[{numbers}],\"c\":"));
    }
    text.push_str("null");
    text.push_str(&"}".repeat(100));
    text
}

#[tokio::test]
async fn extract_json_of_dollar_dot_dot_star_on_a_1_mb_document_ends_with_minus_3() {
    let flow = flow(
        "id: all\nvariables:\n  doc: { required: true }\n  v: {}\nactions:\n  every:\n    type: extract_json\n    input: { json: { var: doc }, path: \"$..*\" }\n    output: { value: v }\n  too_big: { type: stop }\nsteps:\n  - { from: start, to: every }\n  - { from: every, to: stop, when: successful }\n  - { from: every, to: too_big, when: not_successful }\n",
    );
    let engine = engine(vec![]);
    let mut run = engine
        .start(&flow, inputs(json!({ "doc": nested_document() })))
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed);
    let record = &run.records[0];
    assert_eq!(record.status_code, Some(-3));
    assert_eq!(record.outputs["error"], "too_large");
    assert!(
        record
            .error
            .as_deref()
            .unwrap()
            .contains("larger than 33554432 bytes"),
        "{:?}",
        record.error
    );
    assert_eq!(run.records[1].action, "too_big");
    assert!(run.variables.get("v").unwrap().expose().is_null());
}

#[tokio::test]
async fn a_template_longer_than_run_data_limit_fails_the_run_before_it_is_rendered() {
    let flow = flow(
        "id: tpl\nvariables:\n  big: { required: true }\nactions:\n  post:\n    type: http_connector\n    input: { url: \"http://127.0.0.1:1/\", method: POST, content: \"{big}{big}\" }\nsteps:\n  - { from: start, to: post }\n  - { from: post, to: stop }\n",
    );
    let engine = engine(vec![]).with_limits(small_limits());
    let mut run = engine
        .start(&flow, inputs(json!({ "big": "b".repeat(40_000) })))
        .unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some(
            "input `content` of action `post`: the template's text would be 80000 bytes, more than the run_data_limit of 65536 bytes"
        )
    );
    assert!(run.records.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn stored_records_are_forgotten_except_the_last_few() {
    let flow = flow(
        "id: loop\nmax_steps: 10\nvariables:\n  v: {}\nactions:\n  again:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: again }\n  - { from: again, to: again, when: \"v == 1\" }\n  - { from: again, to: stop }\n",
    );
    let engine = engine(vec![]);
    let mut run = engine.start(&flow, Default::default()).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.record_count(), 10);
    run.forget_records(8, 3);
    assert_eq!((run.first_record, run.records.len()), (7, 3));
    run.forget_records(8, 0);
    assert_eq!(
        (run.first_record, run.records.len()),
        (8, 2),
        "records not stored yet are kept"
    );
    assert_eq!(run.record_count(), 10);
    let json = run.to_json(&flow);
    assert_eq!(json["actions_total"], 10);
    assert_eq!(json["actions_offset"], 8);
    assert_eq!(json["actions"].as_array().unwrap().len(), 2);
}
