//! The client-credentials cache of `oauth_server_login` (docs/connectors.md), against the real IdP.

use std::sync::Arc;

use serde_json::json;
use tokenflow_connectors::oauth::ServerLoginStatus;
use tokenflow_core::{Clock, Input, ManualClock, SystemClock};
use tokenflow_testkit::{Idp, unique};

use crate::support::{connectors_with_clock, server};

async fn setup(cache: bool) -> (Idp, tokenflow_core::OAuthServer, String) {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cache"), "cache-secret")
        .await;
    let server = server(
        "idp",
        json!({ "client_id": client.id, "client_secret": "cache-secret", "token_url": idp.token_url(),
                "scope": "api:read", "token_cache": cache }),
    );
    (idp, server, client.id)
}

#[tokio::test]
async fn a_hundred_parallel_calls_cause_one_token_request_until_expiry_minus_skew() {
    let (idp, server, client) = setup(true).await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let connectors = connectors_with_clock(clock.clone());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (connectors, server) = (connectors.clone(), server.clone());
        tasks.push(tokio::spawn(async move {
            connectors
                .server_login("idp", Some(&server), &Input::Unassigned)
                .await
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        let out = task.await.unwrap();
        assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
        tokens.push(out.access_token.unwrap());
    }
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "every caller got the one token"
    );
    assert_eq!(
        idp.token_requests(&client).await.len(),
        1,
        "exactly one request reached the IdP"
    );

    // A cached token reports its remaining lifetime (the IdP's default is 600 s).
    clock.advance(time::Duration::seconds(100));
    let out = connectors
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.access_token.as_ref(), Some(&tokens[0]));
    let remaining = out.expires_in.unwrap();
    assert!((495..=500).contains(&remaining), "{remaining}");
    assert_eq!(out.response.get("token_cache"), Some(&json!("hit")));

    // Within the skew (60 s) of expiry it is no longer served: one more request, then cached again.
    clock.advance(time::Duration::seconds(600 - 100 - 60));
    let fresh = connectors
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_ne!(fresh.access_token.as_ref(), Some(&tokens[0]));
    let again = connectors
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(again.access_token, fresh.access_token);
    assert_eq!(idp.token_requests(&client).await.len(), 2);

    // Another scope is another slot.
    let other = connectors
        .server_login("idp", Some(&server), &Input::Assigned("api:write".into()))
        .await;
    assert_eq!(other.status, ServerLoginStatus::Successful);
    assert_eq!(idp.token_requests(&client).await.len(), 3);
}

#[tokio::test]
async fn token_cache_false_requests_a_token_every_time() {
    let (idp, server, client) = setup(false).await;
    let connectors = connectors_with_clock(Arc::new(SystemClock));
    for _ in 0..3 {
        let out = connectors
            .server_login("idp", Some(&server), &Input::Unassigned)
            .await;
        assert_eq!(out.status, ServerLoginStatus::Successful);
        assert!(!out.response.contains_key("token_cache"));
    }
    assert_eq!(idp.token_requests(&client).await.len(), 3);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let (idp, mut server, client) = setup(true).await;
    server.client_secret = Some(tokenflow_core::SecretString::new("wrong"));
    let connectors = connectors_with_clock(Arc::new(SystemClock));
    for _ in 0..2 {
        let out = connectors
            .server_login("idp", Some(&server), &Input::Unassigned)
            .await;
        assert_eq!(out.status, ServerLoginStatus::Unknown);
    }
    assert_eq!(idp.token_requests(&client).await.len(), 2);
}

#[tokio::test]
async fn a_token_that_lives_no_longer_than_the_skew_is_cached_for_half_its_life() {
    let idp = Idp::start().await;
    let id = unique("short");
    idp.register(
        json!({ "client_id": id, "client_secret": "short-secret", "grant_types": ["client_credentials"],
                "response_types": [], "redirect_uris": [], "scope": "api:read" }),
        json!({ "access_token_ttl": 60 }),
    )
    .await;
    let server = server(
        "idp",
        json!({ "client_id": id, "client_secret": "short-secret", "token_url": idp.token_url(),
                "scope": "api:read" }),
    );
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let connectors = connectors_with_clock(clock.clone());
    let login = || connectors.server_login("idp", Some(&server), &Input::Unassigned);
    let first = login().await;
    assert_eq!(first.expires_in, Some(60), "{first:?}");
    clock.advance(time::Duration::seconds(29));
    let cached = login().await;
    assert_eq!(cached.access_token, first.access_token);
    assert_eq!(cached.response.get("token_cache"), Some(&json!("hit")));
    assert_eq!(idp.token_requests(&id).await.len(), 1);
    clock.advance(time::Duration::seconds(2));
    let fresh = login().await;
    assert_ne!(fresh.access_token, first.access_token);
    assert_eq!(idp.token_requests(&id).await.len(), 2);
}
