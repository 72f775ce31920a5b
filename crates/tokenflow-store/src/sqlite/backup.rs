//! `tokenflow backup`: a consistent copy of the SQLite database while `tokenflow serve` runs
//! (docs/operations.md, "Backups").
//!
//! The one design decision: `VACUUM INTO`, not SQLite's online backup API. `VACUUM INTO` reads
//! the database in one read transaction, so the copy is one consistent snapshot, and in WAL mode
//! a reader never blocks the server's writers. The backup API copies page ranges step by step and
//! starts over whenever another connection writes between two steps, so under a steady stream of
//! writes it may never finish (or, in one step, holds the same read transaction with nothing
//! gained). `VACUUM INTO` also writes a compact file and needs no further `rusqlite` feature. The
//! price: while the copy runs, checkpoints cannot go past its snapshot, so the WAL grows by what
//! is written meanwhile (bounded as ever by the checkpointer's limit once the copy is done).
//!
//! The copy holds the sealed bytes as they are: it is opened with the same master key, which is
//! not in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::writes::BUSY_TIMEOUT;
use crate::{Result, StoreError};

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy's size in bytes.
    pub bytes: u64,
    /// How many runs the copy holds.
    pub runs: u64,
}

/// Copies the database file at `database` to `target` (mode 0600, like the database). An
/// existing `target` is refused unless `overwrite`; it is replaced only once the copy is complete
/// and checked (`PRAGMA quick_check`), so a failed backup never leaves a partial file there.
pub async fn backup(database: &Path, target: &Path, overwrite: bool) -> Result<BackupReport> {
    let (database, target) = (database.to_path_buf(), target.to_path_buf());
    tokio::task::spawn_blocking(move || backup_blocking(&database, &target, overwrite))
        .await
        .map_err(|_| StoreError::Corrupt("the backup thread panicked".into()))?
}

fn backup_blocking(database: &Path, target: &Path, overwrite: bool) -> Result<BackupReport> {
    if !database.is_file() {
        return Err(StoreError::NotFound(format!(
            "the database {}",
            database.display()
        )));
    }
    if !overwrite && target.exists() {
        return Err(exists(target));
    }
    let partial = partial_path(target)?;
    let outcome = copy_into(database, &partial).and_then(|runs| {
        publish(&partial, target, overwrite)?;
        let bytes = std::fs::metadata(target)
            .map_err(|err| io_error(target, err))?
            .len();
        Ok(BackupReport { bytes, runs })
    });
    // Gone once published; removed here when anything failed.
    let _ = std::fs::remove_file(&partial);
    outcome
}

/// `VACUUM INTO` an empty private file, then checks the copy and counts its runs.
fn copy_into(database: &Path, partial: &Path) -> Result<u64> {
    create_private(partial)?;
    let source =
        Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sqlite)?;
    source.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let into = partial
        .to_str()
        .ok_or_else(|| StoreError::Corrupt("the backup path is not UTF-8".into()))?;
    source.execute("VACUUM INTO ?1", [into]).map_err(sqlite)?;
    drop(source);
    let copy =
        Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sqlite)?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(sqlite)?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the copy failed its check: {check}"
        )));
    }
    let runs: i64 = copy
        .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
        .map_err(sqlite)?;
    drop(copy);
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(|err| io_error(partial, err))?;
    Ok(u64::try_from(runs).unwrap_or(0))
}

/// Moves the finished copy to `target`: a rename replaces, a hard link refuses an existing file
/// (so a file that appeared meanwhile is not overwritten either).
fn publish(partial: &Path, target: &Path, overwrite: bool) -> Result<()> {
    let placed = if overwrite {
        std::fs::rename(partial, target)
    } else {
        std::fs::hard_link(partial, target)
    };
    match placed {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists(target)),
        Err(err) => return Err(io_error(target, err)),
    }
    if let Some(dir) = target.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The new directory entry is durable too.
        let _ = std::fs::File::open(dir).and_then(|dir| dir.sync_all());
    }
    Ok(())
}

/// A name beside `target` for the copy in progress.
fn partial_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| StoreError::Corrupt(format!("{} names no file", target.display())))?;
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)
        .map_err(|_| StoreError::Corrupt("the OS random number generator failed".into()))?;
    let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut partial = name.to_owned();
    partial.push(format!(".partial-{suffix}"));
    Ok(target.with_file_name(partial))
}

fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|err| io_error(path, err))
}

fn exists(target: &Path) -> StoreError {
    StoreError::Conflict(format!("{} exists; --force replaces it", target.display()))
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

fn sqlite(err: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(Arc::new(err))
}
