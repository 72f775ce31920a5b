use reqwest::Method;
use serde_json::{Value, json};
use tokenflow_testkit::{Decision, sign_in};
use url::Url;

use crate::support::{API_KEY, World, world};

/// Starts the login flow over the API and signs in at the IdP; returns (run id, landed URL).
pub(crate) async fn start_and_sign_in(w: &World, decision: Decision) -> (String, Url) {
    let (status, run, _) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    assert_eq!(status, 201, "{run}");
    let url = run["authorization_url"].as_str().unwrap();
    let landed = sign_in(
        url,
        &format!("{}/oauth-callback", w.app.url),
        "alice",
        "alice-password",
        decision,
    )
    .await;
    (run["id"].as_str().unwrap().to_owned(), landed)
}

async fn run(w: &World, id: &str) -> Value {
    w.app.get_json(&format!("/api/runs/{id}")).await.1
}

fn trail(run: &Value) -> Vec<(String, i64)> {
    run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["status_code"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn visit(w: &World, url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = w.app.http.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_user_login_started_over_the_api_completes_through_the_callback() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    let (status, page) = visit(&w, landed.as_str(), None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Signed in") && page.contains("The run completed."),
        "{page}"
    );
    assert!(page.contains(&format!("/runs/{id}")));
    let run = run(&w, &id).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(
        trail(&run),
        [("login".into(), 0), ("me".into(), 0), ("pick".into(), 0)]
    );
    assert_eq!(
        run["variables"]["name"], "Alice Example",
        "the next action used the token"
    );
}

#[tokio::test]
async fn deny_at_the_idp_routes_minus_two_to_the_failure_branch() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Deny).await;
    let (status, page) = visit(&w, landed.as_str(), None).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign-in cancelled"), "{page}");
    let run = run(&w, &id).await;
    assert_eq!(trail(&run), [("login".into(), -2), ("denied".into(), 0)]);
}

#[tokio::test]
async fn form_post_callbacks_are_accepted() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    let form: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
    let response = w
        .app
        .http
        .post(format!("{}/oauth-callback", w.app.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(run(&w, &id).await["status"], "completed");
}

#[tokio::test]
async fn unknown_and_reused_states_are_refused() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    let (status, page) = visit(
        &w,
        &format!("{}/oauth-callback?state=forged&code=x", w.app.url),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown or was already used"), "{page}");
    let (status, _) = visit(&w, &format!("{}/oauth-callback?code=x", w.app.url), None).await;
    assert_eq!(status, 400, "no state at all");
    assert_eq!(
        run(&w, &id).await["status"],
        "waiting",
        "nothing was resumed"
    );

    assert_eq!(visit(&w, landed.as_str(), None).await.0, 200);
    let (status, page) = visit(&w, landed.as_str(), None).await;
    assert_eq!(status, 400, "a state is single use");
    assert!(page.contains("already used"));
    assert_eq!(
        run(&w, &id).await["actions"].as_array().unwrap().len(),
        3,
        "the replay changed nothing"
    );
}

#[tokio::test]
async fn a_callback_without_code_is_refused_and_the_real_one_still_works() {
    let w = world(false).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    let mut stripped = landed.clone();
    let pairs: Vec<(String, String)> = landed
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "code")
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, page) = visit(&w, stripped.as_str(), None).await;
    assert_eq!(status, 400);
    assert!(page.contains("neither a code nor an error"), "{page}");
    assert_eq!(run(&w, &id).await["status"], "waiting");
    assert_eq!(visit(&w, landed.as_str(), None).await.0, 200);
    assert_eq!(run(&w, &id).await["status"], "completed");
}

#[tokio::test]
async fn an_expired_state_is_refused_and_the_login_ends_minus_two_without_exchanging_the_code() {
    let w = world(true).await;
    let (id, landed) = start_and_sign_in(&w, Decision::Allow).await;
    w.app
        .clock
        .as_ref()
        .unwrap()
        .advance(time::Duration::minutes(11));
    let (status, page) = visit(&w, landed.as_str(), None).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");
    let run = run(&w, &id).await;
    assert_eq!(trail(&run), [("login".into(), -2), ("denied".into(), 0)]);
    assert_eq!(run["actions"][0]["outputs"]["error"], "login_expired");
    let exchanges = w
        .idp
        .token_requests(&w.client)
        .await
        .into_iter()
        .filter(|r| r.grant_type.as_deref() == Some("authorization_code"))
        .count();
    assert_eq!(exchanges, 0, "the code was never exchanged");
}

#[tokio::test]
async fn the_sweeper_ends_expired_logins_and_the_run_goes_on() {
    let w = world(true).await;
    let (_, run_json, _) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    let id = run_json["id"].as_str().unwrap();
    assert_eq!(
        w.app.state.runner.sweep_once().await.unwrap(),
        0,
        "not expired yet"
    );
    w.app
        .clock
        .as_ref()
        .unwrap()
        .advance(time::Duration::minutes(10));
    assert_eq!(w.app.state.runner.sweep_once().await.unwrap(), 1);
    assert_eq!(
        w.app.state.runner.sweep_once().await.unwrap(),
        0,
        "handled once"
    );
    let run = run(&w, id).await;
    assert_eq!(trail(&run), [("login".into(), -2), ("denied".into(), 0)]);
    assert_eq!(run["status"], "completed");
}

#[tokio::test]
async fn a_browser_started_run_needs_its_binding_cookie() {
    let w = world(false).await;
    let response = w
        .app
        .http
        .get(format!("{}/flows/profile/start", w.app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&w.idp.authorization_url()));
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/oauth-callback"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let (name, _) = cookie.split_once('=').unwrap();

    let landed = sign_in(
        &location,
        &format!("{}/oauth-callback", w.app.url),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    let (_, runs) = w.app.get_json("/api/runs?status=waiting").await;
    let id = runs["runs"][0]["id"].as_str().unwrap().to_owned();

    let (status, page) = visit(&w, landed.as_str(), None).await;
    assert_eq!(status, 400);
    assert!(page.contains("another browser"), "{page}");
    let (status, _) = visit(&w, landed.as_str(), Some(&format!("{name}=wrong-value"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        run(&w, &id).await["status"],
        "waiting",
        "nothing was resumed"
    );

    let response = w
        .app
        .http
        .get(landed.as_str())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        303,
        "the starting browser goes on to the run's monitor page"
    );
    assert_eq!(
        response.headers()["location"],
        format!("/runs/{id}").as_str()
    );
    assert_eq!(run(&w, &id).await["status"], "completed");

    let anonymous = w
        .app
        .http
        .get(format!("{}/flows/profile/start", w.app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        303,
        "a browser without a session is sent to sign in"
    );
    assert!(
        anonymous.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    let _ = Method::GET;
}

#[tokio::test]
async fn a_grant_kept_in_the_vault_shows_as_metadata_only_and_can_be_deleted() {
    let w = world(false).await;
    let yaml = "id: keep\nvariables:\n  t: {}\n  r: {}\n  e: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: { scope: \"openid offline_access\" }\n    output: { access_token: t, refresh_token: r, expires_in: e }\n  store:\n    type: vault_store\n    oauth_server: idp\n    input: { name: alice, access_token: { var: t }, refresh_token: { var: r }, expires_in: { var: e } }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: store }\n  - { from: store, to: stop }\n";
    let put = w
        .app
        .request(Method::PUT, "/api/flows/keep")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let (_, started, _) = w.app.post_json("/api/flows/keep/runs", json!({})).await;
    let landed = sign_in(
        started["authorization_url"].as_str().unwrap(),
        &format!("{}/oauth-callback", w.app.url),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(visit(&w, landed.as_str(), None).await.0, 200);
    let finished = run(&w, started["id"].as_str().unwrap()).await;
    assert_eq!(trail(&finished), [("login".into(), 0), ("store".into(), 0)]);

    let response = w
        .app
        .request(Method::GET, "/api/vault")
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let vault: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(vault["entries"][0]["name"], "alice");
    assert_eq!(vault["entries"][0]["state"], "ok");
    assert_eq!(vault["entries"][0]["has_refresh_token"], true);
    for token in w.idp.issued_tokens(&w.client).await {
        assert!(!text.contains(&token), "a token is in the vault listing");
    }
    // The grant works at the IdP until the entry is deleted, and no longer afterwards: the delete
    // revoked the refresh token at the discovered revocation endpoint (RFC 7009).
    let client = tokenflow_testkit::TestClient {
        id: w.client.clone(),
        secret: Some("srv-web-secret".to_owned()),
    };
    let refresh_tokens = w.idp.refresh_tokens(&w.client).await;
    assert_eq!(refresh_tokens.len(), 1, "{refresh_tokens:?}");
    let (status, _) = w.idp.refresh_directly(&client, &refresh_tokens[0]).await;
    assert_eq!(
        status, 200,
        "the stored refresh token works before the delete"
    );
    let deleted = w
        .app
        .request(Method::DELETE, "/api/vault/alice")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let answer: Value = deleted.json().await.unwrap();
    assert_eq!(answer, json!({ "name": "alice", "revoked": true }));
    let (status, body) = w.idp.refresh_directly(&client, &refresh_tokens[0]).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    let again = w
        .app
        .request(Method::DELETE, "/api/vault/alice")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn the_sweeper_purges_consumed_logins_after_a_day() {
    use tokenflow_core::Clock as _;
    let w = world(true).await;
    let (_, run_json, _) = w.app.post_json("/api/flows/profile/runs", json!({})).await;
    let authorization_url = run_json["authorization_url"].as_str().unwrap().to_owned();
    let state = url::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let state = tokenflow_core::SecretString::new(state);
    let store = w.app.state.store.clone();
    assert!(matches!(
        store
            .take_pending_authorization(&state, w.app.clock.as_ref().unwrap().now())
            .await
            .unwrap(),
        tokenflow_store::TakePending::Taken(_)
    ));
    // The first sweep purges only what was consumed a day ago: this login stays "already used".
    w.app.state.runner.sweep_once().await.unwrap();
    let clock = w.app.clock.as_ref().unwrap();
    assert!(matches!(
        store
            .take_pending_authorization(&state, clock.now())
            .await
            .unwrap(),
        tokenflow_store::TakePending::AlreadyUsed
    ));
    clock.advance(time::Duration::hours(25));
    w.app.state.runner.sweep_once().await.unwrap();
    assert!(matches!(
        store
            .take_pending_authorization(&state, clock.now())
            .await
            .unwrap(),
        tokenflow_store::TakePending::Unknown
    ));
}
