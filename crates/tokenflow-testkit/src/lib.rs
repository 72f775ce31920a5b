//! Test support shared by every crate's integration tests (never shipped).
//!
//! - [`idp`]: the project's own test identity provider (panva's `oidc-provider` under
//!   `tests/idp/`), started per test on port 0, with runtime client registration and counters.
//! - [`pki`]: a CA with server and client certificates and PKCS#12 files, made with `openssl`.
//! - [`browser`]: a real headless Chromium over WebDriver, with screenshots on failure.
//! - [`device`]: the person's side of a device login (RFC 8628) through the IdP's real pages.
//! - [`signin`]: a cookie-keeping HTTP client that signs a person in through the IdP's real login
//!   and consent pages and returns where the IdP redirected to.
//!
//! A missing Node.js or IdP install is a test failure with a clear message, never a skip.

// Test support panics with a message instead of returning errors: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod device;
pub mod fuzz;
pub mod idp;
pub mod pki;
pub mod signin;

pub use device::{DeviceDecision, approve_device};
pub use idp::{Idp, TestClient, TokenRequestRecord};
pub use pki::TestPki;
pub use signin::{Decision, sign_in};

/// Unique-enough suffix for names created by one test (client ids, databases).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
