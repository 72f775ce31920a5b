//! Bounded runs through the API and the UI: `max_steps_limit` when a flow is stored, monitor
//! values kept as summaries, a run's records paged, and recovery that reads none of them.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokenflow_core::{Clock, SecretString, SystemClock};
use tokenflow_store::{ActionRecordRow, RunRow};

use crate::support::{Options, PURE_FLOW, TestApp, build_app, spawn_app};
use crate::ui::signed_in;

/// A loop of 250 actions without effects, which then fails at `max_steps`.
const SPIN: &str = "id: spin\nmax_steps: 250\nvariables:\n  v: {}\nactions:\n  again:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: again }\n  - { from: again, to: again, when: \"v == 1\" }\n  - { from: again, to: stop }\n";

async fn spin_app() -> TestApp {
    spawn_app(Options {
        flows: vec![("spin.yaml", SPIN.to_owned())],
        ..Options::default()
    })
    .await
}

async fn spin_run(app: &TestApp) -> Value {
    let (status, run, _) = app.post_json("/api/flows/spin/runs", json!({})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .starts_with("max_steps (250) reached"),
        "{run}"
    );
    run
}

#[tokio::test]
async fn a_flow_whose_max_steps_exceeds_max_steps_limit_is_refused_with_400_naming_the_limit() {
    let app = spawn_app(Options {
        config: "max_steps_limit = 500\n".to_owned(),
        ..Options::default()
    })
    .await;
    let put = |max_steps: u32| {
        app.request(Method::PUT, "/api/flows/spin")
            .header("content-type", "application/yaml")
            .body(SPIN.replace("max_steps: 250", &format!("max_steps: {max_steps}")))
    };
    let refused = put(501).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_flow");
    assert!(
        body["problems"][0].as_str().unwrap().ends_with(
            ":2:12: max_steps 501 is above the limit of 500 (the server's `max_steps_limit`)"
        ),
        "{body}"
    );
    assert_eq!(
        app.get_json("/api/flows/spin").await.0,
        404,
        "nothing stored"
    );
    assert_eq!(put(500).send().await.unwrap().status(), 201);
}

#[tokio::test]
async fn a_run_with_more_than_100_records_answers_the_last_100_and_pages_through_the_rest() {
    let app = spin_app().await;
    let run = spin_run(&app).await;
    let id = run["id"].as_str().unwrap().to_owned();
    // The answer of the POST is built from what the runner kept in memory: the last 100.
    for shown in [run, app.get_json(&format!("/api/runs/{id}")).await.1] {
        assert_eq!(shown["actions"].as_array().unwrap().len(), 100, "{shown}");
        assert_eq!(shown["actions_total"], 250);
        assert_eq!(shown["actions_offset"], 150);
        assert_eq!(
            shown["earlier_actions"],
            format!("/api/runs/{id}/actions?offset=50&limit=100")
        );
    }

    let mut seen = 0;
    let mut next = Some(format!("/api/runs/{id}/actions"));
    let mut pages = Vec::new();
    while let Some(path) = next {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 250);
        assert_eq!(page["offset"], seen);
        let actions = page["actions"].as_array().unwrap();
        assert!(actions.iter().all(|a| a["action"] == "again"));
        seen += actions.len();
        pages.push(actions.len());
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, [100, 100, 50]);

    let (_, big) = app
        .get_json(&format!("/api/runs/{id}/actions?offset=10&limit=5000"))
        .await;
    assert_eq!(big["limit"], 1000, "a page holds at most 1000");
    assert_eq!(big["actions"].as_array().unwrap().len(), 240);
    assert_eq!(big["next"], Value::Null);
    let (_, past) = app
        .get_json(&format!("/api/runs/{id}/actions?offset=250"))
        .await;
    assert!(past["actions"].as_array().unwrap().is_empty());
    let (status, bad) = app
        .get_json(&format!("/api/runs/{id}/actions?offset=-1"))
        .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, _) = app.get_json("/api/runs/no-such-run/actions").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_run_page_shows_the_last_100_actions_and_links_to_earlier_ones() {
    let app = spin_app().await;
    let id = spin_run(&app).await["id"].as_str().unwrap().to_owned();
    let (session, _) = signed_in(&app).await;
    let page = |query: &str| {
        let url = format!("{}/runs/{id}{query}", app.url);
        let session = session.clone();
        let http = app.http.clone();
        async move {
            let response = http
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let shown = |html: &str| html.matches("data-action=\"again\"").count();

    let latest = page("").await;
    assert_eq!(shown(&latest), 100);
    assert!(latest.contains("Actions 151–250 of 250"), "{latest}");
    assert!(latest.contains(&format!(
        "id=\"earlier-actions\" href=\"/runs/{id}?before=150\""
    )));
    assert!(!latest.contains("id=\"later-actions\""));
    let middle = page("?before=150").await;
    assert_eq!(shown(&middle), 100);
    assert!(middle.contains("Actions 51–150 of 250"), "{middle}");
    assert!(middle.contains(&format!(
        "id=\"earlier-actions\" href=\"/runs/{id}?before=50\""
    )));
    assert!(middle.contains(&format!("id=\"later-actions\" href=\"/runs/{id}\"")));
    let first = page("?before=50").await;
    assert_eq!(shown(&first), 50, "no record shows on two pages");
    assert!(first.contains("Actions 1–50 of 250"), "{first}");
    assert!(!first.contains("id=\"earlier-actions\""));
    assert!(first.contains(&format!(
        "id=\"later-actions\" href=\"/runs/{id}?before=150\""
    )));
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn large_monitor_values_are_stored_as_size_hash_and_preview() {
    let app = spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    let big = "é".repeat(15_000);
    let doc = json!({ "a": big }).to_string();
    let (status, run, _) = app
        .post_json("/api/flows/pure/runs", json!({ "doc": doc }))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "completed");
    let id = run["id"].as_str().unwrap();

    let rows = app
        .state
        .store
        .action_records_page(id, 0, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].json.len() < 4096,
        "the stored record is small: {} bytes",
        rows[0].json.len()
    );
    let record: Value = serde_json::from_str(&rows[0].json).unwrap();
    let input = &record["inputs"]["json"];
    assert_eq!(input["truncated"], true);
    assert_eq!(input["bytes"], doc.len());
    assert_eq!(input["sha256"], sha256_hex(doc.as_bytes()));
    assert!(doc.starts_with(input["preview"].as_str().unwrap()));
    assert_eq!(record["inputs"]["path"], "$.a");
    let output = &record["outputs"]["value"];
    assert_eq!(output["bytes"], 30_000);
    assert_eq!(output["sha256"], sha256_hex(big.as_bytes()));
    assert_eq!(
        output["preview"].as_str().unwrap(),
        "é".repeat(256),
        "cut on a character boundary"
    );

    let (_, shown) = app.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(shown["actions"][0], record);
    assert_eq!(
        shown["variables"]["a"]["sha256"],
        sha256_hex(big.as_bytes())
    );
    assert!(shown.to_string().len() < 8192);
}

#[tokio::test]
async fn recovery_reads_no_monitor_record_of_an_interrupted_run() {
    // Built, not served: no sweeper of its own races the recovery below.
    let app = build_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    let store = &app.state.store;
    // Left `running` by an instance that died an hour ago, with a long history whose records
    // cannot even be read: recovering it must not try.
    let then = SystemClock.now() - time::Duration::hours(1);
    let row = RunRow {
        id: "interrupted".into(),
        flow_id: "pure".into(),
        flow_version: 1,
        status: tokenflow_core::RunStatus::Running,
        state: SecretString::new(
            r#"{"variables":{},"next":"read","executed":5000,"waiting":null,"reason":null}"#,
        ),
        browser_binding: None,
        started_at: then,
        updated_at: then,
        ended_at: None,
    };
    store.create_run(&row).await.unwrap();
    for batch in 0..10 {
        let records: Vec<ActionRecordRow> = (batch * 500..(batch + 1) * 500)
            .map(|seq| ActionRecordRow {
                run_id: "interrupted".into(),
                seq,
                json: format!("not a record {seq} {}", "x".repeat(1000)),
            })
            .collect();
        store.record_action_outcomes(&row, &records).await.unwrap();
    }
    assert!(
        app.state.runner.load("interrupted").await.is_err(),
        "reading the records fails"
    );

    assert_eq!(app.state.runner.recover_interrupted().await.unwrap(), 1);
    let stored = store.get_run("interrupted").await.unwrap().unwrap();
    assert_eq!(stored.status, tokenflow_core::RunStatus::Failed);
    assert!(
        stored
            .state
            .expose()
            .contains("interrupted: tokenflow stopped"),
        "the reason is kept with the state"
    );
    assert_eq!(
        store.action_record_count("interrupted").await.unwrap(),
        5000
    );
}
