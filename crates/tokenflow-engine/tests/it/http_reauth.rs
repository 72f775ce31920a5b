//! `reauth_on_status` (docs/connectors.md, "Authentication"): an API that refuses a valid token
//! with 403 (as some do for a token issued before a permission change) gets one new token from
//! the real test IdP and the request once more — only when the OAuth server lists 403.

use serde_json::json;
use tokenflow_engine::http::RETRIED;
use tokenflow_testkit::{Idp, unique};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http_auth::vault_world_with;
use crate::http_retry::{run_call, var};
use crate::support::{engine, server};

/// An API that answers 403 to its first request and 200 to every later one.
async fn forbids_once() -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&api)
        .await;
    api
}

#[tokio::test]
async fn a_403_listed_in_reauth_on_status_gets_one_new_token() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("reauth"), "reauth-secret")
        .await;
    let config = |reauth: serde_json::Value| {
        let mut fields = json!({ "client_id": client.id, "client_secret": "reauth-secret",
            "token_url": idp.token_url(), "scope": "api:read" });
        if !reauth.is_null() {
            fields["reauth_on_status"] = reauth;
        }
        engine(vec![server("svc", fields)])
    };

    let api = forbids_once().await;
    let run = run_call(
        &config(json!([401, 403])),
        &api.uri(),
        "auth: { oauth_server: svc }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(200), "{:?}", run.records);
    assert_eq!(var(&run, "attempts"), json!(2));
    assert_eq!(
        idp.token_requests(&client.id).await.len(),
        2,
        "one new token"
    );
    let requests = api.received_requests().await.unwrap();
    let bearer = |i: usize| requests[i].headers.get("authorization").cloned();
    assert_ne!(
        bearer(0),
        bearer(1),
        "the second request carried the new token"
    );
    assert_eq!(
        run.records[0].warnings,
        [format!(
            "403 from the API: {RETRIED} (first attempt: HTTP 403, second attempt: HTTP 200)"
        )]
    );
    let shown = serde_json::to_string(&run.records).unwrap();
    for token in idp.issued_tokens(&client.id).await {
        assert!(!shown.contains(&token), "a token is shown: {shown}");
    }

    // By default only 401 renews the token: the 403 goes to the flow as it is.
    let api = forbids_once().await;
    let run = run_call(
        &config(serde_json::Value::Null),
        &api.uri(),
        "auth: { oauth_server: svc }",
    )
    .await;
    assert_eq!(var(&run, "code"), json!(403));
    assert_eq!(var(&run, "attempts"), json!(1));
    assert_eq!(api.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_403_listed_by_a_vault_entrys_server_refreshes_the_entry_once() {
    let idp = Idp::start().await;
    let (client, engine, store, _dir, access) =
        vault_world_with(&idp, json!({ "reauth_on_status": [401, 403] })).await;
    let refreshes = || async {
        idp.token_requests(&client.id)
            .await
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .count()
    };

    let api = forbids_once().await;
    let run = run_call(&engine, &api.uri(), "auth: { vault: alice }").await;
    assert_eq!(var(&run, "code"), json!(200), "{:?}", run.records);
    assert_eq!(var(&run, "attempts"), json!(2));
    assert_eq!(refreshes().await, 1, "one refresh of the entry");
    let entry = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_ne!(
        entry.access_token.as_ref(),
        Some(&access),
        "the entry holds the refreshed token"
    );
    let requests = api.received_requests().await.unwrap();
    assert_eq!(
        requests[1]
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        entry
            .access_token
            .as_ref()
            .map(|t| format!("Bearer {}", t.expose())),
        "the second request carried the refreshed token"
    );
}
