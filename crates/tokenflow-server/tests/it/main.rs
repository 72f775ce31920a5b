//! Server tests: the API, `/oauth-callback` and its attacks, end to end with the real test IdP.
//! Each test owns its world: a server on port 0, a fresh SQLite store, its own IdP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod api;
mod api_certificates;
mod api_servers;
mod browser;
mod browser_flow_edit;
mod callback;
mod conformance;
mod dashboard;
mod device;
mod durability;
mod flow_edit;
mod fuzz;
mod limits;
mod providers;
mod run_limits;
mod scheduler;
mod shutdown;
mod startup;
mod support;
mod ui;
mod ui_run;
mod ui_servers;
mod ui_sessions;
