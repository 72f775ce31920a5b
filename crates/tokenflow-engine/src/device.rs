//! A waiting `oauth_device_login` (RFC 8628): the wait built from the device authorization, one
//! poll of the token endpoint, and the login's end with its outputs.
//!
//! The wait is a pending authorization like a user login's (same expiry, cancel and
//! single-finisher rules in the runtime), with a `state` that never leaves tokenflow and the
//! device code's expiry; the device code itself is in [`DeviceWait`], part of the run's
//! encrypted state. When to poll is the caller's business (the runtime keeps the interval).

use serde_json::Value;
use time::OffsetDateTime;
use tokenflow_connectors::oauth::device::{DeviceAuthorization, DevicePoll};
use tokenflow_connectors::oauth::random::{RandomError, random_token};
use tokenflow_connectors::oauth::{DeviceLoginStatus, PendingAuthorization, TokenOutputs};
use tokenflow_core::flow::{Action, Flow};

use crate::actions::{Outcome, token_outcome};
use crate::engine::{Engine, Progress};
use crate::run::{DeviceWait, Run, RunStatus, Waiting};

/// The wait of `action` for the person to approve `authorization` on another device.
pub fn waiting(
    action: &Action,
    authorization: DeviceAuthorization,
    started: OffsetDateTime,
) -> Result<Waiting, RandomError> {
    let DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at,
        interval,
        requested_scope,
    } = authorization;
    let pending = PendingAuthorization {
        state: random_token(32)?,
        server_id: action.oauth_server.clone().unwrap_or_default(),
        redirect_uri: String::new(),
        requested_scope,
        code_verifier: None,
        nonce: None,
        issuer: None,
        iss_required: false,
        created_at: started,
        expires_at,
    };
    Ok(Waiting {
        action: action.id.clone(),
        authorization_url: verification_uri_complete
            .clone()
            .unwrap_or_else(|| verification_uri.clone()),
        pending,
        since: started,
        device: Some(DeviceWait {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete,
            interval_secs: interval.as_secs(),
        }),
    })
}

/// The outputs of `oauth_device_login`: the token outputs and what the person was shown.
pub fn device_outcome(
    out: TokenOutputs<DeviceLoginStatus>,
    device: Option<&DeviceWait>,
) -> Outcome {
    let mut outcome = token_outcome(out, true);
    let shown = |value: Option<&String>| value.map_or(Value::Null, |v| Value::from(v.clone()));
    outcome
        .outputs
        .push(("user_code", shown(device.map(|d| &d.user_code))));
    outcome.outputs.push((
        "verification_uri",
        shown(device.map(|d| &d.verification_uri)),
    ));
    outcome.outputs.push((
        "verification_uri_complete",
        shown(device.and_then(|d| d.verification_uri_complete.as_ref())),
    ));
    outcome
}

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
