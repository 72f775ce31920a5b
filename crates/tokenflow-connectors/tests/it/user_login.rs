use std::sync::Arc;
use tokenflow_connectors::oauth::ConnectorStatus as _;

use serde_json::json;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{CallbackParams, UserLoginStatus};
use tokenflow_core::{Input, ManualClock, SecretString};
use tokenflow_testkit::{Decision, Idp, sign_in, unique};
use url::Url;

use crate::support::{
    REDIRECT_URI, assert_no_secrets, connectors, connectors_with_clock, server, start_login,
    web_server_fields,
};

async fn idp_with_web_client(options: serde_json::Value) -> (Idp, tokenflow_core::OAuthServer) {
    let idp = Idp::start().await;
    let id = unique("web");
    idp.web_client(&id, "web-secret-1", REDIRECT_URI, options)
        .await;
    let server = server("idp", web_server_fields(&idp, &id, "web-secret-1"));
    (idp, server)
}

async fn callback(request_url: &Url, decision: Decision) -> CallbackParams {
    let landed = sign_in(
        request_url.as_str(),
        REDIRECT_URI,
        "alice",
        "alice-password",
        decision,
    )
    .await;
    CallbackParams::from_url(&landed)
}

#[tokio::test]
async fn sign_in_with_consent_yields_tokens_that_work() {
    let (idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    assert!(params.iss.is_some(), "the IdP sends RFC 9207 iss");

    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;

    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
    assert!(out.expires_in.is_some_and(|s| s > 0));
    let granted = out.granted_scopes.clone().unwrap();
    for scope in ["openid", "profile", "offline_access"] {
        assert!(granted.split(' ').any(|s| s == scope), "{granted}");
    }
    assert!(
        out.refresh_token.is_some(),
        "offline_access + prompt=consent gives a refresh token"
    );
    let (status, me) = idp
        .userinfo(out.access_token.as_ref().unwrap().expose())
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["name"], "Alice Example");
    assert!(
        out.response
            .get("id_token")
            .is_some_and(|v| v.as_str().unwrap().starts_with("sha256:"))
    );
    let code = params.code.as_ref().unwrap().expose().to_owned();
    let verifier = request
        .pending
        .code_verifier
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    assert_no_secrets(
        &format!("{out:?} {:?}", request.pending),
        &[&code, &verifier, "web-secret-1"],
    );
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let input = UserLoginInput {
        scope: Input::Assigned("openid profile".into()),
        ..Default::default()
    };
    let request = start_login(&c, &server, &input).await;
    let params = callback(&request.url, Decision::Allow).await;
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
    assert!(out.refresh_token.is_none());
    assert_eq!(out.granted_scopes.as_deref(), Some("openid profile"));
}

#[tokio::test]
async fn deny_at_consent_is_aborted() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Deny).await;
    assert_eq!(params.error.as_deref(), Some("access_denied"));
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::Aborted);
    assert_eq!(out.status.code(), -2);
    assert_eq!(out.error.as_deref(), Some("access_denied"));
    assert!(out.access_token.is_none());
}

#[tokio::test]
async fn cancel_at_login_is_aborted() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::CancelLogin).await;
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status.code(), -2);
}

#[tokio::test]
async fn wrong_pkce_verifier_is_unknown_with_invalid_grant() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    let mut pending = request.pending.clone();
    // A well-formed verifier that does not match the challenge.
    pending.code_verifier = Some(SecretString::new("A".repeat(43)));
    let out = c.finish_user_login(Some(&server), &pending, &params).await;
    assert_eq!(out.status, UserLoginStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn replayed_code_is_rejected() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    let first = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(first.status, UserLoginStatus::Successful);
    let second = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(second.status, UserLoginStatus::Unknown);
    assert_eq!(second.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn unreachable_token_endpoint_is_a_connection_error() {
    let (_idp, mut server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    server.token_url = Some(Url::parse(&format!("http://127.0.0.1:{port}/token")).unwrap());
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::ConnectionError, "{out:?}");
    assert_eq!(out.status.code(), -3);
    assert_eq!(out.error.as_deref(), Some("connection_error"));
}

#[tokio::test]
async fn non_bearer_token_type_is_unsupported() {
    let (_idp, server) = idp_with_web_client(json!({ "token_type": "DPoP" })).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::UnsupportedTokenType, "{out:?}");
    assert_eq!(out.status.code(), -5);
    assert!(out.access_token.is_none());
}

#[tokio::test]
async fn a_login_completed_after_expiry_is_aborted() {
    let (idp, server) = idp_with_web_client(json!({})).await;
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-01-01 00:00 UTC),
    ));
    let c = connectors_with_clock(clock.clone());
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    clock.advance(time::Duration::minutes(10));
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::Aborted);
    assert_eq!(out.error.as_deref(), Some("login_expired"));
    let exchanged = idp.token_requests(&server.client_id).await;
    assert!(
        exchanged.is_empty(),
        "an expired login never exchanges its code"
    );
}

#[tokio::test]
async fn callback_with_foreign_state_or_wrong_issuer_is_rejected_before_the_exchange() {
    let (idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;

    let mut foreign = params.clone();
    foreign.state = Some("someone-elses-state".into());
    let out = c
        .finish_user_login(Some(&server), &request.pending, &foreign)
        .await;
    assert_eq!(out.error.as_deref(), Some("invalid_state"));

    let mut mixed_up = params.clone();
    mixed_up.iss = Some("http://evil.example".into());
    let out = c
        .finish_user_login(Some(&server), &request.pending, &mixed_up)
        .await;
    assert_eq!(out.status, UserLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_issuer"));
    assert!(idp.token_requests(&server.client_id).await.is_empty());

    let mut no_code = params.clone();
    no_code.code = None;
    let out = c
        .finish_user_login(Some(&server), &request.pending, &no_code)
        .await;
    assert_eq!(out.error.as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn id_token_with_another_nonce_is_rejected() {
    let (_idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;
    let mut pending = request.pending.clone();
    pending.nonce = Some(SecretString::new("a-different-nonce"));
    let out = c.finish_user_login(Some(&server), &pending, &params).await;
    assert_eq!(out.status, UserLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_id_token"));
}

#[tokio::test]
async fn unknown_server_at_start_is_unknown() {
    let c = connectors();
    let err = c
        .start_user_login(
            "ghost",
            None,
            &UserLoginInput::default(),
            &crate::support::redirect_settings(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status, UserLoginStatus::Unknown);
    assert!(err.error_description.unwrap().contains("`ghost`"));
}

#[tokio::test]
async fn a_forged_tenantid_issuer_in_the_callback_is_refused_before_the_exchange() {
    let (idp, server) = idp_with_web_client(json!({})).await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let params = callback(&request.url, Decision::Allow).await;

    // Entra's discovery template must not act as a wildcard for the response's `iss`.
    for forged in [
        "http://{tenantid}",
        "http://{tenantid}/",
        "https://login.microsoftonline.com/{tenantid}/v2.0",
    ] {
        let mut mixed_up = params.clone();
        mixed_up.iss = Some(forged.into());
        let out = c
            .finish_user_login(Some(&server), &request.pending, &mixed_up)
            .await;
        assert_eq!(out.status, UserLoginStatus::Unknown, "{forged}: {out:?}");
        assert_eq!(out.status.code(), -1);
        assert_eq!(out.error.as_deref(), Some("invalid_issuer"), "{forged}");
    }
    assert!(
        idp.token_requests(&server.client_id).await.is_empty(),
        "no code was sent anywhere"
    );

    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
}

/// A server configured with only its issuer: the endpoints and the RFC 9207 flag come from the
/// test IdP's discovery document.
async fn idp_with_discovered_web_client() -> (Idp, tokenflow_core::OAuthServer) {
    let idp = Idp::start().await;
    let id = unique("web-disc");
    idp.web_client(&id, "web-secret-2", REDIRECT_URI, json!({}))
        .await;
    let server = server(
        "idp",
        json!({ "client_id": id, "client_secret": "web-secret-2", "issuer": idp.issuer(), "scope": "openid profile" }),
    );
    (idp, server)
}

#[tokio::test]
async fn callback_without_iss_is_refused_when_the_provider_advertises_it() {
    let (idp, server) = idp_with_discovered_web_client().await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    assert!(
        request.pending.iss_required,
        "the test IdP advertises authorization_response_iss_parameter_supported"
    );
    assert_eq!(
        request.pending.issuer.as_deref(),
        Some(idp.issuer().as_str())
    );
    let params = callback(&request.url, Decision::Allow).await;

    let mut stripped = params.clone();
    stripped.iss = None;
    let out = c
        .finish_user_login(Some(&server), &request.pending, &stripped)
        .await;
    assert_eq!(out.status.code(), -1, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("invalid_issuer"));
    let description = out.error_description.unwrap();
    assert!(
        description.contains("no `iss`")
            && description.contains("authorization_response_iss_parameter_supported"),
        "{description}"
    );
    assert!(idp.token_requests(&server.client_id).await.is_empty());

    // The genuine response, with the IdP's own `iss`, goes through.
    assert_eq!(params.iss.as_deref(), Some(idp.issuer().as_str()));
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
}

#[tokio::test]
async fn an_error_response_with_a_foreign_issuer_is_refused_too() {
    let (_idp, server) = idp_with_discovered_web_client().await;
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let mut params = callback(&request.url, Decision::Deny).await;
    assert_eq!(params.error.as_deref(), Some("access_denied"));
    params.iss = Some("http://{tenantid}".into());
    let out = c
        .finish_user_login(Some(&server), &request.pending, &params)
        .await;
    assert_eq!(out.error.as_deref(), Some("invalid_issuer"), "{out:?}");
    assert_eq!(out.status.code(), -1);
}
