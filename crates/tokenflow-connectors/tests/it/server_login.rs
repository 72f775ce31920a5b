use serde_json::json;
use tokenflow_connectors::oauth::ConnectorStatus as _;
use tokenflow_connectors::oauth::ServerLoginStatus;
use tokenflow_core::Input;
use tokenflow_testkit::{Idp, unique};

use crate::support::{assert_no_secrets, connectors, server};

fn cc_fields(idp: &Idp, id: &str, secret: &str, delivery: &str) -> serde_json::Value {
    json!({
        "client_id": id,
        "client_secret": secret,
        "client_credentials_delivery": delivery,
        "token_url": idp.token_url(),
        "scope": "api:read",
    })
}

#[tokio::test]
async fn body_delivery_gets_a_token_the_idp_accepts() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc-body"), "body-secret-1")
        .await;
    let server = server("idp", cc_fields(&idp, &client.id, "body-secret-1", "body"));

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
    assert!(out.expires_in.is_some_and(|secs| secs > 0));
    assert!(out.granted_scopes.is_none() && out.refresh_token.is_none());
    let token = out.access_token.unwrap();
    let introspection = idp.introspect(&client, token.expose()).await;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["client_id"], client.id.as_str());
    assert_eq!(introspection["scope"], "api:read");
    let requests = idp.token_requests(&client.id).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].auth_method, "post");
    assert_eq!(
        requests[0].grant_type.as_deref(),
        Some("client_credentials")
    );
}

#[tokio::test]
async fn basic_header_encodes_special_characters_per_rfc6749_2_3_1() {
    let idp = Idp::start().await;
    // `:` would split id and secret wrongly, `+` would decode to a space, `%` would fail to decode
    // and a space would be ambiguous if tokenflow did not form-urlencode before Base64.
    let id = format!("{}:id+1% x/y", unique("cc"));
    let secret = "s3cr:t+%/ x";
    let client = idp.client_credentials_client(&id, secret).await;
    let server = server("idp", cc_fields(&idp, &id, secret, "basic_header"));

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let introspection = idp
        .introspect(&client, out.access_token.unwrap().expose())
        .await;
    assert_eq!(introspection["active"], true);
    let requests = idp.token_requests(&id).await;
    assert_eq!(requests.len(), 1, "the IdP decoded exactly our client id");
    assert_eq!(requests[0].auth_method, "basic");
}

#[tokio::test]
async fn basic_header_encodes_non_ascii_so_the_idp_decodes_the_exact_id() {
    // oidc-provider refuses non-ASCII client ids (RFC 6749 Appendix A allows only VSCHAR), so no
    // such client can exist there; its own RFC 6749 §2.3.1 decoder still records what it received.
    let idp = Idp::start().await;
    let id = format!("{}-é client", unique("cc"));
    let server = server("idp", cc_fields(&idp, &id, "sécret €", "basic_header"));

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Unknown);
    let requests = idp.token_requests(&id).await;
    assert_eq!(
        requests.len(),
        1,
        "the IdP decoded the id back to exactly {id:?}"
    );
    assert_eq!(requests[0].auth_method, "basic");
    assert_no_secrets(&format!("{out:?}"), &["sécret €"]);
}

#[tokio::test]
async fn wrong_secret_is_unknown_with_invalid_client() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc"), "right-secret")
        .await;
    for delivery in ["body", "basic_header"] {
        let server = server(
            "idp",
            cc_fields(&idp, &client.id, "wrong-secret-value", delivery),
        );
        let out = connectors()
            .server_login("idp", Some(&server), &Input::Unassigned)
            .await;
        assert_eq!(
            out.status,
            ServerLoginStatus::Unknown,
            "{delivery}: {out:?}"
        );
        assert_eq!(out.status.code(), -1);
        assert_eq!(out.error.as_deref(), Some("invalid_client"));
        assert!(out.access_token.is_none());
        assert_no_secrets(&format!("{out:?}"), &["wrong-secret-value", "right-secret"]);
    }
}

#[tokio::test]
async fn unknown_server_and_missing_secret_are_no_configuration() {
    let idp = Idp::start().await;
    let out = connectors()
        .server_login("nope", None, &Input::Unassigned)
        .await;
    assert_eq!(out.status.code(), -2);
    assert!(out.error_description.unwrap().contains("`nope`"));

    let public = server(
        "public",
        json!({ "client_id": "app", "token_url": idp.token_url(), "scope": "api:read" }),
    );
    let out = connectors()
        .server_login("public", Some(&public), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::NoConfiguration);
    assert!(out.error_description.unwrap().contains("client_secret"));

    let no_url = server(
        "nourl",
        json!({ "client_id": "app", "client_secret": "s", "scope": "api:read" }),
    );
    let out = connectors()
        .server_login("nourl", Some(&no_url), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::NoConfiguration);
    assert!(out.error_description.unwrap().contains("token_url"));
    assert!(
        idp.token_requests("app").await.is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn scope_precedence_assigned_empty_is_no_scope_unassigned_uses_the_server_scope() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc"), "secret-s")
        .await;
    let with_scope = server("idp", cc_fields(&idp, &client.id, "secret-s", "body"));
    let c = connectors();

    // Assigned but empty: used as is, even though the server has a scope (docs/connectors.md).
    let out = c
        .server_login("idp", Some(&with_scope), &Input::Assigned(String::new()))
        .await;
    assert_eq!(out.status, ServerLoginStatus::NoScope);
    assert_eq!(out.status.code(), -3);
    assert!(
        idp.token_requests(&client.id).await.is_empty(),
        "nothing was sent"
    );

    // Unassigned: the server's scope.
    let out = c
        .server_login("idp", Some(&with_scope), &Input::Unassigned)
        .await;
    let token = out.access_token.unwrap();
    assert_eq!(
        idp.introspect(&client, token.expose()).await["scope"],
        "api:read"
    );

    // Assigned: overrides the server's scope.
    let out = c
        .server_login(
            "idp",
            Some(&with_scope),
            &Input::Assigned("api:write".into()),
        )
        .await;
    let token = out.access_token.unwrap();
    assert_eq!(
        idp.introspect(&client, token.expose()).await["scope"],
        "api:write"
    );

    // Unassigned and no server scope: empty effective scope.
    let mut no_scope = with_scope.clone();
    no_scope.scope = None;
    let out = c
        .server_login("idp", Some(&no_scope), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::NoScope);
}

#[tokio::test]
async fn scope_the_client_may_not_have_is_a_provider_error() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc"), "secret-s")
        .await;
    let server = server("idp", cc_fields(&idp, &client.id, "secret-s", "body"));
    let out = connectors()
        .server_login("idp", Some(&server), &Input::Assigned("openid".into()))
        .await;
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.error.as_deref(), Some("invalid_scope"));
}

#[tokio::test]
async fn raw_basic_encoding_works_with_a_provider_that_does_not_decode_and_the_default_says_why_it_fails()
 {
    let idp = Idp::start().await;
    // A provider that compares Basic credentials as sent (`basic_raw` in the test IdP), with a
    // secret that the RFC 6749 §2.3.1 encoding changes.
    let id = unique("cc-raw");
    let secret = "s3cr+t %:x";
    idp.register(
        json!({
            "client_id": id,
            "client_secret": secret,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "scope": "api:read api:write",
        }),
        json!({ "basic_raw": true }),
    )
    .await;

    let encoded = server("idp", cc_fields(&idp, &id, secret, "basic_header"));
    let out = connectors()
        .server_login("idp", Some(&encoded), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("invalid_client"));
    let description = out.error_description.clone().unwrap();
    assert!(
        description.contains("URL-encoded in HTTP Basic (RFC 6749 §2.3.1)")
            && description.contains("basic_auth_encoding = \"raw\""),
        "{description}"
    );
    assert_no_secrets(&format!("{out:?}"), &[secret, "s3cr%2Bt"]);

    let mut fields = cc_fields(&idp, &id, secret, "basic_header");
    fields["basic_auth_encoding"] = json!("raw");
    let raw = server("idp", fields);
    let out = connectors()
        .server_login("idp", Some(&raw), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let requests = idp.token_requests(&id).await;
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 200]
    );
    assert!(requests.iter().all(|r| r.auth_method == "basic"));
}

#[tokio::test]
async fn a_refused_basic_login_with_plain_credentials_gets_no_encoding_hint() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("cc-plain"), "plain-secret")
        .await;
    let server = server(
        "idp",
        cc_fields(&idp, &client.id, "wrong-secret", "basic_header"),
    );
    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.error.as_deref(), Some("invalid_client"), "{out:?}");
    assert!(
        !out.error_description
            .unwrap()
            .contains("basic_auth_encoding"),
        "the hint only appears when the encoding changed something"
    );
}
