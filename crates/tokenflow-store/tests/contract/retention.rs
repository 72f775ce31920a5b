//! Contract bodies: retention of ended runs (docs/operations.md, "Retention") and the count of a
//! flow's waiting runs (`max_waiting_runs_per_flow`).

use super::*;
use tokenflow_store::{DevicePollRow, RetentionRule};

/// A run of `flow` that started at `ended - 10` and ended (with `status`) at `ended`, with two
/// monitor records.
async fn ended_run(store: &dyn Store, id: &str, flow: &str, status: &str, ended: i64) {
    let mut row = run(id, flow, status, ended - 10);
    row.updated_at = at(ended);
    row.ended_at = Some(at(ended));
    store
        .create_run_with_records(&row, &[record(id, 0), record(id, 1)])
        .await
        .unwrap();
}

async fn stored_ids(store: &dyn Store) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list_runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    ids.sort();
    ids
}

pub(crate) async fn retention_by_age_deletes_ended_runs_oldest_first_a_batch_at_a_time_and_never_a_waiting_or_running_one(
    store: Arc<dyn Store>,
) {
    for (id, status, ended) in [
        ("old-completed", "completed", 100),
        ("old-failed", "failed", 110),
        ("old-cancelled", "cancelled", 120),
        ("new-completed", "completed", 1000),
    ] {
        ended_run(store.as_ref(), id, "f", status, ended).await;
    }
    // Started long ago, and still going: retention never touches them.
    suspended(store.as_ref(), "old-waiting", "state-waiting", 5000).await;
    store
        .create_run(&run("old-running", "f", "running", 0))
        .await
        .unwrap();
    // What hangs on an ended run goes with it: its pending authorization and its device poll.
    let (_, old_pending) = suspended(store.as_ref(), "old-device", "state-device", 5000).await;
    store
        .schedule_device_poll(&DevicePollRow {
            run_id: "old-device".to_owned(),
            action: "login".to_owned(),
            interval_ms: 5000,
            next_poll_at: at(200),
            expires_at: at(5000),
        })
        .await
        .unwrap();
    let mut ended = run("old-device", "f", "failed", 0);
    ended.updated_at = at(130);
    ended.ended_at = Some(at(130));
    store
        .record_action_outcome(&ended, Some(&record("old-device", 0)))
        .await
        .unwrap();

    let rule = RetentionRule {
        ended_before: Some(at(500)),
        keep_per_flow: None,
    };
    assert_eq!(store.purge_ended_runs(&rule, 2).await.unwrap(), 2);
    assert_eq!(
        stored_ids(store.as_ref()).await,
        [
            "new-completed",
            "old-cancelled",
            "old-device",
            "old-running",
            "old-waiting"
        ],
        "the two that ended first went, and no more than the batch"
    );
    assert_eq!(store.purge_ended_runs(&rule, 2).await.unwrap(), 2);
    assert_eq!(store.purge_ended_runs(&rule, 2).await.unwrap(), 0);
    assert_eq!(
        stored_ids(store.as_ref()).await,
        ["new-completed", "old-running", "old-waiting"]
    );
    for gone in ["old-completed", "old-failed", "old-cancelled", "old-device"] {
        assert_eq!(store.get_run(gone).await.unwrap(), None);
        assert_eq!(store.action_record_count(gone).await.unwrap(), 0);
    }
    assert_eq!(
        store
            .find_pending_authorization(&old_pending.state)
            .await
            .unwrap(),
        None
    );
    assert!(!store.delete_device_poll("old-device").await.unwrap());
    // The waiting run's login still works.
    assert!(matches!(
        store
            .take_pending_authorization(&SecretString::new("state-waiting"), at(600))
            .await
            .unwrap(),
        TakePending::Taken(_)
    ));
    assert_eq!(store.action_record_count("new-completed").await.unwrap(), 2);
}

pub(crate) async fn retention_by_count_keeps_the_newest_ended_runs_of_each_flow(
    store: Arc<dyn Store>,
) {
    for i in 0..5 {
        ended_run(store.as_ref(), &format!("a{i}"), "a", "completed", 100 + i).await;
    }
    for i in 0..2 {
        ended_run(store.as_ref(), &format!("b{i}"), "b", "failed", 100 + i).await;
    }
    // Runs of flow `a` that have not ended: never among the ones beyond the newest.
    store
        .create_run(&run("a-waiting", "a", "running", 0))
        .await
        .unwrap();
    store
        .suspend_run(
            &run("a-waiting", "a", "waiting", 0),
            &pending("state-a", "a-waiting", 0, 5000),
        )
        .await
        .unwrap();
    store
        .create_run(&run("a-running", "a", "running", 0))
        .await
        .unwrap();
    let rule = RetentionRule {
        ended_before: None,
        keep_per_flow: Some(2),
    };
    assert_eq!(store.purge_ended_runs(&rule, 500).await.unwrap(), 3);
    assert_eq!(store.purge_ended_runs(&rule, 500).await.unwrap(), 0);
    assert_eq!(
        stored_ids(store.as_ref()).await,
        ["a-running", "a-waiting", "a3", "a4", "b0", "b1"],
        "flow a keeps its two newest ended runs, flow b had only two, the unended runs stay"
    );

    // Both parts of a rule at once, in batches of one.
    let rule = RetentionRule {
        ended_before: Some(at(101)),
        keep_per_flow: Some(1),
    };
    let mut purged = 0;
    loop {
        let batch = store.purge_ended_runs(&rule, 1).await.unwrap();
        assert!(batch <= 1);
        if batch == 0 {
            break;
        }
        purged += batch;
    }
    assert_eq!(purged, 2);
    assert_eq!(
        stored_ids(store.as_ref()).await,
        ["a-running", "a-waiting", "a4", "b1"]
    );
}

pub(crate) async fn the_waiting_runs_of_a_flow_are_counted(store: Arc<dyn Store>) {
    assert_eq!(store.count_waiting_runs("f").await.unwrap(), 0);
    suspended(store.as_ref(), "w1", "state-1", 5000).await;
    suspended(store.as_ref(), "w2", "state-2", 5000).await;
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    ended_run(store.as_ref(), "c1", "f", "completed", 10).await;
    assert_eq!(store.count_waiting_runs("f").await.unwrap(), 2);
    assert_eq!(store.count_waiting_runs("other").await.unwrap(), 0);
}
