//! `http_connector` against a real HTTP server on loopback (wiremock), with the connector's own
//! clients from `HttpConnector::build()`.

use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_connectors::http_action::{HttpConnector, HttpInput, HttpOutputs, MAX_CONTENT_BYTES};
use tokenflow_connectors::status::{ConnectorStatus, HttpStatus};
use tokenflow_core::SecretString;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::assert_no_secrets;

const TOKEN: &str = "eyJ.test-bearer-token.sig";

fn connector() -> HttpConnector {
    HttpConnector::build().unwrap()
}

fn get(url: impl Into<String>) -> HttpInput {
    HttpInput {
        url: Some(url.into()),
        ..HttpInput::default()
    }
}

async fn call(input: &HttpInput) -> HttpOutputs {
    let out = connector().call(input).await;
    // Whatever the outcome, the token must not show up in what a log or monitor would print.
    assert_no_secrets(&format!("{out:?}"), &[TOKEN]);
    assert_no_secrets(
        out.error_description.as_deref().unwrap_or_default(),
        &[TOKEN],
    );
    out
}

/// Serves `GET path` with 200 "ok".
async fn ok_at(mock: &MockServer, at: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(mock)
        .await;
}

/// The single request the mock received.
async fn only_request(mock: &MockServer) -> Request {
    let mut requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

fn header_values(request: &Request, name: &str) -> Vec<String> {
    request
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn assert_failed(out: &HttpOutputs, status: HttpStatus, error: &str) {
    assert_eq!(out.status, status, "{out:?}");
    assert_eq!(out.status.code(), status.code());
    assert_eq!(out.error.as_deref(), Some(error), "{out:?}");
    assert!(out.error_description.is_some(), "{out:?}");
    assert_eq!(out.http_status_code, None, "{out:?}");
}

#[tokio::test]
async fn bearer_token_reaches_the_api_as_an_authorization_header() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/me"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"name":"Ada"}"#))
        .mount(&mock)
        .await;

    let out = call(&HttpInput {
        bearer_token: Some(SecretString::new(TOKEN)),
        ..get(format!("{}/me", mock.uri()))
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(200));
    assert_eq!(out.content.as_deref(), Some(r#"{"name":"Ada"}"#));
    assert_eq!(out.error, None);
    let request = only_request(&mock).await;
    assert_eq!(
        header_values(&request, "authorization"),
        [format!("Bearer {TOKEN}")]
    );
}

#[tokio::test]
async fn bearer_token_replaces_an_authorization_header_with_a_warning() {
    let mock = MockServer::start().await;
    ok_at(&mock, "/").await;

    let out = call(&HttpInput {
        headers: Some(json!({"Authorization": "Basic dXNlcjpwYXNz"})),
        bearer_token: Some(SecretString::new(TOKEN)),
        ..get(mock.uri())
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.warnings.len(), 1, "{out:?}");
    assert!(out.warnings[0].contains("Authorization"));
    let request = only_request(&mock).await;
    assert_eq!(
        header_values(&request, "authorization"),
        [format!("Bearer {TOKEN}")]
    );
}

#[tokio::test]
async fn post_sends_content_with_its_content_type() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("content-type", "application/json"))
        .and(body_string(r#"{"qty":2}"#))
        .respond_with(ResponseTemplate::new(201).set_body_string("created"))
        .mount(&mock)
        .await;

    let out = call(&HttpInput {
        method: Some("post".into()),
        content: Some(r#"{"qty":2}"#.into()),
        // content_type wins over a Content-Type from headers.
        headers: Some(json!({"Content-Type": "text/plain"})),
        content_type: Some("application/json".into()),
        ..get(format!("{}/orders", mock.uri()))
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(201));
    assert_eq!(out.content.as_deref(), Some("created"));
    let request = only_request(&mock).await;
    assert_eq!(
        header_values(&request, "content-type"),
        ["application/json"]
    );
}

#[tokio::test]
async fn headers_in_list_map_and_text_form_all_reach_the_api() {
    let mock = MockServer::start().await;
    ok_at(&mock, "/").await;
    let forms = [
        json!([
            {"Key": "X-Tenant", "Value": "acme"},
            {"Key": "X-Tag", "Value": "a"},
            {"Key": "X-Tag", "Value": "b"},
            {"Key": "X-Retries", "Value": 3}
        ]),
        json!({"X-Tenant": "acme", "X-Retries": 3}),
        Value::String(
            r#"[{"Key":"X-Tenant","Value":"acme"},{"Key":"X-Retries","Value":"3"}]"#.into(),
        ),
        Value::String(r#"{"X-Tenant":"acme","X-Retries":3}"#.into()),
    ];

    for headers in &forms {
        let out = call(&HttpInput {
            headers: Some(headers.clone()),
            ..get(mock.uri())
        })
        .await;
        assert_eq!(out.status, HttpStatus::Successful, "{headers}: {out:?}");
    }

    let requests = mock.received_requests().await.unwrap();
    assert_eq!(requests.len(), forms.len());
    for request in &requests {
        assert_eq!(header_values(request, "x-tenant"), ["acme"]);
        assert_eq!(header_values(request, "x-retries"), ["3"]);
    }
    // The list form may repeat a header; both values are sent.
    assert_eq!(header_values(&requests[0], "x-tag"), ["a", "b"]);
}

#[tokio::test]
async fn response_headers_come_back_in_list_form_with_repeats() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .append_header("X-Request-Id", "r-1")
                .append_header("Set-Cookie", "a=1")
                .append_header("Set-Cookie", "b=2"),
        )
        .mount(&mock)
        .await;

    let out = call(&get(mock.uri())).await;

    let headers = out
        .headers
        .expect("headers are output")
        .as_array()
        .unwrap()
        .clone();
    assert!(
        headers.contains(&json!({"Key": "x-request-id", "Value": "r-1"})),
        "{headers:?}"
    );
    let cookies: Vec<&Value> = headers
        .iter()
        .filter(|h| h["Key"] == "set-cookie")
        .map(|h| &h["Value"])
        .collect();
    assert_eq!(cookies, [&json!("a=1"), &json!("b=2")]);
    assert!(headers.iter().all(|h| h.as_object().unwrap().len() == 2));
}

#[tokio::test]
async fn error_statuses_from_the_api_are_a_successful_call() {
    let mock = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such thing"))
        .mount(&mock)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&mock)
        .await;

    let missing = call(&get(format!("{}/missing", mock.uri()))).await;
    let broken = call(&get(format!("{}/broken", mock.uri()))).await;

    assert_eq!(missing.status, HttpStatus::Successful, "{missing:?}");
    assert_eq!(missing.http_status_code, Some(404));
    assert_eq!(missing.content.as_deref(), Some("no such thing"));
    assert_eq!(missing.error, None);
    assert_eq!(broken.status, HttpStatus::Successful, "{broken:?}");
    assert_eq!(broken.http_status_code, Some(500));
    assert_eq!(broken.content.as_deref(), Some("oops"));
}

#[tokio::test]
async fn head_responses_have_empty_content() {
    let mock = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200).insert_header("X-Size", "12"))
        .mount(&mock)
        .await;

    let out = call(&HttpInput {
        method: Some("HEAD".into()),
        ..get(mock.uri())
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(200));
    assert_eq!(out.content.as_deref(), Some(""));
}

#[tokio::test]
async fn urls_that_are_not_absolute_http_urls_are_invalid() {
    for url in [
        None,
        Some(""),
        Some("not a url"),
        Some("ftp://x"),
        Some("/relative"),
    ] {
        let out = call(&HttpInput {
            url: url.map(str::to_owned),
            ..HttpInput::default()
        })
        .await;
        assert_failed(&out, HttpStatus::InvalidUrl, "invalid_url");
    }
}

#[tokio::test]
async fn an_unknown_method_is_invalid() {
    let out = call(&HttpInput {
        method: Some("FETCH".into()),
        ..get("http://127.0.0.1:9/")
    })
    .await;
    assert_failed(&out, HttpStatus::InvalidMethod, "invalid_method");
    assert!(out.error_description.unwrap().contains("FETCH"));
}

#[tokio::test]
async fn inputs_are_checked_in_order_url_method_headers_timeout() {
    let all_bad = HttpInput {
        url: Some("ftp://x".into()),
        method: Some("FETCH".into()),
        headers: Some(json!(42)),
        timeout_ms: Some(0),
        ..HttpInput::default()
    };
    let out = call(&all_bad).await;
    assert_failed(&out, HttpStatus::InvalidUrl, "invalid_url");

    let good_url = HttpInput {
        url: Some("http://127.0.0.1:9/".into()),
        ..all_bad
    };
    let out = call(&good_url).await;
    assert_failed(&out, HttpStatus::InvalidMethod, "invalid_method");

    let good_method = HttpInput {
        method: Some("get".into()),
        ..good_url
    };
    let out = call(&good_method).await;
    assert_failed(&out, HttpStatus::InvalidHeaders, "invalid_headers");

    let good_headers = HttpInput {
        headers: None,
        ..good_method
    };
    let out = call(&good_headers).await;
    assert_failed(&out, HttpStatus::Unknown, "invalid_timeout");
}

#[tokio::test]
async fn headers_that_are_not_a_list_or_map_of_valid_headers_are_invalid() {
    let mock = MockServer::start().await;
    ok_at(&mock, "/").await;
    for headers in [
        json!(42),
        json!([{"Key": "X-Tenant"}]),
        json!({"X Tenant": "acme"}),
        json!([{"Key": "X Tenant", "Value": "acme"}]),
        json!({"X-Tenant": "line\nbreak"}),
        json!("not json"),
    ] {
        let out = call(&HttpInput {
            headers: Some(headers.clone()),
            ..get(mock.uri())
        })
        .await;
        assert_failed(&out, HttpStatus::InvalidHeaders, "invalid_headers");
    }
    // Invalid inputs never reach the network.
    assert!(mock.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bearer_token_that_cannot_be_a_header_is_invalid_without_being_shown() {
    let token = format!("{TOKEN}\r\nX-Injected: 1");
    let out = call(&HttpInput {
        bearer_token: Some(SecretString::new(token)),
        ..get("http://127.0.0.1:9/")
    })
    .await;
    assert_failed(&out, HttpStatus::InvalidHeaders, "invalid_headers");
}

#[tokio::test]
async fn timeouts_outside_one_ms_to_one_hour_are_refused() {
    for timeout_ms in [0, 3_600_001] {
        let out = call(&HttpInput {
            timeout_ms: Some(timeout_ms),
            ..get("http://127.0.0.1:9/")
        })
        .await;
        assert_failed(&out, HttpStatus::Unknown, "invalid_timeout");
    }
}

#[tokio::test]
async fn a_slow_api_times_out() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&mock)
        .await;

    let started = std::time::Instant::now();
    let out = call(&HttpInput {
        timeout_ms: Some(300),
        bearer_token: Some(SecretString::new(TOKEN)),
        ..get(mock.uri())
    })
    .await;

    assert_failed(&out, HttpStatus::Timeout, "timeout");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

async fn redirecting_server() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/new"))
        .mount(&mock)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved here"))
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn redirects_are_not_followed_by_default() {
    let mock = redirecting_server().await;

    let out = call(&get(format!("{}/old", mock.uri()))).await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(302));
    let headers = out.headers.unwrap();
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!({"Key": "location", "Value": "/new"}))
    );
    assert_eq!(only_request(&mock).await.url.path(), "/old");
}

#[tokio::test]
async fn redirects_are_followed_when_asked() {
    let mock = redirecting_server().await;

    let out = call(&HttpInput {
        follow_redirects: true,
        ..get(format!("{}/old", mock.uri()))
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(200));
    assert_eq!(out.content.as_deref(), Some("moved here"));
}

#[tokio::test]
async fn a_body_over_16_mib_is_refused_not_truncated() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; MAX_CONTENT_BYTES + 1]))
        .mount(&mock)
        .await;

    let out = call(&get(mock.uri())).await;

    assert_eq!(out.status, HttpStatus::Unknown, "{:?}", out.error);
    assert_eq!(out.error.as_deref(), Some("response_too_large"));
    assert_eq!(out.content, None);
    // What did arrive is still reported.
    assert_eq!(out.http_status_code, Some(200));
}

#[tokio::test]
async fn a_body_of_exactly_16_mib_is_returned() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'a'; MAX_CONTENT_BYTES]))
        .mount(&mock)
        .await;

    let out = call(&get(mock.uri())).await;

    assert_eq!(out.status, HttpStatus::Successful, "{:?}", out.error);
    assert_eq!(out.content.map(|c| c.len()), Some(MAX_CONTENT_BYTES));
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let out = call(&HttpInput {
        bearer_token: Some(SecretString::new(TOKEN)),
        ..get(format!("http://127.0.0.1:{port}/api?api_key=query-secret"))
    })
    .await;

    assert_failed(&out, HttpStatus::Unknown, "connection_error");
    let description = out.error_description.unwrap();
    // The cause chain is there, so the flow's monitor shows why.
    assert!(description.contains("connect"), "{description}");
    // The URL (and any key in its query) is left out of the description.
    assert_no_secrets(&description, &["query-secret"]);
}

#[tokio::test]
async fn invalid_utf8_content_is_replaced_with_a_warning() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'h', b'i', 0xff]))
        .mount(&mock)
        .await;

    let out = call(&get(mock.uri())).await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.content.as_deref(), Some("hi\u{fffd}"));
    assert_eq!(out.warnings.len(), 1, "{out:?}");
}

/// `from` answers `status` with `Location: location` for any request to `at`.
async fn redirect_at(from: &MockServer, at: &str, status: u16, location: &str) {
    Mock::given(path(at))
        .respond_with(ResponseTemplate::new(status).insert_header("Location", location))
        .mount(from)
        .await;
}

/// The request `mock` received at `at` (exactly one).
async fn request_at(mock: &MockServer, at: &str) -> Request {
    let mut requests: Vec<Request> = mock
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == at)
        .collect();
    assert_eq!(requests.len(), 1, "expected one request at {at}");
    requests.remove(0)
}

fn credential_headers() -> Value {
    json!([
        {"Key": "X-Api-Key", "Value": "api-key-s3cret"},
        {"Key": "Cookie", "Value": "session=cookie-s3cret"},
        {"Key": "X-Trace", "Value": "trace-1"},
        {"Key": "Accept", "Value": "application/json"},
        {"Key": "Accept-Language", "Value": "nl"},
    ])
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_credentials_and_no_referer() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    redirect_at(&api, "/start", 302, &format!("{}/landing", elsewhere.uri())).await;
    ok_at(&elsewhere, "/landing").await;

    let out = call(&HttpInput {
        headers: Some(credential_headers()),
        bearer_token: Some(SecretString::new(TOKEN)),
        follow_redirects: true,
        ..get(format!("{}/start?api_key=query-s3cret", api.uri()))
    })
    .await;

    assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
    assert_eq!(out.http_status_code, Some(200));
    let first = request_at(&api, "/start").await;
    assert_eq!(header_values(&first, "x-api-key"), ["api-key-s3cret"]);
    let landed = request_at(&elsewhere, "/landing").await;
    for name in ["authorization", "x-api-key", "cookie", "x-trace", "referer"] {
        assert!(
            header_values(&landed, name).is_empty(),
            "`{name}` reached the other origin"
        );
    }
    let everything = format!("{:?}", landed.headers);
    assert_no_secrets(
        &everything,
        &[TOKEN, "api-key-s3cret", "cookie-s3cret", "query-s3cret"],
    );
    assert_eq!(header_values(&landed, "accept"), ["application/json"]);
    assert_eq!(header_values(&landed, "accept-language"), ["nl"]);
    assert!(!header_values(&landed, "user-agent").is_empty());
    // The flow learns which headers stayed behind (names only).
    let warning = out.warnings.join("\n");
    assert!(
        warning.contains("x-api-key") && warning.contains("authorization"),
        "{warning}"
    );
    assert_no_secrets(&warning, &["api-key-s3cret", "cookie-s3cret"]);
}

#[tokio::test]
async fn a_redirect_within_the_origin_keeps_the_flows_headers_but_sends_no_referer() {
    let api = MockServer::start().await;
    redirect_at(&api, "/v1/old", 301, "new?page=2").await;
    ok_at(&api, "/v1/new").await;

    let out = call(&HttpInput {
        headers: Some(credential_headers()),
        bearer_token: Some(SecretString::new(TOKEN)),
        follow_redirects: true,
        ..get(format!("{}/v1/old?api_key=query-s3cret", api.uri()))
    })
    .await;

    assert_eq!(out.http_status_code, Some(200), "{out:?}");
    let landed = request_at(&api, "/v1/new").await;
    assert_eq!(
        landed.url.query(),
        Some("page=2"),
        "relative Location resolved"
    );
    assert_eq!(header_values(&landed, "x-api-key"), ["api-key-s3cret"]);
    assert_eq!(
        header_values(&landed, "authorization"),
        [format!("Bearer {TOKEN}")]
    );
    assert!(header_values(&landed, "referer").is_empty());
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[tokio::test]
async fn see_other_turns_into_a_get_without_body_and_307_keeps_method_and_body() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    redirect_at(
        &api,
        "/see-other",
        303,
        &format!("{}/result", elsewhere.uri()),
    )
    .await;
    redirect_at(
        &api,
        "/temporary",
        307,
        &format!("{}/moved", elsewhere.uri()),
    )
    .await;
    Mock::given(path("/result"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&elsewhere)
        .await;
    let post = |at: &str| HttpInput {
        method: Some("POST".into()),
        content: Some(r#"{"order":1}"#.into()),
        content_type: Some("application/json".into()),
        headers: Some(json!({"X-Api-Key": "api-key-s3cret"})),
        follow_redirects: true,
        ..get(format!("{}{at}", api.uri()))
    };

    let out = call(&post("/see-other")).await;
    assert_eq!(out.http_status_code, Some(200), "{out:?}");
    let result = request_at(&elsewhere, "/result").await;
    assert_eq!(result.method.as_str(), "GET");
    assert!(result.body.is_empty());
    assert!(header_values(&result, "content-type").is_empty());
    assert!(header_values(&result, "x-api-key").is_empty());

    let out = call(&post("/temporary")).await;
    assert_eq!(out.http_status_code, Some(201), "{out:?}");
    let moved = request_at(&elsewhere, "/moved").await;
    assert_eq!(moved.method.as_str(), "POST");
    assert_eq!(moved.body, br#"{"order":1}"#);
    assert_eq!(header_values(&moved, "content-type"), ["application/json"]);
    assert!(header_values(&moved, "x-api-key").is_empty());
}

#[tokio::test]
async fn credentials_dropped_on_the_way_out_do_not_come_back_on_the_way_home() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    redirect_at(&api, "/out", 302, &format!("{}/bounce", elsewhere.uri())).await;
    redirect_at(&elsewhere, "/bounce", 302, &format!("{}/home", api.uri())).await;
    ok_at(&api, "/home").await;

    let out = call(&HttpInput {
        bearer_token: Some(SecretString::new(TOKEN)),
        headers: Some(json!({"X-Api-Key": "api-key-s3cret"})),
        follow_redirects: true,
        ..get(format!("{}/out", api.uri()))
    })
    .await;

    assert_eq!(out.http_status_code, Some(200), "{out:?}");
    let home = request_at(&api, "/home").await;
    assert!(header_values(&home, "authorization").is_empty());
    assert!(header_values(&home, "x-api-key").is_empty());
}

#[tokio::test]
async fn a_redirect_loop_ends_with_too_many_redirects() {
    let api = MockServer::start().await;
    redirect_at(&api, "/loop", 302, "/loop").await;

    let out = call(&HttpInput {
        follow_redirects: true,
        ..get(format!("{}/loop", api.uri()))
    })
    .await;

    assert_failed(&out, HttpStatus::Unknown, "too_many_redirects");
    assert_eq!(
        api.received_requests().await.unwrap().len(),
        tokenflow_connectors::http_action::MAX_REDIRECTS + 1
    );
}
