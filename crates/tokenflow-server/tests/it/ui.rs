//! The web UI over plain HTTP: sessions, CSRF, and pages without secrets.

use reqwest::redirect::Policy;

use crate::support::{API_KEY, TestApp, world};

/// Signs in like the browser does and returns (session cookie, CSRF token of a page).
pub(crate) async fn signed_in(app: &TestApp) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let (login_cookie, token) = login_form(&http, &app.url).await;
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

/// The sign-in page's cookie (`name=value`) and the CSRF token of its form.
pub(crate) async fn login_form(http: &reqwest::Client, url: &str) -> (String, String) {
    let page = http.get(format!("{url}/login")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, value_of(&page.text().await.unwrap(), "csrf"))
}

pub(crate) fn value_of(html: &str, name: &str) -> String {
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
        "/dashboard",
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
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn post_form(
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

pub(crate) async fn get_page(
    app: &TestApp,
    session: &str,
    path: &str,
) -> (u16, Option<String>, String) {
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
