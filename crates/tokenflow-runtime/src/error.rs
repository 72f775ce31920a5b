//! What can go wrong in the run lifecycle, in its own words. The server turns these into HTTP
//! answers (its `error.rs`); start-up keeps them, with their causes, as the reason not to start.

use tokenflow_core::flow::FlowProblems;
use tokenflow_store::StoreError;

/// A failure of the run lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No such flow, run or server (the text names it: "flow `x`").
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the current state (a run that has already ended).
    #[error("{0}")]
    Conflict(String),
    /// Starting a run of a flow that has `limit` runs waiting for a sign-in already
    /// (`max_waiting_runs_per_flow`).
    #[error(
        "flow `{flow}` has {limit} runs waiting for a sign-in (max_waiting_runs_per_flow); finish, cancel or let some of them expire first"
    )]
    TooManyWaitingRuns { flow: String, limit: u64 },
    /// A value the caller gave is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// A flow failed validation; every problem at once.
    #[error("the flow is invalid")]
    InvalidFlow(FlowProblems),
    /// A change that would send a stored (write-only) client secret elsewhere, without it.
    #[error("{0}")]
    SecretRequired(String),
    /// An OAuth server of the configuration file, which only the file changes.
    #[error("{0}")]
    DefinedInConfiguration(String),
    /// Flow files of the flows directory that cannot be loaded (at start-up).
    #[error("invalid flows in {dir}:\n  - {}", .problems.join("\n  - "))]
    InvalidFlowsDirectory { dir: String, problems: Vec<String> },
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] tokenflow_connectors::http::ReqwestError),
    #[error("cannot build the HTTP client with the configured `tls_ca`")]
    Tls(#[source] tokenflow_connectors::http::TlsError),
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// Something stored (a run's state or record, a flow version) cannot be read back.
    #[error("stored data cannot be read")]
    Unreadable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RuntimeError {
    pub fn unreadable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        RuntimeError::Unreadable(Box::new(err))
    }
}
