//! SQLite only: files, the key check, reopening.

use super::*;

/// Everything SQLite wrote for the database: the main file, the WAL and the shared memory.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.join(format!("{DB_FILE_NAME}{suffix}"));
        if path.exists() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn reopening_with_another_master_key_is_refused_and_the_right_key_still_reads_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    let created = run("r1", "f", "running", 0);
    store.create_run(&created).await.unwrap();
    store.close().await;

    let err = SqliteStore::open(dir.path(), &test_key(2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");

    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
    store.close().await;
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    let flow = store.put_flow("f", "a: 1\n", at(0)).await.unwrap();
    let (waiting, pending) = suspended(&store, "r1", "state-kept", 600).await;
    store
        .record_action_outcome(&waiting, Some(&record("r1", 0)))
        .await
        .unwrap();
    assert!(store.claim_firing("f", 60, "r1", at(0)).await.unwrap());
    store.close().await;
    assert!(
        store.ping().await.is_err(),
        "a closed store answers no more"
    );

    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    assert_eq!(store.get_flow("f").await.unwrap(), Some(flow));
    assert_eq!(store.get_run("r1").await.unwrap(), Some(waiting));
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0)]
    );
    assert!(!store.claim_firing("f", 60, "r2", at(1)).await.unwrap());
    assert_eq!(
        store
            .take_pending_authorization(&SecretString::new("state-kept"), at(10))
            .await
            .unwrap(),
        TakePending::Taken(pending)
    );
    store.close().await;
}

#[tokio::test]
async fn the_data_directory_is_created_private_and_the_database_uses_a_wal() {
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("nested").join("data");
    let store = SqliteStore::open(&data_dir, &test_key(1)).await.unwrap();
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
    assert!(data_dir.join(DB_FILE_NAME).is_file());
    assert!(data_dir.join(format!("{DB_FILE_NAME}-wal")).is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    store.close().await;
}

/// The permission bits of the database, its WAL and its shared-memory file.
#[cfg(unix)]
fn database_modes(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let name = format!("{DB_FILE_NAME}{suffix}");
            let mode = std::fs::metadata(dir.join(&name))
                .unwrap_or_else(|err| panic!("{name}: {err}"))
                .permissions()
                .mode();
            (name, mode & 0o777)
        })
        .collect()
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_shared_memory_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    for (name, mode) in database_modes(dir.path()) {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }

    // Files an older version left readable by others are restricted when the store opens.
    for suffix in ["", "-wal", "-shm"] {
        std::fs::set_permissions(
            dir.path().join(format!("{DB_FILE_NAME}{suffix}")),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let reopened = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    reopened
        .create_run(&run("r2", "f", "running", 0))
        .await
        .unwrap();
    for (name, mode) in database_modes(dir.path()) {
        assert_eq!(mode, 0o600, "{name} is {mode:o} after reopening");
    }
    reopened.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_sealed_state_copied_to_another_run_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    store
        .create_run(&run("victim", "f", "running", 0))
        .await
        .unwrap();
    store
        .create_run(&run("attacker", "f", "running", 0))
        .await
        .unwrap();

    // Someone with write access to the file moves one run's ciphertext into another row.
    let raw = sqlx::sqlite::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(store.path()),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE runs SET state = (SELECT state FROM runs WHERE id = 'victim') \
         WHERE id = 'attacker'",
    )
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;

    let err = store.get_run("attacker").await.unwrap_err();
    assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
    assert!(store.get_run("victim").await.unwrap().is_some());
    store.close().await;
}

#[tokio::test]
async fn no_secret_reaches_the_database_files_in_clear() {
    const RUN_SECRET: &str = "RUN-STATE-SECRET-7f3a9c1e";
    const RAW_STATE: &str = "OAUTH-STATE-RAW-b41d0c77";
    const PAYLOAD_SECRET: &str = "PKCE-VERIFIER-SECRET-e2c85a";
    const CLIENT_SECRET: &str = "CLIENT-SECRET-93ad55f1";
    const PRIVATE_KEY_BODY: &str = "PRIVATE-KEY-MATERIAL-5c0e91d2";
    const PRIVATE_KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nPRIVATE-KEY-MATERIAL-5c0e91d2\n-----END PRIVATE KEY-----";
    const VAULT_ACCESS: &str = "VAULT-ACCESS-TOKEN-4be1";
    const VAULT_REFRESH: &str = "VAULT-REFRESH-TOKEN-77ac";

    let dir = tempfile::tempdir().unwrap();
    let key = test_key(9);
    let store = SqliteStore::open(dir.path(), &key).await.unwrap();

    let mut hygiene = run("hygiene-run", "hygiene-flow", "running", 0);
    hygiene.state = SecretString::new(format!(
        r#"{{"vars":{{"access_token":"{RUN_SECRET}"}},"pending_state":"{RAW_STATE}"}}"#
    ));
    store.create_run(&hygiene).await.unwrap();
    hygiene.status = RunStatus::Waiting;
    store
        .suspend_run(
            &hygiene,
            &PendingRow {
                state: SecretString::new(RAW_STATE),
                run_id: "hygiene-run".into(),
                action: "login".into(),
                payload: SecretString::new(format!(
                    r#"{{"code_verifier":"{PAYLOAD_SECRET}","state":"{RAW_STATE}"}}"#
                )),
                created_at: at(0),
                expires_at: at(600),
            },
        )
        .await
        .unwrap();
    store
        .put_oauth_server(&OAuthServerRow {
            id: "hygiene-server".into(),
            spec_json: r#"{"client_id":"app"}"#.into(),
            client_secret: Some(SecretString::new(CLIENT_SECRET)),
            private_key: Some(SecretString::new(PRIVATE_KEY)),
            updated_at: at(0),
        })
        .await
        .unwrap();

    store
        .put_vault_entry(&vault_entry(
            "hygiene-vault",
            Some(VAULT_ACCESS),
            Some(VAULT_REFRESH),
        ))
        .await
        .unwrap();

    // Read while the store is open and without a checkpoint, so the WAL is what is checked.
    let bytes = database_bytes(dir.path());
    assert!(
        contains(&bytes, "hygiene-run")
            && contains(&bytes, "hygiene-server")
            && contains(&bytes, "hygiene-vault"),
        "the rows must be in the files read, or this test proves nothing"
    );
    let key_text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    for secret in [
        RUN_SECRET,
        RAW_STATE,
        PAYLOAD_SECRET,
        CLIENT_SECRET,
        PRIVATE_KEY_BODY,
        VAULT_ACCESS,
        VAULT_REFRESH,
        &key_text,
    ] {
        assert!(
            !contains(&bytes, secret),
            "{secret} found in the database files"
        );
    }

    // And the store still gives all of it back.
    let state = SecretString::new(RAW_STATE);
    let TakePending::Taken(taken) = store
        .take_pending_authorization(&state, at(1))
        .await
        .unwrap()
    else {
        panic!("expected Taken");
    };
    assert!(taken.payload.expose().contains(PAYLOAD_SECRET));
    let server = store
        .get_oauth_server("hygiene-server")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.client_secret, Some(SecretString::new(CLIENT_SECRET)));
    assert_eq!(server.private_key, Some(SecretString::new(PRIVATE_KEY)));
    let stored = store.get_run("hygiene-run").await.unwrap().unwrap();
    assert!(stored.state.expose().contains(RUN_SECRET));
    store.close().await;
}

#[tokio::test]
async fn the_checkpointer_copies_committed_writes_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    let db = dir.path().join(DB_FILE_NAME);
    let before = std::fs::metadata(&db).unwrap().len();
    // About 3 MiB of runs: commits append them to the WAL; the database file grows only when a
    // checkpoint copies them in, which no commit does here (the checkpointer's job).
    let state = "x".repeat(16 * 1024);
    for index in 0..200 {
        let mut created = run(&format!("r{index}"), "f", "running", 0);
        created.state = SecretString::new(state.clone());
        store.create_run(&created).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let len = std::fs::metadata(&db).unwrap().len();
        if len >= before + 3 * 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {len} bytes: nothing checkpointed the WAL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.get_run("r199").await.unwrap().unwrap().state.expose(),
        state
    );
    store.close().await;
    let err = store
        .create_run(&run("late", "f", "running", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
}

/// Retention and the waiting-run bound read through the partial indexes of migration 9, not by
/// scanning every run or sorting every ended run (the queries' shapes as the store writes them;
/// the retention reads name their index with `INDEXED BY`, which fails when it is unusable).
#[tokio::test]
async fn retention_and_waiting_counts_use_the_indexes_of_ended_and_waiting_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    let raw = sqlx::sqlite::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(store.path()),
    )
    .await
    .unwrap();
    let ended = "status IN ('completed', 'failed', 'cancelled')";
    for (query, index) in [
        (
            "SELECT COUNT(*) FROM runs WHERE flow_id = 'f' AND status = 'waiting'".to_owned(),
            "runs_waiting_by_flow",
        ),
        (
            format!(
                "SELECT id FROM runs INDEXED BY runs_ended_by_age WHERE {ended} AND ended_at < 5 \
                 ORDER BY ended_at, id LIMIT 200"
            ),
            "runs_ended_by_age",
        ),
        (
            format!(
                "SELECT flow_id FROM runs INDEXED BY runs_ended_by_flow WHERE {ended} \
                 GROUP BY flow_id HAVING COUNT(*) > 10"
            ),
            "runs_ended_by_flow",
        ),
        (
            format!(
                "SELECT id FROM runs INDEXED BY runs_ended_by_flow WHERE flow_id = 'f' AND {ended} \
                 ORDER BY ended_at DESC, id DESC LIMIT 200 OFFSET 10"
            ),
            "runs_ended_by_flow",
        ),
    ] {
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
            .fetch_all(&raw)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
            .collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{query}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{query}: {plan:?}"
        );
    }
    raw.close().await;
    store.close().await;
}
