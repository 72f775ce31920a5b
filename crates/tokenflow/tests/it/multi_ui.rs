//! The web UI across several `tokenflow serve` processes on one PostgreSQL database: its
//! sessions live in the store, so signing out on one instance ends the session on all.

use crate::multi::{API_KEY, Database, get_json, http, instance};

/// The `value` of the form field `name` in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// The `name=value` part of the `Set-Cookie` header that sets `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signing_out_on_one_instance_ends_the_ui_session_on_the_others() {
    let db = Database::create();
    let a = instance(&db, None, "", &[]).await;
    let b = instance(&db, None, "", &[]).await;

    // Sign in on A, as the browser does.
    let page = http().get(format!("{}/login", a.url)).send().await.unwrap();
    let login_cookie = set_cookie(&page, "tokenflow_login_csrf");
    let token = field(&page.text().await.unwrap(), "csrf");
    let signed_in = http()
        .post(format!("{}/login", a.url))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("api_key", API_KEY),
            ("next", "/runs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = set_cookie(&signed_in, "tokenflow_session");
    let page = |base: &str, path: &str| {
        http()
            .get(format!("{base}{path}"))
            .header("cookie", &session)
            .send()
    };

    // B knows the session and gives the same CSRF token.
    let on_b = page(&b.url, "/servers").await.unwrap();
    assert_eq!(on_b.status(), 200);
    let csrf = field(&on_b.text().await.unwrap(), "csrf");

    // Sign out on B.
    let out = http()
        .post(format!("{}/logout", b.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);

    // A refuses the old cookie for pages and for CSRF-protected posts.
    let runs = page(&a.url, "/runs").await.unwrap();
    assert_eq!(runs.status(), 303);
    assert!(
        runs.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let create = http()
        .post(format!("{}/servers/create", a.url))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", "after-sign-out"),
            ("client_id", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 303);
    assert!(
        create.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let servers = get_json(&a.url, "/api/oauth-servers").await;
    assert!(!servers.to_string().contains("after-sign-out"), "{servers}");
    drop((a.child, b.child));
}
