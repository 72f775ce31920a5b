//! The run page in a real headless Chromium: the run's path on the flow diagram (colours, pass
//! numbers, the waiting action, links to the timeline, live updates) and a device login's code.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use tokenflow_testkit::browser::{Browser, wait_for};
use tokenflow_testkit::{Decision, sign_in};

use crate::browser::sign_in_to_ui;
use crate::device::{device_world, start};
use crate::support::{Options, TestApp, spawn_app, world};
use crate::ui::signed_in;

const RED: &str = "rgb(198, 40, 40)";
const GREEN: &str = "rgb(46, 125, 50)";
const GREY: &str = "rgb(189, 189, 189)";

/// A loop over a nested document: `peel` runs five times, then the run ends at `stop`; the
/// branch to `broken` is never taken.
const LOOP_FLOW: &str = r#"id: loop
variables:
  items: { default: { next: { next: { next: { next: { next: null } } } } } }
actions:
  peel:
    type: extract_json
    input: { json: { var: items }, path: "$.next" }
    output: { value: items }
  broken: { type: stop }
steps:
  - { from: start, to: peel }
  - { from: peel, to: broken, when: not_successful }
  - { from: peel, to: peel, when: "items != null" }
  - { from: peel, to: stop }
"#;

/// Evaluates `expression` in the page (read afresh: a live update replaces the elements).
async fn eval(client: &Client, expression: &str) -> Value {
    let script = format!("return (function () {{ return {expression}; }})();");
    client.execute(&script, vec![]).await.unwrap()
}

/// Polls `expression` until it gives `expected`, at most `secs` (the browser and the run are
/// outside the test's control).
async fn until(client: &Client, expression: &str, expected: Value, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = eval(client, expression).await;
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{expression} is {value}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `expression` for an attribute of the first element `css` matches in the run's diagram.
fn attr(css: &str, name: &str) -> String {
    format!(
        "(document.querySelector(\"#run-diagram {css}\") || {{ getAttribute: function () {{ return null; }} }}).getAttribute('{name}')"
    )
}

/// `expression` for a computed style property of the first element `css` matches.
fn computed(css: &str, property: &str) -> String {
    format!("getComputedStyle(document.querySelector(\"#run-diagram {css}\")).{property}")
}

/// Starts the `profile` flow over the API: (run id, authorization URL) of the waiting run.
async fn waiting_profile_run(app: &TestApp) -> (String, String) {
    let (status, run, _) = app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 201);
    let field = |name: &str| run[name].as_str().unwrap().to_owned();
    (field("id"), field("authorization_url"))
}

/// The README's screenshots come from the tests: `SCREENSHOTS_DIR=docs/screenshots`.
async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("SCREENSHOTS_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), client.screenshot().await.unwrap()).unwrap();
    }
}

fn node(id: &str) -> String {
    format!("g.node[data-node='{id}']")
}

fn edge(from: &str, to: &str) -> String {
    format!("g.edge[data-from='{from}'][data-to='{to}']")
}

#[tokio::test]
async fn a_run_that_took_the_failure_branch_shows_that_branch_red_and_the_other_grey() {
    let w = world(false).await;
    let (id, url) = waiting_profile_run(&w.app).await;
    let base = w.app.url.clone();
    let callback = format!("{base}/oauth-callback");
    let landed = sign_in(&url, &callback, "alice", "alice-password", Decision::Deny).await;
    let response = w.app.http.get(landed.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, run) = w.app.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(run["actions"][1]["action"], "denied", "{run}");
    // The path is in the page as served: it needs no script.
    let (cookie, _) = signed_in(&w.app).await;
    let page = w
        .app
        .http
        .get(format!("{base}/runs/{id}"))
        .header("cookie", cookie);
    let html = page.send().await.unwrap().text().await.unwrap();
    assert!(html.contains(
        "data-node=\"login\" data-kind=\"oauth_user_login\" data-state=\"not-successful\""
    ));
    assert!(
        html.contains("data-from=\"login\" data-to=\"denied\" data-step=\"2\" data-passes=\"2\"")
    );

    let browser = Browser::start().await;
    browser
        .check("ui_run_failure_branch", move |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/runs/{id}")).await.unwrap();
            wait_for(&client, "#run-diagram svg", 10).await;
            let state = |n: &str| attr(&node(n), "data-state");
            assert_eq!(eval(&client, &state("login")).await, "not-successful");
            let login_rect = format!("{} rect", node("login"));
            assert_eq!(eval(&client, &computed(&login_rect, "stroke")).await, RED);
            // The failure branch: taken as step 2, in its condition's red.
            let failure = edge("login", "denied");
            assert_eq!(eval(&client, &attr(&failure, "data-passes")).await, "2");
            let path = format!("{failure} path");
            assert_eq!(eval(&client, &computed(&path, "stroke")).await, RED);
            assert_eq!(eval(&client, &state("denied")).await, "reached");
            // The other branch: grey, none of its nodes reached.
            let success = edge("login", "me");
            assert_eq!(
                eval(&client, &attr(&success, "data-passes")).await,
                Value::Null
            );
            let path = format!("{success} path");
            assert_eq!(eval(&client, &computed(&path, "stroke")).await, GREY);
            for other in ["me", "pick", "stop"] {
                assert_eq!(eval(&client, &state(other)).await, "not-reached", "{other}");
            }
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn the_steps_taken_are_numbered_in_order_with_each_pass_of_a_loop_and_an_action_leads_to_its_entry()
 {
    let app = spawn_app(Options {
        flows: vec![("loop.yaml", LOOP_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    let (status, run, _) = app.post_json("/api/flows/loop/runs", json!({})).await;
    assert_eq!(status, 200, "ended at once");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["actions_total"], 5);
    let id = run["id"].as_str().unwrap().to_owned();
    let base = app.url.clone();
    let browser = Browser::start().await;
    browser
        .check("ui_run_loop", move |client| async move {
            client.set_window_size(1280, 700).await.unwrap();
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/runs/{id}")).await.unwrap();
            wait_for(&client, "#run-diagram svg", 10).await;
            let passes = |from: &str, to: &str| attr(&edge(from, to), "data-passes");
            assert_eq!(eval(&client, &passes("start", "peel")).await, "1");
            assert_eq!(eval(&client, &passes("peel", "peel")).await, "2 3 4 5");
            assert_eq!(eval(&client, &passes("peel", "stop")).await, "6");
            assert_eq!(eval(&client, &passes("peel", "broken")).await, Value::Null);
            let badge = format!("#run-diagram {} text", edge("peel", "peel"));
            let shown = client.find(Locator::Css(&badge)).await.unwrap();
            assert_eq!(shown.text().await.unwrap(), "2, 3, 4, 5");
            let rect = format!("{} rect", node("peel"));
            assert_eq!(eval(&client, &computed(&rect, "stroke")).await, GREEN);
            assert_eq!(
                eval(&client, &attr(&node("broken"), "data-state")).await,
                "not-reached"
            );
            // The timeline numbers its entries the same way.
            let numbers = "Array.from(document.querySelectorAll('#timeline li.action .number')).map(function (n) { return n.textContent; }).join(' ')";
            assert_eq!(eval(&client, numbers).await, "1 2 3 4 5");

            screenshot(&client, "run-path.png").await;

            // Selecting `peel` brings its latest entry into view.
            let entry = "document.getElementById('action-5').getBoundingClientRect().top";
            let below = eval(&client, &format!("{entry} >= window.innerHeight")).await;
            assert_eq!(below, true, "the entry starts out of view");
            let link = format!("#run-diagram {} a", node("peel"));
            client
                .find(Locator::Css(&link))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            until(&client, "location.hash", json!("#action-5"), 10).await;
            let in_view = format!("{entry} >= 0 && {entry} < window.innerHeight");
            until(&client, &in_view, json!(true), 10).await;
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn the_waiting_action_pulses_and_the_path_grows_while_the_page_is_open() {
    let w = world(false).await;
    let (id, url) = waiting_profile_run(&w.app).await;
    let base = w.app.url.clone();
    let browser = Browser::start().await;
    let client = browser.client.clone();
    sign_in_to_ui(&client, &base).await;
    client.goto(&format!("{base}/runs/{id}")).await.unwrap();
    wait_for(&client, "#run-diagram svg", 10).await;
    let login = node("login");
    assert_eq!(eval(&client, &attr(&login, "data-state")).await, "waiting");
    let rect = format!("{login} rect");
    assert_eq!(
        eval(&client, &computed(&rect, "animationName")).await,
        "tf-pulse"
    );
    assert_eq!(
        eval(&client, &attr(&edge("start", "login"), "data-passes")).await,
        "1"
    );
    assert_eq!(
        eval(&client, &attr(&node("me"), "data-state")).await,
        "not-reached"
    );
    // A marker that a reload would wipe out.
    eval(&client, "(window.__noReload = 42)").await;

    // The person signs in elsewhere; the run goes on while the page is open.
    let callback = format!("{base}/oauth-callback");
    let landed = sign_in(&url, &callback, "alice", "alice-password", Decision::Allow).await;
    let response = w.app.http.get(landed.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 200);

    browser
        .check("ui_run_live_path", move |client| async move {
            until(
                &client,
                &attr(&login, "data-state"),
                json!("successful"),
                20,
            )
            .await;
            let passes = |from: &str, to: &str| attr(&edge(from, to), "data-passes");
            until(&client, &passes("pick", "stop"), json!("4"), 20).await;
            assert_eq!(eval(&client, &passes("login", "me")).await, "2");
            assert_eq!(eval(&client, &passes("me", "pick")).await, "3");
            let rect = computed(&format!("{login} rect"), "animationName");
            assert_eq!(eval(&client, &rect).await, "none", "no longer pulsing");
            let denied = attr(&node("denied"), "data-state");
            assert_eq!(eval(&client, &denied).await, "not-reached");
            assert_eq!(eval(&client, "window.__noReload").await, 42, "no reload");
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_waiting_device_login_shows_its_user_code_large_with_a_copy_button() {
    let w = device_world(json!({ "device_interval": 1 })).await;
    let run = start(&w.app).await;
    let id = run["id"].as_str().unwrap().to_owned();
    let user_code = run["device"]["user_code"].as_str().unwrap().to_owned();
    let base = w.app.url.clone();
    let browser = Browser::start().await;
    browser
        .check("ui_run_device_code", move |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/runs/{id}")).await.unwrap();
            let code = wait_for(&client, "#user-code", 10).await;
            assert_eq!(code.text().await.unwrap(), user_code);
            let size = "parseFloat(getComputedStyle(document.getElementById('user-code')).fontSize)";
            let large = eval(&client, &format!("{size} >= 32")).await;
            assert_eq!(large, true, "the code is shown large");
            assert_eq!(
                eval(&client, &attr(&node("login"), "data-state")).await,
                "waiting"
            );
            let qr = wait_for(&client, "#device-qr svg path", 10).await;
            assert!(qr.is_displayed().await.unwrap(), "the sign-in link as a QR code");
            screenshot(&client, "device-login.png").await;
            let button = wait_for(&client, "#copy-user-code", 10).await;
            assert!(button.is_displayed().await.unwrap());
            button.click().await.unwrap();
            until(
                &client,
                "document.getElementById('copy-user-code').textContent",
                json!("Copied"),
                10,
            )
            .await;
            // What was copied is what a paste gives.
            eval(&client, "(function () { var t = document.createElement('textarea'); t.id = 'paste'; document.body.appendChild(t); return null; })()").await;
            let paste = client.find(Locator::Css("#paste")).await.unwrap();
            paste.send_keys("\u{E009}v\u{E000}").await.unwrap();
            let pasted = "document.getElementById('paste').value";
            until(&client, pasted, json!(user_code), 10).await;
        })
        .await;
    browser.close().await;
}
