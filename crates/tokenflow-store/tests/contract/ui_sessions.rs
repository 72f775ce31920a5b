//! Contract bodies: web UI sessions (sign-in, sign-out, the key's deletion, expiry and purging).

use super::*;

fn session(id_hash: &str, owner: UiSessionOwner, expires: i64) -> UiSessionRow {
    UiSessionRow {
        id_hash: id_hash.to_owned(),
        owner,
        created_at: at(0),
        expires_at: at(expires),
    }
}

fn stored_key(name: &str) -> ApiKeyRow {
    ApiKeyRow {
        name: name.into(),
        hash: format!("{:0>64}", name.len()),
        created_at: at(0),
    }
}

pub(crate) async fn a_ui_session_is_found_by_its_hash_until_it_expires_or_is_signed_out(
    store: Arc<dyn Store>,
) {
    store.put_api_key(&stored_key("ui")).await.unwrap();
    let stored = session(&"1".repeat(64), UiSessionOwner::StoredKey("ui".into()), 100);
    let configured = session(
        &"2".repeat(64),
        UiSessionOwner::ConfiguredKey("ref-of-a-configured-key".into()),
        100,
    );
    store.create_ui_session(&stored).await.unwrap();
    store.create_ui_session(&configured).await.unwrap();

    assert_eq!(
        store.find_ui_session(&stored.id_hash, at(1)).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .find_ui_session(&configured.id_hash, at(99))
            .await
            .unwrap(),
        Some(configured.clone())
    );
    assert_eq!(
        store
            .find_ui_session(&configured.id_hash, at(100))
            .await
            .unwrap(),
        None,
        "a session ends at its expiry"
    );
    assert_eq!(
        store.find_ui_session(&"3".repeat(64), at(1)).await.unwrap(),
        None
    );

    assert!(store.delete_ui_session(&stored.id_hash).await.unwrap());
    assert!(!store.delete_ui_session(&stored.id_hash).await.unwrap());
    assert_eq!(
        store.find_ui_session(&stored.id_hash, at(1)).await.unwrap(),
        None,
        "signed out"
    );
    assert_eq!(
        store
            .find_ui_session(&configured.id_hash, at(1))
            .await
            .unwrap(),
        Some(configured),
        "other sessions go on"
    );
}

pub(crate) async fn a_second_ui_session_with_the_same_id_hash_is_a_conflict(store: Arc<dyn Store>) {
    let first = session(
        &"4".repeat(64),
        UiSessionOwner::ConfiguredKey("a".into()),
        100,
    );
    store.create_ui_session(&first).await.unwrap();
    let second = session(
        &"4".repeat(64),
        UiSessionOwner::ConfiguredKey("b".into()),
        200,
    );
    assert!(matches!(
        store.create_ui_session(&second).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_ui_session(&first.id_hash, at(1)).await.unwrap(),
        Some(first),
        "the first one is unchanged"
    );
}

pub(crate) async fn deleting_an_api_key_ends_its_ui_sessions_and_a_session_needs_an_existing_key(
    store: Arc<dyn Store>,
) {
    store.put_api_key(&stored_key("ci")).await.unwrap();
    store.put_api_key(&stored_key("admin")).await.unwrap();
    let ci = session(&"5".repeat(64), UiSessionOwner::StoredKey("ci".into()), 100);
    let admin = session(
        &"6".repeat(64),
        UiSessionOwner::StoredKey("admin".into()),
        100,
    );
    store.create_ui_session(&ci).await.unwrap();
    store.create_ui_session(&admin).await.unwrap();

    assert!(store.delete_api_key("ci").await.unwrap());
    assert_eq!(
        store.find_ui_session(&ci.id_hash, at(1)).await.unwrap(),
        None
    );
    assert!(
        !store.delete_ui_session(&ci.id_hash).await.unwrap(),
        "the row went with its key"
    );
    // A key of the same name created later does not bring the session back.
    store.put_api_key(&stored_key("ci")).await.unwrap();
    assert_eq!(
        store.find_ui_session(&ci.id_hash, at(1)).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_ui_session(&admin.id_hash, at(1)).await.unwrap(),
        Some(admin)
    );

    let orphan = session(
        &"7".repeat(64),
        UiSessionOwner::StoredKey("no-such-key".into()),
        100,
    );
    assert!(matches!(
        store.create_ui_session(&orphan).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_ui_session(&orphan.id_hash).await.unwrap());
}

pub(crate) async fn purging_ui_sessions_deletes_expired_ones_at_most_limit_at_a_time(
    store: Arc<dyn Store>,
) {
    for i in 0..5 {
        let expired = session(
            &format!("{i:0>64}"),
            UiSessionOwner::ConfiguredKey("k".into()),
            10 + i,
        );
        store.create_ui_session(&expired).await.unwrap();
    }
    let live = session(
        &"f".repeat(64),
        UiSessionOwner::ConfiguredKey("k".into()),
        100,
    );
    store.create_ui_session(&live).await.unwrap();

    assert_eq!(store.purge_expired_ui_sessions(at(50), 3).await.unwrap(), 3);
    assert_eq!(store.purge_expired_ui_sessions(at(50), 3).await.unwrap(), 2);
    assert_eq!(store.purge_expired_ui_sessions(at(50), 3).await.unwrap(), 0);
    for i in 0..5 {
        assert!(
            !store.delete_ui_session(&format!("{i:0>64}")).await.unwrap(),
            "expired session {i} was purged"
        );
    }
    assert_eq!(
        store.find_ui_session(&live.id_hash, at(50)).await.unwrap(),
        Some(live.clone()),
        "a live session is kept"
    );
    assert_eq!(
        store.purge_expired_ui_sessions(at(100), 10).await.unwrap(),
        1,
        "at its expiry it goes too"
    );
}
