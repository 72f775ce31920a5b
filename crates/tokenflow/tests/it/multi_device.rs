//! One device login (RFC 8628) on two `tokenflow serve` processes sharing a PostgreSQL
//! database: exactly one instance polls it at a time (ARCHITECTURE.md, "Device logins"), so the
//! IdP sees one poll per interval, not one from each instance.

use std::time::Duration;

use serde_json::json;
use tokenflow_testkit::{DeviceDecision, Idp, TokenRequestRecord, approve_device, unique};

use crate::multi::{Database, get_json, instance, start_run};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The interval the IdP gives (s), and the least two polls of one login may be apart (ms): the
/// interval, less what the two clocks and the network may shift one request.
const INTERVAL_SECS: u64 = 2;
const LEAST_GAP_MS: u64 = 1500;

fn device_polls(records: &[TokenRequestRecord]) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some(DEVICE_GRANT))
        .map(|r| r.at)
        .collect()
}

#[tokio::test]
async fn two_instances_on_one_database_poll_a_device_login_once_per_interval() {
    let idp = Idp::start().await;
    let client = unique("multi-device");
    idp.device_client(
        &client,
        "multi-device-secret",
        // Each poll takes 1.5 s, so the other instance's poller (every second) looks at the login
        // while a poll is in flight: only its claim keeps it from polling too.
        json!({ "device_interval": INTERVAL_SECS, "token_delay_ms": 1500 }),
    )
    .await;
    let db = Database::create();
    let servers = format!(
        "[oauth_servers.dev]\nclient_id = \"{client}\"\nclient_secret = \"multi-device-secret\"\nissuer = \"{}\"\n",
        idp.issuer()
    );
    let flow = "id: device\nvariables:\n  status: {}\nactions:\n  login:\n    type: oauth_device_login\n    oauth_server: dev\n    input: { scope: openid }\n    output: { status_code: status }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: stop }\n";
    let a = instance(&db, None, &servers, &[("device.yaml", flow.to_owned())]).await;
    let b = instance(&db, None, &servers, &[]).await;
    let started = start_run(&a.url, "device").await;
    assert_eq!(started["status"], "waiting", "{started}");
    let id = started["id"].as_str().unwrap();

    // Both instances' pollers run through several intervals while the person has not answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while device_polls(&idp.token_requests(&client).await).len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "too few polls");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let complete = started["device"]["verification_uri_complete"]
        .as_str()
        .unwrap();
    approve_device(complete, "alice", "alice-password", DeviceDecision::Approve).await;
    let run = loop {
        let run = get_json(&b.url, &format!("/api/runs/{id}")).await;
        if run["status"] != "waiting" && run["status"] != "running" {
            break run;
        }
        assert!(tokio::time::Instant::now() < deadline, "still waits: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop((a.child, b.child));

    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["variables"]["status"], 0, "{run}");
    let polls = device_polls(&idp.token_requests(&client).await);
    assert!(polls.len() >= 5, "{polls:?}");
    for pair in polls.windows(2) {
        assert!(
            pair[1] - pair[0] >= LEAST_GAP_MS,
            "two polls {} ms apart: more than one instance polled ({polls:?})",
            pair[1] - pair[0]
        );
    }
}
