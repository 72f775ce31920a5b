//! Provider quirks from the catalogue (docs/connectors.md, "Provider catalogue"), each against a
//! local fake of the provider's behaviour (wiremock): what the test IdP cannot be made to do.

use serde_json::json;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{CallbackParams, TokenOutputs, UserLoginStatus};
use tokenflow_core::{Input, OAuthServer};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{assert_no_secrets, connectors, server, start_login};

/// A preset server whose token endpoint is the fake (an explicit field overriding the preset).
fn preset(provider: &str, mock: &MockServer, extra: serde_json::Value) -> OAuthServer {
    let mut fields = json!({
        "provider": provider,
        "client_id": "app",
        "client_secret": "preset-client-secret",
        "token_url": format!("{}/token", mock.uri()),
    });
    if let (Some(fields), Some(extra)) = (fields.as_object_mut(), extra.as_object()) {
        fields.extend(extra.clone());
    }
    server(provider, fields)
}

async fn user_login(server: &OAuthServer, input: &UserLoginInput) -> TokenOutputs<UserLoginStatus> {
    let c = connectors();
    let request = start_login(&c, server, input).await;
    let callback = CallbackParams::from_pairs([
        ("code", "the-code"),
        ("state", request.pending.state.expose()),
    ]);
    c.finish_user_login(Some(server), &request.pending, &callback)
        .await
}

fn query(url: &url::Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn github_answers_json_because_the_token_request_accepts_only_json() {
    let mock = MockServer::start().await;
    // GitHub's token endpoint: JSON only for `Accept: application/json`, form-encoded otherwise.
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"access_token":"gho_json","token_type":"bearer","scope":"repo"}"#,
            "application/json",
        ))
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "access_token=gho_form&token_type=bearer&scope=repo",
            "application/x-www-form-urlencoded",
        ))
        .with_priority(2)
        .mount(&mock)
        .await;
    let github = preset("github", &mock, json!({}));
    assert_eq!(
        github.authorization_url.as_ref().unwrap().as_str(),
        "https://github.com/login/oauth/authorize"
    );
    let out = user_login(&github, &UserLoginInput::default()).await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
    assert_eq!(out.access_token.as_ref().unwrap().expose(), "gho_json");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[tokio::test]
async fn slack_user_tokens_are_read_from_authed_user_and_the_bot_token_stays_out() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(
                json!({
                    "ok": true,
                    "app_id": "A1",
                    "access_token": "xoxb-bot-token",
                    "token_type": "bot",
                    "scope": "commands",
                    "team": {"id": "T1", "name": "Acme"},
                    "authed_user": {
                        "id": "U1",
                        "scope": "chat:write,users:read",
                        "access_token": "xoxp-user-token",
                        "token_type": "user",
                        "refresh_token": "xoxe-refresh",
                        "expires_in": 43200
                    }
                })
                .to_string(),
                "application/json",
            ),
        )
        .mount(&mock)
        .await;
    let slack = preset(
        "slack-user",
        &mock,
        json!({"scope": "chat:write users:read"}),
    );
    let c = connectors();
    let request = start_login(&c, &slack, &UserLoginInput::default()).await;
    assert_eq!(query(&request.url)["scope"], "chat:write,users:read");
    let callback = CallbackParams::from_pairs([
        ("code", "the-code"),
        ("state", request.pending.state.expose()),
    ]);
    let out = c
        .finish_user_login(Some(&slack), &request.pending, &callback)
        .await;
    assert_eq!(out.status, UserLoginStatus::Successful, "{out:?}");
    assert_eq!(
        out.access_token.as_ref().unwrap().expose(),
        "xoxp-user-token"
    );
    assert_eq!(out.refresh_token.as_ref().unwrap().expose(), "xoxe-refresh");
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
    assert_eq!(out.expires_in, Some(43200));
    assert_eq!(out.granted_scopes.as_deref(), Some("chat:write users:read"));
    assert_eq!(
        out.response_fields["team"],
        json!({"id": "T1", "name": "Acme"})
    );
    assert_eq!(out.response_fields["id"], json!("U1"));
    assert_eq!(out.response_fields["app_id"], json!("A1"));
    assert_no_secrets(
        &format!("{:?} {:?}", out.response, out.response_fields),
        &["xoxb-bot-token", "xoxp-user-token", "xoxe-refresh"],
    );
}

#[tokio::test]
async fn a_token_path_the_response_lacks_is_an_unusable_answer() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"ok":true,"access_token":"xoxb-bot-token","token_type":"bot"}"#,
            "application/json",
        ))
        .mount(&mock)
        .await;
    let out = user_login(
        &preset("slack-user", &mock, json!({})),
        &UserLoginInput::default(),
    )
    .await;
    assert_eq!(out.status, UserLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_response"));
    assert!(
        out.error_description
            .as_deref()
            .unwrap()
            .contains("no `authed_user` object"),
        "{out:?}"
    );
    assert!(out.access_token.is_none());
}

#[tokio::test]
async fn salesforce_instance_url_is_output_as_a_response_field_also_from_the_cache() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(
                json!({
                    "access_token": "00D!sf-token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "instance_url": "https://acme.my.salesforce.com",
                    "id": "https://login.salesforce.com/id/00D/005",
                    "issued_at": "1700000000000",
                    "signature": "sig"
                })
                .to_string(),
                "application/json",
            ),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let salesforce = preset("salesforce", &mock, json!({"scope": "api"}));
    let c = connectors();
    for _ in 0..2 {
        let out = c
            .server_login("salesforce", Some(&salesforce), &Input::Unassigned)
            .await;
        assert!(out.status_code() == 0, "{out:?}");
        assert_eq!(
            out.response_fields["instance_url"],
            json!("https://acme.my.salesforce.com")
        );
        assert_eq!(
            out.response_fields["id"],
            json!("https://login.salesforce.com/id/00D/005")
        );
        assert!(!out.response_fields.contains_key("signature"));
    }
}

#[tokio::test]
async fn google_and_dropbox_presets_ask_for_refresh_tokens_in_the_authorization_url() {
    let c = connectors();
    let google = server(
        "google",
        json!({"provider": "google", "client_id": "app", "scope": "openid email"}),
    );
    let url = start_login(&c, &google, &UserLoginInput::default())
        .await
        .url;
    assert!(
        url.as_str()
            .starts_with("https://accounts.google.com/o/oauth2/v2/auth?")
    );
    let q = query(&url);
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert!(q.contains_key("code_challenge"));

    let dropbox = server(
        "dropbox",
        json!({"provider": "dropbox", "client_id": "app"}),
    );
    let q = query(
        &start_login(&c, &dropbox, &UserLoginInput::default())
            .await
            .url,
    );
    assert_eq!(q["token_access_type"], "offline");

    let entra = server(
        "entra",
        json!({"provider": "microsoft-entra", "tenant": "organizations", "client_id": "app", "scope": "User.Read"}),
    );
    let url = start_login(&c, &entra, &UserLoginInput::default())
        .await
        .url;
    assert!(
        url.as_str()
            .starts_with("https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?")
    );
    assert_eq!(query(&url)["scope"], "User.Read offline_access");
}

#[tokio::test]
async fn a_comma_scope_separator_joins_the_client_credentials_scope_with_commas() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("scope=chat%3Awrite%2Cusers%3Aread"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"ok":true,"access_token":"xoxb-1","token_type":"bot","expires_in":60,"scope":"chat:write,users:read"}"#,
            "application/json",
        ))
        .mount(&mock)
        .await;
    let slack = preset("slack", &mock, json!({"scope": "chat:write  users:read"}));
    let out = connectors()
        .server_login("slack", Some(&slack), &Input::Unassigned)
        .await;
    assert_eq!(out.status_code(), 0, "{out:?}");
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
}
