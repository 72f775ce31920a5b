//! The HTTP client used for token requests and the bounded reading of response bodies.
//!
//! One client is built at start-up and injected everywhere (connection pooling, one TLS config).
//! It follows no redirects (docs/security.md: a token endpoint that redirects is misconfigured or hostile,
//! and following it could post credentials elsewhere) and always has timeouts.

use std::time::Duration;

/// The HTTP client type used throughout, so other crates need no direct reqwest dependency.
pub use reqwest::Client;
/// reqwest's error type, for callers that build clients.
pub use reqwest::Error as ReqwestError;

/// Largest token-endpoint or discovery body read; larger ones are rejected, not truncated.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Connection-establishment timeout; the per-request timeout comes from the OAuth server config.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds tokenflow's HTTP client: rustls, no redirects, a connect timeout and a default overall
/// timeout that per-request settings override.
pub fn build_client(default_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(default_timeout)
        .user_agent(concat!("tokenflow/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("the response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the response body could not be read")]
    Transport(#[source] reqwest::Error),
}

/// Reads a response body of at most `limit` bytes, stopping as soon as the limit is passed so a
/// hostile or broken server cannot make tokenflow buffer an unbounded body.
pub async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadBodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(ReadBodyError::TooLarge { limit });
    }
    // Sized once from Content-Length (already checked against the limit) rather than doubled.
    let announced = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(ReadBodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadBodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error and all its causes on one line, for `error_description` outputs. Token endpoint URLs
/// never carry secrets, so reqwest's messages (which name the URL) are safe to show.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
