//! The dashboard in a real headless Chromium: the counts of the runs a test made, each chart with
//! its text alternative, and switching windows. Also writes the README's screenshot
//! (SCREENSHOTS_DIR=docs/screenshots).

use fantoccini::{Client, Locator};
use serde_json::json;
use time::OffsetDateTime;
use tokenflow_core::{SecretString, VaultEntryState};
use tokenflow_store::VaultEntryRow;
use tokenflow_testkit::browser::{Browser, wait_for, wait_for_url};
use tokenflow_testkit::{Idp, unique};

use crate::browser::submit_sign_in;
use crate::support::{Options, PURE_FLOW, TestApp, spawn_app};

const CHARTS: [&str; 5] = [
    "chart-runs",
    "chart-durations",
    "chart-failures",
    "chart-tokens",
    "chart-vault",
];

/// A client-credentials token at `server`, then the end; when the IdP refuses it, no step holds
/// and the run fails.
fn token_flow(id: &str, server: &str) -> String {
    format!(
        r#"id: {id}
variables:
  token: {{ secret: true }}
actions:
  get:
    type: oauth_server_login
    oauth_server: {server}
    input: {{ scope: "api:read" }}
    output: {{ access_token: token }}
steps:
  - {{ from: start, to: get }}
  - {{ from: get, to: stop, when: successful }}
"#
    )
}

async fn start(app: &TestApp, flow: &str, times: usize) {
    for _ in 0..times {
        let (status, run, _) = app
            .post_json(&format!("/api/flows/{flow}/runs"), json!({}))
            .await;
        assert_eq!(status, 200, "{run}");
    }
}

fn entry(name: &str, state: VaultEntryState, expires_at: Option<OffsetDateTime>) -> VaultEntryRow {
    VaultEntryRow {
        name: name.into(),
        server_id: "svc".into(),
        access_token: Some(SecretString::new("vault-access-token-value")),
        refresh_token: None,
        expires_at,
        granted_scopes: None,
        state,
        last_refresh_at: None,
        last_refresh_outcome: None,
        version: 0,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css, 10).await.text().await.unwrap()
}

/// Each chart is an accessible image with a title and a description, beside a table.
async fn charts_have_text_alternatives(client: &Client) {
    for id in CHARTS {
        let svg = wait_for(client, &format!("svg#{id}[role=img]"), 10).await;
        assert_eq!(
            svg.attr("aria-labelledby").await.unwrap().as_deref(),
            Some(format!("{id}-title {id}-desc").as_str())
        );
        for part in ["title", "desc"] {
            let shown = client
                .find(Locator::Css(&format!("#{id}-{part}")))
                .await
                .unwrap()
                .html(true)
                .await
                .unwrap();
            assert!(!shown.trim().is_empty(), "{id} has no {part}");
        }
    }
    for table in ["runs", "durations", "failures", "tokens", "vault"] {
        wait_for(client, &format!("table#table-{table}"), 10).await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_runs_the_test_made_with_each_chart_and_its_text_alternative() {
    let idp = Idp::start().await;
    let client = idp
        .client_credentials_client(&unique("dash-cc"), "dash-cc-secret-value")
        .await;
    let app = spawn_app(Options {
        config: format!(
            "[oauth_servers.svc]\nclient_id = \"{id}\"\nclient_secret = \"dash-cc-secret-value\"\ntoken_url = \"{url}\"\n\
             [oauth_servers.bad]\nclient_id = \"{id}\"\nclient_secret = \"not-the-secret\"\ntoken_url = \"{url}\"\n",
            id = client.id,
            url = idp.token_url()
        ),
        flows: vec![
            ("token.yaml", token_flow("token", "svc")),
            ("broken.yaml", token_flow("broken", "bad")),
            ("pure.yaml", PURE_FLOW.to_owned()),
        ],
        ..Options::default()
    })
    .await;
    // 3 token runs (1 token request, then 2 cache hits) and 2 pure runs complete; 2 fail.
    start(&app, "token", 3).await;
    start(&app, "pure", 2).await;
    start(&app, "broken", 2).await;
    let now = app.state.clock.now();
    for vault in [
        entry(
            "soon",
            VaultEntryState::Ok,
            Some(now + time::Duration::minutes(30)),
        ),
        entry("gone", VaultEntryState::NeedsLogin, None),
    ] {
        app.state.store.put_vault_entry(&vault).await.unwrap();
    }

    let browser = Browser::start().await;
    let base = app.url.clone();
    browser
        .check("ui_dashboard", |client| async move {
            // The landing page: `/` after sign-in is the dashboard.
            client.goto(&format!("{base}/")).await.unwrap();
            wait_for_url(&client, &format!("{base}/login"), 10).await;
            let landed = submit_sign_in(&client, &base).await;
            assert_eq!(landed, format!("{base}/dashboard"));
            assert_eq!(
                text(&client, "#window-span").await.split(':').next(),
                Some("Last day")
            );
            for (id, count) in [
                ("#total-completed", "5"),
                ("#total-failed", "2"),
                ("#total-cancelled", "0"),
                ("#total-all", "7"),
                ("#vault-ok", "1"),
                ("#vault-needs-login", "1"),
            ] {
                assert_eq!(text(&client, id).await, count, "{id}");
            }
            charts_have_text_alternatives(&client).await;
            // Inner HTML: a description is not drawn, so WebDriver's text of it is empty.
            let desc = client
                .find(Locator::Css("#chart-runs-desc"))
                .await
                .unwrap()
                .html(true)
                .await
                .unwrap();
            assert!(desc.contains("5 completed, 2 failed"), "{desc}");

            let failures = text(&client, "#table-failures tr[data-flow=broken]").await;
            assert!(failures.contains("2 × oauth_server_login"), "{failures}");
            assert!(failures.contains("invalid_client"), "{failures}");
            let tokens = client
                .find(Locator::Css("#table-tokens tr[data-server=svc]"))
                .await
                .unwrap()
                .html(false)
                .await
                .unwrap();
            assert!(
                tokens.contains("<td>svc</td><td>1</td><td>2</td>"),
                "1 token request, 2 cache hits: {tokens}"
            );
            client
                .find(Locator::Css("#table-durations tr[data-flow=token]"))
                .await
                .unwrap();
            client
                .find(Locator::Css("#table-vault tr[data-entry=soon]"))
                .await
                .unwrap();

            // The README's screenshot comes from here: SCREENSHOTS_DIR=docs/screenshots.
            if let Some(dir) = std::env::var_os("SCREENSHOTS_DIR") {
                let dir = std::path::PathBuf::from(dir);
                std::fs::create_dir_all(&dir).unwrap();
                client.set_window_size(1280, 2000).await.unwrap();
                std::fs::write(
                    dir.join("dashboard.png"),
                    client.screenshot().await.unwrap(),
                )
                .unwrap();
            }

            // Other windows: the same runs ended within the last hour and week.
            for window in ["hour", "week"] {
                wait_for(&client, &format!("#window-{window}"), 10)
                    .await
                    .click()
                    .await
                    .unwrap();
                wait_for_url(&client, &format!("{base}/dashboard?window={window}"), 10).await;
                let span =
                    wait_for(&client, &format!("#window-span[data-window={window}]"), 10).await;
                assert!(span.text().await.unwrap().starts_with("Last "));
                assert_eq!(text(&client, "#total-completed").await, "5", "{window}");
                assert_eq!(text(&client, "#total-failed").await, "2", "{window}");
                charts_have_text_alternatives(&client).await;
            }
            let html = client.source().await.unwrap();
            // An unknown window is a clear error, not a page of zeros.
            client
                .goto(&format!("{base}/dashboard?window=year"))
                .await
                .unwrap();
            assert_eq!(text(&client, "#title").await, "Unknown window");
            assert!(
                !html.contains("vault-access-token-value"),
                "a token is in the page"
            );
            assert!(
                !html.contains("dash-cc-secret-value"),
                "a secret is in the page"
            );
        })
        .await;
    browser.close().await;
}
