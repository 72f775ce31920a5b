//! Engine tests: routing and limits offline (actions that need no network), suspend/resume against
//! the real test IdP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod client_certificate;
mod faults_idp;
mod http_auth;
mod http_paging;
mod http_reauth;
mod http_retry;
mod limits;
mod login;
mod revoke;
mod routing;
mod support;
mod token_exchange;
mod vault;
