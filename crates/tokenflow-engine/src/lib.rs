//! The flow engine (docs/flows.md): runs a validated [`Flow`](tokenflow_core::flow::Flow) action by
//! action, routes on status codes and CEL conditions, suspends at a user login and resumes on its
//! callback, and keeps a monitor record of every executed action with secrets masked.
//!
//! - [`engine`]: `start`, `step`, `resume`, `expire`, `cancel` — driven one action at a time so
//!   tests (and the server's durable runner) control every transition.
//! - [`run`]: the run state machine and its JSON form (docs/flows.md).
//! - [`vars`]: run variables, with secret values kept as `SecretString`.
//! - [`monitor`]: monitor values over `monitor_value_limit` kept as summaries.
//! - [`inputs`]: bindings → action inputs (unassigned stays unassigned).
//! - [`actions`]: one action executed against its connector, outputs collected by name.
//! - [`outcome`]: what an executed action produced (status code, outputs, warnings).
//! - [`device`]: a waiting `oauth_device_login`: one poll, its end, its outputs.
//! - [`http`]: `http_connector` with `auth`: tokens obtained, renewed once after a 401.
//! - [`context`]: the connectors, servers, vault and limits that actions run against.
//! - [`servers`]: where the engine looks OAuth servers up.
//! - [`vault`]: the token vault with single-flight, rotation-safe refresh.
//! - [`state`]: the durable (secret) JSON form of a run, for the store.
//!
//! The engine has no store: a [`Run`](run::Run) is a value the caller persists between steps.

pub mod actions;
pub mod context;
pub mod device;
pub mod engine;
pub mod http;
mod http_pages;
pub mod inputs;
pub mod monitor;
pub mod outcome;
pub mod run;
pub mod servers;
pub mod state;
pub mod vars;
pub mod vault;

pub use engine::{Engine, Progress, StartError};
pub use run::{ActionRecord, DeviceWait, Run, RunStatus, Waiting};
pub use servers::{ServerDirectory, StaticServers};
pub use vars::{Val, Variables};
