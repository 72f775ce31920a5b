//! A run's writes outlast a short database outage (docs/operations.md, "When the database
//! fails"): once an action with effects has run, its outcome exists only in this process until it
//! is stored, and failing the run because PostgreSQL restarted would lose it. So a write that
//! finds the database unavailable is tried again, with backoff, for half the run's lease.
//!
//! Why half the lease: the lease was renewed at most a third of it before the outage began (the
//! heartbeat), so for half of it after, no other instance's sweeper may take the run for an
//! interrupted one — the write that lands is the only end the run gets. A full disk or a
//! read-only database is not waited out: it needs an operator, and the caller should hear now.
//! Nor is a new run's first write (`Runner::persist`): nothing outside the run happened yet.
//!
//! A write whose commit landed but whose answer was lost (the connection broke) is told
//! `Conflict` when tried again (its records or pending login are there): that is its success.

use std::future::Future;
use std::time::Duration;

use tokenflow_store::{Outage, StoreError};

/// The first wait before trying a write again; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Runs `write` until it lands, fails for a reason other than [`Outage::Unavailable`], or
/// `patience` has passed since the first failure.
pub(crate) async fn write_through_outage<F, Fut>(
    run_id: &str,
    patience: Duration,
    mut write: F,
) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut wait = FIRST_WAIT;
    let mut since: Option<tokio::time::Instant> = None;
    loop {
        let err = match write().await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        match (&err, since) {
            // An earlier attempt committed; only its answer was lost.
            (StoreError::Conflict(_), Some(_)) => return Ok(()),
            _ if err.outage() != Some(Outage::Unavailable) => return Err(err),
            (_, Some(first)) if first.elapsed() + wait > patience => {
                tracing::error!(run = run_id, error = %err, "the database stayed unavailable; the run's last step is not stored");
                return Err(err);
            }
            (_, None) => {
                tracing::warn!(run = run_id, error = %err, "the database is unavailable; writing the run again until it is back");
                since = Some(tokio::time::Instant::now());
            }
            (_, Some(_)) => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn unavailable() -> StoreError {
        StoreError::Database(sqlx::Error::PoolTimedOut)
    }

    #[tokio::test]
    async fn a_write_is_tried_again_while_the_database_is_unavailable_and_a_lost_answer_counts_as_landed()
     {
        let calls = AtomicUsize::new(0);
        let outcome = write_through_outage("r", Duration::from_secs(60), || {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match call {
                    0 | 1 => Err(unavailable()),
                    _ => Err(StoreError::Conflict("records of run r exist".into())),
                }
            }
        })
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_failures_and_a_first_conflict_are_answered_at_once_and_patience_ends() {
        let calls = AtomicUsize::new(0);
        let outcome = write_through_outage("r", Duration::from_secs(15), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Conflict("run r exists".into())) }
        })
        .await;
        assert!(matches!(outcome, Err(StoreError::Conflict(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let outcome = write_through_outage("r", Duration::from_millis(300), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(unavailable()) }
        })
        .await;
        assert!(matches!(outcome, Err(StoreError::Database(_))));
        assert!(calls.load(Ordering::SeqCst) > 1);
    }
}
