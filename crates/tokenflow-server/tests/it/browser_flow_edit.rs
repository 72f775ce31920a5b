//! The flow editor in a real headless Chromium: validation as you type, saving a version,
//! starting it, and the diff of two versions (docs/flows.md, "Editing flows in the browser").

use fantoccini::Client;
use tokenflow_testkit::browser::{Browser, wait_for, wait_for_url};

use crate::browser::sign_in_to_ui;
use crate::flow_edit::{pure_app, versions};
use crate::support::PURE_FLOW;

/// Replaces the editor's text by typing `yaml` into it, as a person would.
async fn type_flow(client: &Client, yaml: &str) {
    let editor = wait_for(client, "#yaml-editor", 10).await;
    editor.clear().await.unwrap();
    editor.send_keys(yaml).await.unwrap();
}

#[tokio::test]
async fn an_edit_with_a_yaml_error_shows_the_error_at_its_line_and_cannot_be_saved() {
    let app = pure_app().await;
    let browser = Browser::start().await;
    let base = app.url.clone();
    browser
        .check("flow_edit_error", |client| async move {
            sign_in_to_ui(&client, &base).await;
            client
                .goto(&format!("{base}/flows/pure/edit"))
                .await
                .unwrap();
            wait_for(&client, "#validation-status.ok", 10).await;
            wait_for(&client, "#preview svg", 10).await;
            // A YAML syntax error on line 7: a second `:` in a plain value.
            type_flow(
                &client,
                &PURE_FLOW.replace("type: extract_json", "type: extract_json: x"),
            )
            .await;
            let gutter = wait_for(&client, "#gutter .ln.bad[data-line='7']", 10).await;
            assert_eq!(gutter.text().await.unwrap(), "7");
            let marker = wait_for(&client, "#markers .marker[data-line='7']", 10).await;
            let note = marker.text().await.unwrap();
            assert!(
                note.contains("column 23") && note.contains("mapping values are not allowed"),
                "{note}"
            );
            let listed = wait_for(&client, "#problems li[data-line='7']", 10)
                .await
                .text()
                .await
                .unwrap();
            assert!(listed.starts_with("line 7, column 23:"), "{listed}");
            assert_eq!(
                client
                    .find_all(fantoccini::Locator::Css("#gutter .ln.bad"))
                    .await
                    .unwrap()
                    .len(),
                1,
                "only line 7 is marked"
            );
            let save = wait_for(&client, "#save:disabled", 10).await;
            wait_for(&client, "#preview.stale", 10).await;
            // The README's editor screenshot comes from here: SCREENSHOTS_DIR=<the repository's
            // docs/screenshots> (a relative path counts from this crate's folder).
            if let Some(dir) = std::env::var_os("SCREENSHOTS_DIR") {
                let dir = std::path::PathBuf::from(dir);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    dir.join("flow-editor.png"),
                    client.screenshot().await.unwrap(),
                )
                .unwrap();
            }
            // Clicking it (or pressing Enter in the form) submits nothing.
            assert!(save.click().await.is_err() || !save.is_enabled().await.unwrap());
            assert_eq!(
                client.current_url().await.unwrap().path(),
                "/flows/pure/edit"
            );
        })
        .await;
    assert_eq!(versions(&app, "pure").await, vec![1], "nothing was saved");
    browser.close().await;
}

#[tokio::test]
async fn a_fixed_edit_saves_version_two_its_run_uses_it_and_the_diff_shows_the_changed_line() {
    let app = pure_app().await;
    let browser = Browser::start().await;
    let base = app.url.clone();
    let run_id = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = run_id.clone();
    browser
        .check("flow_edit_save", |client| async move {
            sign_in_to_ui(&client, &base).await;
            client.goto(&format!("{base}/flows/pure")).await.unwrap();
            wait_for(&client, "#edit-flow", 10)
                .await
                .click()
                .await
                .unwrap();
            wait_for_url(&client, &format!("{base}/flows/pure/edit"), 10).await;
            // First an error, then its fix: the marker goes and saving is allowed again.
            type_flow(&client, &PURE_FLOW.replace("var: doc", "var: dok")).await;
            wait_for(&client, "#gutter .ln.bad[data-line='8']", 10).await;
            wait_for(&client, "#save:disabled", 10).await;
            let fixed = PURE_FLOW.replace(r#""{\"a\": 7}""#, r#""{\"a\": 8}""#);
            type_flow(&client, &fixed).await;
            wait_for(&client, "#validation-status.ok", 10).await;
            wait_for(&client, "#preview:not(.stale) svg", 10).await;
            assert!(
                client
                    .find_all(fantoccini::Locator::Css(
                        "#gutter .ln.bad, #markers .marker"
                    ))
                    .await
                    .unwrap()
                    .is_empty()
            );
            wait_for(&client, "#save:enabled", 10)
                .await
                .click()
                .await
                .unwrap();
            wait_for(&client, "#recent-runs", 10).await;
            let h1 = wait_for(&client, "h1", 10).await.text().await.unwrap();
            assert!(h1.contains("v2"), "{h1}");
            // Start runs the new version.
            wait_for(&client, "#start-pure", 10)
                .await
                .click()
                .await
                .unwrap();
            let url = wait_for_url(&client, &format!("{base}/runs/"), 10).await;
            *seen.lock().unwrap() = url.path().trim_start_matches("/runs/").to_owned();
            // The diff of the two versions shows the changed line.
            client
                .goto(&format!("{base}/flows/pure/versions"))
                .await
                .unwrap();
            wait_for(&client, "#show-diff", 10)
                .await
                .click()
                .await
                .unwrap();
            wait_for(&client, "#diff", 10).await;
            let title = wait_for(&client, "h1", 10).await.text().await.unwrap();
            assert_eq!(title, "pure: v1 → v2");
            for (row, number, text) in [
                ("removed", "3", r#"doc: { default: "{\"a\": 7}" }"#),
                ("added", "3", r#"doc: { default: "{\"a\": 8}" }"#),
            ] {
                let cells = client
                    .find_all(fantoccini::Locator::Css(&format!("#diff tr.{row} td")))
                    .await
                    .unwrap();
                let mut shown = Vec::new();
                for cell in cells {
                    shown.push(cell.text().await.unwrap().trim().to_owned());
                }
                let mark = if row == "added" { "+" } else { "-" };
                let numbers = if row == "added" {
                    ["", number]
                } else {
                    [number, ""]
                };
                assert_eq!(
                    shown,
                    [numbers[0], numbers[1], mark, text],
                    "the one {row} line"
                );
            }
        })
        .await;
    browser.close().await;
    let run_id = run_id.lock().unwrap().clone();
    let (status, run) = app.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["flow_version"], 2, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(versions(&app, "pure").await, vec![2, 1]);
}
