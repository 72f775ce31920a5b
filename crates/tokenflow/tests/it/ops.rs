//! `tokenflow backup` and `tokenflow master-key rotate` against a running `tokenflow serve` on
//! SQLite, and the restore procedure of docs/operations.md.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_store::MasterKey;
use tokenflow_store::prelude::*;
use tokenflow_store::sqlite::SqliteStore;
use tokio::process::Command;

use crate::serve::{API_KEY, Site, http, post_run_with, terminate};
use crate::support::Cli;

/// An OAuth server that `vault_store` can name; nothing ever calls it.
const SERVERS: &str =
    "[oauth_servers.keeper]\nclient_id = \"keeper\"\ntoken_url = \"http://127.0.0.1:9/token\"\n";

/// `keep` stores a vault entry named by its input `entry`; `quick` ends at once.
fn flows(hang_url: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "keep.yaml",
            "id: keep\nvariables:\n  entry: {}\nactions:\n  store:\n    type: vault_store\n    oauth_server: keeper\n    input: { name: { var: entry }, access_token: \"access-kept\", refresh_token: \"refresh-kept\", expires_in: 86400 }\nsteps:\n  - { from: start, to: store }\n  - { from: store, to: stop }\n".to_owned(),
        ),
        (
            "quick.yaml",
            "id: quick\nvariables:\n  out: {}\nactions:\n  pick:\n    type: extract_json\n    input: { json: \"{\\\"a\\\": 1}\", path: \"$.a\" }\n    output: { value: out }\nsteps:\n  - { from: start, to: pick }\n  - { from: pick, to: stop }\n".to_owned(),
        ),
        (
            "hang.yaml",
            format!("id: hang\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"{hang_url}\" }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"),
        ),
    ]
}

async fn post(site: &Site, flow: &str, inputs: Value) -> (u16, Value) {
    let (status, run, _) = post_run_with(site, flow, inputs).await;
    (status, run)
}

/// `GET path` of the API with the API key, as JSON.
pub(crate) async fn get(site: &Site, path: &str) -> Value {
    http()
        .get(site.url(path))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs `tokenflow ARGS --config <site>` to its end: (success, stdout, stderr).
async fn tokenflow(site: &Site, args: &[&str]) -> (bool, String, String) {
    let config = site.dir.path().join("tokenflow.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    Cli::spawn(&all, &[]).finish().await
}

/// A listener that accepts connections and never answers, until dropped.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// Keeps starting runs (`keep` with a new vault entry, and `quick`) until `stop`; counts the
/// runs whose answer arrived.
fn keep_writing(
    site: Arc<Site>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for index in 0.. {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let (status, run) =
                post(&site, "keep", json!({ "entry": format!("entry-{index}") })).await;
            assert_eq!(
                (status, &run["status"]),
                (200, &json!("completed")),
                "{run}"
            );
            let (status, _) = post(&site, "quick", json!({})).await;
            assert_eq!(status, 200);
            done.fetch_add(2, Ordering::SeqCst);
        }
    })
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_serve_writes_restores_with_its_runs_and_vault_and_fails_running_runs()
{
    let (hang_url, silent) = silent_server().await;
    let site = Arc::new(Site::new(SERVERS, &flows(&hang_url)));
    let server = site.start().await;

    // A run that is `running` when the backup is taken: its HTTP call never gets an answer.
    let hanging_site = site.clone();
    let hanging = tokio::spawn(async move { post(&hanging_site, "hang", json!({})).await });
    let hung_id = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let runs = get(&site, "/api/runs?flow=hang&status=running").await;
            if let Some(id) = runs["runs"]
                .as_array()
                .and_then(|runs| runs.first())
                .map(|run| run["id"].clone())
            {
                return id.as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the hanging run is stored as running");

    // Writes go on while the backup is taken.
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let writer = keep_writing(site.clone(), stop.clone(), done.clone());
    while done.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = done.load(Ordering::SeqCst);
    let backup = site.dir.path().join("backups").join("tokenflow-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let (ok, out, err) = tokenflow(&site, &["backup", backup.to_str().unwrap()]).await;
    assert!(ok, "{out}\n{err}");
    let after = done.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        err.contains("master key"),
        "the key is to be kept apart: {err}"
    );
    // "backed up … to …: N bytes, R runs"
    let tail = out.trim().rsplit_once(": ").unwrap().1;
    let numbers: Vec<u64> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect();
    let [bytes, runs] = numbers[..] else {
        panic!("{out}")
    };
    assert_eq!(bytes, std::fs::metadata(&backup).unwrap().len());
    // Every run answered before the backup began is in it, the hanging one too; at most those
    // answered by its end.
    let runs = runs as usize;
    assert!(
        (before + 1..=after + 3).contains(&runs),
        "{before} ≤ {runs} ≤ {after}"
    );
    assert_eq!(mode(&backup), 0o600);

    // An existing file is not overwritten without --force, and stays as it was.
    let original = std::fs::read(&backup).unwrap();
    let (ok, _, err) = tokenflow(&site, &["backup", backup.to_str().unwrap()]).await;
    assert!(!ok && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&backup).unwrap(), original);
    let (ok, out, err) = tokenflow(&site, &["backup", "--force", backup.to_str().unwrap()]).await;
    assert!(ok, "{out}\n{err}");
    let leftovers = std::fs::read_dir(backup.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no partial files are left behind");
    // The first backup is what gets restored.
    std::fs::write(&backup, &original).unwrap();

    // The restore of docs/operations.md: stop, replace the database file (and drop its WAL and
    // shared memory), start.
    drop(silent); // the hanging call fails, so that the server stops without waiting for it
    let _ = hanging.await;
    terminate(server).await;
    let data = site.dir.path().join("data");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("tokenflow.db{suffix}")));
    }
    std::fs::copy(&backup, data.join("tokenflow.db")).unwrap();
    {
        let copy = rusqlite::Connection::open(data.join("tokenflow.db")).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    let server = site.start().await;
    let mut listed = 0;
    loop {
        let page = get(&site, &format!("/api/runs?limit=1000&offset={listed}")).await;
        let count = page["runs"].as_array().unwrap().len();
        listed += count;
        if count < 1000 {
            break;
        }
    }
    assert_eq!(listed, runs);
    // The run that was running in the copy is failed as interrupted once its lease has expired.
    let failed = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let run = get(&site, &format!("/api/runs/{hung_id}")).await;
            if run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the interrupted run is recovered");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().starts_with("interrupted"),
        "{failed}"
    );
    terminate(server).await;

    // And the vault entries of the copy open with the key.
    let key = MasterKey::load(None, &data.join("master.key")).unwrap();
    let store = SqliteStore::open(&data, &key).await.unwrap();
    let entries = store.list_vault_entries().await.unwrap();
    assert!(entries.len() * 2 >= before, "{} entries", entries.len());
    for entry in entries {
        assert_eq!(entry.refresh_token.unwrap().expose(), "refresh-kept");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_key_rotate_while_serve_runs_reencrypts_everything_and_the_old_key_is_refused() {
    let (hang_url, _silent) = silent_server().await;
    let site = Arc::new(Site::new(SERVERS, &flows(&hang_url)));
    let server = site.start().await;
    for index in 0..5 {
        let (status, run) = post(&site, "keep", json!({ "entry": format!("entry-{index}") })).await;
        assert_eq!(
            (status, &run["status"]),
            (200, &json!("completed")),
            "{run}"
        );
    }
    let response = http()
        .put(site.url("/api/oauth-servers/stored"))
        .bearer_auth(API_KEY)
        .json(&json!({ "client_id": "stored", "client_secret": "stored-secret-4e1", "token_url": "http://127.0.0.1:9/token" }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let key_file = site.dir.path().join("data/master.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    // Online: the server keeps running (and writing) during the rotation.
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let writer = {
        let site = site.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // After the fence, the old key's server cannot store secrets: those runs fail.
            while !stop.load(Ordering::SeqCst) {
                let _ = post(&site, "quick", json!({})).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let (ok, out, err) = tokenflow(&site, &["master-key", "rotate"]).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("master key rotated:"), "{out}");
    assert!(err.contains("runs.state"), "progress by column: {err}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(mode(&key_file), 0o600);
    assert!(!site.dir.path().join("data/master.key.new").exists());
    for secret in [old_key.trim(), new_key.trim()] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "no key is printed"
        );
    }
    // The old key's server can store no secret any more.
    let (_, run) = post(&site, "keep", json!({ "entry": "too-late" })).await;
    assert_ne!(run["status"], "completed", "{run}");
    terminate(server).await;

    // Started with the old key: refused, naming the key check.
    let refused = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args(["serve", "--config"])
        .arg(site.dir.path().join("tokenflow.toml"))
        .env_remove("TOKENFLOW_CONFIG")
        .env("TOKENFLOW_MASTER_KEY", old_key.trim())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let refused = tokio::time::timeout(Duration::from_secs(30), refused)
        .await
        .unwrap()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("key check"), "{said}");

    // With the new key, every secret opens.
    let server = site.start().await;
    let stored = get(&site, "/api/oauth-servers/stored").await;
    assert_eq!(stored["has_client_secret"], true, "{stored}");
    terminate(server).await;
    let key = MasterKey::load(None, &key_file).unwrap();
    let store = SqliteStore::open(&site.dir.path().join("data"), &key)
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_vault_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| {
            assert_eq!(entry.access_token.unwrap().expose(), "access-kept");
            entry.name
        })
        .collect();
    assert!(
        (0..5).all(|index| names.contains(&format!("entry-{index}"))),
        "{names:?}"
    );
    assert!(!names.contains(&"too-late".to_owned()));
    let server = store.get_oauth_server("stored").await.unwrap().unwrap();
    assert_eq!(server.client_secret.unwrap().expose(), "stored-secret-4e1");
    store.close().await;

    // A second rotation finds the new key in place and rotates again, from it.
    let (ok, out, err) = tokenflow(&site, &["master-key", "rotate"]).await;
    assert!(ok, "{out}\n{err}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), new_key);
}
