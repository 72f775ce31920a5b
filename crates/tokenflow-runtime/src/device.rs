//! Polling of waiting device logins (`oauth_device_login`, RFC 8628).
//!
//! A run waiting at a device login has a polling schedule in the store (`device_polls`): its next
//! poll's time and the current interval. Every instance's device poller claims due schedules
//! with one conditional write (a claim that lasts [`DEVICE_POLL_CLAIM`]), polls the token
//! endpoint once for each, and gives the claim back with the next time — so across instances
//! exactly one polls a given run, and a restarted process (or another instance) continues the
//! polling of every waiting run from the store. The device code itself is in the run's
//! encrypted state; the schedule holds none.
//!
//! Bounds: at most [`MAX_CONCURRENT_POLLS`] schedules are claimed per pass and polled at once,
//! each poll bounded by the connector's poll timeout, so a claim outlives the poll it covers.
//! The end of a wait is claimed like a callback: the pending authorization is consumed once,
//! so a device login that ends by a poll, by its expiry (the sweeper, -4) or by a cancel ends
//! exactly once.

use std::time::Duration;

use futures_util::StreamExt;
use tokenflow_connectors::oauth::device::{DevicePoll, next_interval};
use tokenflow_engine::{DeviceWait, Progress, RunStatus, Waiting};
use tokenflow_store::{DevicePollRow, TakePending};

use crate::error::RuntimeError;
use crate::runner::Runner;

/// How long a claim on a schedule lasts: longer than a poll can take (the connector bounds each
/// poll to 30 s), so a claim never lapses while its poll is in flight.
pub const DEVICE_POLL_CLAIM: Duration = Duration::from_secs(60);
/// How many schedules one instance claims per pass and polls at once.
pub const MAX_CONCURRENT_POLLS: u32 = 8;

impl Runner {
    /// Writes the polling schedule of a run that starts waiting at a device login: the first
    /// poll one interval from now (RFC 8628 §3.5).
    pub(crate) async fn schedule_device_poll(
        &self,
        run_id: &str,
        waiting: &Waiting,
        device: &DeviceWait,
    ) -> Result<(), RuntimeError> {
        let interval = Duration::from_secs(device.interval_secs.max(1));
        let poll = DevicePollRow {
            run_id: run_id.to_owned(),
            action: waiting.action.clone(),
            interval_ms: millis(interval),
            next_poll_at: self.clock.now() + time_duration(interval),
            expires_at: waiting.pending.expires_at,
        };
        self.store.schedule_device_poll(&poll).await?;
        Ok(())
    }

    /// Claims the due device-login schedules (at most [`MAX_CONCURRENT_POLLS`]) and polls each
    /// once, at the same time; returns how many it claimed.
    pub async fn poll_devices_once(&self) -> Result<usize, RuntimeError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_device_polls(
                &self.owner,
                now,
                now + time_duration(DEVICE_POLL_CLAIM),
                MAX_CONCURRENT_POLLS,
            )
            .await?;
        let count = claimed.len();
        futures_util::stream::iter(claimed)
            .for_each_concurrent(None, |poll| async move {
                let run_id = poll.run_id.clone();
                if let Err(err) = self.poll_device(poll).await {
                    tracing::error!(run = %run_id, error = %err, "polling a device login failed");
                }
            })
            .await;
        Ok(count)
    }

    /// One claimed schedule: poll, then either give the claim back with the next time or end
    /// the wait.
    async fn poll_device(&self, poll: DevicePollRow) -> Result<(), RuntimeError> {
        let lock = self.lock(&poll.run_id);
        let _guard = lock.lock().await;
        let view = self.load_state(&poll.run_id).await?;
        let waits = view.as_ref().is_some_and(|view| {
            view.run.status == RunStatus::Waiting
                && view
                    .run
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.action == poll.action && w.device.is_some())
        });
        let (Some(mut view), true) = (view, waits) else {
            // The wait ended otherwise (expiry, cancel) or never began (a crash in between).
            self.store.delete_device_poll(&poll.run_id).await?;
            return Ok(());
        };
        let state = match &view.run.waiting {
            Some(waiting) => waiting.pending.state.clone(),
            None => return Ok(()),
        };
        if self.clock.now() >= poll.expires_at {
            // RFC 8628 §3.5: no poll after the device code expired; the login ends -4.
            if let TakePending::Expired(row) | TakePending::Taken(row) = self
                .store
                .take_pending_authorization(&state, self.clock.now())
                .await?
            {
                self.expire_pending(&row).await?;
            }
            self.store.delete_device_poll(&poll.run_id).await?;
            return Ok(());
        }
        let Some(outcome) = self.engine.poll_device(&view.run).await else {
            self.store.delete_device_poll(&poll.run_id).await?;
            return Ok(());
        };
        let out = match outcome {
            DevicePoll::Done(out) => *out,
            waiting => {
                if let DevicePoll::Unreachable(detail) = &waiting {
                    tracing::warn!(run = %poll.run_id, %detail, "the token endpoint could not be polled; backing off");
                }
                let current = Duration::from_millis(u64::try_from(poll.interval_ms).unwrap_or(0));
                let interval = next_interval(current, &waiting);
                self.store
                    .release_device_poll(
                        &poll.run_id,
                        &self.owner,
                        millis(interval),
                        self.clock.now() + time_duration(interval),
                    )
                    .await?;
                return Ok(());
            }
        };
        // The end is claimed like a callback: one finisher, even against the expiry sweeper
        // or a cancel on another instance. A token that came back is used even when the wait
        // expired meanwhile.
        match self
            .store
            .take_pending_authorization(&state, self.clock.now())
            .await?
        {
            TakePending::Taken(_) | TakePending::Expired(_) => {
                let before = view.run.record_count();
                let progress = self.engine.finish_device(&view.flow, &mut view.run, out);
                self.persist(&view, before, true).await?;
                self.store.delete_device_poll(&poll.run_id).await?;
                if progress == Progress::Continued {
                    self.drive(&mut view, true).await?;
                }
            }
            TakePending::Unknown | TakePending::AlreadyUsed => {
                self.store.delete_device_poll(&poll.run_id).await?;
            }
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn time_duration(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::ZERO)
}
