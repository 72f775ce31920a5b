use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_connectors::http::build_client;
use tokenflow_connectors::oauth::authorize::{AuthorizationRequest, UserLoginInput};
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_connectors::oauth::outputs::TokenOutputs;
use tokenflow_connectors::oauth::{CallbackParams, OAuthConnectors, UserLoginStatus};
use tokenflow_core::{Clock, OAuthServer, OAuthServerSpec, SystemClock};
use tokenflow_testkit::{Decision, sign_in};
use url::Url;

pub const REDIRECT_URI: &str = "http://localhost/oauth-callback";

pub fn connectors() -> OAuthConnectors {
    connectors_with_clock(Arc::new(SystemClock))
}

pub fn connectors_with_clock(clock: Arc<dyn Clock>) -> OAuthConnectors {
    OAuthConnectors::new(build_client(Duration::from_secs(30)).unwrap(), clock)
}

/// A validated server from a JSON object of docs/connectors.md fields.
pub fn server(id: &str, fields: Value) -> OAuthServer {
    serde_json::from_value::<OAuthServerSpec>(fields)
        .unwrap()
        .validate(id)
        .unwrap()
}

pub fn redirect_settings() -> RedirectSettings {
    RedirectSettings {
        global: None,
        default: Url::parse(REDIRECT_URI).unwrap(),
        pending_ttl: Duration::from_secs(600),
    }
}

pub async fn start_login(
    connectors: &OAuthConnectors,
    server: &OAuthServer,
    input: &UserLoginInput,
) -> AuthorizationRequest {
    connectors
        .start_user_login(&server.id, Some(server), input, &redirect_settings())
        .await
        .unwrap_or_else(|outputs| panic!("start_user_login failed: {outputs:?}"))
}

/// Fails when `haystack` contains any of `secrets`.
pub fn assert_no_secrets(haystack: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !haystack.contains(secret),
            "a secret value leaked into: {haystack}"
        );
    }
}

pub fn web_server_fields(idp: &tokenflow_testkit::Idp, client_id: &str, secret: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "authorization_url": idp.authorization_url(),
        "token_url": idp.token_url(),
        "issuer": idp.issuer(),
        "scope": "openid profile offline_access",
    })
}

/// Alice allows a user login of `server` started with `request`; the login's outputs.
pub async fn alice_allows(
    c: &OAuthConnectors,
    server: &OAuthServer,
    request: &AuthorizationRequest,
) -> TokenOutputs<UserLoginStatus> {
    let landed = sign_in(
        request.url.as_str(),
        REDIRECT_URI,
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    c.finish_user_login(
        Some(server),
        &request.pending,
        &CallbackParams::from_url(&landed),
    )
    .await
}
