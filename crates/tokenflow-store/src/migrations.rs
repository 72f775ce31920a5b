//! The migrations of every backend, embedded in the binary and handed to sqlx's [`Migrator`].
//!
//! `sqlx::migrate!` would need sqlx's `macros` feature (a second, host-side build of the drivers);
//! each backend instead lists its files with `include_str!`, one line per migration, and a unit
//! test per backend (`assert_embedded_in_order`) checks the list against its folder. Running
//! them through sqlx's `Migrator` keeps its checksums and, on PostgreSQL, its advisory lock, so
//! instances starting at once apply each migration exactly once.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::{Result, StoreError};

/// `(version, description, sql)`, in version order; the file is `<version:04>_<description>.sql`.
pub(crate) type MigrationList = &'static [(i64, &'static str, &'static str)];

/// A backend's embedded migrations as an sqlx migration source.
#[derive(Debug)]
struct Embedded(MigrationList);

type MigrationsFuture = Pin<
    Box<dyn Future<Output = std::result::Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send>,
>;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> MigrationsFuture {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// The migrator for one backend's list.
pub(crate) async fn migrator(list: MigrationList) -> Result<Migrator> {
    Migrator::new(Embedded(list))
        .await
        .map_err(StoreError::Migration)
}

/// Panics unless `list` names exactly the `.sql` files of `migrations/<folder>/`, in order.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn assert_embedded_in_order(folder: &str, list: MigrationList) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let embedded: Vec<String> = list
        .iter()
        .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
        .collect();
    assert_eq!(files, embedded);
}
