//! Contract bodies: pending authorizations (a run suspended at a login).

use super::*;

// ---- pending authorizations ----

pub(crate) async fn a_suspended_run_waits_and_its_pending_authorization_is_taken_only_once(
    store: Arc<dyn Store>,
) {
    let (waiting, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    assert_eq!(store.get_run("r1").await.unwrap(), Some(waiting));

    let state = SecretString::new("state-abc");
    match store
        .take_pending_authorization(&state, at(30))
        .await
        .unwrap()
    {
        TakePending::Taken(taken) => assert_eq!(taken, pending),
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(
        store
            .take_pending_authorization(&state, at(31))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
}

pub(crate) async fn finding_a_pending_authorization_does_not_consume_it(store: Arc<dyn Store>) {
    let (_, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let state = SecretString::new("state-abc");
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        Some(pending),
        "still there"
    );
    assert_eq!(
        store
            .find_pending_authorization(&SecretString::new("other"))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .take_pending_authorization(&state, at(30))
            .await
            .unwrap(),
        TakePending::Taken(_)
    ));
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        None,
        "consumed ones are not found"
    );
}

pub(crate) async fn an_unknown_state_is_reported_unknown(store: Arc<dyn Store>) {
    suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let outcome = store
        .take_pending_authorization(&SecretString::new("state-xyz"), at(30))
        .await
        .unwrap();
    assert_eq!(outcome, TakePending::Unknown);
    // The real one is untouched by the failed lookup.
    let real = store
        .take_pending_authorization(&SecretString::new("state-abc"), at(30))
        .await
        .unwrap();
    assert!(matches!(real, TakePending::Taken(_)), "{real:?}");
}

pub(crate) async fn an_expired_pending_authorization_is_reported_expired_once_then_already_used(
    store: Arc<dyn Store>,
) {
    let (_, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let state = SecretString::new("state-abc");
    // Expiry is inclusive: at `expires_at` it is no longer valid.
    match store
        .take_pending_authorization(&state, at(600))
        .await
        .unwrap()
    {
        TakePending::Expired(expired) => assert_eq!(expired, pending),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(
        store
            .take_pending_authorization(&state, at(601))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    assert!(
        store
            .take_expired_pending(at(700))
            .await
            .unwrap()
            .is_empty(),
        "the expiry was handled by the taker; the sweeper must not handle it again"
    );
}

pub(crate) async fn twenty_concurrent_takers_of_one_state_get_exactly_one_taken(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "r1", "contended-state", 600).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .take_pending_authorization(&SecretString::new("contended-state"), at(30))
                    .await
            })
        })
        .collect();
    let mut taken = 0;
    let mut already_used = 0;
    for taker in takers {
        match taker.await.unwrap().unwrap() {
            TakePending::Taken(_) => taken += 1,
            TakePending::AlreadyUsed => already_used += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((taken, already_used), (1, 19));
}

pub(crate) async fn take_expired_pending_returns_each_expired_row_once_and_never_a_taken_one(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "early", "state-early", 100).await;
    suspended(store.as_ref(), "later", "state-later", 200).await;
    suspended(store.as_ref(), "live", "state-live", 1000).await;
    suspended(store.as_ref(), "used", "state-used", 150).await;
    let used = store
        .take_pending_authorization(&SecretString::new("state-used"), at(50))
        .await
        .unwrap();
    assert!(matches!(used, TakePending::Taken(_)), "{used:?}");

    let swept = store.take_expired_pending(at(200)).await.unwrap();
    let mut swept_runs: Vec<(&str, &str, OffsetDateTime)> = swept
        .iter()
        .map(|row| (row.run_id.as_str(), row.action.as_str(), row.expires_at))
        .collect();
    swept_runs.sort();
    assert_eq!(
        swept_runs,
        [("early", "login", at(100)), ("later", "login", at(200))]
    );
    let early = swept.iter().find(|row| row.run_id == "early").unwrap();
    assert_eq!(
        early.payload,
        pending("state-early", "early", 1, 100).payload
    );

    assert!(
        store
            .take_expired_pending(at(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .take_pending_authorization(&SecretString::new("state-early"), at(300))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    let live = store
        .take_pending_authorization(&SecretString::new("state-live"), at(300))
        .await
        .unwrap();
    assert!(matches!(live, TakePending::Taken(_)), "{live:?}");
    assert!(
        store
            .take_expired_pending(at(5000))
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn discarding_a_runs_pending_authorization_consumes_only_that_one(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "cancelled", "state-cancel", 600).await;
    suspended(store.as_ref(), "other", "state-other", 600).await;

    assert!(store.discard_pending_for_run("cancelled").await.unwrap());
    assert!(!store.discard_pending_for_run("cancelled").await.unwrap());
    assert!(!store.discard_pending_for_run("no-such-run").await.unwrap());

    assert_eq!(
        store
            .take_pending_authorization(&SecretString::new("state-cancel"), at(10))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    let other = store
        .take_pending_authorization(&SecretString::new("state-other"), at(10))
        .await
        .unwrap();
    assert!(matches!(other, TakePending::Taken(_)), "{other:?}");
    assert!(
        store
            .take_expired_pending(at(5000))
            .await
            .unwrap()
            .is_empty(),
        "a discarded authorization never expires later"
    );
}

pub(crate) async fn a_suspend_with_a_reused_state_is_a_conflict_and_leaves_the_run_unchanged(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "r1", "same-state", 600).await;
    let before = run("r2", "f", "running", 0);
    store.create_run(&before).await.unwrap();
    let mut waiting = before.clone();
    waiting.status = RunStatus::Waiting;
    waiting.updated_at = at(5);
    let err = store
        .suspend_run(&waiting, &pending("same-state", "r2", 5, 600))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_run("r2").await.unwrap(),
        Some(before),
        "rolled back"
    );
    assert!(!store.discard_pending_for_run("r2").await.unwrap());
}
