//! The identity provider failing (docs/operations.md, "What happens when …"): the real test IdP
//! behind a fault proxy that refuses connections (as a stopped IdP), stalls past the server's
//! 1 s `timeout`, or answers 500 — during a vault refresh, a code exchange and a
//! client-credentials call. Afterwards nothing is lost, the next call after recovery succeeds,
//! and the IdP saw each grant once.

use serde_json::json;
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_connectors::status::VaultGetStatus;
use tokenflow_core::VaultEntryState;
use tokenflow_core::flow::Flow;
use tokenflow_engine::{Engine, Progress, Run, RunStatus};
use tokenflow_testkit::{Decision, Fault, FaultProxy, Idp, Seen, sign_in, unique};

use crate::support::{REDIRECT_URI, engine, flow, server, trail};
use crate::vault::{concurrent_gets, world_behind_proxy};

/// How a fault shows at the proxy (the IdP itself never sees the request).
fn seen(fault: Fault) -> Option<Seen> {
    match fault {
        Fault::Stall => Some(Seen::Stalled),
        Fault::Error500 => Some(Seen::Failed500),
        Fault::Refuse | Fault::None | Fault::HoldAnswer => None,
    }
}

/// A refresh that meets `fault` fails with -1 and changes nothing but the entry's last outcome;
/// after recovery, concurrent callers get one fresh token from one refresh (rotation on, so a
/// consumed refresh token would show as `invalid_grant`).
async fn vault_refresh_meets(fault: Fault, outcome: &str) {
    let w = world_behind_proxy().await;
    let proxy = w.proxy.as_ref().unwrap();
    w.grant("alice").await;
    let before = w.store.get_vault_entry("alice").await.unwrap().unwrap();

    proxy.set(fault).await;
    let out = w.vault().get_token("alice").await;
    assert_eq!(out.status, VaultGetStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some(outcome), "{out:?}");
    if let Some(seen) = seen(fault) {
        assert_eq!(proxy.count(seen), 1, "the refresh met the fault");
    }
    let after = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(after.state, VaultEntryState::Ok);
    assert_eq!(
        after.refresh_token, before.refresh_token,
        "the refresh token is intact"
    );
    assert_eq!(after.last_refresh_outcome.as_deref(), Some(outcome));
    assert_eq!(
        w.refreshes().await,
        0,
        "the IdP never saw the failed refresh"
    );

    proxy.set(Fault::None).await;
    let tokens = concurrent_gets(&w, "alice", 20).await;
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
    assert!(w.token_works(&tokens[0]).await);
    assert_eq!(w.refreshes().await, 1, "one refresh after recovery");
    let recovered = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(recovered.state, VaultEntryState::Ok);
    assert_eq!(recovered.last_refresh_outcome.as_deref(), Some("ok"));
    assert_ne!(
        recovered.refresh_token, before.refresh_token,
        "the rotated refresh token was stored"
    );
}

#[tokio::test]
async fn a_vault_refresh_while_the_idp_is_unreachable_keeps_the_entry_and_succeeds_after_recovery()
{
    vault_refresh_meets(Fault::Refuse, "connection_error").await;
}

#[tokio::test]
async fn a_vault_refresh_while_the_idp_stalls_past_the_timeout_keeps_the_entry_and_succeeds_after_recovery()
 {
    vault_refresh_meets(Fault::Stall, "timeout").await;
}

#[tokio::test]
async fn a_vault_refresh_answered_500_keeps_the_entry_and_succeeds_after_recovery() {
    vault_refresh_meets(Fault::Error500, "server_error").await;
}

/// The IdP behind a proxy, a client of `grant` and a server `idp` whose token requests go
/// through the proxy (1 s timeout).
struct Site {
    idp: Idp,
    proxy: FaultProxy,
    client: String,
    engine: Engine,
}

async fn site(web: bool) -> Site {
    let idp = Idp::start().await;
    let proxy = FaultProxy::start(&idp.issuer()).await;
    let client = unique("faults");
    let scope = match web {
        true => {
            idp.web_client(&client, "faults-secret", REDIRECT_URI, json!({}))
                .await;
            "openid profile"
        }
        false => {
            idp.client_credentials_client(&client, "faults-secret")
                .await;
            "api:read"
        }
    };
    let engine = engine(vec![server(
        "idp",
        json!({ "client_id": client, "client_secret": "faults-secret", "issuer": idp.issuer(),
                "token_url": proxy.url("/token"), "timeout": "1s", "scope": scope }),
    )]);
    Site {
        idp,
        proxy,
        client,
        engine,
    }
}

impl Site {
    async fn grants(&self, grant_type: &str) -> usize {
        self.idp
            .token_requests(&self.client)
            .await
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some(grant_type) && r.status == 200)
            .count()
    }
}

fn login_flow() -> Flow {
    flow(
        "id: login\nvariables:\n  token: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    output: { access_token: token }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n",
    )
}

/// Starts a login run, signs alice in, and resumes the run with the callback: the code exchange.
async fn log_in(site: &Site, flow: &Flow) -> Run {
    let mut run = site.engine.start(flow, Default::default()).unwrap();
    assert_eq!(
        site.engine.run_until_blocked(flow, &mut run).await,
        Progress::Suspended
    );
    let url = run.waiting.as_ref().unwrap().authorization_url.clone();
    let landed = sign_in(
        &url,
        REDIRECT_URI,
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    site.engine
        .resume(flow, &mut run, &CallbackParams::from_url(&landed))
        .await;
    site.engine.run_until_blocked(flow, &mut run).await;
    run
}

/// A code exchange that meets `fault` ends the login with -3 (connection error) and routes on;
/// the next login after recovery succeeds, and the IdP issued tokens for one code only.
async fn code_exchange_meets(fault: Fault) {
    let site = site(true).await;
    let flow = login_flow();
    site.proxy.set(fault).await;
    let failed = log_in(&site, &flow).await;
    assert_eq!(failed.status, RunStatus::Completed, "{:?}", failed.reason);
    assert_eq!(trail(&failed), [("login".into(), Some(-3))]);
    if let Some(seen) = seen(fault) {
        assert_eq!(site.proxy.count(seen), 1, "the exchange met the fault");
    }
    assert!(
        failed
            .variables
            .get("token")
            .is_none_or(|token| !token.expose().is_string()),
        "no token came out of the failed exchange"
    );

    site.proxy.set(Fault::None).await;
    let run = log_in(&site, &flow).await;
    assert_eq!(trail(&run), [("login".into(), Some(0))]);
    let token = run.variables.get("token").unwrap().expose();
    assert_eq!(site.idp.userinfo(token.as_str().unwrap()).await.0, 200);
    assert_eq!(
        site.grants("authorization_code").await,
        1,
        "one code exchanged, once"
    );
}

#[tokio::test]
async fn a_code_exchange_while_the_idp_is_unreachable_fails_with_minus_three_and_the_next_login_succeeds()
 {
    code_exchange_meets(Fault::Refuse).await;
}

#[tokio::test]
async fn a_code_exchange_while_the_idp_stalls_past_the_timeout_fails_with_minus_three_and_the_next_login_succeeds()
 {
    code_exchange_meets(Fault::Stall).await;
}

#[tokio::test]
async fn a_code_exchange_answered_500_fails_with_minus_three_and_the_next_login_succeeds() {
    code_exchange_meets(Fault::Error500).await;
}

/// A client-credentials call that meets `fault` is -1 with the failure class as `error`, caches
/// nothing, and the next call after recovery gets a token from one grant.
async fn client_credentials_meets(fault: Fault, error: &str) {
    let site = site(false).await;
    let flow = flow(
        "id: cc\nvariables:\n  token: {}\n  error: {}\nactions:\n  token:\n    type: oauth_server_login\n    oauth_server: idp\n    output: { access_token: token, error: error }\nsteps:\n  - { from: start, to: token }\n  - { from: token, to: stop }\n",
    );
    let call = |site: &Site| {
        let (engine, flow) = (site.engine.clone(), flow.clone());
        async move {
            let mut run = engine.start(&flow, Default::default()).unwrap();
            engine.run_until_blocked(&flow, &mut run).await;
            run
        }
    };
    site.proxy.set(fault).await;
    let failed = call(&site).await;
    assert_eq!(trail(&failed), [("token".into(), Some(-1))]);
    assert_eq!(
        failed.variables.get("error").unwrap().expose(),
        json!(error)
    );
    if let Some(seen) = seen(fault) {
        assert_eq!(site.proxy.count(seen), 1, "the call met the fault");
    }

    site.proxy.set(Fault::None).await;
    let run = call(&site).await;
    assert_eq!(trail(&run), [("token".into(), Some(0))]);
    assert_eq!(site.grants("client_credentials").await, 1);
    let again = call(&site).await;
    assert_eq!(trail(&again), [("token".into(), Some(0))]);
    assert_eq!(
        site.grants("client_credentials").await,
        1,
        "the recovered token is cached, not fetched twice"
    );
}

#[tokio::test]
async fn a_client_credentials_call_while_the_idp_is_unreachable_fails_and_the_next_call_succeeds() {
    client_credentials_meets(Fault::Refuse, "connection_error").await;
}

#[tokio::test]
async fn a_client_credentials_call_while_the_idp_stalls_past_the_timeout_fails_and_the_next_call_succeeds()
 {
    client_credentials_meets(Fault::Stall, "timeout").await;
}

#[tokio::test]
async fn a_client_credentials_call_answered_500_fails_and_the_next_call_succeeds() {
    client_credentials_meets(Fault::Error500, "server_error").await;
}
