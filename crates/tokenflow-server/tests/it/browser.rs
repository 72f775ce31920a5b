//! The web UI in a real headless Chromium (Debian's chromium + chromium-driver).

use fantoccini::{Client, Locator};
use serde_json::json;
use tokenflow_testkit::browser::{Browser, idp_sign_in, wait_for, wait_for_url};
use tokenflow_testkit::{Decision, sign_in, unique};

use crate::support::{API_KEY, World, world};

pub(crate) async fn sign_in_to_ui(client: &Client, base: &str) {
    client.goto(&format!("{base}/runs")).await.unwrap();
    wait_for_url(client, &format!("{base}/login"), 10).await;
    submit_sign_in(client, base).await;
    wait_for_url(client, &format!("{base}/runs"), 10).await;
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css, 10).await.text().await.unwrap()
}

async fn assert_no_tokens(w: &World, html: &str) {
    let tokens = w.idp.issued_tokens(&w.client).await;
    assert!(!tokens.is_empty());
    for token in tokens
        .iter()
        .map(String::as_str)
        .chain(["srv-web-secret", API_KEY])
    {
        assert!(
            !html.contains(token),
            "a raw token or secret is in the page HTML"
        );
    }
}

#[tokio::test]
async fn a_user_login_started_from_the_ui_lands_on_the_completed_run() {
    let w = world(false).await;
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    let idp = w.idp.authorization_url();
    browser
        .check("ui_user_login_allow", |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/flows")).await.unwrap();
            wait_for(&client, "#start-profile", 10)
                .await
                .click()
                .await
                .unwrap();
            wait_for_url(&client, &idp.replace("/auth", "/interaction"), 20).await;
            idp_sign_in(&client, "alice", "alice-password", true).await;
            wait_for_url(&client, &format!("{base}/runs/"), 20).await;
            assert_eq!(text(&client, "#run-status").await, "completed");
            for action in ["login", "me", "pick"] {
                let item =
                    wait_for(&client, &format!("li.action[data-action='{action}']"), 10).await;
                assert_eq!(
                    item.attr("data-status-code").await.unwrap().as_deref(),
                    Some("0"),
                    "{action}"
                );
            }
            let html = client.source().await.unwrap();
            assert!(
                html.contains("Alice Example"),
                "the profile read with the token is shown"
            );
            assert!(html.contains("sha256:"), "secrets appear as fingerprints");
            // The README's screenshots come from here: SCREENSHOTS_DIR=docs/screenshots.
            if let Some(dir) = std::env::var_os("SCREENSHOTS_DIR") {
                let dir = std::path::PathBuf::from(dir);
                std::fs::create_dir_all(&dir).unwrap();
                // The run's path comes first on the page (ui_run.rs shoots it); this is the timeline.
                let timeline = "document.getElementById('timeline').scrollIntoView(); return null;";
                client.execute(timeline, vec![]).await.unwrap();
                std::fs::write(
                    dir.join("run-timeline.png"),
                    client.screenshot().await.unwrap(),
                )
                .unwrap();
                client.goto(&format!("{base}/flows/profile")).await.unwrap();
                wait_for(&client, "#diagram svg", 10).await;
                std::fs::write(
                    dir.join("flow-diagram.png"),
                    client.screenshot().await.unwrap(),
                )
                .unwrap();
            }
        })
        .await;
    let html = browser.client.source().await.unwrap();
    assert_no_tokens(&w, &html).await;
    browser.close().await;
}

#[tokio::test]
async fn deny_at_consent_shows_minus_two_aborted_and_the_failure_branch() {
    let w = world(false).await;
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    browser
        .check("ui_user_login_deny", |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/flows/profile")).await.unwrap();
            wait_for(&client, "#start-profile", 10)
                .await
                .click()
                .await
                .unwrap();
            idp_sign_in(&client, "alice", "alice-password", false).await;
            wait_for_url(&client, &format!("{base}/runs/"), 20).await;
            let login = wait_for(&client, "li.action[data-action='login']", 10).await;
            assert_eq!(
                login.attr("data-status-code").await.unwrap().as_deref(),
                Some("-2")
            );
            let shown = login.text().await.unwrap();
            assert!(shown.contains("-2") && shown.contains("aborted"), "{shown}");
            wait_for(&client, "li.action[data-action='denied']", 10).await;
            assert_eq!(text(&client, "#run-status").await, "completed");
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn an_oauth_server_created_in_the_ui_tests_green_and_its_secret_never_shows() {
    let w = world(false).await;
    let cc = unique("ui-cc");
    let secret = "ui-created-secret-value-1";
    w.idp.client_credentials_client(&cc, secret).await;
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    let issuer = w.idp.issuer();
    browser
        .check("ui_oauth_server", move |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/servers")).await.unwrap();
            wait_for(&client, "#new-server", 10)
                .await
                .click()
                .await
                .unwrap();
            for (field, value) in [
                ("#id", "uisvc"),
                ("#client_id", cc.as_str()),
                ("#client_secret", secret),
                ("#issuer", issuer.as_str()),
                ("#scope", "api:read"),
            ] {
                wait_for(&client, field, 10)
                    .await
                    .send_keys(value)
                    .await
                    .unwrap();
            }
            client
                .find(Locator::Css("#save-server"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for_url(&client, &format!("{base}/servers"), 10).await;
            wait_for(&client, "#test-uisvc", 10)
                .await
                .click()
                .await
                .unwrap();
            let result = wait_for(&client, "#test-result", 20).await;
            assert_eq!(
                result.attr("data-status-code").await.unwrap().as_deref(),
                Some("0"),
                "{}",
                result.text().await.unwrap()
            );
            let mut pages = client.source().await.unwrap();
            client
                .goto(&format!("{base}/servers/uisvc/edit"))
                .await
                .unwrap();
            wait_for(&client, "#server-form", 10).await;
            pages.push_str(&client.source().await.unwrap());
            client.goto(&format!("{base}/servers")).await.unwrap();
            wait_for(&client, "#servers", 10).await;
            pages.push_str(&client.source().await.unwrap());
            assert!(!pages.contains(secret), "the client secret is in a page");
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_waiting_run_page_updates_by_itself_when_the_callback_arrives() {
    let w = world(false).await;
    let (status, run, _) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 201);
    let id = run["id"].as_str().unwrap().to_owned();
    let url = run["authorization_url"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    let client = browser.client.clone();
    sign_in_to_ui(&client, &base).await;
    client.goto(&format!("{base}/runs/{id}")).await.unwrap();
    assert_eq!(text(&client, "#run-status").await, "waiting");
    wait_for(&client, "#authorization-link", 10).await;
    // A marker that a reload would wipe out.
    client
        .execute("window.__noReload = 42; return null;", vec![])
        .await
        .unwrap();

    // The person signs in elsewhere (another device); the callback lands on the server.
    let landed = sign_in(
        &url,
        &format!("{base}/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(
        w.app
            .http
            .get(landed.as_str())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let callback_base = base.clone();
    browser
        .check("ui_live_update", move |client| async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                // Read through a script: the element is replaced when the page updates itself.
                let status = client
                    .execute("var e = document.getElementById('run-status'); return e ? e.textContent : '';", vec![])
                    .await
                    .unwrap();
                let status = status.as_str().unwrap_or_default().to_owned();
                if status == "completed" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the page did not update by itself (still {status})");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let marker = client.execute("return window.__noReload;", vec![]).await.unwrap();
            assert_eq!(marker, json!(42), "updated without a reload");
            wait_for(&client, "li.action[data-action='pick']", 5).await;
            assert!(client.current_url().await.unwrap().as_str().starts_with(&callback_base));
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn pages_without_a_session_go_to_sign_in_in_the_browser() {
    let w = world(false).await;
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    browser
        .check("ui_requires_sign_in", |client| async move {
            client.goto(&format!("{base}/servers")).await.unwrap();
            let url = wait_for_url(&client, &format!("{base}/login"), 10).await;
            assert!(url.as_str().contains("next=%2Fservers"), "{url}");
            wait_for(&client, "#api_key", 10)
                .await
                .send_keys("wrong-key")
                .await
                .unwrap();
            client
                .find(Locator::Css("#sign-in"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            assert!(text(&client, "#login-error").await.contains("not valid"));
            wait_for(&client, "#api_key", 10)
                .await
                .send_keys(API_KEY)
                .await
                .unwrap();
            client
                .find(Locator::Css("#sign-in"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_for_url(&client, &format!("{base}/servers"), 10).await;
        })
        .await;
    browser.close().await;
}

/// Signs in on the page that is open and returns where the browser lands.
pub(crate) async fn submit_sign_in(client: &Client, base: &str) -> String {
    wait_for(client, "#api_key", 10)
        .await
        .send_keys(API_KEY)
        .await
        .unwrap();
    client
        .find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The sign-in page is on this origin too: wait until the browser left it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let url = client.current_url().await.map(|u| u.to_string());
        if let Ok(url) = url
            && !url.starts_with(&format!("{base}/login"))
        {
            return url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser stayed on the sign-in page"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn signing_in_with_a_crafted_next_lands_on_the_default_page_of_this_origin() {
    let w = world(false).await;
    let browser = Browser::start().await;
    let base = w.app.url.clone();
    browser
        .check("ui_next_open_redirect", |client| async move {
            // As they would appear in a link's query string.
            for next in [
                "%2F%2Fevil.example",
                "%5C%5Cevil.example",
                "/%5Cevil.example",
                "/%09/evil.example",
                "/\t/evil.example",
                "/%0d%0a/evil.example",
                "%0d%0a//evil.example",
                "/%0b/evil.example",
                "/%252F%252Fevil.example",
                "/%255Cevil.example",
                "/%2509/evil.example",
            ] {
                // The link an attacker would send.
                client
                    .goto(&format!("{base}/login?next={next}"))
                    .await
                    .unwrap();
                let landed = submit_sign_in(&client, &base).await;
                assert_eq!(landed, format!("{base}/dashboard"), "next={next:?}");
                // The same value put into the sign-in form itself.
                client.goto(&format!("{base}/login")).await.unwrap();
                wait_for(&client, "#api_key", 10).await;
                client
                    .execute(
                        "document.querySelector('input[name=next]').value = decodeURIComponent(arguments[0]); return null;",
                        vec![json!(next)],
                    )
                    .await
                    .unwrap();
                let landed = submit_sign_in(&client, &base).await;
                assert_eq!(landed, format!("{base}/dashboard"), "form next={next:?}");
            }
            // A path of this site is still followed.
            client
                .goto(&format!("{base}/login?next=%2Fservers"))
                .await
                .unwrap();
            let landed = submit_sign_in(&client, &base).await;
            assert_eq!(landed, format!("{base}/servers"));
        })
        .await;
    browser.close().await;
}
