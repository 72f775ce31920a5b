//! `kill -9` of `tokenflow serve` at each point of a run's life (docs/operations.md, "What
//! happens when …"). The process is stopped at the bad moment by a fault proxy in front of the
//! real IdP: `Stall` holds a request before the IdP sees it, `HoldAnswer` lets the IdP act and
//! answer and keeps the answer from tokenflow — so the kill lands after the effect and before
//! tokenflow could record it. No hook in the product is needed (ARCHITECTURE.md, "Decisions").

use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_testkit::{Decision, Fault, FaultProxy, Idp, Seen, sign_in, unique};

use crate::ops::get;
use crate::serve::{API_KEY, Site, get_run, http, kill9, post_run_with, terminate};

const SECRET: &str = "kill-secret-value";

/// A run lease of 1 s, so a run the killed process held is failed soon after the restart.
fn config(idp: &Idp, proxy: &FaultProxy, client: &str) -> String {
    format!(
        "run_lease = 1\n\n[oauth_servers.idp]\nclient_id = \"{client}\"\nclient_secret = \"{SECRET}\"\nissuer = \"{iss}\"\ntoken_url = \"{token}\"\nscope = \"api:read\"\n",
        iss = idp.issuer(),
        token = proxy.url("/token"),
    )
}

/// Starts a run of `flow` whose answer never comes (the process is killed during it).
fn start_run_in_background(site: &Site, flow: &str) -> tokio::task::JoinHandle<()> {
    let url = site.url(&format!("/api/flows/{flow}/runs"));
    tokio::spawn(async move {
        let _ = http()
            .post(url)
            .bearer_auth(API_KEY)
            .json(&json!({}))
            .send()
            .await;
    })
}

/// The runs of `flow`, newest first.
async fn runs_of(site: &Site, flow: &str) -> Vec<Value> {
    let list = get(site, &format!("/api/runs?flow={flow}")).await;
    list["runs"].as_array().cloned().unwrap_or_default()
}

/// Polls (30 s deadline) until run `id` has ended, and returns it.
async fn ended(site: &Site, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (run, _) = get_run(site, id).await;
        if run["status"] != "running" {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interrupted run was not ended within 30 s: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn token_requests(idp: &Idp, client: &str, grant_type: &str) -> Vec<(u16, Option<String>)> {
    idp.token_requests(client)
        .await
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some(grant_type))
        .map(|r| (r.status, r.error))
        .collect()
}

/// `token` (client credentials, through the token proxy) then `call`: an `http_connector` POST
/// of a client-credentials grant to the IdP through the `api` proxy — a call whose effect (a
/// token issued) the IdP counts.
fn call_flow(api: &FaultProxy, client: &str) -> String {
    format!(
        "id: call\nvariables:\n  token: {{}}\nactions:\n  token:\n    type: oauth_server_login\n    oauth_server: idp\n    output: {{ access_token: token }}\n  call:\n    type: http_connector\n    input:\n      url: \"{url}\"\n      method: POST\n      content_type: application/x-www-form-urlencoded\n      content: \"grant_type=client_credentials&scope=api%3Aread&client_id={client}&client_secret={SECRET}\"\nsteps:\n  - {{ from: start, to: token }}\n  - {{ from: token, to: call }}\n  - {{ from: call, to: stop }}\n",
        url = api.url("/token"),
    )
}

struct World {
    idp: Idp,
    /// In front of the OAuth server's token endpoint.
    proxy: FaultProxy,
    /// In front of the API `call` calls (the IdP's token endpoint, too).
    api: FaultProxy,
    client: String,
    site: Site,
}

async fn call_world() -> World {
    let idp = Idp::start().await;
    let proxy = FaultProxy::start(&idp.issuer()).await;
    let api = FaultProxy::start(&idp.issuer()).await;
    let client = unique("kill-cc");
    idp.client_credentials_client(&client, SECRET).await;
    let site = Site::new(
        &config(&idp, &proxy, &client),
        &[("call.yaml", call_flow(&api, &client))],
    );
    World {
        idp,
        proxy,
        api,
        client,
        site,
    }
}

#[tokio::test]
async fn kill_9_during_a_runs_first_token_request_leaves_no_run_and_the_next_run_succeeds() {
    let w = call_world().await;
    let first = w.site.start().await;
    w.proxy.set(Fault::Stall).await;
    let _request = start_run_in_background(&w.site, "call");
    w.proxy.wait_for(Seen::Stalled, 1).await;
    kill9(first).await;
    w.proxy.set(Fault::None).await;

    let second = w.site.start().await;
    assert!(
        runs_of(&w.site, "call").await.is_empty(),
        "a run is first written after its repeatable first action"
    );
    let (_, run, _) = post_run_with(&w.site, "call", json!({})).await;
    assert_eq!(run["status"], "completed", "{run}");
    terminate(second).await;
}

/// Runs `call` with `fault` on its API, kills the server once the proxy `saw` the call, restarts
/// it and returns it with the run, which was failed as interrupted at `call`.
async fn kill_during_the_call(
    w: &World,
    fault: Fault,
    saw: Seen,
) -> (tokio::process::Child, Value) {
    let first = w.site.start().await;
    w.api.set(fault).await;
    let _request = start_run_in_background(&w.site, "call");
    w.api.wait_for(saw, 1).await;
    kill9(first).await;
    w.api.set(Fault::None).await;

    let second = w.site.start().await;
    let runs = runs_of(&w.site, "call").await;
    assert_eq!(runs.len(), 1, "the run was created before the call");
    let run = ended(&w.site, runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["error"].as_str().unwrap();
    assert!(
        reason.starts_with("interrupted") && reason.contains("`call`"),
        "{run}"
    );
    (second, run)
}

#[tokio::test]
async fn kill_9_after_the_run_is_created_and_mid_http_call_fails_the_run_as_interrupted_and_nothing_is_resent()
 {
    let w = call_world().await;
    // The first token goes through; the API call after it hangs before the IdP sees it.
    let (server, run) = kill_during_the_call(&w, Fault::Stall, Seen::Stalled).await;
    assert_eq!(run["actions"][0]["action"], "token", "{run}");
    assert_eq!(run["actions"][0]["status_code"], 0, "{run}");
    assert_eq!(
        token_requests(&w.idp, &w.client, "client_credentials").await,
        [(200, None)],
        "only the first action's token reached the IdP; the call was not sent again"
    );
    terminate(server).await;
}

#[tokio::test]
async fn kill_9_between_an_http_calls_effect_and_its_record_fails_the_run_as_interrupted_and_the_effect_happened_once()
 {
    let w = call_world().await;
    // The IdP issues the call's token (the effect); its answer never reaches tokenflow.
    let (server, run) = kill_during_the_call(&w, Fault::HoldAnswer, Seen::AnswersHeld).await;
    assert_eq!(
        run["actions"].as_array().unwrap().len(),
        1,
        "the call's outcome was never recorded: {run}"
    );
    assert_eq!(
        token_requests(&w.idp, &w.client, "client_credentials").await,
        [(200, None), (200, None)],
        "the first action's token and the call's effect, each once; nothing was retried"
    );
    terminate(server).await;
}

/// `keep` signs alice in and stores the grant as `alice`, already expired; `use` asks the vault
/// for a token, so every first use after `keep` refreshes through the proxy.
fn vault_flows() -> [(&'static str, String); 2] {
    [
        (
            "keep.yaml",
            "id: keep\nvariables:\n  token: {}\n  refresh: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    output: { access_token: token, refresh_token: refresh }\n  keep:\n    type: vault_store\n    oauth_server: idp\n    input: { name: alice, access_token: { var: token }, refresh_token: { var: refresh }, expires_in: 0 }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: keep, when: successful }\n  - { from: keep, to: stop }\n".to_owned(),
        ),
        (
            "use.yaml",
            "id: use\nvariables:\n  token: {}\nactions:\n  get:\n    type: vault_get_token\n    input: { name: alice }\n    output: { access_token: token }\nsteps:\n  - { from: start, to: get }\n  - { from: get, to: stop }\n".to_owned(),
        ),
    ]
}

/// Stores alice's grant through `keep`, then kills the server while the vault's refresh of it is
/// at the IdP: the IdP answered (and rotated, with `rotate`), tokenflow never got the answer.
/// Returns the restarted server's world and the `use` run that ran after the restart.
async fn kill_during_a_vault_refresh(rotate: bool) -> (World, tokio::process::Child, Value) {
    let idp = Idp::start().await;
    let proxy = FaultProxy::start(&idp.issuer()).await;
    let api = FaultProxy::start(&idp.issuer()).await;
    let client = unique("kill-vault");
    let servers = config(&idp, &proxy, &client).replace("api:read", "openid offline_access");
    let site = Site::new(&servers, &vault_flows());
    idp.web_client(
        &client,
        SECRET,
        &site.url("/oauth-callback"),
        json!({ "rotate_refresh_token": rotate, "issue_refresh_token": true }),
    )
    .await;
    let w = World {
        idp,
        proxy,
        api,
        client,
        site,
    };
    let first = w.site.start().await;
    let (_, run, _) = post_run_with(&w.site, "keep", json!({})).await;
    let url = run["authorization_url"].as_str().unwrap().to_owned();
    let landed = sign_in(
        &url,
        &w.site.url("/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(
        http().get(landed.as_str()).send().await.unwrap().status(),
        200
    );
    let (run, _) = get_run(&w.site, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");

    w.proxy.set(Fault::HoldAnswer).await;
    let _request = start_run_in_background(&w.site, "use");
    w.proxy.wait_for(Seen::AnswersHeld, 1).await;
    kill9(first).await;
    w.proxy.set(Fault::None).await;

    let second = w.site.start().await;
    let killed = runs_of(&w.site, "use").await;
    assert_eq!(killed.len(), 1);
    let killed = ended(&w.site, killed[0]["id"].as_str().unwrap()).await;
    assert_eq!(killed["status"], "failed", "{killed}");
    // The refresh lease the killed process held runs out (30 s) before the next refresh.
    let (_, after, _) = post_run_with(&w.site, "use", json!({})).await;
    (w, second, after)
}

async fn vault_entry(site: &Site) -> Value {
    get(site, "/api/vault").await["entries"][0].clone()
}

#[tokio::test]
async fn kill_9_during_a_vault_refresh_without_rotation_keeps_the_refresh_token_and_the_next_use_succeeds()
 {
    let (w, server, run) = kill_during_a_vault_refresh(false).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["actions"][0]["status_code"], 0, "{run}");
    let entry = vault_entry(&w.site).await;
    assert_eq!(entry["state"], "ok", "{entry}");
    assert_eq!(entry["last_refresh_outcome"], "ok", "{entry}");
    assert_eq!(
        token_requests(&w.idp, &w.client, "refresh_token").await,
        [(200, None), (200, None)],
        "the lost refresh and the one after the restart, with the same refresh token"
    );
    terminate(server).await;
}

#[tokio::test]
async fn kill_9_during_a_vault_refresh_with_rotation_marks_the_entry_for_a_new_sign_in_with_the_reason()
 {
    let (w, server, run) = kill_during_a_vault_refresh(true).await;
    assert_eq!(run["status"], "completed", "{run}");
    let get = &run["actions"][0];
    assert_eq!(get["status_code"], -4, "{run}");
    assert_eq!(get["outputs"]["error"], "invalid_grant", "{run}");
    let why = get["outputs"]["error_description"].as_str().unwrap();
    assert!(
        why.contains("an earlier refresh never finished") && why.contains("sign in again"),
        "{why}"
    );
    let entry = vault_entry(&w.site).await;
    assert_eq!(entry["state"], "needs_login", "{entry}");
    assert_eq!(
        entry["last_refresh_outcome"], "invalid_grant_after_interrupted_refresh",
        "{entry}"
    );
    assert_eq!(
        token_requests(&w.idp, &w.client, "refresh_token").await,
        [(200, None), (400, Some("invalid_grant".to_owned()))],
        "the lost refresh rotated the token; the old one is refused, once"
    );
    terminate(server).await;
}

/// docs/operations.md's "What happens when …" table names a test in its last column: each exists,
/// and every fault test is in the table.
#[test]
fn the_failure_table_and_the_fault_tests_name_the_same_tests() {
    let repo = crate::support::repo();
    let doc = std::fs::read_to_string(repo.join("docs/operations.md")).unwrap();
    let section = doc.split("## What happens when").nth(1).unwrap();
    let named: Vec<String> = section
        .lines()
        .filter(|line| line.starts_with("| ") && line.ends_with("` |"))
        .filter_map(|line| line.trim_end_matches(" |").rsplit("| ").next())
        .map(|cell| cell.trim_matches('`').to_owned())
        .collect();
    assert!(named.len() >= 15, "{named:?}");
    let files = [
        "crates/tokenflow-engine/tests/it/faults_idp.rs",
        "crates/tokenflow/tests/it/faults_kill.rs",
        "crates/tokenflow/tests/it/serve.rs",
    ]
    .map(|path| std::fs::read_to_string(repo.join(path)).unwrap());
    for name in &named {
        assert!(
            files
                .iter()
                .any(|code| code.contains(&format!("async fn {name}()"))),
            "docs/operations.md names `{name}`, which is no test"
        );
    }
    for code in &files[..2] {
        for test in code.split("#[tokio::test]\nasync fn ").skip(1) {
            let test = test.split("()").next().unwrap();
            assert!(
                named.iter().any(|name| name == test),
                "`{test}` is missing from docs/operations.md's table"
            );
        }
    }
}
