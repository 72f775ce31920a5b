//! The web UI over plain HTTP: sessions, CSRF, and pages without secrets.

use reqwest::redirect::Policy;

use crate::support::{API_KEY, Capture, Options, TestApp, another_instance, spawn_app, world};

/// Signs in like the browser does and returns (session cookie, CSRF token of a page).
pub(crate) async fn signed_in(app: &TestApp) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{}/login", app.url)).send().await.unwrap();
    let login_cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let token = value_of(&html, "csrf");
    let response = http
        .post(format!("{}/login", app.url))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("api_key", API_KEY),
            ("next", "/servers"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/servers");
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tokenflow_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let session = set.split(';').next().unwrap().to_owned();
    let servers = http
        .get(format!("{}/servers", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (session, value_of(&servers, "csrf"))
}

fn value_of(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_sign_in() {
    let w = world(false).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    for path in [
        "/runs",
        "/flows",
        "/flows/profile",
        "/servers",
        "/servers/new",
    ] {
        let response = http
            .get(format!("{}{path}", w.app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next="),
            "{path}"
        );
    }
    let forged = http
        .get(format!("{}/runs", w.app.url))
        .header("cookie", "tokenflow_session=eyJleHAiOjk5OTk5OTk5OTl9.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303, "a forged session is no session");
    let start = http
        .get(format!("{}/flows/profile/start", w.app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let w = world(false).await;
    let (session, csrf) = signed_in(&w.app).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let create = |token: Option<&str>| {
        let mut form = vec![("id", "csrfsvc".to_owned()), ("client_id", "x".to_owned())];
        if let Some(token) = token {
            form.push(("csrf", token.to_owned()));
        }
        http.post(format!("{}/servers/create", w.app.url))
            .header("cookie", &session)
            .form(&form)
    };
    assert_eq!(create(None).send().await.unwrap().status(), 403);
    assert_eq!(create(Some("forged")).send().await.unwrap().status(), 403);
    assert_eq!(
        w.app.get_json("/api/oauth-servers/csrfsvc").await.0,
        404,
        "nothing was created"
    );
    let ok = create(Some(&csrf)).send().await.unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(w.app.get_json("/api/oauth-servers/csrfsvc").await.0, 200);

    // Starting a user flow from a link needs the token too.
    let no_token = http
        .get(format!("{}/flows/profile/start", w.app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let with_token = http
        .get(format!(
            "{}/flows/profile/start?csrf={}",
            w.app.url,
            url::form_urlencoded::byte_serialize(csrf.as_bytes()).collect::<String>()
        ))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 303);
    let logout = http
        .post(format!("{}/logout", w.app.url))
        .header("cookie", &session)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);
}

/// Every state-changing route of the UI, one after the other: a form without the session's CSRF
/// token, with a forged one, an empty one or another session's is refused with `403` and changes
/// nothing; the same form with the session's token goes through.
#[tokio::test]
async fn every_state_changing_ui_route_refuses_a_missing_or_forged_csrf_token_and_changes_nothing()
{
    let w = world(false).await;
    let (session, csrf) = signed_in(&w.app).await;
    let (_, other_sessions_csrf) = signed_in(&w.app).await;
    assert_ne!(csrf, other_sessions_csrf);
    // Something for each form to change: an OAuth server, a waiting run, a vault entry.
    let put = w
        .app
        .request(reqwest::Method::PUT, "/api/oauth-servers/kept")
        .json(&serde_json::json!({ "client_id": "kept-client", "token_url": "http://127.0.0.1:9/token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let (status, run, _) = w
        .app
        .post_json("/api/flows/profile/runs", serde_json::json!({}))
        .await;
    assert_eq!(status, 201);
    let run_id = run["id"].as_str().unwrap().to_owned();
    let now = w.app.state.clock.now();
    w.app
        .state
        .store
        .put_vault_entry(&tokenflow_store::VaultEntryRow {
            name: "kept".into(),
            server_id: "kept".into(),
            access_token: None,
            refresh_token: None,
            expires_at: None,
            granted_scopes: None,
            state: tokenflow_core::VaultEntryState::Ok,
            last_refresh_at: None,
            last_refresh_outcome: None,
            version: 0,
            updated_at: now,
        })
        .await
        .unwrap();
    let server_fields = [
        ("client_id", "changed"),
        ("token_url", "http://127.0.0.1:9/token"),
    ];
    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/runs/{run_id}/cancel"), vec![]),
        ("/flows/pure/run".into(), vec![]),
        (
            "/servers/create".into(),
            [&[("id", "created")][..], &server_fields[..]].concat(),
        ),
        ("/servers/kept/update".into(), server_fields.to_vec()),
        ("/servers/kept/test".into(), vec![]),
        ("/vault/kept/delete".into(), vec![]),
        ("/servers/kept/delete".into(), vec![]),
        ("/logout".into(), vec![]),
    ];
    let nothing_changed = || async {
        let (status, server) = w.app.get_json("/api/oauth-servers/kept").await;
        assert_eq!((status, &server["client_id"]), (200, &"kept-client".into()));
        assert_eq!(w.app.get_json("/api/oauth-servers/created").await.0, 404);
        let (_, run) = w.app.get_json(&format!("/api/runs/{run_id}")).await;
        assert_eq!(run["status"], "waiting");
        let (_, pure) = w.app.get_json("/api/runs?flow=pure").await;
        assert_eq!(pure["runs"].as_array().map(Vec::len), Some(0), "{pure}");
        assert!(
            w.app
                .state
                .store
                .get_vault_entry("kept")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            get_page(&w.app, &session, "/runs").await.0,
            200,
            "still signed in"
        );
    };
    for (path, fields) in &routes {
        for token in [
            None,
            Some("forged"),
            Some(""),
            Some(other_sessions_csrf.as_str()),
        ] {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let (status, html) = post_form(&w.app, &session, path, &form).await;
            assert_eq!(status, 403, "{path} with {token:?}: {html}");
            assert!(html.contains("CSRF token"), "{path}: {html}");
        }
        nothing_changed().await;
    }
    // The browser start of a user flow needs the token in its link.
    for query in ["", "?csrf=forged", "?csrf="] {
        let (status, _, _) =
            get_page(&w.app, &session, &format!("/flows/profile/start{query}")).await;
        assert_eq!(status, 401, "{query}");
    }
    nothing_changed().await;
    // With the session's token every one of these forms goes through.
    for (path, fields) in &routes {
        let mut form = fields.clone();
        form.push(("csrf", csrf.as_str()));
        let (status, html) = post_form(&w.app, &session, path, &form).await;
        assert!(
            status == 303 || status == 200,
            "{path} with the session's token: {status} {html}"
        );
    }
    let (_, run) = w.app.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(w.app.get_json("/api/oauth-servers/kept").await.0, 404);
    assert!(
        w.app
            .state
            .store
            .get_vault_entry("kept")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        get_page(&w.app, &session, "/runs").await.0,
        303,
        "signed out"
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_no_secrets() {
    let w = world(false).await;
    let (session, _) = signed_in(&w.app).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let (_, run, _) = w
        .app
        .post_json("/api/flows/pure/runs", serde_json::json!({}))
        .await;
    let id = run["id"].as_str().unwrap();
    let stored = w
        .app
        .request(reqwest::Method::PUT, "/api/oauth-servers/stored")
        .json(&serde_json::json!({ "client_id": "c", "client_secret": "srv-web-secret", "token_url": w.idp.token_url() }))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    for path in [
        "/runs".to_owned(),
        format!("/runs/{id}"),
        "/flows".to_owned(),
        "/flows/profile".to_owned(),
        "/servers".to_owned(),
        "/servers/stored/edit".to_owned(),
        "/vault".to_owned(),
    ] {
        let response = http
            .get(format!("{}{path}", w.app.url))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        let html = response.text().await.unwrap();
        assert!(
            !html.contains("srv-web-secret") && !html.contains(API_KEY),
            "{path} shows a secret"
        );
        assert!(
            !html.contains("http://") || !html.contains("cdn"),
            "{path} loads nothing from a CDN"
        );
    }
    // Times show to the second in UTC, not as raw RFC 3339 with nanoseconds.
    let page = http
        .get(format!("{}/runs/{id}", w.app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let raw = run["started_at"].as_str().unwrap();
    let shown = format!("{} {} UTC", &raw[..10], &raw[11..19]);
    assert!(
        page.contains(&shown) && !page.contains(raw),
        "started {raw} shows as {shown}"
    );
    let flow = http
        .get(format!("{}/flows/profile", w.app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        flow.contains("<svg")
            && flow.contains("edge-successful")
            && flow.contains("edge-not-successful"),
        "the diagram is inline SVG"
    );
}

#[tokio::test]
async fn deleting_the_api_key_ends_the_ui_sessions_opened_with_it() {
    let w = world(false).await;
    let key = "a-stored-key-for-the-ui-0001";
    w.app
        .state
        .store
        .put_api_key(&tokenflow_store::ApiKeyRow {
            name: "ui".into(),
            hash: tokenflow_server::auth::hash_key(key),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        })
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/login", w.app.url))
        .send()
        .await
        .unwrap();
    let login_cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = value_of(&page.text().await.unwrap(), "csrf");
    let response = http
        .post(format!("{}/login", w.app.url))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("api_key", key),
            ("next", "/runs"),
        ])
        .send()
        .await
        .unwrap();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tokenflow_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let runs = |session: String| {
        let http = http.clone();
        let url = format!("{}/runs", w.app.url);
        async move {
            http.get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(runs(session.clone()).await, 200);
    assert!(w.app.state.store.delete_api_key("ui").await.unwrap());
    assert_eq!(runs(session).await, 303, "the session ended with its key");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn post_form(
    app: &TestApp,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let response = client()
        .post(format!("{}{path}", app.url))
        .header("cookie", session)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn get_page(app: &TestApp, session: &str, path: &str) -> (u16, Option<String>, String) {
    let response = client()
        .get(format!("{}{path}", app.url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

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

/// The value of the session cookie (`tokenflow_session=…` without attributes).
fn cookie_value(session: &str) -> &str {
    session.strip_prefix("tokenflow_session=").unwrap()
}

#[tokio::test]
async fn signing_out_ends_the_session_on_every_instance() {
    let w = world(false).await;
    let other = another_instance(&w.app).await;
    let (session, csrf) = signed_in(&w.app).await;
    let (status, _, _) = get_page(&other, &session, "/runs").await;
    assert_eq!(status, 200, "the other instance knows the session");

    let (status, _) = post_form(&w.app, &session, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);

    for app in [&w.app, &other] {
        for path in ["/runs", "/servers", "/flows/profile"] {
            let (status, location, _) = get_page(app, &session, path).await;
            assert_eq!(status, 303, "{path}");
            assert!(location.unwrap().starts_with("/login"), "{path}");
        }
        let start = format!(
            "/flows/profile/start?csrf={}",
            url::form_urlencoded::byte_serialize(csrf.as_bytes()).collect::<String>()
        );
        let (status, location, _) = get_page(app, &session, &start).await;
        assert_eq!(status, 303);
        assert!(location.unwrap().starts_with("/login"), "no login started");
        // CSRF-protected posts with the old cookie and its token are refused.
        let (status, _) = post_form(
            app,
            &session,
            "/servers/create",
            &[("csrf", &csrf), ("id", "afterlogout"), ("client_id", "x")],
        )
        .await;
        assert_eq!(status, 303, "sent to sign in, not saved");
        let (status, _) = post_form(app, &session, "/logout", &[("csrf", &csrf)]).await;
        assert_eq!(status, 303);
    }
    assert_eq!(
        w.app.get_json("/api/oauth-servers/afterlogout").await.0,
        404
    );
    let id_hash = tokenflow_server::auth::tokens::id_hash(cookie_value(&session));
    assert_eq!(
        w.app
            .state
            .store
            .find_ui_session(&id_hash, w.app.state.clock.now())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_session_ends_when_its_key_leaves_the_configuration() {
    let w = world(false).await;
    let (session, _) = signed_in(&w.app).await;
    // An instance started after the key was replaced in tokenflow.toml.
    let config = w.app._dir.path().join("tokenflow.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(API_KEY, "a-replacement-key-0123456789"),
    )
    .unwrap();
    let restarted = another_instance(&w.app).await;
    let (status, location, _) = get_page(&restarted, &session, "/runs").await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/login"));
    let (status, _, _) = get_page(&w.app, &session, "/runs").await;
    assert_eq!(status, 200, "the instance that still has the key keeps it");
}

#[tokio::test]
async fn the_session_cookie_carries_nothing_derived_from_the_api_key() {
    use base64::Engine;
    use sha2::Digest;
    let w = world(false).await;
    let (session, _) = signed_in(&w.app).await;
    let value = cookie_value(&session);
    let digest = sha2::Sha256::digest(API_KEY.as_bytes());
    let hex = tokenflow_server::auth::hash_key(API_KEY);
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut encodings = vec![hex.clone(), hex.to_uppercase(), API_KEY.to_owned()];
    encodings.extend(engines.iter().map(|e| e.encode(digest)));
    encodings.extend(engines.iter().map(|e| e.encode(&hex)));
    for encoded in &encodings {
        // Any 12 characters of an encoding would do to guess keys offline.
        assert!(
            !value.contains(&encoded[..12]),
            "the cookie holds {encoded}"
        );
    }
    // Whatever parts the value has, decoded, hold neither the hash nor its hex.
    for part in value.split('.') {
        for engine in &engines {
            if let Ok(bytes) = engine.decode(part) {
                assert!(
                    !bytes
                        .windows(12)
                        .any(|w| digest.windows(12).any(|d| d == w))
                );
                let text = String::from_utf8_lossy(&bytes).to_lowercase();
                assert!(!text.contains(&hex[..12]), "decoded cookie: {text}");
            }
        }
    }
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .unwrap();
    assert_eq!(decoded.len(), 32, "the cookie is a random session id");

    // The store names a configured key by a keyed reference, not by its hash either.
    let id_hash = tokenflow_server::auth::tokens::id_hash(value);
    let row = w
        .app
        .state
        .store
        .find_ui_session(&id_hash, w.app.state.clock.now())
        .await
        .unwrap()
        .unwrap();
    match row.owner {
        tokenflow_store::UiSessionOwner::ConfiguredKey(reference) => {
            assert_ne!(reference, hex);
            assert!(!reference.contains(&hex[..12]));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_session_is_refused_and_the_sweeper_purges_it() {
    let w = world(true).await;
    let (session, _) = signed_in(&w.app).await;
    let id_hash = tokenflow_server::auth::tokens::id_hash(cookie_value(&session));
    let signed_in_at = w.app.state.clock.now();
    w.app
        .clock
        .as_ref()
        .unwrap()
        .advance(time::Duration::hours(12));
    let (status, location, _) = get_page(&w.app, &session, "/runs").await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/login"));
    let store = &w.app.state.store;
    assert!(
        store
            .find_ui_session(&id_hash, signed_in_at)
            .await
            .unwrap()
            .is_some(),
        "still stored until the purge"
    );
    w.app.state.runner.sweep_once().await.unwrap();
    assert_eq!(
        store.find_ui_session(&id_hash, signed_in_at).await.unwrap(),
        None,
        "purged"
    );
}

#[tokio::test]
async fn control_characters_in_next_never_give_a_server_error() {
    let w = world(false).await;
    for bad in [
        "/\r/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\u{b}/evil.example",
        "/\0/evil.example",
        "/\u{7f}/evil.example",
        "/\t/evil.example",
        "\r\n//evil.example",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let page = client()
            .get(format!("{}/login?next={encoded}", w.app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{bad:?}");
        let login_cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        assert_eq!(value_of(&html, "next"), "&#x2f;runs", "{bad:?}");
        let token = value_of(&html, "csrf");
        for key in [API_KEY, "a-wrong-key"] {
            let response = client()
                .post(format!("{}/login", w.app.url))
                .header("cookie", &login_cookie)
                .form(&[("csrf", token.as_str()), ("api_key", key), ("next", bad)])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status < 500, "{bad:?}: {status}");
            if key == API_KEY {
                assert_eq!(status, 303);
                assert_eq!(response.headers()["location"], "/runs", "{bad:?}");
            } else {
                assert_eq!(status, 401);
                let html = response.text().await.unwrap();
                assert_eq!(value_of(&html, "next"), "&#x2f;runs");
            }
        }
    }
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
