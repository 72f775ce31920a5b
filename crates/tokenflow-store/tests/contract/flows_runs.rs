//! Contract bodies: the ping, flows, and runs with their monitor records.

use super::*;

pub(crate) async fn the_store_answers_a_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---- flows ----

pub(crate) async fn putting_the_same_flow_yaml_again_keeps_its_version(store: Arc<dyn Store>) {
    let first = store
        .put_flow("hello", "actions: []\n", at(0))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.created_at, at(0));
    let again = store
        .put_flow("hello", "actions: []\n", at(60))
        .await
        .unwrap();
    assert_eq!(again, first, "same yaml: same row, created_at unchanged");
    assert_eq!(store.get_flow("hello").await.unwrap(), Some(first));
    assert_eq!(store.get_flow_version("hello", 2).await.unwrap(), None);
}

pub(crate) async fn twenty_concurrent_puts_of_one_flow_agree_on_its_versions(
    store: Arc<dyn Store>,
) {
    // The same yaml from everybody: one version 1, and every caller is told about that one.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let same: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.put_flow("same", "a: 1\n", at(index)).await
            })
        })
        .collect();
    let mut rows = Vec::new();
    for put in same {
        rows.push(put.await.unwrap().unwrap());
    }
    let stored = store.get_flow("same").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert!(rows.iter().all(|row| *row == stored), "{rows:?}");
    assert_eq!(store.get_flow_version("same", 2).await.unwrap(), None);

    // Different yamls: twenty consecutive versions, each holding the yaml its writer was told.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let different: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .put_flow("many", &format!("a: {index}\n"), at(0))
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for put in different {
        let row = put.await.unwrap().unwrap();
        let stored = store.get_flow_version("many", row.version).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&row));
        versions.push(row.version);
    }
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>());
    assert_eq!(store.get_flow("many").await.unwrap().unwrap().version, 20);
}

pub(crate) async fn a_changed_flow_yaml_becomes_the_next_version_and_old_versions_stay_readable(
    store: Arc<dyn Store>,
) {
    let v1 = store.put_flow("hello", "a: 1\n", at(0)).await.unwrap();
    let v2 = store.put_flow("hello", "a: 2\n", at(10)).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v2.yaml, "a: 2\n");
    assert_eq!(v2.created_at, at(10));
    assert_eq!(store.get_flow("hello").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.get_flow_version("hello", 1).await.unwrap(), Some(v1));
    assert_eq!(store.get_flow_version("hello", 2).await.unwrap(), Some(v2));
    assert_eq!(store.get_flow("nope").await.unwrap(), None);
    assert_eq!(store.get_flow_version("nope", 1).await.unwrap(), None);
}

pub(crate) async fn a_flows_versions_are_listed_newest_first_without_their_yaml_up_to_the_limit(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.list_flow_versions("f", 10).await.unwrap(), vec![]);
    store.put_flow("f", "a: 1\n", at(0)).await.unwrap();
    store.put_flow("f", "a: 22\n", at(5)).await.unwrap();
    store.put_flow("f", "a: ü\n", at(9)).await.unwrap();
    store.put_flow("other", "b: 1\n", at(0)).await.unwrap();
    let versions = store.list_flow_versions("f", 10).await.unwrap();
    assert_eq!(
        versions,
        vec![
            FlowVersionRow {
                version: 3,
                created_at: at(9),
                bytes: 6
            },
            FlowVersionRow {
                version: 2,
                created_at: at(5),
                bytes: 6
            },
            FlowVersionRow {
                version: 1,
                created_at: at(0),
                bytes: 5
            },
        ],
        "bytes, not characters: `ü` is two"
    );
    let newest_two = store.list_flow_versions("f", 2).await.unwrap();
    assert_eq!(newest_two, versions[..2].to_vec());
}

pub(crate) async fn going_back_to_an_older_yaml_is_still_a_new_version(store: Arc<dyn Store>) {
    store.put_flow("f", "a: 1\n", at(0)).await.unwrap();
    store.put_flow("f", "a: 2\n", at(1)).await.unwrap();
    let back = store.put_flow("f", "a: 1\n", at(2)).await.unwrap();
    assert_eq!(
        back.version, 3,
        "only the newest version counts as 'unchanged'"
    );
}

pub(crate) async fn list_flows_gives_the_newest_version_of_each_flow_ordered_by_id(
    store: Arc<dyn Store>,
) {
    assert!(store.list_flows().await.unwrap().is_empty());
    store.put_flow("zeta", "z: 1\n", at(0)).await.unwrap();
    store.put_flow("alpha", "a: 1\n", at(1)).await.unwrap();
    store.put_flow("alpha", "a: 2\n", at(2)).await.unwrap();
    store.put_flow("mid", "m: 1\n", at(3)).await.unwrap();
    let listed: Vec<(String, i64, String)> = store
        .list_flows()
        .await
        .unwrap()
        .into_iter()
        .map(|flow| (flow.id, flow.version, flow.yaml))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("alpha".into(), 2, "a: 2\n".into()),
            ("mid".into(), 1, "m: 1\n".into()),
            ("zeta".into(), 1, "z: 1\n".into()),
        ]
    );
}

// ---- runs and the monitor ----

pub(crate) async fn a_created_run_reads_back_equal_and_a_second_run_with_its_id_is_a_conflict(
    store: Arc<dyn Store>,
) {
    let mut created = run("r1", "f", "running", 0);
    created.browser_binding = Some("ab".repeat(32));
    created.flow_version = 7;
    store.create_run(&created).await.unwrap();
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_run("r2").await.unwrap(), None);

    let mut other = run("r1", "g", "completed", 5);
    other.state = SecretString::new("{}");
    let err = store.create_run(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
}

pub(crate) async fn a_run_created_with_its_first_records_has_them_and_a_conflict_adds_none(
    store: Arc<dyn Store>,
) {
    let created = run("r1", "f", "running", 0);
    store
        .create_run_with_records(&created, &[record("r1", 0), record("r1", 1)])
        .await
        .unwrap();
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created.clone()));
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0), record("r1", 1)]
    );
    // The next write continues the sequence.
    store
        .record_action_outcome(&created, Some(&record("r1", 2)))
        .await
        .unwrap();
    assert_eq!(store.action_record_count("r1").await.unwrap(), 3);

    // The same id again: refused, and neither the run nor its records change.
    let mut again = run("r1", "g", "completed", 5);
    again.state = SecretString::new("{}");
    let err = store
        .create_run_with_records(&again, &[record("r1", 3)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
    assert_eq!(store.action_record_count("r1").await.unwrap(), 3);

    // Records of another run: refused before anything is written.
    let err = store
        .create_run_with_records(&run("r2", "f", "running", 0), &[record("r9", 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_run("r2").await.unwrap(), None);
    // Two records with one sequence number: the run is not created either.
    let err = store
        .create_run_with_records(
            &run("r3", "f", "running", 0),
            &[record("r3", 0), record("r3", 0)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_run("r3").await.unwrap(), None);
    assert_eq!(store.action_record_count("r3").await.unwrap(), 0);
}

pub(crate) async fn list_runs_is_newest_first_and_filters_by_flow_status_and_start_time(
    store: Arc<dyn Store>,
) {
    let mut done = run("r3", "f", "completed", 30);
    done.ended_at = Some(at(35));
    for row in [
        run("r1", "f", "running", 10),
        run("r2", "g", "waiting", 20),
        done,
        run("r4", "g", "running", 40),
        // Same start as r4: the id breaks the tie, descending.
        run("r5", "f", "failed", 40),
    ] {
        store.create_run(&row).await.unwrap();
    }
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["r5", "r4", "r3", "r2", "r1"]);
    let r3 = &all[2];
    assert_eq!(
        (r3.flow_id.as_str(), r3.flow_version, r3.status.as_str()),
        ("f", 1, "completed")
    );
    assert_eq!((r3.started_at, r3.ended_at), (at(30), Some(at(35))));

    let by_flow = RunFilter {
        flow_id: Some("f".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&by_flow).await.unwrap()),
        ["r5", "r3", "r1"]
    );

    let by_status = RunFilter {
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&by_status).await.unwrap()),
        ["r4", "r1"]
    );

    let both = RunFilter {
        flow_id: Some("g".into()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&both).await.unwrap()), ["r4"]);

    // Start-time window: `started_after` inclusive, `started_before` exclusive.
    let window = RunFilter {
        started_after: Some(at(20)),
        started_before: Some(at(40)),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&window).await.unwrap()), ["r3", "r2"]);

    let nothing = RunFilter {
        flow_id: Some("unknown".into()),
        ..RunFilter::default()
    };
    assert!(store.list_runs(&nothing).await.unwrap().is_empty());
}

pub(crate) async fn list_runs_pages_with_limit_and_offset_and_a_zero_limit_means_a_hundred(
    store: Arc<dyn Store>,
) {
    for index in 0..105 {
        store
            .create_run(&run(&format!("r{index:03}"), "f", "completed", index))
            .await
            .unwrap();
    }
    let default_page = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(default_page.len(), 100);
    assert_eq!(default_page[0].id, "r104");

    let page = RunFilter {
        limit: 3,
        offset: 2,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&page).await.unwrap()),
        ["r102", "r101", "r100"]
    );
    let last = RunFilter {
        limit: 10,
        offset: 100,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&last).await.unwrap()),
        ["r004", "r003", "r002", "r001", "r000"]
    );
    let beyond = RunFilter {
        limit: 10,
        offset: 105,
        ..RunFilter::default()
    };
    assert!(store.list_runs(&beyond).await.unwrap().is_empty());
}

pub(crate) async fn list_runs_caps_the_limit_at_a_thousand(store: Arc<dyn Store>) {
    for index in 0..1001 {
        store
            .create_run(&run(&format!("r{index:04}"), "f", "completed", index))
            .await
            .unwrap();
    }
    let huge = RunFilter {
        limit: u32::MAX,
        ..RunFilter::default()
    };
    let listed = store.list_runs(&huge).await.unwrap();
    assert_eq!(listed.len(), 1000);
    assert_eq!(
        listed[999].id, "r0001",
        "the oldest run is the one left out"
    );
}

pub(crate) async fn record_action_outcome_saves_the_run_and_appends_records_in_order(
    store: Arc<dyn Store>,
) {
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    let mut next = run("r1", "f", "running", 0);
    for seq in 0..3 {
        next.state = SecretString::new(format!(r#"{{"after":{seq}}}"#));
        next.updated_at = at(seq + 1);
        store
            .record_action_outcome(&next, Some(&record("r1", seq)))
            .await
            .unwrap();
    }
    let mut finished = next.clone();
    finished.status = RunStatus::Completed;
    finished.ended_at = Some(at(9));
    finished.updated_at = at(9);
    finished.browser_binding = Some("binding".into());
    store.record_action_outcome(&finished, None).await.unwrap();

    assert_eq!(store.get_run("r1").await.unwrap(), Some(finished));
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0), record("r1", 1), record("r1", 2)]
    );
    assert!(store.action_records("other").await.unwrap().is_empty());
}

pub(crate) async fn monitor_records_are_read_a_page_at_a_time_and_counted(store: Arc<dyn Store>) {
    for id in ["long", "short"] {
        store.create_run(&run(id, "f", "running", 0)).await.unwrap();
    }
    let state = run("long", "f", "running", 0);
    for batch in 0..6 {
        let records: Vec<ActionRecordRow> = (batch * 201..(batch + 1) * 201)
            .map(|seq| record("long", seq))
            .collect();
        store
            .record_action_outcomes(&state, &records)
            .await
            .unwrap();
    }
    let short = run("short", "f", "running", 0);
    let records: Vec<ActionRecordRow> = (0..3).map(|seq| record("short", seq)).collect();
    store
        .record_action_outcomes(&short, &records)
        .await
        .unwrap();

    assert_eq!(store.action_record_count("long").await.unwrap(), 1206);
    assert_eq!(store.action_record_count("short").await.unwrap(), 3);
    assert_eq!(store.action_record_count("ghost").await.unwrap(), 0);

    let seqs = |rows: Vec<ActionRecordRow>| -> Vec<i64> {
        assert!(rows.iter().all(|row| row.run_id == rows[0].run_id));
        rows.iter().map(|row| row.seq).collect()
    };
    let first = store.action_records_page("long", 0, 0).await.unwrap();
    assert_eq!(first[7], record("long", 7), "rows read back whole");
    assert_eq!(seqs(first), (0..100).collect::<Vec<_>>(), "0 means 100");
    assert_eq!(
        seqs(store.action_records_page("long", 1100, 100).await.unwrap()),
        (1100..1200).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(store.action_records_page("long", 1200, 100).await.unwrap()),
        (1200..1206).collect::<Vec<_>>(),
        "the last page is short"
    );
    assert_eq!(
        store
            .action_records_page("long", 0, 5000)
            .await
            .unwrap()
            .len(),
        1000,
        "at most a thousand at a time"
    );
    assert!(
        store
            .action_records_page("long", 1206, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .action_records_page("ghost", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        seqs(store.action_records_page("short", 1, 10).await.unwrap()),
        [1, 2],
        "only the run's own records"
    );
}

pub(crate) async fn a_duplicate_monitor_record_is_a_conflict_and_leaves_the_run_unchanged(
    store: Arc<dyn Store>,
) {
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    let mut first = run("r1", "f", "running", 0);
    first.state = SecretString::new(r#"{"after":0}"#);
    first.updated_at = at(1);
    store
        .record_action_outcome(&first, Some(&record("r1", 0)))
        .await
        .unwrap();

    let mut clash = first.clone();
    clash.status = RunStatus::Completed;
    clash.state = SecretString::new(r#"{"after":"clash"}"#);
    clash.updated_at = at(2);
    clash.ended_at = Some(at(2));
    let mut duplicate = record("r1", 0);
    duplicate.json = r#"{"other":true}"#.into();
    let err = store
        .record_action_outcome(&clash, Some(&duplicate))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(
        store.get_run("r1").await.unwrap(),
        Some(first),
        "rolled back"
    );
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0)]
    );
}

pub(crate) async fn record_action_outcome_for_an_unknown_run_is_not_found_and_stores_no_record(
    store: Arc<dyn Store>,
) {
    let ghost = run("ghost", "f", "running", 0);
    let err = store
        .record_action_outcome(&ghost, Some(&record("ghost", 0)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(store.action_records("ghost").await.unwrap().is_empty());
    assert_eq!(store.get_run("ghost").await.unwrap(), None);
}

pub(crate) async fn runs_with_status_returns_exactly_the_runs_in_that_status(
    store: Arc<dyn Store>,
) {
    let running_a = run("a", "f", "running", 1);
    let running_b = run("b", "g", "running", 2);
    store.create_run(&running_a).await.unwrap();
    store
        .create_run(&run("c", "f", "waiting", 3))
        .await
        .unwrap();
    store.create_run(&running_b).await.unwrap();
    store
        .create_run(&run("d", "f", "completed", 4))
        .await
        .unwrap();

    let mut running = store.runs_with_status(RunStatus::Running).await.unwrap();
    running.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        running,
        vec![running_a, running_b],
        "full rows, state decrypted"
    );
    let waiting = store.runs_with_status(RunStatus::Waiting).await.unwrap();
    assert_eq!(
        waiting.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(
        store
            .runs_with_status(RunStatus::Cancelled)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- many run writes at once ----

/// Writes of many runs at once (SQLite commits them in shared transactions): one conflicting or
/// missing run gets its own error and changes nothing; every other write lands.
pub(crate) async fn concurrent_run_writes_each_get_their_own_answer_when_one_of_them_conflicts(
    store: Arc<dyn Store>,
) {
    for i in 0..40 {
        store
            .create_run(&run(&format!("batch-{i}"), "f", "running", 0))
            .await
            .unwrap();
        store
            .record_action_outcome(
                &run(&format!("batch-{i}"), "f", "running", 1),
                Some(&record(&format!("batch-{i}"), 0)),
            )
            .await
            .unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(42));
    let mut tasks = Vec::new();
    for i in 0..42 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            // 0..40: each run's next record; 40: a record batch-7 has already; 41: no such run.
            let (target, seq) = match i {
                40 => ("batch-7".to_owned(), 0),
                41 => ("batch-missing".to_owned(), 1),
                _ => (format!("batch-{i}"), 1),
            };
            let mut row = run(&target, "f", "running", 2);
            row.state = SecretString::new(format!(r#"{{"write":{i}}}"#));
            barrier.wait().await;
            (
                i,
                store
                    .record_action_outcome(&row, Some(&record(&target, seq)))
                    .await,
            )
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match i {
            40 => assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}"),
            41 => assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}"),
            _ => result.unwrap(),
        }
    }
    for i in 0..40 {
        let id = format!("batch-{i}");
        let records = store.action_records(&id).await.unwrap();
        assert_eq!(records.len(), 2, "{id} has both records");
        assert_eq!(
            store.get_run(&id).await.unwrap().unwrap().state.expose(),
            format!(r#"{{"write":{i}}}"#),
            "the conflicting write did not change {id}"
        );
    }
    assert!(store.get_run("batch-missing").await.unwrap().is_none());
    assert!(
        store
            .action_records("batch-missing")
            .await
            .unwrap()
            .is_empty()
    );
}

/// The typed status and state are written as their column text and read back by each backend;
/// every spelling must be one the column accepts.
pub(crate) async fn every_run_status_and_vault_entry_state_reads_back_as_itself(
    store: Arc<dyn Store>,
) {
    for (i, status) in RunStatus::ALL.iter().enumerate() {
        let id = format!("run-{status}");
        let mut row = run(&id, "f", "running", i as i64);
        row.status = *status;
        store.create_run(&row).await.unwrap();
        assert_eq!(store.get_run(&id).await.unwrap().unwrap().status, *status);
        let listed = store
            .list_runs(&RunFilter {
                status: Some(*status),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&listed), [id.as_str()], "{status}");
    }
    for state in VaultEntryState::ALL {
        let name = format!("entry-{state}");
        let mut entry = vault_entry(&name, Some("a"), None);
        entry.state = *state;
        store.put_vault_entry(&entry).await.unwrap();
        assert_eq!(
            store.get_vault_entry(&name).await.unwrap().unwrap().state,
            *state
        );
    }
}
