//! Bounds on what a client can make the server hold, over real sockets: slow and idle
//! connections, the connection cap, event streams, oversized and mistyped bodies; and the
//! security headers of every HTML page, error pages included.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, json};
use tokenflow_store::RunRow;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::callback::start_and_sign_in;
use crate::support::{API_KEY, Options, PURE_FLOW, TestApp, spawn_app, world};
use crate::ui::signed_in;
use tokenflow_testkit::Decision;

/// How long a test waits for something the server must do by itself (close a connection, end a
/// stream) before it counts as never; far above the shortened limits, so a slow machine is fine.
const PATIENCE: Duration = Duration::from_secs(60);

async fn app_with(config: &str) -> TestApp {
    spawn_app(Options {
        config: config.to_owned(),
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tokenflow\r\n\r\n";

/// Reads one response to `GET /healthz` (its head and its two-byte body) and returns it.
async fn read_healthz(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        while !response.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed early: {}",
                String::from_utf8_lossy(&response)
            );
            response.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no response to /healthz");
    String::from_utf8(response).unwrap()
}

/// Whether the server closed `stream` (end of file or a reset) when reading next.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            // A closing server may answer first (hyper sends nothing, others a 408).
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_client_that_trickles_its_request_head_is_disconnected_after_the_header_read_timeout() {
    let app = app_with("header_read_timeout = 1\n").await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tokenflow\r\n")
        .await
        .unwrap();
    // A header line now and then, never the blank line that ends the head.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection is still open"
        );
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => assert!(
                !String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
                "the trickled request was served"
            ),
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let app = app_with("header_read_timeout = 1\n").await;
    let mut stream = connect(&app).await;
    stream.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Kept alive after the response, then idle: the server must hang up by itself.
    assert!(
        tokio::time::timeout(PATIENCE, closed_by_server(&mut stream))
            .await
            .unwrap_or(false),
        "the idle connection is still open"
    );
}

/// Sends `head` and then the body a line at a time until the server answers; returns the answer.
async fn trickle_body(app: &TestApp, head: &str) -> String {
    let mut stream = connect(app).await;
    stream.write_all(head.as_bytes()).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer while the body trickles"
        );
        // Writes fail once the server has answered and closed; the answer is read below.
        let _ = stream.write_all(b"x").await;
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_trickles_a_request_body_gets_408_after_the_body_read_timeout() {
    let app = app_with("body_read_timeout = 1\n").await;
    let api = trickle_body(
        &app,
        &format!(
            "PUT /api/flows/slow HTTP/1.1\r\nHost: tokenflow\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/yaml\r\nContent-Length: 100000\r\n\r\nid: slow\n#"
        ),
    )
    .await;
    assert!(api.starts_with("HTTP/1.1 408"), "{api}");
    assert!(api.contains("\"error\":\"request_timeout\""), "{api}");
    assert_eq!(
        app.get_json("/api/flows/slow").await.0,
        404,
        "nothing stored"
    );

    let callback = trickle_body(
        &app,
        "POST /oauth-callback HTTP/1.1\r\nHost: tokenflow\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nstate=",
    )
    .await;
    assert!(callback.starts_with("HTTP/1.1 408"), "{callback}");
    assert!(callback.contains("Request too slow"), "{callback}");
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_while_the_first_ones_are_served() {
    let app = app_with("max_connections = 2\nheader_read_timeout = 300\n").await;
    let mut first = connect(&app).await;
    first.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = connect(&app).await;
    second.write_all(HEALTHZ).await.unwrap();
    assert!(read_healthz(&mut second).await.starts_with("HTTP/1.1 200"));

    // Both stay open (keep-alive); a third client is over the cap.
    let mut third = connect(&app).await;
    third.write_all(HEALTHZ).await.unwrap();
    first.write_all(HEALTHZ).await.unwrap();
    assert!(
        read_healthz(&mut first).await.starts_with("HTTP/1.1 200"),
        "an open connection is still served"
    );
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection was served while two were open"
    );

    drop(second);
    assert!(
        read_healthz(&mut third).await.starts_with("HTTP/1.1 200"),
        "the waiting connection is served once one closed"
    );
}

#[tokio::test]
async fn the_event_stream_of_an_unknown_run_is_answered_not_found() {
    let app = app_with("").await;
    let (session, _) = signed_in(&app).await;
    let response = app
        .http
        .get(format!("{}/runs/no-such-run/events", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// The whole body of an event stream; fails when it does not end.
async fn whole_stream(app: &TestApp, session: &str, run: &str) -> String {
    let response = app
        .http
        .get(format!("{}/runs/{run}/events", app.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("the event stream did not end")
        .unwrap()
}

#[tokio::test]
async fn the_event_stream_of_an_ended_run_says_end_and_ends() {
    let app = app_with("").await;
    let (session, _) = signed_in(&app).await;
    let (status, run, _) = app.post_json("/api/flows/pure/runs", json!({})).await;
    assert_eq!(status, 200);
    let body = whole_stream(&app, &session, run["id"].as_str().unwrap()).await;
    assert!(body.contains("event: end"), "{body}");
}

#[tokio::test]
async fn the_event_stream_of_a_run_that_goes_on_ends_after_its_longest_life() {
    let app = spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        event_stream_max: Some(Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    let (session, _) = signed_in(&app).await;
    // A run that stays `running`, as one whose instance is busy with a long action.
    let (flow, version) = app.state.catalog.current("pure").await.unwrap().unwrap();
    let run = app.state.runner.engine().start(&flow, Map::new()).unwrap();
    let now = app.state.clock.now();
    app.state
        .store
        .create_run(&RunRow {
            id: run.id.clone(),
            flow_id: run.flow_id.clone(),
            flow_version: version,
            status: tokenflow_core::RunStatus::Running,
            state: run.state_json(),
            browser_binding: None,
            started_at: now,
            updated_at: now,
            ended_at: None,
        })
        .await
        .unwrap();
    let body = whole_stream(&app, &session, &run.id).await;
    assert!(
        !body.contains("event: end"),
        "the run has not ended: {body}"
    );
}

/// The security headers the UI's pages carry.
const SECURITY_HEADERS: [&str; 3] = [
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
];

#[tokio::test]
async fn callback_and_csrf_error_pages_carry_the_ui_security_headers() {
    let app = app_with("").await;
    let (session, _) = signed_in(&app).await;
    let page = app
        .http
        .get(format!("{}/runs", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let ui = page.headers().clone();
    assert!(
        ui["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(ui["x-content-type-options"], "nosniff");

    let callback = app
        .http
        .get(format!(
            "{}/oauth-callback?state=unknown-state&code=x",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 400);
    let bad_csrf = app
        .http
        .post(format!("{}/servers/create", app.url))
        .header("cookie", &session)
        .form(&[("id", "x"), ("client_id", "x"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_csrf.status(), 403);
    for (what, response) in [("callback", callback), ("CSRF", bad_csrf)] {
        for name in SECURITY_HEADERS {
            assert_eq!(
                response.headers().get(name),
                ui.get(name),
                "{what} page, {name}"
            );
        }
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

#[tokio::test]
async fn a_form_post_callback_that_is_not_a_form_is_refused_with_415_and_consumes_nothing() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    let params: Map<String, serde_json::Value> = landed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
        .collect();
    let callback = format!("{}/oauth-callback", w.app.url);
    let as_json = w
        .app
        .http
        .post(&callback)
        .json(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 415);
    let page = as_json.text().await.unwrap();
    assert!(page.contains("application/x-www-form-urlencoded"), "{page}");
    let untyped = w
        .app
        .http
        .post(&callback)
        .body(landed.query().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status(), 415, "no Content-Type is no form either");
    assert_eq!(
        w.app.get_json(&format!("/api/runs/{id}")).await.1["status"],
        "waiting"
    );

    // The same parameters as a form still complete the sign-in: nothing was consumed.
    let form: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
    let response = w.app.http.post(&callback).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        w.app.get_json(&format!("/api/runs/{id}")).await.1["status"],
        "completed"
    );
}

#[tokio::test]
async fn an_oversized_flow_body_gets_the_json_payload_too_large_error_and_stores_nothing() {
    let app = app_with("").await;
    let huge = format!("id: big\n# {}\n", "x".repeat(2 * 1024 * 1024));
    let response = app
        .request(Method::PUT, "/api/flows/big")
        .header("content-type", "application/yaml")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
    assert_eq!(app.get_json("/api/flows/big").await.0, 404);
}
