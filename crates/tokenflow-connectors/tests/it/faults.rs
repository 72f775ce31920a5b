//! Provider faults a real IdP cannot be made to produce, served by wiremock.

use std::time::Duration;

use serde_json::json;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::discovery::{DiscoveryError, fetch_metadata};
use tokenflow_connectors::oauth::{
    CallbackParams, RefreshStatus, ServerLoginStatus, TokenOutputs, UserLoginStatus,
};
use tokenflow_core::{Input, OAuthServer, SecretString};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{assert_no_secrets, connectors, server, start_login};

const SECRET: &str = "mock-client-secret";

fn mock_server(mock: &MockServer) -> OAuthServer {
    server(
        "mock",
        json!({
            "client_id": "app",
            "client_secret": SECRET,
            "authorization_url": format!("{}/authorize", mock.uri()),
            "token_url": format!("{}/token", mock.uri()),
            "scope": "api:read",
            "timeout": "500ms",
        }),
    )
}

async fn token_answer(mock: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .mount(mock)
        .await;
}

fn json_body(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/json")
}

async fn server_login(mock: &MockServer) -> TokenOutputs<ServerLoginStatus> {
    let server = mock_server(mock);
    let out = connectors()
        .server_login("mock", Some(&server), &Input::Unassigned)
        .await;
    assert_no_secrets(&format!("{out:?}"), &[SECRET]);
    out
}

async fn user_login(mock: &MockServer) -> TokenOutputs<UserLoginStatus> {
    let server = mock_server(mock);
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let callback = CallbackParams::from_pairs([
        ("code", "the-authorization-code"),
        ("state", request.pending.state.expose()),
    ]);
    let out = c
        .finish_user_login(Some(&server), &request.pending, &callback)
        .await;
    assert_no_secrets(&format!("{out:?}"), &[SECRET, "the-authorization-code"]);
    out
}

fn warning_codes<S>(out: &TokenOutputs<S>) -> Vec<&'static str> {
    out.warnings.iter().map(|w| w.code).collect()
}

#[tokio::test]
async fn string_expires_in_is_tolerated_with_a_warning() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(200, json!({"access_token":"at-1","token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599"})),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Successful);
    assert_eq!(out.expires_in, Some(3599));
    assert_eq!(warning_codes(&out), ["expires_in_string"]);
    assert_eq!(out.response.get("ext_expires_in"), Some(&json!("3599")));
}

#[tokio::test]
async fn missing_token_type_is_bearer_with_a_warning() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(200, json!({"access_token":"at-1","expires_in":60})),
    )
    .await;
    let out = user_login(&mock).await;
    assert_eq!(out.status, UserLoginStatus::Successful);
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
    assert_eq!(warning_codes(&out), ["token_type_missing"]);
    assert_eq!(
        out.granted_scopes.as_deref(),
        Some("api:read"),
        "requested scope when none echoed"
    );
}

#[tokio::test]
async fn form_encoded_body_is_tolerated_with_a_warning() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        ResponseTemplate::new(200).set_body_raw(
            "access_token=at-1&token_type=bearer&expires_in=120&scope=api%3Aread",
            "application/x-www-form-urlencoded",
        ),
    )
    .await;
    let out = user_login(&mock).await;
    assert_eq!(out.status, UserLoginStatus::Successful);
    assert_eq!(out.expires_in, Some(120));
    assert_eq!(out.access_token.as_ref().unwrap().expose(), "at-1");
    assert_eq!(warning_codes(&out), ["form_encoded_body"]);
}

#[tokio::test]
async fn json_labelled_text_plain_is_tolerated_with_a_warning() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        ResponseTemplate::new(200).set_body_raw(
            r#"{"access_token":"at-1","token_type":"bearer"}"#,
            "text/plain",
        ),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Successful);
    assert_eq!(warning_codes(&out), ["json_with_wrong_content_type"]);
}

#[tokio::test]
async fn status_201_with_a_token_is_tolerated_with_a_warning() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(201, json!({"access_token":"at-1","token_type":"bearer"})),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Successful);
    assert_eq!(warning_codes(&out), ["unexpected_success_status"]);
}

#[tokio::test]
async fn html_error_page_is_rejected() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        ResponseTemplate::new(400)
            .set_body_raw("<html><body>Bad Request</body></html>", "text/html"),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_response"));
    assert!(out.error_description.unwrap().contains("HTML"));
    let out = user_login(&mock).await;
    assert_eq!(
        out.status,
        UserLoginStatus::Unknown,
        "4xx is not a connection error"
    );
}

#[tokio::test]
async fn server_errors_are_connection_errors_for_user_login_and_unknown_for_server_login() {
    for status in [500u16, 503] {
        let mock = MockServer::start().await;
        token_answer(
            &mock,
            ResponseTemplate::new(status).set_body_raw("<h1>down</h1>", "text/html"),
        )
        .await;
        let out = user_login(&mock).await;
        assert_eq!(out.status, UserLoginStatus::ConnectionError, "{status}");
        assert_eq!(out.error.as_deref(), Some("server_error"));
        let out = server_login(&mock).await;
        assert_eq!(out.status, ServerLoginStatus::Unknown, "{status}");
    }
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(503, json!({"error":"temporarily_unavailable"})),
    )
    .await;
    let out = user_login(&mock).await;
    assert_eq!(out.status, UserLoginStatus::ConnectionError);
    assert_eq!(out.error.as_deref(), Some("temporarily_unavailable"));
}

#[tokio::test]
async fn a_response_slower_than_the_timeout_is_a_timeout() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(200, json!({"access_token":"at-1","token_type":"bearer"}))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let out = user_login(&mock).await;
    assert_eq!(out.status, UserLoginStatus::ConnectionError);
    assert_eq!(out.error.as_deref(), Some("timeout"));
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("timeout"));
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_rejected() {
    let mock = MockServer::start().await;
    let huge = format!(
        r#"{{"access_token":"{}","token_type":"bearer"}}"#,
        "a".repeat(1024 * 1024 + 1)
    );
    token_answer(
        &mock,
        ResponseTemplate::new(200).set_body_raw(huge, "application/json"),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert!(
        out.error_description
            .unwrap()
            .contains("larger than 1048576 bytes")
    );
}

#[tokio::test]
async fn garbage_and_tokenless_bodies_are_rejected() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        ResponseTemplate::new(200).set_body_raw("{\"access_tok", "application/json"),
    )
    .await;
    let out = user_login(&mock).await;
    assert_eq!(out.status, UserLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_response"));

    let mock = MockServer::start().await;
    token_answer(&mock, json_body(200, json!({"token_type":"bearer"}))).await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert!(out.error_description.unwrap().contains("no `access_token`"));
}

#[tokio::test]
async fn non_bearer_is_unknown_for_server_login_and_refresh() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        json_body(200, json!({"access_token":"at-1","token_type":"mac"})),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("unsupported_token_type"));
    let server = mock_server(&mock);
    let out = connectors()
        .refresh_token(
            "mock",
            Some(&server),
            &Input::Assigned(SecretString::new("rt")),
        )
        .await;
    assert_eq!(out.status, RefreshStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("unsupported_token_type"));
}

#[tokio::test]
async fn body_delivery_and_extra_token_params_reach_the_endpoint() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=app"))
        .and(body_string_contains("client_secret=mock-client-secret"))
        .and(body_string_contains(
            "resource=https%3A%2F%2Fgraph.microsoft.com",
        ))
        .respond_with(json_body(
            200,
            json!({"access_token":"at-1","token_type":"Bearer"}),
        ))
        .expect(1)
        .mount(&mock)
        .await;
    let mut server = mock_server(&mock);
    server
        .extra_token_params
        .insert("resource".into(), "https://graph.microsoft.com".into());
    let out = connectors()
        .server_login("mock", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
}

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_not_followed() {
    let mock = MockServer::start().await;
    token_answer(
        &mock,
        ResponseTemplate::new(307).insert_header("location", "http://127.0.0.1:1/steal"),
    )
    .await;
    let out = server_login(&mock).await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert!(out.error_description.unwrap().contains("HTTP 307"));
}

#[tokio::test]
async fn discovery_document_with_another_issuer_is_refused() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(json_body(
            200,
            json!({"issuer":"https://attacker.example","token_endpoint":"https://attacker.example/token"}),
        ))
        .mount(&mock)
        .await;
    let server = server(
        "mock",
        json!({ "client_id": "app", "client_secret": SECRET, "issuer": mock.uri(), "scope": "s" }),
    );
    let err = fetch_metadata(connectors().http(), &server)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::IssuerMismatch { .. }),
        "{err}"
    );
    let out = connectors()
        .server_login("mock", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("discovery_failed"));
}

#[tokio::test]
async fn a_refresh_refused_with_400_or_401_and_no_error_code_is_invalid_grant_with_a_warning() {
    for (status, body) in [(400, ""), (401, ""), (400, "{}")] {
        let mock = MockServer::start().await;
        token_answer(&mock, ResponseTemplate::new(status).set_body_string(body)).await;
        let server = mock_server(&mock);
        let out = connectors()
            .refresh_token(
                "mock",
                Some(&server),
                &Input::Assigned(SecretString::new("used-refresh-token")),
            )
            .await;
        assert_eq!(out.status, RefreshStatus::Unknown, "{out:?}");
        assert_eq!(
            out.error.as_deref(),
            Some("invalid_grant"),
            "{status} {body:?}"
        );
        assert_eq!(warning_codes(&out), ["error_missing"]);
        assert_eq!(
            out.warnings[0].message,
            format!(
                "the provider answered {status} without an error code; treated as invalid_grant (RFC 6749 §5.2 requires `error`)"
            )
        );
        assert_no_secrets(&format!("{out:?}"), &["used-refresh-token", SECRET]);
    }
}

#[tokio::test]
async fn other_statuses_without_an_error_code_stay_unknown_failures() {
    let mock = MockServer::start().await;
    token_answer(&mock, ResponseTemplate::new(403).set_body_string("")).await;
    let server = mock_server(&mock);
    let out = connectors()
        .refresh_token(
            "mock",
            Some(&server),
            &Input::Assigned(SecretString::new("rt")),
        )
        .await;
    assert_eq!(out.error.as_deref(), Some("invalid_response"), "{out:?}");
    assert!(out.warnings.is_empty());
}
