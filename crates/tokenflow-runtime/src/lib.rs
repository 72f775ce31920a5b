//! The durable run lifecycle of `tokenflow serve`, below the HTTP layer: everything that keeps
//! runs going whether or not a request is being served.
//!
//! - [`runtime`]: [`Runtime`], the lifecycle's parts, built once from the configuration.
//! - [`tasks`]: the background tasks ([`Runtime::spawn`]) and their [`RuntimeHandle`], which
//!   stops every one of them.
//! - [`run_view`]: a run as the API and the UI show it: its JSON and pages of its records.
//! - [`runner`]: drives runs and persists every transition (one store write per action):
//!   starting, stepping, suspending at a login, resuming by callback, expiry, cancel, run
//!   leases, the sweep with recovery of interrupted runs and housekeeping purges.
//! - `outage`: a run's writes tried again through a short database outage.
//! - [`retention`]: retention of ended runs (by the sweeper) and the bound on waiting runs.
//! - [`device`]: the polling of waiting device logins, each run polled by one instance.
//! - [`scheduler`]: schedules of system flows, each firing claimed once across instances.
//! - [`catalog`]: flows, versioned in the store and parsed once per version.
//! - [`registry`]: OAuth servers from the configuration file and the store.
//! - [`metrics`]: the counters the lifecycle updates (exposed by the server at `/metrics`).
//! - [`keys`]: hashes of API keys and browser-binding cookies.
//! - [`error`]: [`RuntimeError`], in the lifecycle's own words; the server maps it to HTTP.
//!
//! No SQL (that is the store's) and no HTTP types (that is the server's) live here.

pub mod catalog;
pub mod device;
pub mod error;
pub mod keys;
pub mod metrics;
mod outage;
pub mod registry;
pub mod retention;
pub mod run_view;
pub mod runner;
pub mod runtime;
pub mod scheduler;
pub mod tasks;

pub use error::RuntimeError;
pub use runtime::{Built, Intervals, Runtime, Timing};
pub use tasks::RuntimeHandle;
