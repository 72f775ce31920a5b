//! The rows the store reads and writes. Secret fields are [`SecretString`]: the store encrypts them
//! on the way in and decrypts them on the way out.

use time::OffsetDateTime;
use tokenflow_core::{RunStatus, SecretString, VaultEntryState};

/// One version of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub id: String,
    pub version: i64,
    pub yaml: String,
    pub created_at: OffsetDateTime,
}

/// A version of a flow as a list shows it: without its YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowVersionRow {
    pub version: i64,
    pub created_at: OffsetDateTime,
    /// The YAML's length in bytes.
    pub bytes: i64,
}

/// A run. `state` holds everything the engine needs to continue (variables, including secret
/// ones, the pending login, the next node) as JSON, and is encrypted at rest.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub flow_id: String,
    pub flow_version: i64,
    pub status: RunStatus,
    pub state: SecretString,
    /// Set when the run was started from a browser: SHA-256 (hex) of the binding cookie value.
    pub browser_binding: Option<String>,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: String,
    pub flow_id: String,
    pub flow_version: i64,
    pub status: RunStatus,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// Filters for [`crate::Store::list_runs`]; `None` means any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub flow_id: Option<String>,
    pub status: Option<RunStatus>,
    /// Runs started at or after this instant (inclusive).
    pub started_after: Option<OffsetDateTime>,
    /// Runs started before this instant (exclusive).
    pub started_before: Option<OffsetDateTime>,
    /// At most this many (newest first); 0 means 100, and the store caps it at 1000.
    pub limit: u32,
    pub offset: u32,
}

/// One monitor record: the engine's `ActionRecord` as JSON. Its secrets are already masked, so it
/// is stored as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecordRow {
    pub run_id: String,
    /// 0, 1, 2… in execution order.
    pub seq: i64,
    pub json: String,
}

/// A pending authorization (docs/flows.md). Looked up by the SHA-256 of its `state`: the raw state is
/// never stored. `payload` (PKCE verifier, nonce, redirect URI, …) is encrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub state: SecretString,
    pub run_id: String,
    pub action: String,
    pub payload: SecretString,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The outcome of consuming a pending authorization.
#[derive(Debug, Clone, PartialEq)]
pub enum TakePending {
    /// This caller consumed it.
    Taken(PendingRow),
    /// No such state.
    Unknown,
    /// It existed but expired (it is consumed now, so the expiry is handled once).
    Expired(PendingRow),
    /// Somebody consumed it before.
    AlreadyUsed,
}

/// A waiting device login's polling schedule (docs/connectors.md, `oauth_device_login`): when its
/// run's token endpoint is polled next, and which instance holds the claim to poll it. The
/// device code is not here: it is part of the run's (encrypted) state.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePollRow {
    pub run_id: String,
    pub action: String,
    /// The current polling interval (RFC 8628 §3.5: `slow_down` increases it).
    pub interval_ms: i64,
    pub next_poll_at: OffsetDateTime,
    /// The device code's expiry.
    pub expires_at: OffsetDateTime,
}

/// An OAuth server created through the API: its spec as JSON without the secrets, and the client
/// secret and private key separately (encrypted, write-only: only the engine reads them back).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthServerRow {
    pub id: String,
    pub spec_json: String,
    pub client_secret: Option<SecretString>,
    /// The PEM private key of `private_key_jwt` (encrypted like the secret, write-only).
    pub private_key: Option<SecretString>,
    pub updated_at: OffsetDateTime,
}

/// An API key: its name and the SHA-256 (hex) of the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    pub name: String,
    pub hash: String,
    pub created_at: OffsetDateTime,
}

/// A claimed schedule firing.
#[derive(Debug, Clone, PartialEq)]
pub struct FiringRow {
    pub flow_id: String,
    pub due: i64,
    pub run_id: String,
    pub claimed_at: OffsetDateTime,
}

/// A token vault entry (docs/connectors.md): a stored grant under a name chosen by the flow author.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultEntryRow {
    pub name: String,
    pub server_id: String,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<OffsetDateTime>,
    pub granted_scopes: Option<String>,
    /// `ok`, or `needs_login` once the grant is gone (`invalid_grant`).
    pub state: VaultEntryState,
    pub last_refresh_at: Option<OffsetDateTime>,
    /// `ok`, or the error of the last refresh.
    pub last_refresh_outcome: Option<String>,
    /// Increases with every write; the compare-and-swap of refreshes checks it.
    pub version: i64,
    pub updated_at: OffsetDateTime,
}

/// What [`crate::VaultStore::claim_vault_refresh`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshClaim {
    /// Another owner holds a live lease, or there is no such entry.
    Refused,
    /// The lease was free, or already this owner's.
    Claimed,
    /// Another owner's lease had expired: its refresh never ended (that instance stopped, or took
    /// longer than the lease), so a refresh token it sent may have been rotated and its answer
    /// lost (docs/operations.md, "What happens when …").
    TakenOver,
}

impl RefreshClaim {
    /// Whether the caller now holds the lease.
    pub fn is_held(self) -> bool {
        match self {
            RefreshClaim::Claimed | RefreshClaim::TakenOver => true,
            RefreshClaim::Refused => false,
        }
    }
}

/// Whose API key opened a web UI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiSessionOwner {
    /// A key kept in the store, by its name: deleting the key deletes its sessions.
    StoredKey(String),
    /// A key of the configuration file, by a reference the server derives from it with a key of
    /// its own (so neither the key nor its plain hash is stored).
    ConfiguredKey(String),
}

/// A web UI session. Its random id lives only in the browser's cookie; the store keeps its
/// SHA-256 (hex), so reading the database gives no usable session.
#[derive(Debug, Clone, PartialEq)]
pub struct UiSessionRow {
    pub id_hash: String,
    pub owner: UiSessionOwner,
    pub created_at: OffsetDateTime,
    /// The session ends at this instant (it is valid strictly before it).
    pub expires_at: OffsetDateTime,
}

/// Refuses monitor records of another run (both backends, before writing).
pub(crate) fn check_records_of(run: &RunRow, records: &[ActionRecordRow]) -> crate::Result<()> {
    match records.iter().find(|record| record.run_id != run.id) {
        Some(record) => Err(crate::StoreError::Conflict(format!(
            "monitor record of run {} saved with run {}",
            record.run_id, run.id
        ))),
        None => Ok(()),
    }
}

/// The conflict message of creating `run` with `records`.
pub(crate) fn create_conflict(run: &RunRow, records: &[ActionRecordRow]) -> String {
    if records.is_empty() {
        format!("run {} already exists", run.id)
    } else {
        format!(
            "run {} already exists or has one of these monitor records",
            run.id
        )
    }
}

/// The conflict message of appending `records` to `run`.
pub(crate) fn records_conflict(run: &RunRow, records: &[ActionRecordRow]) -> String {
    match records {
        [] => format!("run {}", run.id),
        [record] => format!("run {} already has monitor record {}", run.id, record.seq),
        [first, .., last] => format!(
            "run {} already has one of monitor records {}–{}",
            run.id, first.seq, last.seq
        ),
    }
}
