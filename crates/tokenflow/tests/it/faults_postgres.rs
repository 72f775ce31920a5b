//! PostgreSQL stopped under a running `tokenflow serve` and started again (docs/operations.md,
//! "When the database fails"): on a cluster of the test's own, since the machine's shared server
//! must not be stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_testkit::{Decision, Idp, PgCluster, sign_in, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::serve::{API_KEY, Site, get_status, http, post_run_with, terminate};

const WEB_SECRET: &str = "fault-web-secret";

/// An HTTP server that counts the requests it receives and answers none until released: the
/// runs calling it are executing, with an action whose outcome is not stored yet.
struct Peer {
    url: String,
    received: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl Peer {
    async fn start() -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let counter = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                let mut released = released.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|released| *released).await;
                    let body = r#"{"ok":true}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Peer {
            url,
            received,
            release,
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

/// Polls `check` every 50 ms until it holds; panics with `what` after a minute.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn runs(site: &Site) -> Vec<Value> {
    let (status, text) = get_status(site, "/api/runs?limit=100").await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body.as_array()
        .or_else(|| body["runs"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("a list of runs: {body}"))
}

/// Signs alice in for a waiting run; the callback completes it.
async fn complete(site: &Site, run: &Value) {
    let landed = sign_in(
        run["authorization_url"].as_str().unwrap(),
        &site.url("/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(
        http().get(landed.as_str()).send().await.unwrap().status(),
        200
    );
    let (_, text) = get_status(site, &format!("/api/runs/{}", run["id"].as_str().unwrap())).await;
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["status"], "completed", "{shown}");
}

#[tokio::test]
async fn postgres_stopped_under_running_and_waiting_runs_answers_503_and_after_its_restart_every_run_ends_once()
 {
    let idp = Idp::start().await;
    let cluster = PgCluster::start();
    let peer = Peer::start().await;
    let web = unique("fault-web");
    let call = format!(
        "id: call\nvariables:\n  body: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"{}\" }}\n    output: {{ content: body }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n",
        peer.url
    );
    let login = "id: profile\nvariables:\n  token: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: { scope: \"openid profile\" }\n    output: { access_token: token }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n".to_owned();
    // A lease long enough that a run's writes wait out the restart (half of it).
    let settings = format!(
        "database_url = \"{}\"\nrun_lease = 120\n[oauth_servers.idp]\nclient_id = \"{web}\"\nclient_secret = {{ env = \"SERVE_WEB_SECRET\" }}\nissuer = \"{}\"\n",
        cluster.url(),
        idp.issuer()
    );
    let site = Site::new(&settings, &[("call.yaml", call), ("profile.yaml", login)]);
    idp.web_client(&web, WEB_SECRET, &site.url("/oauth-callback"), json!({}))
        .await;
    let mut child = site.start().await;

    // Two runs wait for a user login, three are in the middle of their HTTP call.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (status, run, _) = post_run_with(&site, "profile", json!({})).await;
        assert_eq!((status, &run["status"]), (201, &json!("waiting")), "{run}");
        waiting.push(run);
    }
    let mut executing = Vec::new();
    for _ in 0..3 {
        let site_url = site.url("/api/flows/call/runs");
        executing.push(tokio::spawn(async move {
            let response = http()
                .post(site_url)
                .bearer_auth(API_KEY)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    until("the three runs call the peer", || async {
        peer.received() == 3
    })
    .await;

    // The database goes away as in a crash; then the calls answer, and their outcomes cannot be
    // stored.
    cluster.stop_immediate();
    peer.release.send(true).unwrap();

    let (status, text) = get_status(&site, "/readyz").await;
    assert_eq!(status, 503, "{text}");
    let response = http()
        .get(site.url("/api/runs"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "store_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("database is unavailable"),
        "{body}"
    );
    let (status, body, text) = post_run_with(&site, "profile", json!({})).await;
    assert_eq!(
        (status, &body["error"]),
        (503, &json!("store_unavailable")),
        "{text}"
    );
    assert!(
        executing.iter().all(|task| !task.is_finished()),
        "the executing runs wait for the database"
    );

    cluster.start_again();
    until("/readyz says ready", || async {
        get_status(&site, "/readyz").await.0 == 200
    })
    .await;
    for task in executing {
        let (status, run) = task.await.unwrap();
        assert_eq!(
            (status, &run["status"]),
            (200, &json!("completed")),
            "{run}"
        );
        assert_eq!(run["variables"]["body"], r#"{"ok":true}"#, "{run}");
    }
    assert_eq!(peer.received(), 3, "no call was made twice");

    // The waiting runs still wait, and complete: one now, one after PostgreSQL was stopped again,
    // the way an operator stops it (`-m fast`: sessions ended, a clean shutdown).
    complete(&site, &waiting[0]).await;
    cluster.stop_fast();
    assert_eq!(get_status(&site, "/readyz").await.0, 503);
    cluster.start_again();
    until("/readyz says ready again", || async {
        get_status(&site, "/readyz").await.0 == 200
    })
    .await;
    complete(&site, &waiting[1]).await;

    // Five runs, each once, each completed: none lost, none duplicated, none half-stored.
    let all = runs(&site).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(
        all.iter().all(|run| run["status"] == "completed"),
        "{all:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server never restarted"
    );
    terminate(child).await;
}
