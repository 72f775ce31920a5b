//! `http_connector`'s `retry` input (docs/connectors.md, "Retries"): the same request sent again
//! after a status of `retry.on_status` (default 429, 502, 503, 504) or a connection error.
//!
//! Key design decisions:
//! - **Only idempotent methods are repeated** (GET, HEAD, OPTIONS, PUT, DELETE; RFC 9110
//!   §9.2.2) unless `retry_non_idempotent` is set: a POST that timed out may well have been
//!   carried out, and sending it again could create the thing twice.
//! - **Exponential backoff with full jitter**: before attempt `n + 1` the wait is uniformly random
//!   in `0 ..= min(BACKOFF_CAP_MS, backoff_ms · 2^(n-1))`, so many runs refused together do not
//!   come back together.
//! - **`Retry-After` wins over the backoff** (RFC 9110 §10.2.3; seconds or an HTTP date), up to
//!   [`MAX_RETRY_AFTER_MS`]: a server asking for a longer wait gets no retry; its response goes
//!   to the flow as it is, with a warning. A date is measured from the response's own `Date`
//!   header (RFC 9110 §6.6.1), so the two clocks need not agree; without one the backoff applies.
//! - **Bounded in time**: no wait runs past the request's deadline (the action's `timeout`); when
//!   the next attempt could not start before it, the last response is the outcome, with a warning.
//! - A timeout is not retried: the deadline it hit is the whole action's.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokenflow_core::flow::http_options::{BACKOFF_CAP_MS, MAX_RETRY_AFTER_MS, Retry};
use tokio::time::Instant;

/// One request sent: when, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it was sent.
    pub at: Instant,
    /// The response's status; `None` when none arrived.
    pub http_status_code: Option<u16>,
    /// The error code when none arrived (`connection_error`, `timeout`, …).
    pub error: Option<String>,
}

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The outcome is final.
    Done,
    /// Final, with the reason no retry was made.
    GiveUp(String),
    Wait(Duration),
}

/// What one attempt came to, for [`decide`].
pub(crate) struct Answer<'a> {
    pub(crate) http_status_code: Option<u16>,
    pub(crate) error: Option<&'a str>,
    /// The response headers in the outputs' list form.
    pub(crate) headers: Option<&'a Value>,
}

/// Whether and how long to wait before another attempt, after attempt number `sent`.
pub(crate) fn decide(
    retry: &Retry,
    method: &Method,
    out: &Answer<'_>,
    sent: usize,
    deadline: Instant,
) -> Next {
    let what = match out.http_status_code {
        Some(code) if retry.on_status.contains(&code) => format!("HTTP {code}"),
        Some(_) => return Next::Done,
        None if out.error == Some("connection_error") => "a connection error".to_owned(),
        None => return Next::Done,
    };
    if !is_idempotent(method) && !retry.retry_non_idempotent {
        return Next::GiveUp(format!(
            "{what}: not retried, {method} is not idempotent (set retry.retry_non_idempotent to retry it)"
        ));
    }
    if sent >= retry.attempts as usize {
        return Next::GiveUp(format!("{what}: still failing after {sent} attempts"));
    }
    let header = |name| out.headers.as_ref().and_then(|h| response_header(h, name));
    let wait = match header("retry-after") {
        Some(text) => match retry_after(text, header("date")) {
            Some(wait) if wait > Duration::from_millis(MAX_RETRY_AFTER_MS) => {
                return Next::GiveUp(format!(
                    "{what}: not retried, Retry-After asks for {} s, more than the {} s honoured",
                    wait.as_secs(),
                    MAX_RETRY_AFTER_MS / 1000
                ));
            }
            Some(wait) => wait,
            None => backoff(retry.backoff_ms, sent),
        },
        None => backoff(retry.backoff_ms, sent),
    };
    if Instant::now() + wait >= deadline {
        return Next::GiveUp(format!(
            "{what}: not retried, the next attempt could not start within the timeout"
        ));
    }
    Next::Wait(wait)
}

/// RFC 9110 §9.2.2 (TRACE is not offered by the connector).
fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// A response header's value from the list form of the outputs (`name` lowercase).
fn response_header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers.as_array()?.iter().find_map(|header| {
        (header.get("Key")?.as_str()? == name)
            .then(|| header.get("Value")?.as_str())
            .flatten()
    })
}

/// `Retry-After` as a wait: delta-seconds, or an HTTP date (IMF-fixdate, RFC 9110 §5.6.7)
/// measured from the response's `Date`; a date before it is no wait. Anything else, or a date
/// without `Date`, is `None` (the backoff applies).
fn retry_after(text: &str, date: Option<&str>) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc2822)
            .ok()
    };
    let wait = parse(text)? - parse(date?)?;
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Full jitter: uniformly random in `0 ..= min(BACKOFF_CAP_MS, base · 2^(sent-1))`.
fn backoff(base_ms: u64, sent: usize) -> Duration {
    let shift = u32::try_from(sent.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let ceiling = base_ms.saturating_mul(1 << shift).min(BACKOFF_CAP_MS);
    let mut bytes = [0u8; 8];
    // Without randomness the full ceiling is waited: never shorter than intended.
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::MAX,
    };
    Duration::from_millis(random % (ceiling + 1))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(retry_after("3", None), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:50:07 GMT", None), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn backoff_stays_under_its_exponential_ceiling_and_the_cap() {
        for sent in 1..=10 {
            let ceiling = (100u64 << (sent - 1)).min(BACKOFF_CAP_MS);
            assert!(backoff(100, sent) <= Duration::from_millis(ceiling));
        }
        assert_eq!(backoff(0, 3), Duration::ZERO);
    }

    #[test]
    fn the_retry_after_header_is_found_in_the_output_list() {
        let headers =
            json!([{"Key": "content-type", "Value": "x"}, {"Key": "retry-after", "Value": "2"}]);
        assert_eq!(response_header(&headers, "retry-after"), Some("2"));
        assert_eq!(response_header(&json!([]), "retry-after"), None);
    }

    #[test]
    fn only_idempotent_methods_are_repeated_by_default() {
        let retry = Retry {
            attempts: 3,
            backoff_ms: 0,
            on_status: vec![503],
            retry_non_idempotent: false,
        };
        let mut out = Answer {
            http_status_code: Some(503),
            error: None,
            headers: None,
        };
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            decide(&retry, &Method::GET, &out, 1, later),
            Next::Wait(Duration::ZERO)
        );
        assert!(matches!(
            decide(&retry, &Method::POST, &out, 1, later),
            Next::GiveUp(_)
        ));
        assert!(matches!(
            decide(&retry, &Method::GET, &out, 3, later),
            Next::GiveUp(_)
        ));
        out.http_status_code = Some(500);
        assert_eq!(decide(&retry, &Method::GET, &out, 1, later), Next::Done);
    }
}
