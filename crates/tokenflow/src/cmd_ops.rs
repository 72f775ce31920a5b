//! `tokenflow backup PATH` and `tokenflow master-key rotate` (docs/operations.md): a consistent
//! copy of the SQLite store, and a new master key for every sealed value, both while
//! `tokenflow serve` runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use tokenflow_config::Config;
use tokenflow_store::MasterKey;
use tokenflow_store::rotation::{ROTATION_BATCH, RotationOutcome, RotationProgress};
use tokenflow_store::sqlite::DB_FILE_NAME;

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-encrypts every stored secret with a new master key, while the server runs; run it
    /// again to finish an interrupted rotation (docs/operations.md, "Master key rotation").
    Rotate,
}

pub async fn backup(path: &Path, force: bool, config: Config) -> anyhow::Result<ExitCode> {
    if config.database_url.is_some() {
        bail!(
            "the store is PostgreSQL (database_url): back it up with pg_dump, e.g. \
             `pg_dump --format=custom --file=tokenflow.dump DATABASE` (docs/operations.md, \
             \"Backups\"); `tokenflow backup` copies the SQLite store only"
        );
    }
    let database = config.data_dir.join(DB_FILE_NAME);
    let report = tokenflow_store::sqlite::backup(&database, path, force)
        .await
        .with_context(|| {
            format!(
                "cannot back up {} to {}",
                database.display(),
                path.display()
            )
        })?;
    println!(
        "backed up {} to {}: {} bytes, {} runs",
        database.display(),
        path.display(),
        report.bytes,
        report.runs
    );
    eprintln!(
        "The copy's secrets are encrypted with the master key, which is not in it: keep a copy \
         of the key (TOKENFLOW_MASTER_KEY, or {}) apart from the backup.",
        key_file(&config).display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn master_key(command: MasterKeyCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        MasterKeyCommand::Rotate => rotate(config).await,
    }
}

fn key_file(config: &Config) -> PathBuf {
    config.data_dir.join("master.key")
}

/// Where the new key waits until the rotation has finished; a rerun continues with it.
fn new_key_file(config: &Config) -> PathBuf {
    config.data_dir.join("master.key.new")
}

async fn rotate(config: Config) -> anyhow::Result<ExitCode> {
    let env_key = std::env::var("TOKENFLOW_MASTER_KEY")
        .ok()
        .filter(|key| !key.is_empty());
    let key_file = key_file(&config);
    let old = match &env_key {
        Some(value) => MasterKey::from_base64(value).context("TOKENFLOW_MASTER_KEY")?,
        None => MasterKey::read_file(&key_file)
            .context("cannot read the master key")?
            .with_context(|| {
                format!(
                    "no master key: neither TOKENFLOW_MASTER_KEY nor {} is set",
                    key_file.display()
                )
            })?,
    };
    let new_file = new_key_file(&config);
    let new = match MasterKey::read_file(&new_file).context("cannot read the new master key")? {
        Some(key) => {
            eprintln!(
                "continuing the rotation to the new key in {}",
                new_file.display()
            );
            key
        }
        None => {
            let key = MasterKey::generate()?;
            key.write_new_file(&new_file)
                .context("cannot store the new master key")?;
            eprintln!("new master key written to {}", new_file.display());
            key
        }
    };

    let mut report = |progress: &RotationProgress| {
        eprintln!(
            "{}: {} checked, {} re-encrypted",
            progress.column, progress.checked, progress.resealed
        );
        Ok(())
    };
    let outcome = match &config.database_url {
        Some(url) => {
            tokenflow_store::postgres::rotate_master_key(
                url,
                &old,
                &new,
                ROTATION_BATCH,
                &mut report,
            )
            .await
        }
        None => {
            let database = config.data_dir.join(DB_FILE_NAME);
            if !database.is_file() {
                bail!("no store to rotate: {} does not exist", database.display());
            }
            tokenflow_store::sqlite::rotate_master_key(
                &database,
                &old,
                &new,
                ROTATION_BATCH,
                &mut report,
            )
            .await
        }
    }
    .context("the rotation stopped; run `tokenflow master-key rotate` again to continue it")?;
    match outcome {
        RotationOutcome::Rotated { resealed } => {
            println!("master key rotated: {resealed} values re-encrypted")
        }
        RotationOutcome::AlreadyDone => println!("master key rotated already"),
    }
    if env_key.is_some() {
        println!(
            "The new key is in {new}. Set TOKENFLOW_MASTER_KEY to its content on every instance \
             and restart them, then delete the file. Instances still on the old key can no \
             longer store secrets, and the old key no longer opens the store.",
            new = new_file.display()
        );
    } else {
        std::fs::rename(&new_file, &key_file).with_context(|| {
            format!(
                "cannot move {} to {}; move it by hand",
                new_file.display(),
                key_file.display()
            )
        })?;
        if let Some(dir) = key_file.parent() {
            let _ = std::fs::File::open(dir).and_then(|dir| dir.sync_all());
        }
        println!(
            "{} now holds the new key. Restart every instance: those still on the old key can no \
             longer store secrets, and the old key no longer opens the store.",
            key_file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
