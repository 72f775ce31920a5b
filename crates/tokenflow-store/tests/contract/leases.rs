//! Contract bodies: the vault refresh lease and the runs' leases.

use super::*;

pub(crate) async fn a_vault_refresh_lease_has_one_holder_until_it_is_released_or_expires(
    store: Arc<dyn Store>,
) {
    store
        .put_vault_entry(&vault_entry("leased", Some("at"), Some("rt")))
        .await
        .unwrap();
    let claim = |name: &'static str, owner: &'static str, until: i64, now: i64| {
        let store = store.clone();
        async move {
            store
                .claim_vault_refresh(name, owner, at(until), at(now))
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("leased", "a", 30, 0).await, RefreshClaim::Claimed);
    assert_eq!(
        claim("leased", "b", 30, 1).await,
        RefreshClaim::Refused,
        "held by a"
    );
    assert_eq!(
        claim("leased", "a", 40, 2).await,
        RefreshClaim::Claimed,
        "the holder renews"
    );
    store.release_vault_refresh("leased", "b").await.unwrap();
    assert_eq!(
        claim("leased", "b", 30, 3).await,
        RefreshClaim::Refused,
        "only the holder releases"
    );
    store.release_vault_refresh("leased", "a").await.unwrap();
    assert_eq!(claim("leased", "b", 30, 4).await, RefreshClaim::Claimed);
    assert_eq!(
        claim("leased", "c", 90, 31).await,
        RefreshClaim::TakenOver,
        "an expired lease of another owner is taken over, and said to be"
    );
    assert_eq!(
        claim("leased", "c", 120, 95).await,
        RefreshClaim::Claimed,
        "an own expired lease is simply claimed again"
    );
    assert_eq!(claim("missing", "a", 30, 0).await, RefreshClaim::Refused);

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    store
        .put_vault_entry(&vault_entry("race", Some("at"), Some("rt")))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .claim_vault_refresh("race", &format!("owner-{i}"), at(30), at(0))
                .await
                .unwrap()
        }));
    }
    let mut holders = 0;
    for task in tasks {
        if task.await.unwrap().is_held() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

pub(crate) async fn running_runs_without_a_live_lease_are_found_after_it_expires(
    store: Arc<dyn Store>,
) {
    store
        .create_run(&run("leased-run", "f", "running", 0))
        .await
        .unwrap();
    store
        .create_run(&run("done-run", "f", "completed", 0))
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(10), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "a fresh run has a grace period"
    );
    assert_eq!(
        store.runs_with_expired_lease(at(31), 30_000).await.unwrap(),
        ["leased-run"]
    );
    store
        .renew_run_lease("leased-run", "instance-a", at(100))
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(50), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "its instance renews the lease"
    );
    assert_eq!(
        store
            .runs_with_expired_lease(at(101), 30_000)
            .await
            .unwrap(),
        ["leased-run"]
    );
    // Any write of the run's state proves its instance alive for the grace period too.
    store
        .record_action_outcome(&run("leased-run", "f", "running", 120), None)
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(149), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "a write after the lease renews it"
    );
    assert_eq!(
        store
            .runs_with_expired_lease(at(151), 30_000)
            .await
            .unwrap(),
        ["leased-run"]
    );
    store
        .renew_run_lease("done-run", "instance-a", at(100))
        .await
        .unwrap();
    assert!(
        !store
            .runs_with_expired_lease(at(1000), 30_000)
            .await
            .unwrap()
            .contains(&"done-run".to_owned())
    );
}

pub(crate) async fn an_interrupted_run_is_failed_by_exactly_one_of_twenty_concurrent_claims(
    store: Arc<dyn Store>,
) {
    store
        .create_run(&run("orphan", "f", "running", 0))
        .await
        .unwrap();
    // Claimant `i`'s failed form of the run.
    let failed = |i: i64| RunRow {
        status: RunStatus::Failed,
        state: SecretString::new(format!(r#"{{"failed_by":{i}}}"#)),
        updated_at: at(40 + i),
        ended_at: Some(at(40 + i)),
        ..run("orphan", "f", "running", 0)
    };
    assert!(
        !store
            .fail_interrupted_run(&failed(0), at(10), 30_000)
            .await
            .unwrap(),
        "within its grace period the run's instance counts as alive"
    );
    assert_eq!(
        store.get_run("orphan").await.unwrap().unwrap().status,
        RunStatus::Running
    );

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, barrier, failed) = (store.clone(), barrier.clone(), failed(i));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let won = store
                .fail_interrupted_run(&failed, at(31), 30_000)
                .await
                .unwrap();
            (i, won)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, won) = task.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get_run("orphan").await.unwrap().unwrap();
    assert_eq!(stored, failed(winners[0]), "the winner's write, whole");

    assert!(
        !store
            .fail_interrupted_run(&failed(99), at(1000), 30_000)
            .await
            .unwrap(),
        "a failed run is not failed again"
    );
    assert_eq!(store.get_run("orphan").await.unwrap().unwrap(), stored);
    assert!(
        store
            .runs_with_expired_lease(at(1000), 30_000)
            .await
            .unwrap()
            .is_empty()
    );

    // A run whose instance renews its lease is left alone, and an unknown run is nobody's.
    store
        .create_run(&run("alive", "f", "running", 0))
        .await
        .unwrap();
    store
        .renew_run_lease("alive", "instance-a", at(100))
        .await
        .unwrap();
    let alive_failed = RunRow {
        id: "alive".to_owned(),
        ..failed(0)
    };
    assert!(
        !store
            .fail_interrupted_run(&alive_failed, at(50), 30_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_run("alive").await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let unknown = RunRow {
        id: "unknown".to_owned(),
        ..failed(0)
    };
    assert!(
        !store
            .fail_interrupted_run(&unknown, at(1000), 30_000)
            .await
            .unwrap()
    );
}

pub(crate) async fn a_due_device_poll_is_claimed_by_one_instance_until_released_or_expired(
    store: Arc<dyn Store>,
) {
    let poll = |run: &str, next: i64| tokenflow_store::DevicePollRow {
        run_id: run.to_owned(),
        action: "login".to_owned(),
        interval_ms: 5000,
        next_poll_at: at(next),
        expires_at: at(600),
    };
    store.schedule_device_poll(&poll("due", 5)).await.unwrap();
    store
        .schedule_device_poll(&poll("later", 50))
        .await
        .unwrap();
    assert!(
        store
            .claim_device_polls("a", at(0), at(60), 8)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due yet"
    );
    let claimed = store
        .claim_device_polls("a", at(5), at(65), 8)
        .await
        .unwrap();
    assert_eq!(claimed, vec![poll("due", 5)]);
    assert!(
        store
            .claim_device_polls("b", at(6), at(66), 8)
            .await
            .unwrap()
            .is_empty(),
        "claimed by a"
    );
    assert!(
        !store
            .release_device_poll("due", "b", 10_000, at(16))
            .await
            .unwrap(),
        "only the holder releases"
    );
    assert!(
        store
            .release_device_poll("due", "a", 10_000, at(16))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_device_polls("b", at(10), at(70), 8)
            .await
            .unwrap()
            .is_empty(),
        "released with its next poll's time"
    );
    let claimed = store
        .claim_device_polls("b", at(16), at(76), 8)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].interval_ms, 10_000);
    assert_eq!(claimed[0].next_poll_at, at(16));
    let taken_over = store
        .claim_device_polls("c", at(80), at(140), 1)
        .await
        .unwrap();
    assert_eq!(
        taken_over
            .iter()
            .map(|p| p.run_id.as_str())
            .collect::<Vec<_>>(),
        ["due"],
        "b's claim expired at 76; soonest first, at most `limit`"
    );
    let rest = store
        .claim_device_polls("c", at(80), at(140), 8)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].run_id, "later");
    assert!(store.delete_device_poll("due").await.unwrap());
    assert!(!store.delete_device_poll("due").await.unwrap());
    assert!(
        !store
            .release_device_poll("due", "c", 1000, at(90))
            .await
            .unwrap()
    );
}
