//! Why the server does not start is told with its causes, down to the store's own error.

use std::sync::Arc;

use tokenflow_core::{Clock, SecretString, SystemClock};
use tokenflow_server::startup::{StartupError, Timing, build};
use tokenflow_store::prelude::*;
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_store::{MasterKey, RunRow, StoreError};

#[tokio::test]
async fn a_store_failure_at_start_up_keeps_the_store_error_as_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenflow.toml"), "data_dir = \"data\"\n").unwrap();
    let config = tokenflow_config::load(&tokenflow_config::Sources {
        file: Some(&dir.path().join("tokenflow.toml")),
        env: vec![],
    })
    .unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store = Arc::new(SqliteStore::open(&config.data_dir, &key).await.unwrap());
    // A run left `running` long ago on a flow version the store does not have: recovering it at
    // start-up finds the store inconsistent.
    let long_ago = SystemClock.now() - time::Duration::hours(1);
    store
        .create_run(&RunRow {
            id: "ghost-run".into(),
            flow_id: "ghost".into(),
            flow_version: 1,
            status: tokenflow_core::RunStatus::Running,
            state: SecretString::new("{}"),
            browser_binding: None,
            started_at: long_ago,
            updated_at: long_ago,
            ended_at: None,
        })
        .await
        .unwrap();

    let err = build(
        &config,
        store,
        Arc::new(SystemClock),
        Timing::default(),
        *key.derive("web ui sessions"),
    )
    .await
    .unwrap_err();

    assert!(matches!(err, StartupError::Runtime(_)), "{err:?}");
    let mut causes = Vec::new();
    let mut store_error: Option<String> = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(error) = cause {
        causes.push(error.to_string());
        if let Some(found) = error.downcast_ref::<StoreError>() {
            store_error = Some(format!("{found:?}"));
        }
        cause = error.source();
    }
    // The store's error itself, not its text folded into a message.
    assert_eq!(
        store_error.as_deref(),
        Some("Corrupt(\"run ghost-run refers to a missing flow version\")"),
        "causes: {causes:?}"
    );
}
