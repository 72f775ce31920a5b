//! The durable form of a run: everything the engine needs to continue it — after a restart, or on
//! another instance — as one JSON document. It contains secrets (variables, the PKCE verifier), so
//! it is handed to the store as a `SecretString`, which encrypts it. A waiting device login's
//! device code lives here too, and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokenflow_connectors::oauth::PendingAuthorization;
use tokenflow_core::SecretString;

use crate::run::{ActionRecord, DeviceWait, Run, RunStatus, Waiting};
use crate::vars::{Val, Variables};

#[derive(Deserialize)]
struct StoredVar {
    value: Value,
    secret: bool,
}

/// [`StoredVar`] borrowed from the run, so writing the state copies no variable.
#[derive(Serialize)]
struct StoredVarRef<'a> {
    value: ValueRef<'a>,
    secret: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ValueRef<'a> {
    Plain(&'a Value),
    Secret(&'a str),
}

#[derive(Serialize, Deserialize)]
struct StoredPending {
    state: String,
    server_id: String,
    redirect_uri: String,
    requested_scope: String,
    code_verifier: Option<String>,
    nonce: Option<String>,
    /// Absent in states stored before the RFC 9207 check kept it (the callback then falls back to
    /// the configured issuer).
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    iss_required: bool,
    /// RFC 8707 indicators of a user login; absent in states stored before they were kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    resource: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct StoredWaiting {
    action: String,
    authorization_url: String,
    pending: StoredPending,
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<StoredDevice>,
}

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    interval_secs: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredState<V> {
    variables: std::collections::BTreeMap<String, V>,
    next: Option<String>,
    executed: u32,
    waiting: Option<StoredWaiting>,
    reason: Option<String>,
    /// The bytes of the run's monitor records so far (`run_data_limit`); absent in runs stored
    /// before it was counted.
    #[serde(default)]
    record_bytes: u64,
}

/// The state could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("the stored run state is not readable: {0}")]
pub struct StateError(String);

impl Run {
    /// The run's state as secret JSON (variables with secrets, the pending login, the next node).
    pub fn state_json(&self) -> SecretString {
        let variables = self
            .variables
            .iter()
            .map(|(name, val)| {
                let value = match val {
                    Val::Plain(value) => ValueRef::Plain(value),
                    Val::Secret(secret) => ValueRef::Secret(secret.expose()),
                };
                let secret = val.is_secret();
                (name.clone(), StoredVarRef { value, secret })
            })
            .collect();
        let waiting = self.waiting.as_ref().map(|w| StoredWaiting {
            action: w.action.clone(),
            authorization_url: w.authorization_url.clone(),
            since: w.since,
            device: w.device.as_ref().map(|d| StoredDevice {
                device_code: d.device_code.expose().to_owned(),
                user_code: d.user_code.clone(),
                verification_uri: d.verification_uri.clone(),
                verification_uri_complete: d.verification_uri_complete.clone(),
                interval_secs: d.interval_secs,
            }),
            pending: StoredPending {
                state: w.pending.state.expose().to_owned(),
                server_id: w.pending.server_id.clone(),
                redirect_uri: w.pending.redirect_uri.clone(),
                requested_scope: w.pending.requested_scope.clone(),
                code_verifier: w
                    .pending
                    .code_verifier
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                nonce: w.pending.nonce.as_ref().map(|s| s.expose().to_owned()),
                issuer: w.pending.issuer.clone(),
                iss_required: w.pending.iss_required,
                resource: w.pending.resource.clone(),
                created_at: w.pending.created_at,
                expires_at: w.pending.expires_at,
            },
        });
        let state = StoredState {
            variables,
            next: self.next.clone(),
            executed: self.executed,
            waiting,
            reason: self.reason.clone(),
            record_bytes: self.record_bytes,
        };
        // Sized for the variables up front, so a large state is not built by doubling.
        let size = self.variables.data_bytes();
        let mut json = Vec::with_capacity(usize::try_from(size + size / 8 + 4096).unwrap_or(0));
        if serde_json::to_writer(&mut json, &state).is_err() {
            json.clear();
        }
        SecretString::new(String::from_utf8(json).unwrap_or_default())
    }

    /// Rebuilds a run from its stored parts: `records` are the last of its monitor records (or
    /// none), the first of them with sequence number `first_record`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_stored(
        id: String,
        flow_id: String,
        status: RunStatus,
        state: &SecretString,
        records: Vec<ActionRecord>,
        first_record: u64,
        started_at: OffsetDateTime,
        ended_at: Option<OffsetDateTime>,
    ) -> Result<Run, StateError> {
        let stored: StoredState<StoredVar> =
            serde_json::from_str(state.expose()).map_err(|err| StateError(err.to_string()))?;
        let mut variables = Variables::default();
        for (name, var) in stored.variables {
            let val = if var.secret {
                Val::Secret(SecretString::new(match var.value {
                    Value::String(text) => text,
                    other => other.to_string(),
                }))
            } else {
                Val::Plain(var.value)
            };
            variables.set(name, val);
        }
        let waiting = stored.waiting.map(|w| Waiting {
            action: w.action,
            authorization_url: w.authorization_url,
            since: w.since,
            device: w.device.map(|d| DeviceWait {
                device_code: SecretString::new(d.device_code),
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                verification_uri_complete: d.verification_uri_complete,
                interval_secs: d.interval_secs,
            }),
            pending: PendingAuthorization {
                state: SecretString::new(w.pending.state),
                server_id: w.pending.server_id,
                redirect_uri: w.pending.redirect_uri,
                requested_scope: w.pending.requested_scope,
                code_verifier: w.pending.code_verifier.map(SecretString::new),
                nonce: w.pending.nonce.map(SecretString::new),
                issuer: w.pending.issuer,
                iss_required: w.pending.iss_required,
                resource: w.pending.resource,
                created_at: w.pending.created_at,
                expires_at: w.pending.expires_at,
            },
        });
        Ok(Run {
            id,
            flow_id,
            status,
            variables,
            next: stored.next,
            executed: stored.executed,
            records,
            first_record,
            record_bytes: stored.record_bytes,
            waiting,
            reason: stored.reason,
            started_at,
            ended_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_stored_before_the_issuer_and_resource_were_kept_is_still_readable_and_new_ones_keep_them()
     {
        let old = r#"{"variables":{},"next":null,"executed":1,"reason":null,
            "waiting":{"action":"login","authorization_url":"http://idp.example/auth",
              "since":"2026-01-01T00:00:00Z",
              "pending":{"state":"s","server_id":"idp","redirect_uri":"http://127.0.0.1:8400/oauth-callback",
                "requested_scope":"openid","code_verifier":null,"nonce":null,
                "created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:10:00Z"}}}"#;
        let at = time::macros::datetime!(2026-01-01 00:00 UTC);
        let mut run = Run::from_stored(
            "r".into(),
            "f".into(),
            RunStatus::Waiting,
            &SecretString::new(old),
            Vec::new(),
            0,
            at,
            None,
        )
        .unwrap();
        let pending = &run.waiting.as_ref().unwrap().pending;
        assert_eq!(pending.issuer, None);
        assert!(!pending.iss_required);
        assert_eq!(pending.resource, "");

        if let Some(waiting) = run.waiting.as_mut() {
            waiting.pending.issuer = Some("http://idp.example".into());
            waiting.pending.iss_required = true;
            waiting.pending.resource = "https://api.example/ https://other.example/".into();
        }
        let again = Run::from_stored(
            "r".into(),
            "f".into(),
            RunStatus::Waiting,
            &run.state_json(),
            Vec::new(),
            0,
            at,
            None,
        )
        .unwrap();
        let pending = &again.waiting.as_ref().unwrap().pending;
        assert_eq!(pending.issuer.as_deref(), Some("http://idp.example"));
        assert!(pending.iss_required);
        // RFC 8707 §2.2: the code exchange after a restart repeats the indicators.
        assert_eq!(
            pending.resource,
            "https://api.example/ https://other.example/"
        );
    }
}
