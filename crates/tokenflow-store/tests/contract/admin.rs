//! Contract bodies: OAuth servers, API keys, schedule firings and purging.

use super::*;

// ---- OAuth servers ----

pub(crate) async fn oauth_servers_upsert_and_return_their_secret_decrypted_until_deleted(
    store: Arc<dyn Store>,
) {
    let entra = OAuthServerRow {
        id: "entra".into(),
        spec_json: r#"{"client_id":"app"}"#.into(),
        client_secret: Some(SecretString::new("s3cr3t")),
        private_key: None,
        updated_at: at(0),
    };
    let public = OAuthServerRow {
        id: "a-public".into(),
        spec_json: r#"{"client_id":"spa"}"#.into(),
        client_secret: None,
        private_key: None,
        updated_at: at(1),
    };
    store.put_oauth_server(&entra).await.unwrap();
    store.put_oauth_server(&public).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(entra.clone())
    );
    assert_eq!(
        store.list_oauth_servers().await.unwrap(),
        vec![public.clone(), entra.clone()],
        "ordered by id"
    );

    let rotated = OAuthServerRow {
        spec_json: r#"{"client_id":"app2"}"#.into(),
        client_secret: None,
        private_key: Some(SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----",
        )),
        updated_at: at(10),
        ..entra.clone()
    };
    store.put_oauth_server(&rotated).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(rotated.clone())
    );
    let without_secret = OAuthServerRow {
        client_secret: None,
        private_key: None,
        updated_at: at(20),
        ..rotated
    };
    store.put_oauth_server(&without_secret).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(without_secret)
    );

    assert!(store.delete_oauth_server("entra").await.unwrap());
    assert!(!store.delete_oauth_server("entra").await.unwrap());
    assert_eq!(store.get_oauth_server("entra").await.unwrap(), None);
    assert_eq!(store.list_oauth_servers().await.unwrap(), vec![public]);
}

// ---- API keys ----

fn api_key(name: &str, hash: &str) -> ApiKeyRow {
    ApiKeyRow {
        name: name.into(),
        hash: hash.into(),
        created_at: at(0),
    }
}

pub(crate) async fn api_keys_are_found_by_hash_listed_by_name_and_deleted_by_name(
    store: Arc<dyn Store>,
) {
    let ci = api_key("ci", &"c".repeat(64));
    let admin = api_key("admin", &"a".repeat(64));
    store.put_api_key(&ci).await.unwrap();
    store.put_api_key(&admin).await.unwrap();

    assert_eq!(
        store.find_api_key(&"c".repeat(64)).await.unwrap(),
        Some(ci.clone())
    );
    assert_eq!(store.find_api_key(&"0".repeat(64)).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![admin.clone(), ci.clone()]
    );

    assert!(store.delete_api_key("ci").await.unwrap());
    assert!(!store.delete_api_key("ci").await.unwrap());
    assert_eq!(store.find_api_key(&"c".repeat(64)).await.unwrap(), None);
    assert_eq!(store.list_api_keys().await.unwrap(), vec![admin]);
}

pub(crate) async fn an_api_key_with_a_taken_name_or_hash_is_a_conflict(store: Arc<dyn Store>) {
    let original = api_key("ci", &"c".repeat(64));
    store.put_api_key(&original).await.unwrap();
    for clash in [
        api_key("ci", &"d".repeat(64)),
        api_key("other", &"c".repeat(64)),
    ] {
        let err = store.put_api_key(&clash).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(
            !err.to_string().contains(&"c".repeat(64)),
            "no hash in messages"
        );
    }
    assert_eq!(store.list_api_keys().await.unwrap(), vec![original]);
}

// ---- schedules ----

pub(crate) async fn a_firing_is_claimed_once_and_last_firing_is_the_newest_per_flow(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.last_firing("nightly").await.unwrap(), None);
    assert!(
        store
            .claim_firing("nightly", 1000, "run-a", at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_firing("nightly", 1000, "run-b", at(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_firing("hourly", 1000, "run-c", at(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_firing("nightly", 3000, "run-d", at(3))
            .await
            .unwrap()
    );
    // A late claim of an earlier firing does not become the "last" one.
    assert!(
        store
            .claim_firing("nightly", 2000, "run-e", at(4))
            .await
            .unwrap()
    );

    assert_eq!(
        store.last_firing("nightly").await.unwrap(),
        Some(FiringRow {
            flow_id: "nightly".into(),
            due: 3000,
            run_id: "run-d".into(),
            claimed_at: at(3),
        })
    );
    assert_eq!(
        store
            .last_firing("hourly")
            .await
            .unwrap()
            .map(|f| (f.due, f.run_id)),
        Some((1000, "run-c".into()))
    );
    let dues: Vec<(i64, String)> = store
        .firings("nightly", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.due, f.run_id))
        .collect();
    assert_eq!(
        dues,
        [
            (1000, "run-a".into()),
            (2000, "run-e".into()),
            (3000, "run-d".into())
        ]
    );
    let newest: Vec<i64> = store
        .firings("nightly", 2)
        .await
        .unwrap()
        .iter()
        .map(|f| f.due)
        .collect();
    assert_eq!(
        newest,
        [2000, 3000],
        "the limit keeps the newest, oldest first"
    );
}

pub(crate) async fn twenty_concurrent_claimers_of_one_firing_get_exactly_one_claim(
    store: Arc<dyn Store>,
) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let claimers: Vec<_> = (0..20)
        .map(|index| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let run_id = format!("run-{index}");
                let won = store
                    .claim_firing("nightly", 86_400, &run_id, at(0))
                    .await?;
                Ok::<_, StoreError>((won, run_id))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for claimer in claimers {
        let (won, run_id) = claimer.await.unwrap().unwrap();
        if won {
            winners.push(run_id);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let last = store.last_firing("nightly").await.unwrap().unwrap();
    assert_eq!((last.due, &last.run_id), (86_400, &winners[0]));
}

// ---- purge ----

pub(crate) async fn purging_deletes_consumed_logins_and_old_firings_but_keeps_each_flows_newest(
    store: Arc<dyn Store>,
) {
    suspended(&*store, "purge-used", "state-used", 1000).await;
    suspended(&*store, "purge-open", "state-open", 1000).await;
    let used = SecretString::new("state-used");
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(5))
            .await
            .unwrap(),
        TakePending::Taken(_)
    ));
    for (flow, due, claimed) in [("a", 10, 10), ("a", 20, 20), ("a", 30, 30), ("b", 10, 10)] {
        assert!(
            store
                .claim_firing(flow, due, &format!("run-{flow}-{due}"), at(claimed))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store.purge_consumed(at(5)).await.unwrap(),
        0,
        "nothing is old enough"
    );
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(6))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    ));

    assert_eq!(store.purge_consumed(at(100)).await.unwrap(), 3);
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(101))
            .await
            .unwrap(),
        TakePending::Unknown
    ));
    assert!(
        store
            .find_pending_authorization(&SecretString::new("state-open"))
            .await
            .unwrap()
            .is_some(),
        "a login still waiting is kept"
    );
    let a: Vec<i64> = store
        .firings("a", 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.due)
        .collect();
    assert_eq!(a, [30], "each flow keeps its newest firing");
    assert_eq!(store.firings("b", 10).await.unwrap().len(), 1);
    assert_eq!(store.last_firing("a").await.unwrap().unwrap().due, 30);
}
