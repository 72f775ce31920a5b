//! tokenflow's connectors: the process actions that talk to other systems.
//!
//! - [`http`]: the one HTTP client (rustls, no redirects, timeouts) and bounded body reading.
//! - [`http_action`]: the `http_connector` action: any HTTP API call, with Thinkwise's status codes.
//! - [`http_retry`], [`http_paging`]: `http_connector`'s `retry` and `paginate`.
//! - [`json`]: the `extract_json` action: RFC 9535 JSONPath over a JSON document or JSON text.
//! - [`status`]: every connector's status codes, in one place.
//! - [`oauth`]: the three OAuth connectors of Thinkwise's documentation, their status codes, the token endpoint
//!   client, tolerant token-response parsing, the authorization request and the callback half.
//!
//! Connectors never touch the store: they take configuration and inputs, and return outputs with a
//! status code. Persisting pending authorizations and outputs is the engine's job.

pub mod http;
pub mod http_action;
mod http_headers;
pub mod http_paging;
pub mod http_retry;
pub mod json;
pub mod oauth;
pub mod status;
