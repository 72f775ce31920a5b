//! Integration tests of the connectors: OAuth against the real test IdP (`tests/idp`) and against
//! wiremock only for faults a real provider cannot be made to produce.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod assertion_replay;
mod cache;
mod client_assertion;
mod discovery;
mod faults;
mod fuzz;
mod http_action;
mod json;
mod mtls;
mod providers;
mod refresh;
mod revoke;
mod server_login;
mod support;
mod token_exchange;
mod user_login;
