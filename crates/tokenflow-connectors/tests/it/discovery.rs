use serde_json::json;
use tokenflow_connectors::oauth::ServerLoginStatus;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::discovery::{fetch_metadata, resolve_endpoints};
use tokenflow_core::Input;
use tokenflow_testkit::{Idp, unique};

use crate::support::{connectors, server, start_login};

#[tokio::test]
async fn issuer_alone_fills_both_endpoints_from_the_idp_metadata() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc"), "disc-secret")
        .await;
    let server = server(
        "idp",
        json!({ "client_id": client.id, "client_secret": "disc-secret", "issuer": idp.issuer(), "scope": "api:read" }),
    );
    assert!(server.token_url.is_none() && server.authorization_url.is_none());
    let c = connectors();

    let metadata = fetch_metadata(c.http(), &server).await.unwrap();
    assert_eq!(
        metadata.token_endpoint.as_ref().map(|u| u.as_str()),
        Some(idp.token_url().as_str())
    );
    let resolved = resolve_endpoints(c.tls(), &server).await.unwrap();
    assert_eq!(resolved.token_url.unwrap().as_str(), idp.token_url());
    assert_eq!(
        resolved.authorization_url.unwrap().as_str(),
        idp.authorization_url()
    );

    let out = c
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    assert!(request.url.as_str().starts_with(&idp.authorization_url()));
}

#[tokio::test]
async fn configured_endpoints_win_and_a_wrong_issuer_is_refused() {
    let idp = Idp::start().await;
    let c = connectors();
    let explicit = server(
        "idp",
        json!({ "client_id": "a", "issuer": idp.issuer(), "token_url": "http://127.0.0.1:1/custom-token" }),
    );
    let resolved = resolve_endpoints(c.tls(), &explicit).await.unwrap();
    assert_eq!(
        resolved.token_url.unwrap().as_str(),
        "http://127.0.0.1:1/custom-token"
    );
    assert_eq!(
        resolved.authorization_url.unwrap().as_str(),
        idp.authorization_url()
    );

    // Same host, different issuer path: the document's issuer does not match.
    let wrong = server(
        "idp",
        json!({ "client_id": "a", "issuer": format!("{}/", idp.url("/other")) }),
    );
    let err = fetch_metadata(c.http(), &wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            tokenflow_connectors::oauth::discovery::DiscoveryError::Status { status: 404, .. }
        ),
        "{err}"
    );
}
