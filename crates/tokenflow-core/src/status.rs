//! The life states of a run and of a token vault entry, as the API, the monitor and the store's
//! columns spell them (snake_case).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a run is in its life (docs/flows.md):
///
/// ```text
/// running ──(user login)──> waiting ──(callback | expiry)──> running
///    │                         │
///    ├──> completed            └──(cancel)──> cancelled
///    └──> failed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: &'static [RunStatus] = &[
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status spelled `text` (as [`RunStatus::as_str`] writes it).
    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        match self {
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled => true,
            RunStatus::Running | RunStatus::Waiting => false,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a token vault entry still holds a usable grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultEntryState {
    /// Usable (and refreshable when it has a refresh token).
    Ok,
    /// The grant is gone (`invalid_grant`): somebody must sign in again.
    NeedsLogin,
}

impl VaultEntryState {
    pub const ALL: &'static [VaultEntryState] = &[VaultEntryState::Ok, VaultEntryState::NeedsLogin];

    pub fn as_str(self) -> &'static str {
        match self {
            VaultEntryState::Ok => "ok",
            VaultEntryState::NeedsLogin => "needs_login",
        }
    }

    /// The state spelled `text` (as [`VaultEntryState::as_str`] writes it).
    pub fn parse(text: &str) -> Option<VaultEntryState> {
        VaultEntryState::ALL
            .iter()
            .copied()
            .find(|state| state.as_str() == text)
    }
}

impl fmt::Display for VaultEntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_status_reads_back_from_its_spelling_and_serializes_the_same() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::from(status.as_str()))
            );
        }
        assert_eq!(RunStatus::parse("Running"), None);
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn only_completed_failed_and_cancelled_runs_are_final() {
        let last: Vec<_> = RunStatus::ALL
            .iter()
            .filter(|status| status.is_final())
            .map(|status| status.as_str())
            .collect();
        assert_eq!(last, ["completed", "failed", "cancelled"]);
    }

    #[test]
    fn every_vault_entry_state_reads_back_from_its_spelling() {
        for state in VaultEntryState::ALL {
            assert_eq!(VaultEntryState::parse(state.as_str()), Some(*state));
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(serde_json::Value::from(state.as_str()))
            );
        }
        assert_eq!(VaultEntryState::parse("gone"), None);
    }
}
