//! Contract bodies: the dashboard's aggregate queries (counters kept by the store's triggers).

use super::*;
use tokenflow_store::dashboard::duration_percentiles;
use tokenflow_store::{CountWindow, FailureCause, FlowFailures, ServerTokenCounts, StatusCount};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// A run of `flow` that started at `at(started)` and ended `duration_ms` later with `status`.
fn ended(id: &str, flow: &str, status: &str, started: i64, duration_ms: i64) -> RunRow {
    let mut row = run(id, flow, status, started);
    let end = at(started) + Duration::milliseconds(duration_ms);
    row.updated_at = end;
    row.ended_at = Some(end);
    row
}

fn ms(seconds: i64) -> i64 {
    (at(seconds).unix_timestamp_nanos() / 1_000_000) as i64
}

/// The hour that begins at `at(0)` (an hour boundary), by minute.
fn first_hour() -> CountWindow {
    CountWindow::ending_at(at(3599), MINUTE, 60)
}

/// A monitor record as the engine writes it.
fn oauth_record(
    run_id: &str,
    seq: i64,
    kind: &str,
    server: &str,
    code: i64,
    extra: &str,
) -> ActionRecordRow {
    ActionRecordRow {
        run_id: run_id.to_owned(),
        seq,
        json: format!(
            r#"{{"action":"a{seq}","type":"{kind}","status_code":{code},"started_at":"2025-06-01T12:00:30Z","duration_ms":5,"oauth_server":"{server}","inputs":{{}},"outputs":{{{extra}}},"error":null,"warnings":[]}}"#
        ),
    }
}

pub(crate) async fn ended_runs_are_counted_once_per_interval_by_final_status_and_duration(
    store: Arc<dyn Store>,
) {
    // Created already ended (first-action runs), at minutes 0 and 1.
    store
        .create_run(&ended("a", "alpha", "completed", 0, 100))
        .await
        .unwrap();
    store
        .create_run(&ended("b", "alpha", "completed", 10, 100))
        .await
        .unwrap();
    store
        .create_run(&ended("c", "alpha", "failed", 60, 1_000))
        .await
        .unwrap();
    // Ended by a later write; written again afterwards, still counted once.
    store
        .create_run(&run("d", "beta", "running", 120))
        .await
        .unwrap();
    let done = ended("d", "beta", "cancelled", 120, 500);
    store.record_action_outcome(&done, None).await.unwrap();
    store.record_action_outcome(&done, None).await.unwrap();
    // Not ended: not counted.
    store
        .create_run(&run("e", "beta", "running", 130))
        .await
        .unwrap();
    // In the next hour: outside the first hour's window.
    store
        .create_run(&ended("f", "alpha", "failed", 3_700, 10))
        .await
        .unwrap();

    let window = first_hour();
    let got = store.runs_ended_per_interval(&window).await.unwrap();
    let count = |minute: i64, status: RunStatus, runs: u64| StatusCount {
        bucket_ms: ms(minute * 60),
        status,
        runs,
    };
    assert_eq!(
        got,
        vec![
            count(0, RunStatus::Completed, 2),
            count(1, RunStatus::Failed, 1),
            count(2, RunStatus::Cancelled, 1),
        ]
    );

    // The same runs by hour and by six hours.
    let day = CountWindow::ending_at(at(3_700), HOUR, 24);
    let by_hour = store.runs_ended_per_interval(&day).await.unwrap();
    let total: u64 = by_hour.iter().map(|c| c.runs).sum();
    assert_eq!(total, 5);
    assert_eq!(
        by_hour
            .iter()
            .filter(|c| c.bucket_ms == ms(3_600))
            .map(|c| c.runs)
            .sum::<u64>(),
        1
    );
    let week = CountWindow::ending_at(at(3_700), 6 * HOUR, 28);
    let six_hourly: u64 = store
        .runs_ended_per_interval(&week)
        .await
        .unwrap()
        .iter()
        .map(|c| c.runs)
        .sum();
    assert_eq!(six_hourly, 5);

    // Durations: completed and failed runs only (alpha: 100, 100, 1000 ms in the first hour).
    let classes = store.run_duration_classes(&window).await.unwrap();
    let flows = duration_percentiles(&classes);
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].flow_id, "alpha");
    assert_eq!(flows[0].runs, 3);
    assert!((90..=110).contains(&flows[0].p50_ms), "{flows:?}");
    assert!((900..=1_100).contains(&flows[0].p95_ms), "{flows:?}");

    assert_eq!(
        store.flows_with_most_failures(&day, 10).await.unwrap(),
        vec![FlowFailures {
            flow_id: "alpha".into(),
            failed: 2
        }]
    );
    assert_eq!(
        store.flows_with_most_failures(&day, 0).await.unwrap(),
        vec![]
    );
}

pub(crate) async fn failure_causes_are_the_last_actions_of_a_flows_newest_failed_runs(
    store: Arc<dyn Store>,
) {
    let refresh_failed = r#""error":"invalid_grant","error_description":"expired""#;
    for (i, error) in [
        (0, refresh_failed),
        (1, refresh_failed),
        (2, r#""error":"AADSTS700016""#),
    ] {
        let id = format!("r{i}");
        let row = ended(&id, "nightly", "failed", i * 10, 50);
        let records = vec![
            oauth_record(&id, 0, "oauth_server_login", "entra", 0, ""),
            oauth_record(&id, 1, "oauth_refresh_token", "entra", -5, error),
        ];
        store.create_run_with_records(&row, &records).await.unwrap();
    }
    // A completed run of the same flow and a failed run of another are no cause.
    let ok = ended("ok", "nightly", "completed", 40, 50);
    store
        .create_run_with_records(
            &ok,
            &[oauth_record(
                "ok",
                0,
                "oauth_refresh_token",
                "entra",
                -5,
                refresh_failed,
            )],
        )
        .await
        .unwrap();
    let other = ended("x", "other", "failed", 40, 50);
    store
        .create_run_with_records(
            &other,
            &[oauth_record("x", 0, "oauth_user_login", "entra", -2, "")],
        )
        .await
        .unwrap();

    let causes = store
        .failure_causes("nightly", at(0), 200, 10)
        .await
        .unwrap();
    let cause = |error: &str, runs| FailureCause {
        action_type: Some("oauth_refresh_token".into()),
        status_code: Some(-5),
        error: Some(error.into()),
        runs,
    };
    assert_eq!(
        causes,
        vec![cause("invalid_grant", 2), cause("AADSTS700016", 1)]
    );
    // The sample is the newest failed runs; `since` leaves older ones out.
    assert_eq!(
        store.failure_causes("nightly", at(0), 1, 10).await.unwrap(),
        vec![cause("AADSTS700016", 1)]
    );
    assert_eq!(
        store
            .failure_causes("nightly", at(15), 200, 10)
            .await
            .unwrap(),
        vec![cause("AADSTS700016", 1)]
    );
}

pub(crate) async fn token_requests_and_cache_hits_are_counted_per_server(store: Arc<dyn Store>) {
    let hit = r#""access_token":"sha256:x"},"response":{"token_cache":"hit""#;
    store
        .create_run(&run("t", "f", "running", 0))
        .await
        .unwrap();
    let records = vec![
        oauth_record("t", 0, "oauth_server_login", "entra", 0, ""),
        oauth_record("t", 1, "oauth_server_login", "entra", 0, hit),
        oauth_record("t", 2, "oauth_server_login", "entra", 0, hit),
        oauth_record("t", 3, "oauth_refresh_token", "google", 0, ""),
        // Not OAuth actions: not counted.
        ActionRecordRow {
            run_id: "t".into(),
            seq: 4,
            json: r#"{"action":"x","type":"http_connector","status_code":200,"started_at":"2025-06-01T12:00:30Z","oauth_server":"entra","inputs":{},"outputs":{}}"#.into(),
        },
    ];
    store
        .record_action_outcomes(&run("t", "f", "running", 0), &records)
        .await
        .unwrap();
    let got = store
        .token_requests_per_server(&first_hour(), 10)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            ServerTokenCounts {
                server_id: "entra".into(),
                requests: 1,
                cache_hits: 2
            },
            ServerTokenCounts {
                server_id: "google".into(),
                requests: 1,
                cache_hits: 0
            },
        ]
    );
    let next_hour = CountWindow::ending_at(at(3_700), MINUTE, 60);
    assert_eq!(
        store
            .token_requests_per_server(&next_hour, 10)
            .await
            .unwrap(),
        vec![]
    );
}

pub(crate) async fn vault_expiries_come_soonest_first_with_their_states(store: Arc<dyn Store>) {
    let mut late = vault_entry("late", Some("at"), Some("rt"));
    late.expires_at = Some(at(7_200));
    let mut soon = vault_entry("soon", Some("at"), Some("rt"));
    soon.expires_at = Some(at(60));
    let mut gone = vault_entry("gone", None, None);
    gone.expires_at = None;
    gone.state = VaultEntryState::NeedsLogin;
    for entry in [&late, &soon, &gone] {
        store.put_vault_entry(entry).await.unwrap();
    }
    let got = store.vault_expiries(10).await.unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|e| (e.name.as_str(), e.state, e.expires_at))
        .collect();
    assert_eq!(
        names,
        vec![
            ("soon", VaultEntryState::Ok, Some(at(60))),
            ("late", VaultEntryState::Ok, Some(at(7_200))),
            ("gone", VaultEntryState::NeedsLogin, None),
        ]
    );
    assert_eq!(store.vault_expiries(1).await.unwrap().len(), 1);
    assert_eq!(
        store.vault_entries_by_state().await.unwrap(),
        vec![(VaultEntryState::NeedsLogin, 1), (VaultEntryState::Ok, 2)]
    );
}
