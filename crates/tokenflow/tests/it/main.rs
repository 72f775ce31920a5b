//! End-to-end tests of the `tokenflow` binary against the real test IdP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bounded;
mod faults_disk;
mod faults_kill;
mod faults_postgres;
mod flows;
mod multi;
mod multi_device;
mod multi_ui;
mod ops;
mod providers;
mod run;
mod secrecy;
mod serve;
mod servers;
mod support;
