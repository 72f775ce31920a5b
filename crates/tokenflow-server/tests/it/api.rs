use reqwest::Method;
use serde_json::json;

use crate::support::{API_KEY, Options, PURE_FLOW, spawn_app, world};

#[tokio::test]
async fn the_api_needs_an_api_key_and_health_does_not() {
    let app = spawn_app(Options::default()).await;
    let anonymous = app
        .http
        .get(format!("{}/api/flows", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let wrong = app
        .http
        .get(format!("{}/api/runs", app.url))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _) = app.get_json("/api/flows").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_finished_run_answers_200_with_the_run() {
    let app = spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    let (status, run, location) = app.post_json("/api/flows/pure/runs", json!({})).await;
    assert_eq!(status, 200, "{run}");
    assert!(location.is_none());
    assert_eq!(run["status"], "completed");
    assert_eq!(run["flow_version"], 1);
    assert_eq!(run["variables"]["a"], 7);
    assert_eq!(run["actions"][0]["status_code"], 0);
    let (status, again) = app
        .get_json(&format!("/api/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["actions"], run["actions"],
        "the monitor records were persisted"
    );

    let (status, run, _) = app
        .post_json("/api/flows/pure/runs", json!({ "doc": "{\"a\": 8}" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["variables"]["a"], 8);
}

#[tokio::test]
async fn a_run_waiting_at_a_user_login_answers_201_with_location_and_authorization_url() {
    let w = world(false).await;
    let (status, run, location) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 201, "{run}");
    let location = location.unwrap();
    assert_eq!(
        location,
        format!("/api/runs/{}", run["id"].as_str().unwrap())
    );
    assert_eq!(run["status"], "waiting");
    assert_eq!(run["waiting_action"], "login");
    let url = run["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&w.idp.authorization_url()), "{url}");
    assert!(url.contains(&format!(
        "redirect_uri={}",
        url_encode(&format!("{}/oauth-callback", w.app.url))
    )));
    let (status, shown) = w.app.get_json(&location).await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "waiting");
    assert_eq!(shown["authorization_url"], run["authorization_url"]);
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn runs_can_be_listed_filtered_and_cancelled() {
    let w = world(false).await;
    let (_, waiting, _) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    let (_, done, _) = w.app.post_json("/api/flows/pure/runs", json!({})).await;
    let (_, all) = w.app.get_json("/api/runs").await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 2);
    let (_, only_waiting) = w.app.get_json("/api/runs?status=waiting").await;
    assert_eq!(only_waiting["runs"].as_array().unwrap().len(), 1);
    assert_eq!(only_waiting["runs"][0]["id"], waiting["id"]);
    let (_, by_flow) = w.app.get_json("/api/runs?flow=pure").await;
    assert_eq!(by_flow["runs"][0]["id"], done["id"]);
    let (status, body) = w.app.get_json("/api/runs?status=sleeping").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_input"))
    );
    let (status, body) = w.app.get_json("/api/runs?colour=red").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_input"))
    );

    let id = waiting["id"].as_str().unwrap();
    let response = w
        .app
        .request(Method::DELETE, &format!("/api/runs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cancelled: serde_json::Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let again = w
        .app
        .request(Method::DELETE, &format!("/api/runs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let unknown = w
        .app
        .request(Method::DELETE, "/api/runs/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let app = spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    let post = |body: &'static str, content_type: &'static str| {
        app.request(Method::POST, "/api/flows/pure/runs")
            .header("content-type", content_type)
            .body(body)
    };
    let malformed = post("{\"doc\": ", "application/json").send().await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_json"
    );
    let unknown = post("{\"nope\": 1}", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "invalid_input");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`nope` is not a variable")
    );
    let wrong_type = post("{}", "text/plain").send().await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    let huge = format!("{{\"doc\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let too_large = app
        .request(Method::POST, "/api/flows/pure/runs")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        too_large.json::<serde_json::Value>().await.unwrap()["error"],
        "payload_too_large"
    );
    let missing = app.post_json("/api/flows/ghost/runs", json!({})).await;
    assert_eq!(missing.0, 404);
    let (_, runs) = app.get_json("/api/runs").await;
    assert!(
        runs["runs"].as_array().unwrap().is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn flows_are_validated_and_versioned() {
    let app = spawn_app(Options::default()).await;
    let put = |yaml: String| {
        app.request(Method::PUT, "/api/flows/pure")
            .header("content-type", "application/yaml")
            .body(yaml)
    };
    let invalid = put("id: pure\nactions:\n  a: { type: nope }\n".to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let body: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(body["error"], "invalid_flow");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("pure.yaml:3:14: unknown action type `nope`"),
        "{body}"
    );
    assert_eq!(
        app.get_json("/api/flows/pure").await.0,
        404,
        "nothing stored"
    );

    let created = put(PURE_FLOW.to_owned()).send().await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.json::<serde_json::Value>().await.unwrap()["version"],
        1
    );
    let same = put(PURE_FLOW.to_owned()).send().await.unwrap();
    assert_eq!(same.status(), 200);
    assert_eq!(
        same.json::<serde_json::Value>().await.unwrap()["version"],
        1
    );
    let changed = put(PURE_FLOW.replace("$.a", "$['a']"))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 201);
    assert_eq!(
        changed.json::<serde_json::Value>().await.unwrap()["version"],
        2
    );
    let (_, shown) = app.get_json("/api/flows/pure").await;
    assert_eq!(shown["version"], 2);
    assert!(shown["yaml"].as_str().unwrap().contains("$['a']"));
    let (_, list) = app.get_json("/api/flows").await;
    assert_eq!(list["flows"][0]["id"], "pure");
    assert_eq!(list["flows"][0]["system_flow"], true);

    let other_id = app
        .request(Method::PUT, "/api/flows/other")
        .header("content-type", "application/yaml")
        .body(PURE_FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(other_id.status(), 400);
    let json_body = app
        .request(Method::PUT, "/api/flows/pure")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 415);
}

#[tokio::test]
async fn metrics_count_runs_and_connector_calls() {
    let app = spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await;
    app.post_json("/api/flows/pure/runs", json!({})).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("tokenflow_runs_total{flow=\"pure\",status=\"completed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "tokenflow_connector_calls_total{action_type=\"extract_json\",status_code=\"0\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains(API_KEY));
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_matches_docs() {
    let generated = serde_json::to_value(tokenflow_server::openapi()).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert_eq!(
        generated, committed,
        "docs/openapi.json is stale: regenerate it with `cargo run -p tokenflow -- openapi > docs/openapi.json`"
    );
    let paths: Vec<&String> = generated["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/api/flows",
        "/api/flows/{id}",
        "/api/flows/{id}/runs",
        "/api/runs",
        "/api/runs/{id}",
        "/api/oauth-servers",
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/{id}/test",
        "/api/schedules",
        "/oauth-callback",
        "/flows/{id}/start",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.iter().any(|p| *p == path), "{path} is not documented");
    }
    assert!(generated["paths"]["/api/runs/{id}"]["delete"].is_object());
    assert!(generated["components"]["securitySchemes"]["api_key"].is_object());

    let app = spawn_app(Options::default()).await;
    let served: serde_json::Value = app
        .http
        .get(format!("{}/api/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        served, generated,
        "served without an API key, same document"
    );
}

#[tokio::test]
async fn a_flow_with_a_ten_thousand_term_condition_is_refused_and_the_server_keeps_answering() {
    let app = spawn_app(Options::default()).await;
    let condition = vec!["x == 1"; 10_000].join(" || ");
    let yaml = format!(
        "id: long\nvariables:\n  x: {{}}\nsteps:\n  - {{ from: start, to: stop, when: \"{condition}\" }}\n"
    );
    let response = app
        .request(Method::PUT, "/api/flows/long")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_flow");
    assert_eq!(
        body["problems"][0],
        "long.yaml:5:36: invalid condition: the condition is 99996 bytes long; at most 4096 bytes are allowed"
    );
    assert_eq!(
        app.get_json("/api/flows/long").await.0,
        404,
        "nothing stored"
    );

    // Still serving, and a flow within the limits is accepted.
    let healthy = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    let created = app
        .request(Method::PUT, "/api/flows/pure")
        .header("content-type", "application/yaml")
        .body(PURE_FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

/// Sends `PUT <path>` as written, byte for byte: HTTP clients normalise `..` and `%2E%2E` away.
async fn raw_put(app: &crate::support::TestApp, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn flow_ids_in_the_url_are_bounded_and_dot_names_are_refused() {
    let app = spawn_app(Options::default()).await;
    for (path, id) in [("/api/flows/%2E%2E", ".."), ("/api/flows/.", ".")] {
        let yaml = format!("id: \"{id}\"\nsteps:\n  - {{ from: start, to: stop }}\n");
        let (status, answer) = raw_put(&app, path, &yaml).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.contains(&format!(
                "the flow id cannot be `{id}` (it names a directory, not a flow)"
            )),
            "{answer}"
        );
    }
    let long = "f".repeat(129);
    let response = app
        .request(Method::PUT, &format!("/api/flows/{long}"))
        .header("content-type", "application/yaml")
        .body(format!(
            "id: {long}\nsteps:\n  - {{ from: start, to: stop }}\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_input");
    assert_eq!(
        body["message"],
        "the flow id is 129 characters long; at most 128 are allowed"
    );
    let (_, list) = app.get_json("/api/flows").await;
    assert_eq!(list["flows"], json!([]), "nothing stored");

    let fine = "f".repeat(128);
    let created = app
        .request(Method::PUT, &format!("/api/flows/{fine}"))
        .header("content-type", "application/yaml")
        .body(format!(
            "id: {fine}\nsteps:\n  - {{ from: start, to: stop }}\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}
