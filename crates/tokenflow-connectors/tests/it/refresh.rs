use serde_json::json;
use tokenflow_connectors::oauth::ConnectorStatus as _;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{RefreshStatus, UserLoginStatus};
use tokenflow_core::{Input, OAuthServer, SecretString};
use tokenflow_testkit::{Idp, unique};

use crate::support::{
    REDIRECT_URI, alice_allows, connectors, server, start_login, web_server_fields,
};

/// A signed-in grant: the IdP, the server config and a first refresh token.
async fn grant(options: serde_json::Value) -> (Idp, OAuthServer, SecretString) {
    let idp = Idp::start().await;
    let id = unique("web");
    idp.web_client(&id, "web-secret-2", REDIRECT_URI, options)
        .await;
    let server = server("idp", web_server_fields(&idp, &id, "web-secret-2"));
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let out = alice_allows(&c, &server, &request).await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
    (idp, server, out.refresh_token.expect("a refresh token"))
}

#[tokio::test]
async fn rotation_on_outputs_the_new_token_and_the_old_one_is_dead() {
    let (idp, server, first) = grant(json!({ "rotate_refresh_token": true })).await;
    let c = connectors();

    let out = c
        .refresh_token("idp", Some(&server), &Input::Assigned(first.clone()))
        .await;

    assert_eq!(out.status, RefreshStatus::Successful, "{out:?}");
    let rotated = out.refresh_token.clone().unwrap();
    assert_ne!(rotated, first, "the output is the rotated token");
    assert_eq!(
        idp.userinfo(out.access_token.unwrap().expose()).await.0,
        200
    );
    assert!(out.granted_scopes.unwrap().contains("openid"));

    // Reusing the consumed token is refused (and the IdP revokes the grant).
    let reuse = c
        .refresh_token("idp", Some(&server), &Input::Assigned(first))
        .await;
    assert_eq!(reuse.status, RefreshStatus::Unknown);
    assert_eq!(reuse.error.as_deref(), Some("invalid_grant"));
    let after = c
        .refresh_token("idp", Some(&server), &Input::Assigned(rotated))
        .await;
    assert_eq!(
        after.error.as_deref(),
        Some("invalid_grant"),
        "reuse revoked the whole grant"
    );
}

#[tokio::test]
async fn rotation_off_outputs_the_input_token() {
    let (idp, server, first) = grant(json!({ "rotate_refresh_token": false })).await;
    let c = connectors();
    for _ in 0..2 {
        let out = c
            .refresh_token("idp", Some(&server), &Input::Assigned(first.clone()))
            .await;
        assert_eq!(out.status, RefreshStatus::Successful, "{out:?}");
        assert_eq!(out.refresh_token.as_ref(), Some(&first));
        assert_eq!(
            idp.userinfo(out.access_token.unwrap().expose()).await.0,
            200
        );
    }
    let refreshes = idp
        .token_requests(&server.client_id)
        .await
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 2);
}

#[tokio::test]
async fn revoked_grant_is_unknown_with_invalid_grant() {
    let (idp, server, first) = grant(json!({})).await;
    assert!(idp.revoke_grants(&server.client_id).await >= 1);
    let out = connectors()
        .refresh_token("idp", Some(&server), &Input::Assigned(first))
        .await;
    assert_eq!(out.status, RefreshStatus::Unknown);
    assert_eq!(out.status.code(), -1);
    assert_eq!(out.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn missing_input_and_unknown_server() {
    let idp = Idp::start().await;
    let server = server("idp", web_server_fields(&idp, "any", "s"));
    let c = connectors();
    let out = c
        .refresh_token(
            "idp",
            Some(&server),
            &Input::Assigned(SecretString::new("")),
        )
        .await;
    assert_eq!(out.status, RefreshStatus::InputMissing);
    assert_eq!(out.status.code(), -3);
    let out = c
        .refresh_token("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status.code(), -3);
    let out = c
        .refresh_token("ghost", None, &Input::Assigned(SecretString::new("rt")))
        .await;
    assert_eq!(out.status, RefreshStatus::NoServer);
    assert_eq!(out.status.code(), -2);
    assert!(idp.token_requests("any").await.is_empty());
}
