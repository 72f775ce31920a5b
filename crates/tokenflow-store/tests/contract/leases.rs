//! Contract bodies: the vault refresh lease and the runs' leases.

use super::*;

pub(crate) async fn a_vault_refresh_lease_has_one_holder_until_it_is_released_or_expires(
    store: Arc<dyn Store>,
) {
    store
        .put_vault_entry(&vault_entry("leased", Some("at"), Some("rt")))
        .await
        .unwrap();
    assert!(
        store
            .claim_vault_refresh("leased", "a", at(30), at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_vault_refresh("leased", "b", at(30), at(1))
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store
            .claim_vault_refresh("leased", "a", at(40), at(2))
            .await
            .unwrap(),
        "the holder renews"
    );
    store.release_vault_refresh("leased", "b").await.unwrap();
    assert!(
        !store
            .claim_vault_refresh("leased", "b", at(30), at(3))
            .await
            .unwrap(),
        "only the holder releases"
    );
    store.release_vault_refresh("leased", "a").await.unwrap();
    assert!(
        store
            .claim_vault_refresh("leased", "b", at(30), at(4))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_vault_refresh("leased", "c", at(90), at(31))
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !store
            .claim_vault_refresh("missing", "a", at(30), at(0))
            .await
            .unwrap()
    );

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
        if task.await.unwrap() {
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
