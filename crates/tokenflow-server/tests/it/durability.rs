//! When a run is first written (docs/flows.md, "Durability"): a run whose first action is
//! repeatable (a client-credentials token) is created together with that action's record; before
//! any action that is not repeatable (an HTTP call) the run is always in the store.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Options, spawn_app};

/// A server that takes every request and answers it (`400`, `{"error":"invalid_client"}`) only
/// once released: the moment in between is "during the action".
struct Held {
    url: String,
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Held {
    async fn start() -> Held {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let arrived = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let (told, released) = (arrived.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                told.notify_one();
                released.notified().await;
                let body = r#"{"error":"invalid_client"}"#;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        Held {
            url,
            arrived,
            release,
        }
    }
}

fn one_action_flow(id: &str, action: &str) -> String {
    format!(
        "id: {id}\nactions:\n  first:\n{action}\nsteps:\n  - {{ from: start, to: first }}\n  - {{ from: first, to: stop }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_in_the_store_before_an_http_call_but_created_with_a_first_token_request() {
    let held = Held::start().await;
    let app = spawn_app(Options {
        config: format!(
            "[oauth_servers.held]\nclient_id = \"c\"\nclient_secret = \"held-secret\"\ntoken_url = \"{}/token\"\nscope = \"x\"\n",
            held.url
        ),
        flows: vec![
            (
                "token_first.yaml",
                one_action_flow(
                    "token_first",
                    "    type: oauth_server_login\n    oauth_server: held",
                ),
            ),
            (
                "http_first.yaml",
                one_action_flow(
                    "http_first",
                    &format!(
                        "    type: http_connector\n    input: {{ url: \"{}/data\" }}",
                        held.url
                    ),
                ),
            ),
        ],
        ..Options::default()
    })
    .await;
    let app = Arc::new(app);
    let runs_of = |flow: &'static str| {
        let app = app.clone();
        async move {
            let (status, body) = app.get_json(&format!("/api/runs?flow={flow}")).await;
            assert_eq!(status, 200);
            body["runs"].as_array().unwrap().clone()
        }
    };

    for (flow, stored_during_the_action) in [("http_first", true), ("token_first", false)] {
        let started = {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_json(&format!("/api/flows/{flow}/runs"), json!({}))
                    .await
            })
        };
        tokio::time::timeout(Duration::from_secs(10), held.arrived.notified())
            .await
            .expect("the action's request did not arrive");
        // The action is under way now.
        let during = runs_of(flow).await;
        if stored_during_the_action {
            assert_eq!(during.len(), 1, "{flow}: {during:?}");
            assert_eq!(during[0]["status"], "running", "{flow}: {during:?}");
        } else {
            assert!(during.is_empty(), "{flow}: {during:?}");
        }
        held.release.notify_one();
        let (status, run, _) = started.await.unwrap();
        assert_eq!(status, 200, "{flow}: {run}");
        assert_eq!(run["status"], "completed", "{flow}: {run}");
        // Either way the ended run is stored with its action's record.
        let id = run["id"].as_str().unwrap();
        let (status, stored) = app.get_json(&format!("/api/runs/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(stored["status"], "completed");
        assert_eq!(stored["actions"][0]["action"], "first", "{stored}");
        assert_eq!(runs_of(flow).await.len(), 1);
    }
}
