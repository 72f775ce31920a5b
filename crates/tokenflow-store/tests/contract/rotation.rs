//! Master key rotation on every backend: every sealed value re-sealed with the new key while a
//! store with the old key is still open and writing, the old key refused afterwards, and an
//! interrupted rotation completed by running it again.

use tokenflow_store::rotation::{ROTATION_BATCH, RotationOutcome, RotationProgress};

use super::*;

/// A database to rotate, on one backend.
#[derive(Clone)]
enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(SecretString),
}

impl Target {
    async fn open(&self, key: u8) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Target::Sqlite(dir) => Arc::new(SqliteStore::open(dir, &test_key(key)).await?),
            Target::Postgres(url) => Arc::new(PostgresStore::connect(url, &test_key(key)).await?),
        })
    }

    async fn rotate(
        &self,
        old: u8,
        new: u8,
        batch: u32,
        progress: &mut (dyn FnMut(&RotationProgress) -> Result<(), StoreError> + Send),
    ) -> Result<RotationOutcome, StoreError> {
        let (old, new) = (test_key(old), test_key(new));
        match self {
            Target::Sqlite(dir) => {
                tokenflow_store::sqlite::rotate_master_key(
                    &dir.join(DB_FILE_NAME),
                    &old,
                    &new,
                    batch,
                    progress,
                )
                .await
            }
            Target::Postgres(url) => {
                tokenflow_store::postgres::rotate_master_key(url, &old, &new, batch, progress).await
            }
        }
    }
}

/// Runs `body` on a fresh SQLite database.
async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    body(Target::Sqlite(dir.path().to_path_buf())).await;
}

/// Runs `body` on a fresh PostgreSQL database, dropped afterwards.
async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let database = TestDatabase::create().await;
    let target = Target::Postgres(database.url());
    database.run(body(target)).await;
}

/// One value in every sealed column (and NULLs where they may be): what a rotation must carry.
async fn seed(store: &dyn Store, runs: usize) -> Vec<RunRow> {
    let mut created = Vec::new();
    for index in 0..runs {
        let row = run(&format!("run-{index:03}"), "f", "running", index as i64);
        store.create_run(&row).await.unwrap();
        created.push(row);
    }
    let (waiting, _) = suspended(store, "waiting-run", "state-rotated", 600).await;
    created.push(waiting);
    for (id, secret, key) in [
        (
            "with-secrets",
            Some("client-secret-1"),
            Some("-----PRIVATE KEY 1-----"),
        ),
        ("public-client", None, None),
    ] {
        store
            .put_oauth_server(&OAuthServerRow {
                id: id.into(),
                spec_json: "{}".into(),
                client_secret: secret.map(SecretString::new),
                private_key: key.map(SecretString::new),
                updated_at: at(0),
            })
            .await
            .unwrap();
    }
    store
        .put_vault_entry(&vault_entry("both", Some("access-1"), Some("refresh-1")))
        .await
        .unwrap();
    store
        .put_vault_entry(&vault_entry("needs-login", None, None))
        .await
        .unwrap();
    created
}

/// Everything [`seed`] stored reads back, decrypted, from `store`.
async fn assert_seeded(store: &dyn Store, runs: &[RunRow]) {
    for expected in runs {
        assert_eq!(
            store.get_run(&expected.id).await.unwrap().as_ref(),
            Some(expected)
        );
    }
    let pending = store
        .find_pending_authorization(&SecretString::new("state-rotated"))
        .await
        .unwrap()
        .unwrap();
    assert!(pending.payload.expose().contains("verifier-state-rotated"));
    let server = store
        .get_oauth_server("with-secrets")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.client_secret,
        Some(SecretString::new("client-secret-1"))
    );
    assert_eq!(
        server.private_key,
        Some(SecretString::new("-----PRIVATE KEY 1-----"))
    );
    let public = store
        .get_oauth_server("public-client")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((public.client_secret, public.private_key), (None, None));
    let entry = store.get_vault_entry("both").await.unwrap().unwrap();
    assert_eq!(entry.access_token, Some(SecretString::new("access-1")));
    assert_eq!(entry.refresh_token, Some(SecretString::new("refresh-1")));
    let empty = store.get_vault_entry("needs-login").await.unwrap().unwrap();
    assert_eq!((empty.access_token, empty.refresh_token), (None, None));
}

fn no_progress(_: &RotationProgress) -> Result<(), StoreError> {
    Ok(())
}

fn is_fenced(err: &StoreError) -> bool {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.contains("tokenflow key fence")
}

async fn every_value_is_resealed_while_an_old_key_store_writes_and_the_old_key_is_refused(
    target: Target,
) {
    let old_store = target.open(1).await.unwrap();
    let mut expected = seed(old_store.as_ref(), 25).await;

    // An instance still on the old key keeps writing during the rotation.
    let writer_store = old_store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let (started, mut first_writes) = tokio::sync::mpsc::channel::<()>(1);
    let writer = tokio::spawn(async move {
        let mut landed = Vec::new();
        for index in 0.. {
            if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                return landed;
            }
            let row = run(&format!("during-{index:04}"), "f", "running", 100);
            match writer_store.create_run(&row).await {
                Ok(()) => landed.push(row),
                Err(err) => {
                    assert!(is_fenced(&err), "refused by the fence: {err:?}");
                    return landed;
                }
            }
            if index == 3 {
                started.send(()).await.unwrap();
            }
        }
        unreachable!()
    });
    first_writes.recv().await.unwrap();
    let mut batches = 0;
    let outcome = target
        .rotate(1, 2, 4, &mut |_| {
            batches += 1;
            Ok(())
        })
        .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let landed = writer.await.unwrap();
    let outcome = outcome.unwrap();
    assert!(
        landed.len() >= 4,
        "the old-key writes before the rotation landed"
    );
    let RotationOutcome::Rotated { resealed } = outcome else {
        panic!("{outcome:?}");
    };
    // 26 runs and the writer's, a pending payload, a secret and a key, two vault tokens.
    assert_eq!(resealed, 26 + landed.len() as u64 + 5);
    assert!(batches >= 7, "in batches of 4: {batches}");
    expected.extend(landed);

    // The old key's instance can write no secret any more, and changes nothing by trying.
    let mut late = expected[0].clone();
    late.updated_at = at(500);
    let err = old_store
        .record_action_outcome(&late, None)
        .await
        .unwrap_err();
    assert!(is_fenced(&err), "{err:?}");

    let err = target.open(1).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");
    assert!(err.to_string().contains("key check"), "{err}");
    let store = target.open(2).await.unwrap();
    assert_seeded(store.as_ref(), &expected).await;
    // And the new key's instance writes as before.
    store.record_action_outcome(&late, None).await.unwrap();
    assert_eq!(store.get_run(&late.id).await.unwrap().as_ref(), Some(&late));
    expected[0] = late;

    // Run again with the same keys: nothing left to do.
    assert_eq!(
        target
            .rotate(1, 2, ROTATION_BATCH, &mut no_progress)
            .await
            .unwrap(),
        RotationOutcome::AlreadyDone
    );
    // A wrong current key is refused before anything changes.
    let err = target
        .rotate(7, 3, ROTATION_BATCH, &mut no_progress)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");
    assert_seeded(target.open(2).await.unwrap().as_ref(), &expected).await;
}

async fn an_interrupted_rotation_refuses_every_start_and_completes_when_run_again(target: Target) {
    let old_store = target.open(1).await.unwrap();
    let expected = seed(old_store.as_ref(), 30).await;

    let mut batches = 0;
    let err = target
        .rotate(1, 2, 3, &mut |progress| {
            batches += 1;
            if batches == 4 {
                assert_eq!(progress.column, "runs.state");
                return Err(StoreError::Corrupt("interrupted by the test".into()));
            }
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("interrupted by the test"), "{err}");

    // Half-rotated: no instance starts, with either key, and the old one cannot write.
    for key in [1, 2] {
        let err = target.open(key).await.unwrap_err();
        assert!(matches!(err, StoreError::RotationUnfinished), "{err:?}");
        assert!(err.to_string().contains("master-key rotate"), "{err}");
    }
    let err = old_store
        .create_run(&run("after-interruption", "f", "running", 0))
        .await
        .unwrap_err();
    assert!(is_fenced(&err), "{err:?}");

    let mut resealed_now = Vec::new();
    let outcome = target
        .rotate(1, 2, 3, &mut |progress| {
            resealed_now.push(progress.clone());
            Ok(())
        })
        .await
        .unwrap();
    let RotationOutcome::Rotated { resealed } = outcome else {
        panic!("{outcome:?}");
    };
    // The first run re-sealed four batches of three runs (the fourth committed before its
    // progress report failed); the second did the rest.
    assert_eq!(resealed, 31 + 5 - 12);
    let first_runs = resealed_now
        .iter()
        .find(|p| p.column == "runs.state")
        .unwrap();
    assert_eq!((first_runs.checked, first_runs.resealed), (3, 0));

    let store = target.open(2).await.unwrap();
    assert_seeded(store.as_ref(), &expected).await;
    assert!(store.get_run("after-interruption").await.unwrap().is_none());
    let err = target.open(1).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_rotation_reseals_every_value_while_an_old_key_store_writes() {
    on_sqlite(every_value_is_resealed_while_an_old_key_store_writes_and_the_old_key_is_refused)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_rotation_reseals_every_value_while_an_old_key_store_writes() {
    on_postgres(every_value_is_resealed_while_an_old_key_store_writes_and_the_old_key_is_refused)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_interrupted_rotation_completes_when_run_again() {
    on_sqlite(an_interrupted_rotation_refuses_every_start_and_completes_when_run_again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_interrupted_rotation_completes_when_run_again() {
    on_postgres(an_interrupted_rotation_refuses_every_start_and_completes_when_run_again).await;
}
