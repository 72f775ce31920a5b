//! Provider presets through the API and the web UI (docs/connectors.md, "Provider catalogue").

use reqwest::Method;
use serde_json::json;

use crate::support::{Options, another_instance, spawn_app};
use crate::ui::{get_page, post_form, signed_in};

const ENTRA_TOKEN_URL: &str =
    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

#[tokio::test]
async fn api_put_with_a_provider_fills_the_preset_and_a_restart_keeps_it() {
    let app = spawn_app(Options::default()).await;
    let put = app
        .request(Method::PUT, "/api/oauth-servers/graph")
        .json(&json!({
            "provider": "microsoft-entra",
            "tenant": "contoso.onmicrosoft.com",
            "client_id": "app",
            "client_secret": "provider-secret-value",
            "scope": "User.Read",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let text = put.text().await.unwrap();
    assert!(!text.contains("provider-secret-value"), "{text}");
    for instance in [&app, &another_instance(&app).await] {
        let (status, shown) = instance.get_json("/api/oauth-servers/graph").await;
        assert_eq!(status, 200);
        assert_eq!(shown["provider"], "microsoft-entra");
        assert_eq!(shown["tenant"], "contoso.onmicrosoft.com");
        assert_eq!(shown["token_url"], ENTRA_TOKEN_URL);
        assert_eq!(shown["request_refresh_token"], true);
        assert_eq!(shown["has_client_secret"], true);
    }
}

#[tokio::test]
async fn api_put_with_an_unknown_provider_or_without_its_tenant_is_refused_naming_the_field() {
    let app = spawn_app(Options::default()).await;
    for (body, expected) in [
        (
            json!({"provider": "nope", "client_id": "app"}),
            "oauth server `x`, field `provider`: unknown provider `nope`",
        ),
        (
            json!({"provider": "microsoft-entra", "client_id": "app"}),
            "oauth server `x`, field `tenant`: is required by provider `microsoft-entra`",
        ),
        (
            json!({"provider": "microsoft-entra", "tenant": "evil.example/x?", "client_id": "app"}),
            "oauth server `x`, field `tenant`:",
        ),
    ] {
        let response = app
            .request(Method::PUT, "/api/oauth-servers/x")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["message"].as_str().unwrap().contains(expected),
            "{answer}"
        );
    }
    assert_eq!(app.get_json("/api/oauth-servers/x").await.0, 404);
}

#[tokio::test]
async fn the_server_form_offers_the_catalogue_and_saves_a_preset_with_explicit_fields_winning() {
    let app = spawn_app(Options::default()).await;
    let (session, csrf) = signed_in(&app).await;
    let (status, _, page) = get_page(&app, &session, "/servers/new").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<option value="microsoft-entra""#),
        "{page}"
    );
    assert!(page.contains(r#"name="tenant""#));

    let (status, page) = post_form(
        &app,
        &session,
        "/servers/create",
        &[
            ("csrf", &csrf),
            ("id", "graph"),
            ("client_id", "app"),
            ("client_secret", "ui-provider-secret"),
            ("provider", "microsoft-entra"),
            ("tenant", "contoso.onmicrosoft.com"),
            ("authorization_url", "https://proxy.example/authorize"),
            ("token_endpoint_auth_method", ""),
            ("prompt", "consent"),
            ("pkce", "on"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{page}");
    let (_, shown) = app.get_json("/api/oauth-servers/graph").await;
    assert_eq!(shown["provider"], "microsoft-entra");
    assert_eq!(shown["token_url"], ENTRA_TOKEN_URL);
    assert_eq!(
        shown["authorization_url"],
        "https://proxy.example/authorize"
    );
    assert_eq!(
        shown["request_refresh_token"], true,
        "an unticked box leaves the preset's value"
    );

    let (status, page) = post_form(
        &app,
        &session,
        "/servers/create",
        &[
            ("csrf", &csrf),
            ("id", "broken"),
            ("client_id", "app"),
            ("provider", "microsoft-entra"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("field `tenant`"), "{page}");
    assert!(!page.contains("ui-provider-secret"));
}
