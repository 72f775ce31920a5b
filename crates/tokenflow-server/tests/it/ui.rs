//! The web UI over plain HTTP: sessions, CSRF, and pages without secrets.

use reqwest::redirect::Policy;

use crate::support::{API_KEY, TestApp, world};

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
    for path in [
        "/runs".to_owned(),
        format!("/runs/{id}"),
        "/flows".to_owned(),
        "/flows/profile".to_owned(),
        "/servers".to_owned(),
        "/servers/idp/edit".to_owned(),
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
