//! Master key rotation (docs/operations.md, "Master key rotation"): every sealed value re-sealed
//! with a new key, online, in batches, resumable; the backends supply the SQL
//! (`sqlite/rotation.rs`, `postgres/rotation.rs`) and this file the order of the steps.
//!
//! The one design decision: a **key fence** in the database. Every sealed value begins with the
//! id of the key that sealed it (`crypto.rs`). The rotation's first transaction stores the new
//! key's id as `meta.key_fence`, replaces the key check with one sealed by the new key and marks
//! the rotation unfinished; from that commit on, triggers (migration 7) refuse every sealed value
//! that does not carry the new key's id. So an instance still running with the old key cannot
//! write a value behind the rotation's back: its write fails loudly instead of leaving a value
//! that the new key could never open. Then each sealed column is walked in primary-key order,
//! [`ROTATION_BATCH`] rows a transaction; a value is replaced only if it is still the bytes that
//! were read (compare-and-swap), so a concurrent write is never overwritten. Values that already
//! carry the new key's id are skipped, which makes a rerun after an interruption continue where it
//! stopped. The last step removes the mark; until then no instance starts (with either key).

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::at_rest::{SEALED_COLUMNS, SealedColumn, new_key_check, verify_key_check};
use crate::crypto::{Cipher, MasterKey};
use crate::{Result, StoreError};

/// Rows per transaction: memory is bounded by this many sealed values (a run's state is bounded
/// by `run_data_limit`), and a batch holds SQLite's write lock only briefly.
pub const ROTATION_BATCH: u32 = 100;

/// How far a rotation got: after each batch of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationProgress {
    /// `table.column`.
    pub column: String,
    /// Values of this column looked at so far.
    pub checked: u64,
    /// Values of this column re-sealed so far (by this run of the rotation).
    pub resealed: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationOutcome {
    /// Every sealed value now opens with the new key only; `resealed` of them were re-sealed.
    Rotated { resealed: u64 },
    /// The data was already rotated to the new key (a rerun after the rotation had finished).
    AlreadyDone,
}

/// Called after every batch; an error stops the rotation there (it can be run again).
pub type ProgressFn<'a> = dyn FnMut(&RotationProgress) -> Result<()> + Send + 'a;

/// The SQL a rotation needs from a backend, each call its own transaction.
#[async_trait]
pub(crate) trait RotationBackend: Send {
    /// The stored key check, and whether a rotation is marked unfinished.
    async fn key_state(&mut self) -> Result<(Vec<u8>, bool)>;
    /// One transaction: the fence `meta.key_fence = fence`, the new key check, the unfinished
    /// mark. On PostgreSQL it waits for every transaction that passed the old fence.
    async fn begin(&mut self, fence: &[u8], key_check: Vec<u8>) -> Result<()>;
    /// At most `limit` non-NULL values of `column` whose key is after `after`, in key order.
    async fn page(
        &mut self,
        column: &SealedColumn,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// One transaction: each `(key, old, new)` written where the column still holds `old`;
    /// returns how many were written.
    async fn reseal(
        &mut self,
        column: &SealedColumn,
        rows: &[(String, Vec<u8>, Vec<u8>)],
    ) -> Result<u64>;
    /// How many non-NULL values of `column` do not begin with `fence`.
    async fn remaining(&mut self, column: &SealedColumn, fence: &[u8]) -> Result<u64>;
    /// Removes the unfinished mark.
    async fn finish(&mut self) -> Result<()>;
}

/// Rotates the data from `old` to `new` (see the module documentation).
pub(crate) async fn rotate(
    backend: &mut dyn RotationBackend,
    old: &MasterKey,
    new: &MasterKey,
    batch: u32,
    progress: &mut ProgressFn<'_>,
) -> Result<RotationOutcome> {
    let (old, new) = (Cipher::new(old), Cipher::new(new));
    if old.tag() == new.tag() {
        return Err(StoreError::InvalidMasterKey(
            "the new master key is the current one".into(),
        ));
    }
    let batch = batch.clamp(1, 1000);
    let (check, unfinished) = backend.key_state().await?;
    let opens_with_new = verify_key_check(&new, &check).is_ok();
    match (opens_with_new, unfinished) {
        (true, false) => return Ok(RotationOutcome::AlreadyDone),
        // An interrupted rotation to this same new key: the fence is set, go on.
        (true, true) => {}
        (false, _) => {
            verify_key_check(&old, &check)?;
            backend.begin(new.tag(), new_key_check(&new)?).await?;
        }
    }
    let mut resealed = 0;
    for column in SEALED_COLUMNS {
        // A value changed between the read and the compare-and-swap was written under the fence,
        // so with the new key; a second walk finds nothing left unless something is wrong.
        for _ in 0..3 {
            resealed += reseal_column(backend, column, &old, &new, batch, progress).await?;
            if backend.remaining(column, new.tag()).await? == 0 {
                break;
            }
        }
        let left = backend.remaining(column, new.tag()).await?;
        if left > 0 {
            return Err(StoreError::Corrupt(format!(
                "{left} values of {} are still sealed with another key after three passes",
                column.name()
            )));
        }
    }
    backend.finish().await?;
    Ok(RotationOutcome::Rotated { resealed })
}

async fn reseal_column(
    backend: &mut dyn RotationBackend,
    column: &SealedColumn,
    old: &Cipher,
    new: &Cipher,
    batch: u32,
    progress: &mut ProgressFn<'_>,
) -> Result<u64> {
    let mut done = RotationProgress {
        column: column.name(),
        checked: 0,
        resealed: 0,
    };
    let mut after: Option<String> = None;
    loop {
        let rows = backend.page(column, after.as_deref(), batch).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(done.resealed);
        };
        after = Some(last.clone());
        done.checked += rows.len() as u64;
        let mut updates = Vec::with_capacity(rows.len());
        for (key, sealed) in rows {
            if new.sealed_here(&sealed) {
                continue;
            }
            let aad = (column.aad)(&key);
            let plain = Zeroizing::new(old.open(&sealed, aad.as_bytes()).map_err(|_| {
                StoreError::Decrypt(format!(
                    "{} of `{key}` does not open with the current master key",
                    column.name()
                ))
            })?);
            let resealed = new.seal(&plain, aad.as_bytes())?;
            updates.push((key, sealed, resealed));
        }
        if !updates.is_empty() {
            done.resealed += backend.reseal(column, &updates).await?;
        }
        progress(&done)?;
    }
}
