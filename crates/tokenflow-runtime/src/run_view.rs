//! A run as the API and the UI show it: the run with its flow version ([`RunView`]), its JSON
//! ([`RunBody`]) with the last [`SHOWN_RECORDS`] monitor records, and a page of earlier records
//! ([`RecordsPage`]). Values only; the runner loads and stores them.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokenflow_core::flow::Flow;
use tokenflow_engine::{ActionRecord, Run};

/// A run with the flow version it runs on.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: Run,
    pub flow: Arc<Flow>,
    pub version: i64,
    /// SHA-256 (hex) of the browser-binding cookie, for runs started from a browser.
    pub browser_binding: Option<String>,
}

impl RunView {
    /// The run's body in the API (docs/flows.md): with the flow version, the monitor records held
    /// (at most the last [`SHOWN_RECORDS`]) and, when there are earlier ones, where to read them;
    /// values over `monitor_value_limit` bytes summarized.
    pub fn body(&self, monitor_value_limit: usize) -> RunBody {
        let run = &self.run;
        let offset = run.first_record;
        let earlier_actions = (offset > 0).then(|| {
            let page = offset.min(SHOWN_RECORDS as u64);
            format!(
                "/api/runs/{}/actions?offset={}&limit={page}",
                run.id,
                offset - page
            )
        });
        RunBody {
            id: run.id.clone(),
            flow: run.flow_id.clone(),
            flow_version: self.version,
            status: run.status.as_str().to_owned(),
            started_at: rfc3339(run.started_at),
            ended_at: run.ended_at.map(rfc3339),
            actions: run.records.iter().map(ActionRecordBody::from).collect(),
            actions_total: run.record_count(),
            actions_offset: offset,
            earlier_actions,
            variables: run.variables.shown(&self.flow, monitor_value_limit),
            authorization_url: run.waiting.as_ref().map(|w| w.authorization_url.clone()),
            waiting_action: run.waiting.as_ref().map(|w| w.action.clone()),
            expires_at: run.waiting.as_ref().map(|w| rfc3339(w.pending.expires_at)),
            device: run.waiting.as_ref().and_then(|w| {
                w.device.as_ref().map(|device| DeviceBody {
                    user_code: device.user_code.clone(),
                    verification_uri: device.verification_uri.clone(),
                    verification_uri_complete: device.verification_uri_complete.clone(),
                    expires_at: rfc3339(w.pending.expires_at),
                })
            }),
            error: run.reason.clone(),
        }
    }

    /// [`Self::body`] as JSON.
    pub fn to_json(&self, monitor_value_limit: usize) -> Value {
        serde_json::to_value(self.body(monitor_value_limit)).unwrap_or_default()
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A run (docs/flows.md). Secret variables are fingerprints like `sha256:1a2b3c4d… (43 chars)`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunBody {
    pub id: String,
    pub flow: String,
    pub flow_version: i64,
    /// `running`, `waiting`, `completed`, `failed`, `cancelled`.
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The last (at most 100) executed actions.
    pub actions: Vec<ActionRecordBody>,
    /// How many actions the run has executed and recorded.
    pub actions_total: u64,
    /// The sequence number of `actions[0]` (0 is the run's first action).
    pub actions_offset: u64,
    /// When `actions` does not start at the first action: the page before it,
    /// `/api/runs/{id}/actions?offset=…&limit=…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_actions: Option<String>,
    /// Values larger than `monitor_value_limit` are summarized as in the records.
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// Only while waiting: where the person signs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Only while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_action: Option<String>,
    /// Only while waiting: when the login expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Only while an `oauth_device_login` waits: what the person enters, and where (RFC 8628).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceBody>,
    /// Why the run failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A waiting device login (RFC 8628 §3.3): the person opens `verification_uri` on any device
/// and enters `user_code`, or opens `verification_uri_complete`. The device code is never shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceBody {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// RFC 3339: when the device code expires.
    pub expires_at: String,
}

/// One executed action (the process flow monitor's record). Secrets are fingerprints. An input or
/// output value larger than `monitor_value_limit` (default 8 KiB) is kept as
/// `{ "truncated": true, "bytes": <size>, "sha256": "<hex of its text>", "preview": "<first 512 bytes>" }`
/// (a string's text is itself, any other value's is its compact JSON).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionRecordBody {
    pub action: String,
    /// The action type.
    #[serde(rename = "type")]
    pub kind: String,
    pub status_code: Option<i32>,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    #[schema(value_type = Object)]
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Unknown members of a token response (masked), when there were any.
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub response: Map<String, Value>,
}

impl From<&ActionRecord> for ActionRecordBody {
    fn from(record: &ActionRecord) -> Self {
        Self {
            action: record.action.clone(),
            kind: record.kind.as_str().to_owned(),
            status_code: record.status_code,
            started_at: rfc3339(record.started_at),
            duration_ms: record.duration_ms,
            inputs: record.inputs.clone(),
            outputs: record.outputs.clone(),
            error: record.error.clone(),
            warnings: record.warnings.clone(),
            response: record.response.clone(),
        }
    }
}

/// How many of a run's latest monitor records its JSON shows (and a run keeps in memory once
/// they are stored); earlier ones are read a page at a time.
pub const SHOWN_RECORDS: usize = 100;

/// A page of a run's monitor records.
#[derive(Debug)]
pub struct RecordsPage {
    /// How many records the run has.
    pub total: u64,
    /// The sequence number of the first record of the page.
    pub offset: u64,
    /// The records as stored (secrets masked, large values summarized).
    pub records: Vec<Value>,
}
