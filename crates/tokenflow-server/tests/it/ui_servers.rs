//! The web UI's OAuth server pages: write-only secrets, servers of the configuration file, and
//! the Test button's answer for an unknown server.

use crate::support::{Capture, Options, spawn_app, world};
use crate::ui::{get_page, post_form, signed_in};

#[tokio::test]
async fn the_edit_form_refuses_a_new_token_url_without_the_secret_and_saves_nothing() {
    let w = world(false).await;
    let secret = "ui-write-only-secret-1";
    let cc = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("ui-moved"), secret)
        .await;
    let capture = Capture::start().await;
    let (session, csrf) = signed_in(&w.app).await;
    let token_url = w.idp.token_url();
    let (status, _) = post_form(
        &w.app,
        &session,
        "/servers/create",
        &[
            ("csrf", &csrf),
            ("id", "uisvc"),
            ("client_id", &cc.id),
            ("client_secret", secret),
            ("token_url", &token_url),
            ("scope", "api:read"),
            ("client_credentials_delivery", "body"),
        ],
    )
    .await;
    assert_eq!(status, 303);

    // The edit form as a browser sends it: the secret field empty, the token URL changed.
    let elsewhere = format!("{}/token", capture.url);
    let (status, html) = post_form(
        &w.app,
        &session,
        "/servers/uisvc/update",
        &[
            ("csrf", &csrf),
            ("client_id", &cc.id),
            ("client_secret", ""),
            ("token_url", &elsewhere),
            ("scope", "api:read"),
            ("client_credentials_delivery", "body"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"form-errors\""), "{html}");
    assert!(
        html.contains("token_url") && html.contains("client_secret again"),
        "{html}"
    );
    assert!(!html.contains(secret));
    let (_, shown) = w.app.get_json("/api/oauth-servers/uisvc").await;
    assert_eq!(shown["token_url"], token_url, "nothing was saved");
    assert_eq!(shown["has_client_secret"], true);

    // The Test button still goes to the old endpoint.
    let (status, html) =
        post_form(&w.app, &session, "/servers/uisvc/test", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-status-code=\"0\""), "{html}");
    assert!(
        capture.requests().is_empty(),
        "the secret went to the new URL"
    );

    // Removing the secret together with the move is allowed: there is nothing to send.
    let (status, _) = post_form(
        &w.app,
        &session,
        "/servers/uisvc/update",
        &[
            ("csrf", &csrf),
            ("client_id", &cc.id),
            ("client_secret", ""),
            ("remove_secret", "on"),
            ("token_url", &elsewhere),
            ("scope", "api:read"),
            ("client_credentials_delivery", "body"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, shown) = w.app.get_json("/api/oauth-servers/uisvc").await;
    assert_eq!(shown["has_client_secret"], false);
    let (_, html) = post_form(&w.app, &session, "/servers/uisvc/test", &[("csrf", &csrf)]).await;
    assert!(html.contains("data-status-code=\"-2\""), "{html}");
    assert!(capture.requests().is_empty());
}

#[tokio::test]
async fn servers_of_the_configuration_file_offer_no_edit_refuse_an_update_and_keep_their_secret() {
    let idp = tokenflow_testkit::Idp::start().await;
    let secret = "ui-configured-secret-1";
    let cc = idp
        .client_credentials_client(&tokenflow_testkit::unique("ui-cfg"), secret)
        .await;
    let app = spawn_app(Options {
        config: format!(
            "[oauth_servers.cfg]\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\ntoken_url = \"{}\"\nscope = \"api:read\"\n",
            cc.id,
            idp.token_url()
        ),
        ..Options::default()
    })
    .await;
    let capture = Capture::start().await;
    let (session, csrf) = signed_in(&app).await;

    let (status, _, list) = get_page(&app, &session, "/servers").await;
    assert_eq!(status, 200);
    assert!(
        !list.contains("id=\"edit-cfg\""),
        "an Edit link for a configured server"
    );
    assert!(list.contains("edit in tokenflow.toml"));
    let (status, _, html) = get_page(&app, &session, "/servers/cfg/edit").await;
    assert_eq!(status, 409);
    assert!(html.contains("tokenflow.toml"), "{html}");

    let elsewhere = format!("{}/token", capture.url);
    for (path, id) in [("/servers/cfg/update", ""), ("/servers/create", "cfg")] {
        let (status, html) = post_form(
            &app,
            &session,
            path,
            &[
                ("csrf", &csrf),
                ("id", id),
                ("client_id", &cc.id),
                ("client_secret", "another-secret"),
                ("token_url", &elsewhere),
                ("client_credentials_delivery", "body"),
            ],
        )
        .await;
        assert_eq!(status, 409, "{path}");
        assert!(
            html.contains("defined in the configuration file"),
            "{path}: {html}"
        );
    }
    assert_eq!(app.state.store.get_oauth_server("cfg").await.unwrap(), None);
    let (status, html) = post_form(&app, &session, "/servers/cfg/test", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("data-status-code=\"0\""),
        "the configured secret still works: {html}"
    );
    assert!(capture.requests().is_empty());
}

#[tokio::test]
async fn testing_an_unknown_server_in_the_ui_answers_not_found_like_the_api() {
    let app = spawn_app(Options::default()).await;
    let (session, csrf) = signed_in(&app).await;
    let (status, html) = post_form(&app, &session, "/servers/ghost/test", &[("csrf", &csrf)]).await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("No OAuth server `ghost`."), "{html}");
    assert!(
        !html.contains("id=\"test-result\""),
        "no test was run: {html}"
    );
    let api = app
        .request(reqwest::Method::POST, "/api/oauth-servers/ghost/test")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}

#[tokio::test]
async fn a_private_key_set_in_the_form_is_never_shown_and_kept_when_left_empty() {
    const KEY: &str = include_str!(
        "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-ec-p256.pkcs8.pem"
    );
    const PUBLIC: &str = include_str!(
        "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-ec-p256.public.pem"
    );
    let w = world(false).await;
    let id = tokenflow_testkit::unique("ui-pkjwt");
    w.idp
        .register(
            serde_json::json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
                "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "scope": "api:read api:write" }),
            serde_json::json!({ "public_key_pem": PUBLIC }),
        )
        .await;
    let (session, csrf) = signed_in(&w.app).await;
    let token_url = w.idp.token_url();
    let form = |scope: &str, key: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.clone()),
            ("client_id", id.clone()),
            ("client_secret", String::new()),
            ("token_url", token_url.clone()),
            ("scope", scope.to_owned()),
            ("token_endpoint_auth_method", "private_key_jwt".to_owned()),
            ("private_key", key.to_owned()),
            ("signing_alg", "ES256".to_owned()),
        ]
    };
    let mut create = form("api:read", KEY);
    create.push(("id", "uipk".to_owned()));
    let (status, html) = post_form(&w.app, &session, "/servers/create", &borrowed(&create)).await;
    assert_eq!(status, 303, "{html}");

    let key_lines: Vec<&str> = KEY.lines().filter(|l| !l.starts_with("-----")).collect();
    let (_, _, page) = get_page(&w.app, &session, "/servers/uipk/edit").await;
    assert!(page.contains("unchanged (stored, never shown)"), "{page}");
    assert!(
        page.contains("value=\"private_key_jwt\" selected"),
        "{page}"
    );
    for line in &key_lines {
        assert!(!page.contains(line), "key material on the edit page");
    }

    // Saved again with the key field empty: the stored key is kept and still signs.
    let update = form("api:write", "");
    let (status, html) =
        post_form(&w.app, &session, "/servers/uipk/update", &borrowed(&update)).await;
    assert_eq!(status, 303, "{html}");
    let (status, html) =
        post_form(&w.app, &session, "/servers/uipk/test", &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-status-code=\"0\""), "{html}");
    for line in &key_lines {
        assert!(!html.contains(line));
    }
}

fn borrowed<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
