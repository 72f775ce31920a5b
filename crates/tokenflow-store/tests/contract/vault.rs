//! Contract bodies: vault entries, their versions and compare-and-swap.

use super::*;

pub(crate) async fn vault_entries_roundtrip_with_versions_and_compare_and_swap(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.get_vault_entry("alice").await.unwrap(), None);
    let stored = store
        .put_vault_entry(&vault_entry("alice", Some("at-1"), Some("rt-1")))
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-1")
    );
    let read = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(read, stored);

    let mut rotated = read.clone();
    rotated.refresh_token = Some(SecretString::new("rt-2"));
    rotated.last_refresh_at = Some(at(10));
    rotated.last_refresh_outcome = Some("ok".into());
    assert!(store.update_vault_entry(&rotated, 1).await.unwrap());
    let after = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(after.version, 2);
    assert_eq!(
        after.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-2")
    );
    assert_eq!(after.last_refresh_at, Some(at(10)));

    let mut stale = read.clone();
    stale.refresh_token = Some(SecretString::new("rt-stale"));
    assert!(
        !store.update_vault_entry(&stale, 1).await.unwrap(),
        "a stale version loses"
    );
    assert_eq!(
        store
            .get_vault_entry("alice")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .as_ref()
            .map(SecretString::expose),
        Some("rt-2"),
        "the rotated token survived"
    );

    let replaced = store
        .put_vault_entry(&vault_entry("alice", Some("at-9"), None))
        .await
        .unwrap();
    assert_eq!(
        replaced.version, 3,
        "a fresh grant replaces the entry and bumps the version"
    );
    assert_eq!(replaced.refresh_token, None);
    store
        .put_vault_entry(&vault_entry("bob", None, Some("rt-b")))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_vault_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(store.delete_vault_entry("alice").await.unwrap());
    assert!(!store.delete_vault_entry("alice").await.unwrap());
    assert_eq!(store.get_vault_entry("alice").await.unwrap(), None);
}

pub(crate) async fn twenty_concurrent_vault_swaps_of_one_version_let_exactly_one_win(
    store: Arc<dyn Store>,
) {
    let stored = store
        .put_vault_entry(&vault_entry("shared", Some("at"), Some("rt")))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, barrier, mut entry) = (store.clone(), barrier.clone(), stored.clone());
        entry.refresh_token = Some(SecretString::new(format!("rt-{i}")));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.update_vault_entry(&entry, 1).await.unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        if task.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .get_vault_entry("shared")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

pub(crate) async fn twenty_concurrent_fresh_grants_of_one_vault_entry_each_get_their_own_version(
    store: Arc<dyn Store>,
) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let grants: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let entry = vault_entry("shared", Some(&format!("at-{index}")), None);
            tokio::spawn(async move {
                barrier.wait().await;
                store.put_vault_entry(&entry).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for grant in grants {
        versions.push(grant.await.unwrap().unwrap().version);
    }
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>(), "no lost update");
    let stored = store.get_vault_entry("shared").await.unwrap().unwrap();
    assert_eq!(stored.version, 20);
}
