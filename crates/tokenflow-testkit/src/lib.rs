//! Test support shared by every crate's integration tests (never shipped).
//!
//! - [`idp`]: the project's own test identity provider (panva's `oidc-provider` under
//!   `tests/idp/`), started per test on port 0, with runtime client registration and counters.
//! - [`pki`]: a CA with server and client certificates and PKCS#12 files, made with `openssl`.
//! - [`pg_cluster`]: a PostgreSQL cluster of a test's own, which it may stop and start.
//! - [`browser`]: a real headless Chromium over WebDriver, with screenshots on failure.
//! - [`fault_proxy`]: a TCP proxy in front of the IdP that refuses, stalls, answers 500 or holds
//!   the IdP's answer on demand (the faults a real IdP cannot be told to produce).
//! - [`fuzz`]: the property/fuzz loop (docs/testing.md) and its input generators.
//! - [`device`]: the person's side of a device login (RFC 8628) through the IdP's real pages.
//! - [`signin`]: a cookie-keeping HTTP client that signs a person in through the IdP's real login
//!   and consent pages and returns where the IdP redirected to.
//!
//! A missing Node.js or IdP install is a test failure with a clear message, never a skip.

// Test support panics with a message instead of returning errors: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod device;
pub mod fault_proxy;
pub mod fuzz;
pub mod idp;
pub mod pg_cluster;
pub mod pki;
pub mod signin;

pub use device::{DeviceDecision, approve_device};
pub use fault_proxy::{Fault, FaultProxy, Seen};
pub use idp::{Idp, TestClient, TokenRequestRecord};
pub use pg_cluster::PgCluster;
pub use pki::TestPki;
pub use signin::{Decision, sign_in};

/// Unique-enough suffix for names created by one test (client ids, databases).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
