//! The `http_connector` action (docs/connectors.md): calls an HTTP API, typically with a token from an OAuth
//! connector, and turns every outcome into outputs with Thinkwise's HTTP connector status codes.
//!
//! Key design decisions:
//! - **A response is a success, whatever its HTTP status.** Status `0` means "a response arrived";
//!   flows route on `http_status_code`. Only tokenflow's own failures (bad inputs, transport,
//!   timeout, oversized body) are negative.
//! - **Redirects are off by default, and followed by tokenflow itself when asked** (at most
//!   [`MAX_REDIRECTS`]) with one client that follows none, so that every header of every hop is
//!   chosen here: following one silently can send a request (and its body) somewhere the flow
//!   author did not name. A redirect to another origin (scheme, host or port) carries only
//!   [`CROSS_ORIGIN_HEADERS`] (`Content-Type` only when the body goes along): `Authorization`,
//!   API-key headers, cookies and every other header the flow set stay behind, also on later
//!   hops. No hop ever carries a `Referer`, which would hand the original URL, query and all, to
//!   the next host. 301/302 turn a POST into a GET and 303 anything but HEAD into a GET, without
//!   the body (RFC 9110 §15.4); 307/308 keep method and body.
//! - **Inputs are checked before the network, in a fixed order**: URL (`-2`), method (`-3`), headers
//!   including `content_type`, `bearer_token` and the credentials of `auth` (`-4`), timeout
//!   (`-1 invalid_timeout`). The engine checks the `auth` object itself and obtains its tokens
//!   (docs/connectors.md, "Authentication"); this connector only applies [`HttpAuth`].
//! - **Empty optional inputs count as absent**: a blank `method` is `GET`, blank `headers` (or JSON
//!   `null`) are no headers, a blank `content_type` or `bearer_token` sets nothing. A flow variable
//!   that holds nothing arrives as an empty value, and `Authorization: Bearer ` is never meant.
//! - **Nothing secret in descriptions**: header *values* are never echoed (any header can carry a
//!   credential, not just `Authorization`), and transport errors are reported without the URL
//!   (API keys often travel in query strings). `HttpInput`'s `Debug` hides the headers.
//! - **Bounded bodies**: at most [`MAX_CONTENT_BYTES`], read in chunks and rejected (not
//!   truncated) past that, so a broken or hostile server cannot make tokenflow buffer without end.
//!
//! - **Retries are opt-in** (`retry`, [`crate::http_retry`]) and **every request is counted**:
//!   [`HttpOutputs::attempts`] lists each one sent, with its status, for the monitor.
//!
//! Response header names come out lowercase and repeated headers grouped together at the position
//! of their first occurrence: that is the order the `http` crate's `HeaderMap` keeps (HTTP/2 sends
//! lowercase names anyway, and names are case-insensitive).

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, LOCATION};
use reqwest::{Method, Url};
use serde_json::Value;
use tokenflow_core::flow::http_options::Retry;
use tokenflow_core::{ClientCertificate, SecretString};
use tokio::time::Instant;

use crate::http::{
    ReadBodyError, TlsClients, action_client_builder, error_chain, read_body_limited,
};
pub use crate::http_headers::HttpAuth;
use crate::http_headers::{HeaderInputs, request_headers, response_headers};
pub use crate::http_retry::Attempt;
use crate::http_retry::{Answer, Next, decide};
use crate::status::HttpStatus;

/// Largest response body returned as `content` (16 MiB); larger bodies fail with
/// `response_too_large` rather than arriving truncated.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024 * 1024;

/// The timeout when the flow sets none (Thinkwise's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 100_000;

/// The longest timeout accepted (one hour): anything longer is almost certainly a unit mistake
/// (seconds given as milliseconds twice over) and would pin a run for days.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Most redirects followed when `follow_redirects` is set.
pub const MAX_REDIRECTS: usize = 10;

/// The only request headers that follow a redirect to another origin (lowercase). Everything
/// else the flow set — `Authorization`, `Cookie`, `X-Api-Key`, any custom header — may be a
/// credential meant for the first host only. `Content-Type` goes along only with the body
/// (307/308).
pub const CROSS_ORIGIN_HEADERS: [&str; 4] =
    ["accept", "accept-language", "user-agent", "content-type"];

/// The methods Thinkwise's HTTP connector offers; anything else is `-3`.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Runs `http_connector` calls with an injected client that follows no redirects (see the module
/// docs: redirects are followed here, hop by hop).
#[derive(Debug, Clone)]
pub struct HttpConnector {
    client: reqwest::Client,
    /// Clients that present a `client_certificate` (docs/connectors.md).
    tls: TlsClients,
}

/// The action's inputs, as the engine hands them over.
#[derive(Clone, Default)]
pub struct HttpInput {
    /// Required; must be an absolute `http` or `https` URL.
    pub url: Option<String>,
    /// Default `GET`; case-insensitive.
    pub method: Option<String>,
    /// A JSON list of `{"Key": …, "Value": …}`, a JSON object of name → value, or a JSON string
    /// holding either as text.
    pub headers: Option<Value>,
    /// The request body, sent as is.
    pub content: Option<String>,
    /// Sets `Content-Type`, replacing one from `headers`.
    pub content_type: Option<String>,
    /// Sent as `Authorization: Bearer …`, replacing one from `headers` (with a warning).
    pub bearer_token: Option<SecretString>,
    /// Credentials applied on top of `headers` (the engine turns `auth.oauth_server` and
    /// `auth.vault` into [`HttpAuth::Bearer`]); never given together with `bearer_token`.
    pub auth: Option<HttpAuth>,
    /// Overall timeout in milliseconds, body included; default [`DEFAULT_TIMEOUT_MS`].
    pub timeout_ms: Option<u64>,
    /// Follow up to [`MAX_REDIRECTS`] redirects; default false.
    pub follow_redirects: bool,
    /// Presented in the TLS handshake (mutual TLS), to the URL's origin only.
    pub client_certificate: Option<ClientCertificate>,
    /// Send again after the listed statuses and connection errors ([`crate::http_retry`]).
    pub retry: Option<Retry>,
    /// No request starts, and none runs, past this instant (the engine sets one deadline for a
    /// whole action: retries, token renewals and pages); default: `timeout_ms` from now.
    pub deadline: Option<Instant>,
}

/// Hand-written so that header values, which may carry credentials besides the bearer token
/// (API keys, cookies, Basic authorization), never reach a log through `{:?}`.
impl fmt::Debug for HttpInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpInput")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.as_ref().map(|_| "[redacted]"))
            .field("content", &self.content)
            .field("content_type", &self.content_type)
            .field("bearer_token", &self.bearer_token)
            .field("auth", &self.auth)
            .field("timeout_ms", &self.timeout_ms)
            .field("follow_redirects", &self.follow_redirects)
            .field("client_certificate", &self.client_certificate)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The action's outputs.
#[derive(Debug, Clone)]
pub struct HttpOutputs {
    pub status: HttpStatus,
    /// Set whenever a response arrived, also when its body then failed (too large, timeout).
    pub http_status_code: Option<u16>,
    /// `[{"Key": …, "Value": …}]`; set whenever a response arrived.
    pub headers: Option<Value>,
    /// The body as UTF-8 text; `""` for `HEAD`.
    pub content: Option<String>,
    /// A stable code: `invalid_url`, `invalid_method`, `invalid_headers`, `invalid_timeout`,
    /// `timeout`, `connection_error`, `too_many_redirects`, `response_too_large`.
    pub error: Option<String>,
    /// Human text; never contains header values or the bearer token.
    pub error_description: Option<String>,
    /// Things that worked but deserve a look (an overridden header, a body that is not UTF-8).
    pub warnings: Vec<String>,
    /// Whether a request was sent (false when an input was refused).
    pub sent: bool,
    /// Every request sent, in order (one without `retry`).
    pub attempts: Vec<Attempt>,
}

impl HttpOutputs {
    /// A failure before or without a response.
    pub fn failure(status: HttpStatus, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            http_status_code: None,
            headers: None,
            content: None,
            error: Some(error.to_owned()),
            error_description: Some(description.into()),
            warnings: Vec::new(),
            sent: false,
            attempts: Vec::new(),
        }
    }

    fn sent(mut self) -> Self {
        self.sent = true;
        self
    }

    fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

/// A request that passed every input check.
#[derive(Clone)]
struct Prepared {
    /// The client that presents the client certificate, if one was given.
    certificate_client: Option<reqwest::Client>,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<String>,
    follow_redirects: bool,
    timeout_ms: u64,
    deadline: Instant,
    warnings: Vec<String>,
}

impl HttpConnector {
    /// `client` must follow no redirects (tokenflow follows them itself) and send no `Referer`.
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            tls: TlsClients::around_actions(client.clone()),
            client,
        }
    }

    /// With `tls`'s default client, and its clients for client certificates.
    pub fn with_tls(tls: TlsClients) -> Self {
        Self {
            client: tls.default_client().clone(),
            tls,
        }
    }

    /// Builds the client: rustls, a 10 s connect timeout, no redirects, no `Referer`. No overall
    /// client timeout: every call sets its own.
    pub fn build() -> Result<Self, reqwest::Error> {
        Ok(Self::new(action_client_builder().build()?))
    }

    /// Runs one call. Never panics and never fails: every outcome is an [`HttpOutputs`].
    pub async fn call(&self, input: &HttpInput) -> HttpOutputs {
        match self.prepare(input) {
            Ok(prepared) => self.send(prepared, input.retry.as_ref()).await,
            Err(outputs) => *outputs,
        }
    }

    /// Checks the inputs as [`HttpConnector::call`] would, without sending anything: the
    /// engine does this before it obtains a token for `auth`.
    pub fn check(&self, input: &HttpInput) -> Result<(), Box<HttpOutputs>> {
        self.prepare(input).map(|_| ())
    }

    /// Checks the inputs in the documented order.
    fn prepare(&self, input: &HttpInput) -> Result<Prepared, Box<HttpOutputs>> {
        let mut url = parse_url(input.url.as_deref()).map_err(|d| {
            Box::new(HttpOutputs::failure(
                HttpStatus::InvalidUrl,
                "invalid_url",
                d,
            ))
        })?;
        let method = parse_method(input.method.as_deref()).map_err(|d| {
            Box::new(HttpOutputs::failure(
                HttpStatus::InvalidMethod,
                "invalid_method",
                d,
            ))
        })?;
        let mut warnings = Vec::new();
        let headers = request_headers(
            &HeaderInputs {
                headers: input.headers.as_ref(),
                content_type: input.content_type.as_deref(),
                bearer_token: input.bearer_token.as_ref(),
                auth: input.auth.as_ref(),
            },
            &mut warnings,
        )
        .map_err(|d| {
            Box::new(HttpOutputs::failure(
                HttpStatus::InvalidHeaders,
                "invalid_headers",
                d,
            ))
        })?;
        if let Some(HttpAuth::Query { name, value }) = &input.auth {
            url.query_pairs_mut().append_pair(name, value.expose());
        }
        let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(Box::new(HttpOutputs::failure(
                HttpStatus::Unknown,
                "invalid_timeout",
                format!("the timeout must be between 1 and {MAX_TIMEOUT_MS} ms, not {timeout_ms}"),
            )));
        }
        let certificate_client = match &input.client_certificate {
            None => None,
            Some(certificate) => Some(self.tls.client(Some(certificate), None).map_err(|err| {
                Box::new(HttpOutputs::failure(
                    HttpStatus::Unknown,
                    "invalid_client_certificate",
                    err.to_string(),
                ))
            })?),
        };
        let own = Instant::now() + Duration::from_millis(timeout_ms);
        Ok(Prepared {
            certificate_client,
            method,
            url,
            headers,
            body: input.content.clone(),
            follow_redirects: input.follow_redirects,
            timeout_ms,
            deadline: input.deadline.map_or(own, |deadline| deadline.min(own)),
            warnings,
        })
    }

    /// Sends `prepared`, again as `retry` allows ([`crate::http_retry`]); every attempt is in
    /// the outputs' `attempts`.
    async fn send(&self, prepared: Prepared, retry: Option<&Retry>) -> HttpOutputs {
        let mut attempts = Vec::new();
        loop {
            let at = Instant::now();
            let mut out = self.send_once(prepared.clone()).await;
            attempts.push(Attempt {
                at,
                http_status_code: out.http_status_code,
                error: out.error.clone(),
            });
            let answer = Answer {
                http_status_code: out.http_status_code,
                error: out.error.as_deref(),
                headers: out.headers.as_ref(),
            };
            let next = retry.map_or(Next::Done, |retry| {
                decide(
                    retry,
                    &prepared.method,
                    &answer,
                    attempts.len(),
                    prepared.deadline,
                )
            });
            match next {
                Next::Done => {}
                Next::GiveUp(reason) => out.warnings.push(reason),
                Next::Wait(wait) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            out.attempts = attempts;
            return out;
        }
    }

    /// Sends the request once, following redirects hop by hop when asked; the deadline covers
    /// all hops.
    async fn send_once(&self, prepared: Prepared) -> HttpOutputs {
        self.send_hops(prepared).await.sent()
    }

    async fn send_hops(&self, prepared: Prepared) -> HttpOutputs {
        let Prepared {
            mut certificate_client,
            mut method,
            mut url,
            mut headers,
            mut body,
            follow_redirects,
            timeout_ms,
            deadline,
            mut warnings,
        } = prepared;
        let mut hops = 0;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return HttpOutputs::failure(
                    HttpStatus::Timeout,
                    "timeout",
                    format!("no complete response within {timeout_ms} ms"),
                )
                .with_warnings(warnings);
            }
            let mut request = certificate_client
                .as_ref()
                .unwrap_or(&self.client)
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .timeout(remaining);
            if let Some(content) = &body {
                request = request.body(content.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => return transport_failure(err, timeout_ms, "").with_warnings(warnings),
            };
            let status = response.status().as_u16();
            let next = if follow_redirects {
                redirect_target(&url, status, response.headers())
            } else {
                None
            };
            let Some(next) = next else {
                let is_head = method == Method::HEAD;
                return read_response(response, is_head, timeout_ms, warnings).await;
            };
            if hops == MAX_REDIRECTS {
                return HttpOutputs::failure(
                    HttpStatus::Unknown,
                    "too_many_redirects",
                    format!("more than {MAX_REDIRECTS} redirects"),
                )
                .with_warnings(warnings);
            }
            hops += 1;
            // RFC 9110 §15.4.2–§15.4.4: a POST answered 301/302, and anything but HEAD answered
            // 303, is repeated as a GET without its body; 307/308 repeat the request as it was.
            let to_get = match status {
                301 | 302 => method == Method::POST,
                303 => method != Method::HEAD,
                _ => false,
            };
            if to_get {
                method = Method::GET;
                body = None;
                headers.remove(CONTENT_TYPE);
            }
            if next.origin() != url.origin() {
                let mut dropped = keep_cross_origin_headers(&mut headers, body.is_some());
                if certificate_client.take().is_some() {
                    dropped.push("(the client certificate)".to_owned());
                }
                if !dropped.is_empty() {
                    warnings.push(format!(
                        "a redirect led to another origin; these headers were not sent there: {}",
                        dropped.join(", ")
                    ));
                }
            }
            url = next;
        }
    }
}

/// Where a redirect response points, when it is one tokenflow follows: 301, 302, 303, 307 or 308
/// with a `Location` that resolves (relative to the request URL, RFC 9110 §10.2.2) to an http or
/// https URL. Anything else is handed to the flow as the response it is.
fn redirect_target(current: &Url, status: u16, headers: &HeaderMap) -> Option<Url> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let next = current.join(location).ok()?;
    matches!(next.scheme(), "http" | "https")
        .then_some(next)
        .filter(|next| next.host().is_some())
}

/// Removes every header not in [`CROSS_ORIGIN_HEADERS`] (and `Content-Type` when no body goes
/// along); returns the names removed, for a warning (never their values).
fn keep_cross_origin_headers(headers: &mut HeaderMap, with_body: bool) -> Vec<String> {
    let mut dropped: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| {
            !CROSS_ORIGIN_HEADERS.contains(name) || (*name == "content-type" && !with_body)
        })
        .map(str::to_owned)
        .collect();
    dropped.dedup();
    for name in &dropped {
        headers.remove(name.as_str());
    }
    dropped
}

/// Turns the final response into outputs. The request's timeout (what was left of the overall
/// one) covers reading the body too.
async fn read_response(
    response: reqwest::Response,
    is_head: bool,
    timeout_ms: u64,
    mut warnings: Vec<String>,
) -> HttpOutputs {
    let http_status_code = response.status().as_u16();
    let headers = response_headers(response.headers(), &mut warnings);

    // A HEAD response has no body but may announce a large Content-Length, which the limited reader
    // would wrongly reject; there is nothing to read.
    let body = if is_head {
        Ok(Vec::new())
    } else {
        read_body_limited(response, MAX_CONTENT_BYTES).await
    };
    let mut outputs = match body {
        Ok(bytes) => HttpOutputs {
            status: HttpStatus::Successful,
            http_status_code: None,
            headers: None,
            content: Some(body_text(bytes, &mut warnings)),
            error: None,
            error_description: None,
            warnings: Vec::new(),
            sent: true,
            attempts: Vec::new(),
        },
        Err(ReadBodyError::TooLarge { limit }) => HttpOutputs::failure(
            HttpStatus::Unknown,
            "response_too_large",
            format!("the response body is larger than {limit} bytes"),
        ),
        Err(ReadBodyError::Transport(err)) => {
            transport_failure(err, timeout_ms, "the response body could not be read: ")
        }
    };
    // What arrived is reported even when the body failed: the status and headers often explain it.
    outputs.http_status_code = Some(http_status_code);
    outputs.headers = Some(headers);
    outputs.with_warnings(warnings)
}

/// Classifies a reqwest error. The URL is stripped from the message because it may carry an API
/// key in its query string; the flow knows which URL it called.
fn transport_failure(err: reqwest::Error, timeout_ms: u64, context: &str) -> HttpOutputs {
    if err.is_timeout() {
        HttpOutputs::failure(
            HttpStatus::Timeout,
            "timeout",
            format!("{context}no complete response within {timeout_ms} ms"),
        )
    } else {
        HttpOutputs::failure(
            HttpStatus::Unknown,
            "connection_error",
            format!("{context}{}", error_chain(&err.without_url())),
        )
    }
}

fn parse_url(url: Option<&str>) -> Result<Url, String> {
    let text = url.unwrap_or_default();
    if text.trim().is_empty() {
        return Err("no URL was given".to_owned());
    }
    // The parser's message only ("relative URL without a base"), not the text, which may hold keys.
    let url = Url::parse(text).map_err(|err| format!("the URL could not be parsed: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme is {:?}; only http and https are supported",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    Ok(url)
}

fn parse_method(method: Option<&str>) -> Result<Method, String> {
    let text = method.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Ok(Method::GET);
    }
    let upper = text.to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "{text:?} is not a supported HTTP method (one of {})",
            METHODS.join(", ")
        ));
    }
    Method::from_bytes(upper.as_bytes())
        .map_err(|_| format!("{text:?} is not a supported HTTP method"))
}

fn body_text(bytes: Vec<u8>, warnings: &mut Vec<String>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            warnings.push(
                "the response body is not UTF-8; invalid bytes were replaced with U+FFFD"
                    .to_owned(),
            );
            String::from_utf8_lossy(err.as_bytes()).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn methods_are_case_insensitive_and_blank_means_get() {
        assert_eq!(parse_method(Some("patch")).unwrap(), Method::PATCH);
        assert_eq!(parse_method(None).unwrap(), Method::GET);
        assert_eq!(parse_method(Some(" ")).unwrap(), Method::GET);
        assert!(parse_method(Some("TRACE")).is_err());
    }

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        assert!(parse_url(Some("https://api.example/v1?x=1")).is_ok());
        assert!(parse_url(None).is_err());
        assert!(parse_url(Some("/relative")).is_err());
        assert!(parse_url(Some("mailto:a@b.example")).is_err());
    }

    #[test]
    fn input_debug_hides_headers_and_token() {
        let input = HttpInput {
            headers: Some(json!({"X-Api-Key": "api-key-value"})),
            bearer_token: Some(SecretString::new("token-value")),
            auth: Some(HttpAuth::Basic {
                username: "app".to_owned(),
                password: SecretString::new("password-value"),
            }),
            ..HttpInput::default()
        };
        let debug = format!("{input:?}");
        assert!(!debug.contains("password-value"), "{debug}");
        assert!(!debug.contains("api-key-value"), "{debug}");
        assert!(!debug.contains("token-value"), "{debug}");
    }

    #[test]
    fn invalid_utf8_bodies_are_replaced_with_a_warning() {
        let mut warnings = Vec::new();
        assert_eq!(
            body_text(vec![b'o', b'k', 0xff], &mut warnings),
            "ok\u{fffd}"
        );
        assert_eq!(warnings.len(), 1);
    }
}
