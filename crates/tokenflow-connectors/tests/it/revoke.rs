//! `oauth_revoke_token` (RFC 7009) against the real test IdP.

use serde_json::json;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{
    RefreshStatus, RevokeStatus, ServerLoginStatus, UserLoginStatus,
};
use tokenflow_core::{Input, OAuthServer, SecretString};
use tokenflow_testkit::{Idp, TestClient, unique};

use crate::support::{
    REDIRECT_URI, alice_allows, connectors, server, start_login, web_server_fields,
};

fn hint(value: &str) -> Input<String> {
    Input::Assigned(value.to_owned())
}

fn token(value: &SecretString) -> Input<SecretString> {
    Input::Assigned(value.clone())
}

/// A client-credentials client, a server for it (endpoints from discovery) and a fresh token.
async fn cc_token(delivery: &str) -> (Idp, TestClient, OAuthServer, SecretString) {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc-revoke"), "revoke-secret-1")
        .await;
    let server = server(
        "idp",
        json!({
            "client_id": client.id,
            "client_secret": "revoke-secret-1",
            "client_credentials_delivery": delivery,
            "issuer": idp.issuer(),
            "scope": "api:read",
            "token_cache": false,
        }),
    );
    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let access_token = out.access_token.unwrap();
    assert_eq!(
        idp.introspect(&client, access_token.expose()).await["active"],
        true
    );
    (idp, client, server, access_token)
}

#[tokio::test]
async fn a_revoked_client_credentials_token_is_inactive_at_the_idp() {
    let (idp, client, server, access_token) = cc_token("body").await;
    assert!(
        server.revocation_url.is_none(),
        "the endpoint comes from discovery"
    );

    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&access_token),
            &hint("access_token"),
        )
        .await;

    assert_eq!(out.status, RevokeStatus::Successful, "{out:?}");
    assert_eq!(out.status_code(), 0);
    assert!(out.error.is_none() && out.access_token.is_none());
    let introspection = idp.introspect(&client, access_token.expose()).await;
    assert_eq!(introspection["active"], false, "{introspection}");
}

#[tokio::test]
async fn basic_client_authentication_is_sent_and_a_wrong_secret_is_refused() {
    let (idp, client, server, access_token) = cc_token("basic_header").await;
    let mut wrong = server.clone();
    wrong.client_secret = Some(SecretString::new("not-the-secret"));

    let refused = connectors()
        .revoke_token(
            "idp",
            Some(&wrong),
            &token(&access_token),
            &Input::Unassigned,
        )
        .await;
    assert_eq!(refused.status, RevokeStatus::Unknown, "{refused:?}");
    assert_eq!(refused.error.as_deref(), Some("invalid_client"));
    assert_eq!(
        idp.introspect(&client, access_token.expose()).await["active"],
        true,
        "a refused revocation revokes nothing"
    );

    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&access_token),
            &Input::Unassigned,
        )
        .await;
    assert_eq!(out.status, RevokeStatus::Successful, "{out:?}");
    assert_eq!(
        idp.introspect(&client, access_token.expose()).await["active"],
        false
    );
}

#[tokio::test]
async fn an_unknown_token_is_still_a_success() {
    let (_idp, _client, server, _) = cc_token("body").await;
    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&SecretString::new("no-such-token")),
            &hint("refresh_token"),
        )
        .await;
    assert_eq!(out.status, RevokeStatus::Successful, "{out:?}");
}

#[tokio::test]
async fn a_revoked_refresh_token_can_no_longer_be_used() {
    let idp = Idp::start().await;
    let id = unique("web-revoke");
    idp.web_client(&id, "web-secret-3", REDIRECT_URI, json!({}))
        .await;
    let server = server("idp", web_server_fields(&idp, &id, "web-secret-3"));
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let login = alice_allows(&c, &server, &request).await;
    assert_eq!(login.status, UserLoginStatus::Successful, "{login:?}");
    let refresh_token = login.refresh_token.unwrap();

    let out = c
        .revoke_token(
            "idp",
            Some(&server),
            &token(&refresh_token),
            &hint("refresh_token"),
        )
        .await;
    assert_eq!(out.status, RevokeStatus::Successful, "{out:?}");

    let refresh = c
        .refresh_token("idp", Some(&server), &token(&refresh_token))
        .await;
    assert_eq!(refresh.status, RefreshStatus::Unknown, "{refresh:?}");
    assert_eq!(refresh.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn without_a_revocation_endpoint_the_status_is_minus_2() {
    let idp = Idp::start().await;
    let server = server(
        "idp",
        json!({ "client_id": "app", "client_secret": "s", "token_url": idp.token_url() }),
    );
    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&SecretString::new("some-token")),
            &Input::Unassigned,
        )
        .await;
    assert_eq!(out.status, RevokeStatus::NoEndpoint, "{out:?}");
    assert_eq!(out.status_code(), -2);
    assert!(
        out.error_description
            .unwrap()
            .contains("has no `revocation_url`")
    );

    let unknown = connectors()
        .revoke_token(
            "nowhere",
            None,
            &token(&SecretString::new("t")),
            &Input::Unassigned,
        )
        .await;
    assert_eq!(unknown.status, RevokeStatus::NoEndpoint);
}

#[tokio::test]
async fn without_a_token_the_status_is_minus_3_and_nothing_is_sent() {
    // A configured endpoint that would refuse the connection: nothing may be sent.
    let server = server(
        "idp",
        json!({ "client_id": "app", "client_secret": "s",
                "revocation_url": "http://127.0.0.1:9/revoke" }),
    );
    for missing in [Input::Unassigned, Input::Assigned(SecretString::new(""))] {
        let out = connectors()
            .revoke_token("idp", Some(&server), &missing, &Input::Unassigned)
            .await;
        assert_eq!(out.status, RevokeStatus::InputMissing, "{out:?}");
        assert_eq!(out.status_code(), -3);
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connection_error_with_minus_1() {
    let server = server(
        "idp",
        json!({ "client_id": "app", "client_secret": "s",
                "revocation_url": "http://127.0.0.1:9/revoke" }),
    );
    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&SecretString::new("secret-token-value")),
            &Input::Unassigned,
        )
        .await;
    assert_eq!(out.status, RevokeStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("connection_error"));
    assert!(
        !format!("{out:?}").contains("secret-token-value"),
        "the token is never echoed"
    );
}

#[tokio::test]
async fn an_unknown_token_type_hint_is_refused_before_anything_is_sent() {
    let server = server(
        "idp",
        json!({ "client_id": "app", "client_secret": "s",
                "revocation_url": "http://127.0.0.1:9/revoke" }),
    );
    let out = connectors()
        .revoke_token(
            "idp",
            Some(&server),
            &token(&SecretString::new("t")),
            &hint("id_token"),
        )
        .await;
    assert_eq!(out.status, RevokeStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("invalid_token_type_hint"));
}
