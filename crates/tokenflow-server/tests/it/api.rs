use reqwest::Method;
use serde_json::json;

use crate::support::{API_KEY, Capture, Options, PURE_FLOW, spawn_app, world};

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
async fn oauth_servers_have_a_write_only_secret_and_can_be_tested() {
    let w = world(false).await;
    let client = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("api-cc"), "api-cc-secret-value")
        .await;
    let put = w
        .app
        .request(Method::PUT, "/api/oauth-servers/svc")
        .json(&json!({ "client_id": client.id, "client_secret": "api-cc-secret-value", "issuer": w.idp.issuer(), "scope": "api:read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let text = put.text().await.unwrap();
    assert!(!text.contains("api-cc-secret-value"), "{text}");
    let (status, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(status, 200);
    assert_eq!(shown["has_client_secret"], true);
    assert_eq!(shown["source"], "store");
    assert_eq!(shown["resolved_token_url"], w.idp.token_url());
    let (_, list) = w.app.get_json("/api/oauth-servers").await;
    assert!(!list.to_string().contains("api-cc-secret-value"));
    assert!(
        !list.to_string().contains("srv-web-secret"),
        "config secrets are not shown either"
    );

    let (status, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tested["status_code"], 0, "{tested}");
    assert!(
        tested["access_token"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // Without a secret in the body the stored one is kept.
    let update = w
        .app
        .request(Method::PUT, "/api/oauth-servers/svc")
        .json(&json!({ "client_id": client.id, "issuer": w.idp.issuer(), "scope": "api:write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(
        tested["status_code"], 0,
        "the secret survived the update: {tested}"
    );

    let unknown_field = w
        .app
        .request(Method::PUT, "/api/oauth-servers/x")
        .json(&json!({ "client_id": "a", "clent_secret": "b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);
    let body: serde_json::Value = unknown_field.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `clent_secret`"),
        "{body}"
    );
    let invalid = w
        .app
        .request(Method::PUT, "/api/oauth-servers/x")
        .json(&json!({ "token_url": "not a url" }))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let body: serde_json::Value = invalid.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("oauth server `x`, field `client_id`"),
        "{body}"
    );
    assert_eq!(w.app.get_json("/api/oauth-servers/x").await.0, 404);

    let deleted = w
        .app
        .request(Method::DELETE, "/api/oauth-servers/svc")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(w.app.get_json("/api/oauth-servers/svc").await.0, 404);
    let (status, _, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(status, 404);
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
async fn a_changed_endpoint_without_the_secret_is_refused_and_the_secret_never_reaches_it() {
    let w = world(false).await;
    let secret = "write-only-secret-value-1";
    let client = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("api-moved"), secret)
        .await;
    let capture = Capture::start().await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/svc")
            .json(&body)
            .send()
    };
    let created = put(json!({ "client_id": client.id, "client_secret": secret,
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);

    // Every field that decides where or how the secret goes needs it again.
    for (field, value) in [
        ("token_url", format!("{}/token", capture.url)),
        ("authorization_url", format!("{}/authorize", capture.url)),
        ("issuer", capture.url.clone()),
        ("client_credentials_delivery", "basic_header".to_owned()),
    ] {
        let mut body =
            json!({ "client_id": client.id, "token_url": w.idp.token_url(), "scope": "api:read" });
        body[field] = value.into();
        let refused = put(body).await.unwrap();
        assert_eq!(refused.status(), 400, "{field}");
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["error"], "secret_required", "{field}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("client_secret"),
            "{field}: {message}"
        );
        assert!(!message.contains(secret));
    }
    let (_, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(shown["token_url"], w.idp.token_url(), "nothing was saved");
    assert_eq!(shown["issuer"], serde_json::Value::Null);
    assert_eq!(shown["has_client_secret"], true);

    // The test goes to the old endpoint, where the secret still works.
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");

    // A change that cannot move the secret keeps it.
    let rescoped = put(
        json!({ "client_id": client.id, "token_url": w.idp.token_url(), "scope": "api:write" }),
    )
    .await
    .unwrap();
    assert_eq!(rescoped.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    assert!(
        capture.requests().is_empty(),
        "the caller's listener got a request"
    );

    // Moving the server while removing the secret is allowed: there is nothing to send.
    let moved = put(json!({ "client_id": client.id, "client_secret": "",
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(moved.status(), 200);
    let (_, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(shown["has_client_secret"], false);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], -2, "no secret, no request: {tested}");
    assert!(capture.requests().is_empty());

    // A secret given with the change is the caller's own: that one goes to the new endpoint.
    let own = put(
        json!({ "client_id": client.id, "client_secret": "the-callers-own-secret",
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(own.status(), 200);
    w.app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    let received = capture.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains("the-callers-own-secret"),
        "{}",
        received[0]
    );
    assert!(!received[0].contains(secret), "{}", received[0]);

    // With the secret given again, any change is fine.
    let back = put(json!({ "client_id": client.id, "client_secret": secret,
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(back.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
}

#[tokio::test]
async fn a_server_of_the_configuration_file_cannot_be_replaced_and_keeps_its_secret() {
    let idp = tokenflow_testkit::Idp::start().await;
    let secret = "configured-secret-value-1";
    let client = idp
        .client_credentials_client(&tokenflow_testkit::unique("cfg-cc"), secret)
        .await;
    let app = spawn_app(Options {
        config: format!(
            "[oauth_servers.cfg]\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\ntoken_url = \"{}\"\nscope = \"api:read\"\n",
            client.id,
            idp.token_url()
        ),
        ..Options::default()
    })
    .await;
    let capture = Capture::start().await;
    for body in [
        json!({ "client_id": client.id, "token_url": format!("{}/token", capture.url) }),
        json!({ "client_id": client.id, "client_secret": "another", "token_url": idp.token_url() }),
        json!({ "client_id": client.id, "token_url": idp.token_url(), "scope": "api:read" }),
    ] {
        let refused = app
            .request(Method::PUT, "/api/oauth-servers/cfg")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 409);
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["error"], "defined_in_configuration", "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("tokenflow.toml"),
            "{answer}"
        );
    }
    assert_eq!(app.state.store.get_oauth_server("cfg").await.unwrap(), None);
    let (_, shown) = app.get_json("/api/oauth-servers/cfg").await;
    assert_eq!(shown["source"], "config");
    assert_eq!(shown["has_client_secret"], true);
    assert_eq!(shown["token_url"], idp.token_url());
    let (_, tested, _) = app
        .post_json("/api/oauth-servers/cfg/test", json!({}))
        .await;
    assert_eq!(
        tested["status_code"], 0,
        "the configured secret works: {tested}"
    );
    assert!(capture.requests().is_empty());
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

#[tokio::test]
async fn client_secret_jwt_works_through_the_api_and_the_method_is_bound_to_the_secret() {
    let w = world(false).await;
    let secret = "api-client-secret-jwt-value-0123456789-abcdefghij";
    let id = tokenflow_testkit::unique("api-hs256");
    w.idp
        .register(
            json!({ "client_id": id, "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_jwt",
                "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "scope": "api:read" }),
            json!({}),
        )
        .await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/jwt")
            .json(&body)
            .send()
    };
    let created = put(json!({ "client_id": id, "client_secret": secret,
        "token_endpoint_auth_method": "client_secret_jwt",
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let (_, shown) = w.app.get_json("/api/oauth-servers/jwt").await;
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_jwt");
    assert_eq!(
        shown["client_credentials_delivery"],
        serde_json::Value::Null
    );
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/jwt/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let requests = w.idp.token_requests(&id).await;
    assert_eq!(requests.last().unwrap().auth_method, "jwt");

    // Changing how the stored secret is used needs it again.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "client_secret_post",
        "token_url": w.idp.token_url(), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "secret_required", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("token_endpoint_auth_method")
    );

    // The stored secret was an HMAC key only; it is not kept for a private key.
    let (_, shown) = w.app.get_json("/api/oauth-servers/jwt").await;
    assert_eq!(shown["has_private_key"], false);
}

const TEST_ONLY_RSA_KEY: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.pkcs8.pem"
);
const TEST_ONLY_RSA_PUBLIC: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.public.pem"
);
const TEST_ONLY_RSA_CERT: &str =
    include_str!("../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.cert.pem");

#[tokio::test]
async fn a_private_key_given_through_the_api_is_write_only_and_bound_like_the_secret() {
    let w = world(false).await;
    let id = tokenflow_testkit::unique("api-pkjwt");
    w.idp
        .register(
            json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
                "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "scope": "api:read api:write" }),
            json!({ "public_key_pem": TEST_ONLY_RSA_PUBLIC }),
        )
        .await;
    let capture = Capture::start().await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/pk")
            .json(&body)
            .send()
    };
    let key_lines: Vec<&str> = TEST_ONLY_RSA_KEY
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let assert_no_key = |text: &str| {
        for line in &key_lines {
            assert!(!text.contains(line), "key material in: {text}");
        }
    };

    let created = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "private_key": TEST_ONLY_RSA_KEY, "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": w.idp.token_url(), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    assert_no_key(&created.text().await.unwrap());
    let (_, shown) = w.app.get_json("/api/oauth-servers/pk").await;
    assert_eq!(shown["has_private_key"], true);
    assert_eq!(shown["signing_alg"], "PS256");
    assert!(shown["certificate_x5t_s256"].is_string());
    assert_no_key(&shown.to_string());
    let (_, listed) = w.app.get_json("/api/oauth-servers").await;
    assert_no_key(&listed.to_string());
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/pk/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let header = w.idp.token_requests(&id).await[0]
        .assertion_header
        .clone()
        .unwrap();
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["x5t#S256"], shown["certificate_x5t_s256"]);

    // Omitted, the stored key is kept for changes that cannot move it ...
    let rescoped = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": w.idp.token_url(), "scope": "api:write" }),
    )
    .await
    .unwrap();
    assert_eq!(rescoped.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/pk/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");

    // ... and refused for one that would sign for another endpoint.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "secret_required", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("token_url") && message.contains("private_key"),
        "{message}"
    );
    assert!(capture.requests().is_empty());

    // A key that is not PEM is refused naming the field, without quoting it.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "private_key": "-----BEGIN PRIVATE KEY-----\nNOT-A-KEY-e41f\n-----END PRIVATE KEY-----",
        "token_url": w.idp.token_url() }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer = refused.text().await.unwrap();
    assert!(
        answer.contains("`private_key`") && !answer.contains("NOT-A-KEY-e41f"),
        "{answer}"
    );

    // "" removes it.
    let removed = put(json!({ "client_id": id, "private_key": "",
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(removed.status(), 200);
    let (_, shown) = w.app.get_json("/api/oauth-servers/pk").await;
    assert_eq!(shown["has_private_key"], false);
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_post");
}
