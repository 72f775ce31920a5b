//! Shutting the server down stops everything it started for its lifetime: the sweeper, the
//! scheduler with the runs it started, and the vault keep-alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokenflow_core::{Clock, SystemClock};
use tokenflow_server::startup::{Timing, build};
use tokenflow_store::MasterKey;
use tokenflow_store::sqlite::SqliteStore;

/// The system clock, counting how often it is read: every pass of a background task (a sweep, a
/// scheduler tick, a keep-alive pass) and every step of a run reads it.
#[derive(Debug, Default)]
struct CountingClock {
    reads: AtomicU64,
}

impl CountingClock {
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Clock for CountingClock {
    fn now(&self) -> OffsetDateTime {
        self.reads.fetch_add(1, Ordering::SeqCst);
        SystemClock.now()
    }
}

const EVERY_SECOND: &str = "id: tick\nschedule: \"* * * * * *\"\nvariables:\n  v: {}\nactions:\n  one:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: one }\n  - { from: one, to: stop }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_server_started_keeps_running_after_its_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows").join("tick.yaml"), EVERY_SECOND).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("tokenflow.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"data\"\nflows_dir = \"flows\"\n"
        ),
    )
    .unwrap();
    let config = tokenflow_config::load(&tokenflow_config::Sources {
        file: Some(&dir.path().join("tokenflow.toml")),
        env: vec![],
    })
    .unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store = Arc::new(SqliteStore::open(&config.data_dir, &key).await.unwrap());
    let clock = Arc::new(CountingClock::default());
    let tick = Duration::from_millis(20);
    let timing = Timing {
        sweep_interval: tick,
        schedule_tick: tick,
        vault_keep_alive: tick,
        ..Timing::default()
    };
    let startup = build(
        &config,
        store.clone(),
        clock.clone(),
        timing,
        *key.derive("web ui sessions"),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tokenflow_server::serve(listener, startup.state, async {
        let _ = stopped.await;
    }));

    // Running: the scheduler fires the flow every second (and its runs end).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let firings = tokenflow_store::ScheduleStore::firings(store.as_ref(), "tick", 10)
            .await
            .unwrap();
        if firings.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler never fired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let at_shutdown = clock.reads();
    // Well over one second (a firing) and fifty passes of the sweeper and the scheduler later,
    // nothing has read the clock: no task of the server is left.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        clock.reads(),
        at_shutdown,
        "a task still runs after shutdown"
    );
}
