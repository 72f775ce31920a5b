//! SQLite's disk full and a read-only data folder, under a real `tokenflow serve`
//! (docs/operations.md, "When the database fails"): the data folder is a size-limited tmpfs or a
//! loop-mounted ext4 image. These tests need `mount` (root): refused, they fail under `CI=true`
//! and are skipped with the reason printed elsewhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::process::Command;

use crate::serve::{Site, get_status, post_run_with, terminate};

/// A local flow that writes a few KiB per run (its variable), and nothing outside.
fn filler_flow() -> String {
    let text = "x".repeat(4096);
    format!(
        "id: local\nvariables:\n  v: {{}}\nactions:\n  take:\n    type: extract_json\n    input: {{ json: '[\"{text}\"]', path: \"$[0]\" }}\n    output: {{ value: v }}\nsteps:\n  - {{ from: start, to: take }}\n  - {{ from: take, to: stop }}\n"
    )
}

/// Runs a system command; `Err` with its output when it fails.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("{program}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A mount the test needs: refused, the test fails under `CI=true`, else it is skipped (`None`).
fn needed(mounted: Result<(), String>) -> Option<()> {
    match mounted {
        Ok(()) => Some(()),
        Err(err) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("this test needs mount (root); it was refused: {err}")
        }
        Err(err) => {
            eprintln!("skipped: this test needs mount (root), which was refused: {err}");
            None
        }
    }
}

/// A file system mounted at a path; lazily unmounted when dropped.
struct Mounted {
    at: PathBuf,
    /// The loop device's image, for ext4.
    _image: Option<tempfile::TempDir>,
}

impl Mounted {
    /// A tmpfs of `size` (e.g. `2m`) at `at`.
    fn tmpfs(at: &Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let at_text = at.display().to_string();
        needed(sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                &at_text,
            ],
        ))?;
        Some(Mounted {
            at: at.to_owned(),
            _image: None,
        })
    }

    /// An ext4 image of 16 MiB on a loop device at `at`, which the kernel turns read-only on an
    /// error (`errors=remount-ro`), as it does when a disk fails.
    fn ext4(at: &Path) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img").display().to_string();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        sh("mkfs.ext4", &["-q", &image]).unwrap();
        let at_text = at.display().to_string();
        needed(sh(
            "mount",
            &["-o", "loop,errors=remount-ro", &image, &at_text],
        ))?;
        Some(Mounted {
            at: at.to_owned(),
            _image: Some(dir),
        })
    }

    fn path(&self) -> String {
        self.at.display().to_string()
    }

    fn remount(&self, options: &str) {
        sh(
            "mount",
            &["-o", &format!("remount,{options}"), &self.path()],
        )
        .unwrap();
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = sh("umount", &["-l", &self.path()]);
    }
}

fn data_dir(site: &Site) -> PathBuf {
    site.dir.path().join("data")
}

/// `PRAGMA integrity_check` of the stopped server's database, and its number of runs.
fn check_database(site: &Site) -> i64 {
    let db = rusqlite::Connection::open(data_dir(site).join("tokenflow.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    db.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
        .unwrap()
}

/// After the repair: the server starts, shows the run stored before the fault, stores a new one,
/// and the database is intact with both.
async fn works_again(site: &Site, run_id: &str) {
    let child = site.start().await;
    let (status, text) = get_status(site, &format!("/api/runs/{run_id}")).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = post_run_with(site, "local", json!({})).await;
    assert_eq!(status, 200, "{text}");
    terminate(child).await;
    assert_eq!(check_database(site), 2);
}

/// Fills the file system under `dir` with one file until no byte more fits.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
            Err(err) => panic!("filling {}: {err}", path.display()),
        }
    }
    path
}

#[tokio::test]
async fn sqlite_disk_full_answers_507_keeps_the_database_intact_and_writes_resume_once_space_is_freed()
 {
    let site = Site::new("", &[("local.yaml", filler_flow())]);
    let Some(_disk) = Mounted::tmpfs(&data_dir(&site), "4m") else {
        return;
    };
    let child = site.start().await;
    let mut stored = 0;
    for _ in 0..3 {
        let (status, run, _) = post_run_with(&site, "local", json!({})).await;
        assert_eq!(
            (status, &run["status"]),
            (200, &json!("completed")),
            "{run}"
        );
        stored += 1;
    }

    let filler = fill(&data_dir(&site));
    // The database may still have room in its write-ahead log; runs go on until it has none.
    let mut refused = None;
    for _ in 0..1000 {
        let (status, body, text) = post_run_with(&site, "local", json!({})).await;
        match status {
            200 => stored += 1,
            _ => {
                refused = Some((status, body, text));
                break;
            }
        }
    }
    let (status, body, text) = refused.expect("a full disk refuses a write");
    assert_eq!(
        (status, &body["error"]),
        (507, &json!("disk_full")),
        "{text}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("no space left"),
        "{text}"
    );
    // Reads go on, and the server stays ready for them.
    let (status, text) = get_status(&site, "/api/runs?limit=1").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(get_status(&site, "/readyz").await.0, 200);

    std::fs::remove_file(filler).unwrap();
    let (status, run, text) = post_run_with(&site, "local", json!({})).await;
    assert_eq!(status, 200, "writes resume without a restart: {text}");
    assert_eq!(run["status"], "completed");
    stored += 1;
    terminate(child).await;
    assert_eq!(
        check_database(&site),
        stored,
        "every answered run is stored, the refused one is not"
    );
}

#[tokio::test]
async fn a_read_only_data_folder_is_refused_at_start_with_its_name_and_works_once_writable() {
    let site = Site::new("", &[("local.yaml", filler_flow())]);
    let Some(disk) = Mounted::tmpfs(&data_dir(&site), "8m") else {
        return;
    };
    let child = site.start().await;
    let (status, run, _) = post_run_with(&site, "local", json!({})).await;
    assert_eq!(status, 200, "{run}");
    terminate(child).await;

    disk.remount("ro");
    let started = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_tokenflow"))
            .args(["serve", "--config"])
            .arg(site.dir.path().join("tokenflow.toml"))
            .env_remove("TOKENFLOW_CONFIG")
            .env_remove("TOKENFLOW_MASTER_KEY")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a server on a read-only folder stops at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot prepare the data directory {}",
            data_dir(&site).display()
        )) && stderr.contains("Read-only file system"),
        "{stderr}"
    );

    disk.remount("rw");
    works_again(&site, run["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn a_file_system_turning_read_only_under_the_server_refuses_writes_clearly_and_keeps_reads() {
    let site = Site::new("", &[("local.yaml", filler_flow())]);
    let Some(disk) = Mounted::ext4(&data_dir(&site)) else {
        return;
    };
    let mut child = site.start().await;
    let (status, run, _) = post_run_with(&site, "local", json!({})).await;
    assert_eq!(status, 200, "{run}");
    // The run on disk, not only in the page cache: a failing file system loses what was not
    // synced, as a power cut does (docs/operations.md).
    let db = rusqlite::Connection::open(data_dir(&site).join("tokenflow.db")).unwrap();
    let (log, copied): (i64, i64) = db
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert_eq!(log, copied, "the checkpoint took the whole log");
    drop(db);

    // What the kernel does when the disk under ext4 fails: the file system turns read-only under
    // the open database (a plain read-only remount is refused while files are open for writing).
    let device = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .find_map(|line| {
            let mut fields = line.split(' ');
            let source = fields.next()?;
            (fields.next()? == disk.path()).then(|| source.rsplit('/').next().unwrap().to_owned())
        })
        .unwrap();
    std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "1").unwrap();

    let (status, body, text) = post_run_with(&site, "local", json!({})).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(body["error"], "store_io_error", "{text}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{text}"
    );
    let (status, text) =
        get_status(&site, &format!("/api/runs/{}", run["id"].as_str().unwrap())).await;
    assert_eq!(status, 200, "reads go on: {text}");
    let (status, _) = get_status(&site, "/api/runs").await;
    assert_eq!(status, 200);
    assert_eq!(get_status(&site, "/readyz").await.0, 200, "ready for reads");

    // Recovery is the operator's: stop, repair the file system, mount it again, start.
    child.kill().await.unwrap();
    let image = disk._image.as_ref().unwrap().path().join("disk.img");
    let image = image.display().to_string();
    sh("umount", &[&disk.path()]).unwrap();
    // e2fsck exits 1 when it fixed something.
    let _ = sh("e2fsck", &["-fy", &image]);
    sh(
        "mount",
        &["-o", "loop,errors=remount-ro", &image, &disk.path()],
    )
    .unwrap();
    works_again(&site, run["id"].as_str().unwrap()).await;
}

/// docs/operations.md, "When the database fails": every test its table names exists, and every
/// error code it lists is one the server answers.
#[test]
fn the_operations_guide_names_tests_and_error_codes_that_exist() {
    let repo = crate::support::repo();
    let guide = std::fs::read_to_string(repo.join("docs/operations.md")).unwrap();
    let section = guide
        .split("## When the database fails")
        .nth(1)
        .expect("the section");
    let mut sources = String::new();
    let mut dirs = vec![repo.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let quoted: Vec<&str> = section.split('`').skip(1).step_by(2).collect();
    let tests: Vec<&&str> = quoted.iter().filter(|q| q.contains("::")).collect();
    assert!(tests.len() >= 6, "{tests:?}");
    for test in tests {
        let name = test.rsplit("::").next().unwrap();
        let found = if name == "tests" {
            sources.contains(&format!("mod {}", test.split("::").next().unwrap()))
        } else {
            sources.contains(&format!("fn {name}("))
        };
        assert!(
            found,
            "docs/operations.md names `{test}`, which does not exist"
        );
    }
    let errors =
        std::fs::read_to_string(repo.join("crates/tokenflow-server/src/error.rs")).unwrap();
    for code in [
        "store_unavailable",
        "disk_full",
        "store_read_only",
        "store_io_error",
    ] {
        assert!(
            section.contains(&format!("`{code}`")),
            "{code} is documented"
        );
        assert!(
            errors.contains(&format!("\"{code}\"")),
            "{code} is answered"
        );
    }
}
