//! Abuse limits over real sockets (docs/security.md, "Failed sign-ins" and "Storage"): failed
//! API keys and UI sign-ins are limited per client address, a flow's waiting runs are bounded,
//! and retention deletes ended runs through the sweeper.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::redirect::Policy;
use serde_json::{Map, Value, json};
use tokenflow_server::auth::attempts::{MAX_FAILURES, WINDOW};
use tokenflow_store::RunFilter;
use tokenflow_testkit::{Idp, unique};

use crate::support::{API_KEY, Options, PURE_FLOW, TestApp, build_app, login_flow, spawn_app};
use crate::ui::login_form;

/// A client whose connections come from `address` (any of 127.0.0.0/8 reaches the server).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn get_runs(app: &TestApp, client: &reqwest::Client, key: &str) -> reqwest::Response {
    client
        .get(format!("{}/api/runs", app.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_api_keys_from_one_address_get_429_with_retry_after_and_other_addresses_are_served()
{
    let app = spawn_app(Options {
        manual_clock: true,
        ..Options::default()
    })
    .await;
    let attacker = client_from("127.0.0.2");
    let neighbour = client_from("127.0.0.1");
    for _ in 0..MAX_FAILURES {
        assert_eq!(get_runs(&app, &attacker, "wrong-key").await.status(), 401);
    }
    // No key at all counts as well, and is refused the same way once the address is blocked.
    let refused = attacker
        .get(format!("{}/api/runs", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=WINDOW.whole_seconds().unsigned_abs()).contains(&retry_after),
        "{retry_after}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_failed_attempts");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("try again in {retry_after} seconds")),
        "{body}"
    );
    // While blocked, the right key is refused too: guessing cannot go on.
    assert_eq!(get_runs(&app, &attacker, API_KEY).await.status(), 429);
    // Another address is served, and its own failures are its own.
    assert_eq!(get_runs(&app, &neighbour, API_KEY).await.status(), 200);
    assert_eq!(get_runs(&app, &neighbour, "wrong-key").await.status(), 401);

    app.clock
        .as_ref()
        .unwrap()
        .advance(WINDOW + time::Duration::seconds(1));
    assert_eq!(get_runs(&app, &attacker, API_KEY).await.status(), 200);
}

#[tokio::test]
async fn failed_ui_sign_ins_from_one_address_get_a_429_page_and_other_addresses_sign_in() {
    let app = spawn_app(Options::default()).await;
    let attacker = client_from("127.0.0.3");
    let sign_in = |client: reqwest::Client, key: &'static str| {
        let url = app.url.clone();
        async move {
            let (cookie, token) = login_form(&client, &url).await;
            client
                .post(format!("{url}/login"))
                .header("cookie", cookie)
                .form(&[("csrf", token.as_str()), ("api_key", key)])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..MAX_FAILURES {
        assert_eq!(sign_in(attacker.clone(), "wrong-key").await.status(), 401);
    }
    let refused = sign_in(attacker.clone(), API_KEY).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Too many failed sign-ins from your address"),
        "{page}"
    );
    assert!(!page.contains(API_KEY));
    // The API from that address is blocked too: one count per address.
    assert_eq!(get_runs(&app, &attacker, API_KEY).await.status(), 429);
    let other = sign_in(client_from("127.0.0.1"), API_KEY).await;
    assert_eq!(other.status(), 303);
}

#[tokio::test]
async fn starting_a_run_of_a_flow_with_max_waiting_runs_is_refused_with_429_and_stores_nothing() {
    let idp = Idp::start().await;
    let client = unique("srv-web");
    let app = spawn_app(Options {
        config: format!(
            "max_waiting_runs_per_flow = 2\n[oauth_servers.idp]\nclient_id = \"{client}\"\nclient_secret = \"srv-web-secret\"\nissuer = \"{}\"\n",
            idp.issuer()
        ),
        flows: vec![
            ("profile.yaml", login_flow(&idp)),
            ("pure.yaml", PURE_FLOW.to_owned()),
        ],
        ..Options::default()
    })
    .await;
    for _ in 0..2 {
        let (status, body, _) = app.post_json("/api/flows/profile/runs", json!({})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, _) = app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_waiting_runs");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_waiting_runs_per_flow"),
        "{body}"
    );
    let runs = app
        .state
        .store
        .list_runs(&RunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 2, "the refused run was not stored");
    // Other flows start as before.
    let (status, body, _) = app.post_json("/api/flows/pure/runs", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // Once a waiting run ends, there is room again.
    let waiting = &runs[0].id;
    let cancelled = app
        .http
        .delete(format!("{}/api/runs/{waiting}", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let (status, body, _) = app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_sweeper_deletes_ended_runs_beyond_max_runs_per_flow_and_older_than_max_age() {
    let app = build_app(Options {
        config: "retention = { max_age = \"2d\", max_runs_per_flow = 3 }\n".to_owned(),
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        manual_clock: true,
        ..Options::default()
    })
    .await;
    let clock = app.clock.clone().unwrap();
    let runner = &app.state.runner;
    let mut started = Vec::new();
    for _ in 0..5 {
        let view = runner.start("pure", Map::new(), None).await.unwrap();
        started.push(view.run.id.clone());
        clock.advance(Duration::from_secs(1).try_into().unwrap());
    }
    runner.sweep_once().await.unwrap();
    let kept = |runs: Vec<tokenflow_store::RunSummary>| {
        let mut ids: Vec<String> = runs.into_iter().map(|run| run.id).collect();
        ids.sort();
        ids
    };
    let mut newest = started[2..].to_vec();
    newest.sort();
    let store = &app.state.store;
    assert_eq!(
        kept(store.list_runs(&RunFilter::default()).await.unwrap()),
        newest,
        "the three newest ended runs are kept"
    );
    assert_eq!(store.action_record_count(&started[0]).await.unwrap(), 0);

    clock.advance(time::Duration::days(2) + time::Duration::hours(1));
    runner.sweep_once().await.unwrap();
    assert!(
        store
            .list_runs(&RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let metrics = app.state.metrics.encode();
    assert!(
        metrics.contains("tokenflow_runs_purged_total 5"),
        "{metrics}"
    );
}
