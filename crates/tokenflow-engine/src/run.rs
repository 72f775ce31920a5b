//! The run state machine (docs/flows.md) and the JSON form of a run (docs/flows.md).
//!
//! ```text
//! running ──(user or device login)──> waiting ──(callback | device poll | expiry)──> running
//!    │                         │
//!    ├──> completed            └──(cancel)──> cancelled
//!    └──> failed   (an internal error: no step holds, a condition failed, max_steps, bad input)
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokenflow_connectors::oauth::PendingAuthorization;
pub use tokenflow_core::RunStatus;
use tokenflow_core::SecretString;
use tokenflow_core::flow::{ActionKind, Flow};

use crate::vars::Variables;

/// A run suspended at a user login or a device login.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub action: String,
    /// Where the person must go; holds no secret (PKCE sends only the challenge). For a device
    /// login, the verification URI (with the user code when the provider gave one).
    pub authorization_url: String,
    /// For a device login, a `state` that never leaves tokenflow: it makes the wait a pending
    /// authorization like any other (expiry, cancel, one finisher), with the device code's
    /// expiry.
    pub pending: PendingAuthorization,
    pub since: OffsetDateTime,
    /// Set while an `oauth_device_login` waits (RFC 8628).
    pub device: Option<DeviceWait>,
}

/// What a waiting device login holds (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct DeviceWait {
    /// Secret: stored encrypted with the run's state, never shown.
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// The polling interval the provider asked for (whole seconds).
    pub interval_secs: u64,
}

impl DeviceWait {
    /// The run JSON's `device` member (docs/flows.md); never the device code.
    pub fn to_json(&self, expires_at: OffsetDateTime) -> Value {
        json!({
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "expires_at": expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        })
    }
}

/// The monitor record of one executed action (docs/flows.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub action: String,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    /// The action's OAuth server, for those that name one (the dashboard counts token requests
    /// per server from it, docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_server: Option<String>,
    pub status_code: Option<i32>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// Assigned inputs, secrets masked.
    pub inputs: Map<String, Value>,
    /// Every output of the action, secrets masked.
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Unknown members of a token response (masked), for the monitor.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub response: Map<String, Value>,
}

/// One execution of a flow.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub flow_id: String,
    pub status: RunStatus,
    pub variables: Variables,
    /// The node to execute next while running: an action id or `stop`.
    pub next: Option<String>,
    /// Actions executed so far (for `max_steps`).
    pub executed: u32,
    /// Monitor records, oldest first: those the caller has not stored yet, after at most the
    /// last few it has (see [`Run::forget_records`]); all of them when nothing is stored.
    pub records: Vec<ActionRecord>,
    /// The sequence number (0, 1, 2… in execution order) of `records[0]`: how many records
    /// came before the ones held here.
    pub first_record: u64,
    /// The bytes of every monitor record of the run so far (as JSON), for `run_data_limit`.
    pub record_bytes: u64,
    pub waiting: Option<Waiting>,
    /// Why the run failed or was cancelled.
    pub reason: Option<String>,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

impl Run {
    /// How many monitor records the run has, held here or not.
    pub fn record_count(&self) -> u64 {
        self.first_record + self.records.len() as u64
    }

    /// Drops the records before sequence number `stored` (the caller has them in its store),
    /// except the last `keep` records of the run, so a long run holds a bounded window.
    pub fn forget_records(&mut self, stored: u64, keep: usize) {
        let stored_here = usize::try_from(stored.saturating_sub(self.first_record))
            .unwrap_or(usize::MAX)
            .min(self.records.len());
        let drop = stored_here.min(self.records.len().saturating_sub(keep));
        self.records.drain(..drop);
        self.first_record += drop as u64;
    }

    /// The run as JSON (docs/flows.md), secrets masked; the same for the API and `tokenflow run`.
    /// Variable values over the default `monitor_value_limit` are summarized.
    pub fn to_json(&self, flow: &Flow) -> Value {
        self.to_json_limited(flow, tokenflow_core::limits::DEFAULT_MONITOR_VALUE_LIMIT)
    }

    /// [`Run::to_json`] with variable values over `monitor_value_limit` bytes summarized as in
    /// the monitor. `actions` holds the records held here (see [`Run::records`]),
    /// `actions_offset` the sequence number of the first and `actions_total` how many the run has.
    pub fn to_json_limited(&self, flow: &Flow, monitor_value_limit: usize) -> Value {
        let format = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let mut run = json!({
            "id": self.id,
            "flow": self.flow_id,
            "status": self.status.as_str(),
            "started_at": format(self.started_at),
            "ended_at": self.ended_at.map(format),
            "actions": self.records,
            "actions_total": self.record_count(),
            "actions_offset": self.first_record,
            "variables": self.variables.shown(flow, monitor_value_limit),
        });
        if let Some(object) = run.as_object_mut() {
            if let Some(waiting) = &self.waiting {
                object.insert(
                    "authorization_url".into(),
                    waiting.authorization_url.clone().into(),
                );
                object.insert("waiting_action".into(), waiting.action.clone().into());
                object.insert(
                    "expires_at".into(),
                    format(waiting.pending.expires_at).into(),
                );
                if let Some(device) = &waiting.device {
                    object.insert("device".into(), device.to_json(waiting.pending.expires_at));
                }
            }
            if let Some(reason) = &self.reason {
                object.insert("error".into(), reason.clone().into());
            }
        }
        run
    }
}
