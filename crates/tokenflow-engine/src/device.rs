//! A waiting `oauth_device_login` (RFC 8628): the wait built from the device authorization, one
//! poll of the token endpoint, and the login's end with its outputs.
//!
//! The wait (built by `actions::device_waiting`) is a pending authorization like a user login's (same expiry, cancel and
//! single-finisher rules in the runtime), with a `state` that never leaves tokenflow and the
//! device code's expiry; the device code itself is in [`crate::run::DeviceWait`], part of the run's
//! encrypted state. When to poll is the caller's business (the runtime keeps the interval).

use tokenflow_connectors::oauth::device::DevicePoll;
use tokenflow_connectors::oauth::{DeviceLoginStatus, TokenOutputs};
use tokenflow_core::flow::Flow;

use crate::actions::device_outcome;
use crate::engine::{Engine, Progress};
use crate::run::{Run, RunStatus};

impl Engine {
    /// One poll of the token endpoint for a run waiting at a device login; `None` when the run
    /// does not wait on one. The run is not changed: a `Done` is handed to
    /// [`Engine::finish_device`] once the caller has claimed the wait's end.
    pub async fn poll_device(&self, run: &Run) -> Option<DevicePoll> {
        if run.status != RunStatus::Waiting {
            return None;
        }
        let waiting = run.waiting.as_ref()?;
        let device = waiting.device.as_ref()?;
        let server_id = &waiting.pending.server_id;
        let server = self.context().servers().get(server_id);
        Some(
            self.oauth()
                .poll_device_login(
                    server_id,
                    server.as_ref(),
                    &device.device_code,
                    &waiting.pending.requested_scope,
                )
                .await,
        )
    }

    /// The device login of a waiting run ended with `out`: record it and route on.
    pub fn finish_device(
        &self,
        flow: &Flow,
        run: &mut Run,
        out: TokenOutputs<DeviceLoginStatus>,
    ) -> Progress {
        let Some((action, waiting)) = self.waiting_action(flow, run) else {
            return Progress::Finished;
        };
        let outcome = device_outcome(out, waiting.device.as_ref());
        self.after_wait(flow, run, action, waiting, outcome)
    }
}
