//! The one place errors become HTTP responses: JSON `{ "error": "<stable_code>", "message": "…" }`
//! with the right status. The match is exhaustive so a new variant cannot slip through unmapped;
//! internal errors are logged here once and answered with an opaque message.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokenflow_core::flow::FlowProblems;
use tokenflow_runtime::RuntimeError;
use tokenflow_store::{Outage, StoreError};

/// Every error's body: a stable code and a message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `too_many_failed_attempts`, `not_found`, `invalid_json`,
    /// `payload_too_large`, `request_timeout`, `unsupported_media_type`, `invalid_flow`,
    /// `invalid_input`, `secret_required`, `conflict`, `too_many_waiting_runs`,
    /// `defined_in_configuration`, `store_unavailable`, `store_read_only`, `store_io_error`,
    /// `disk_full`, `internal`.
    pub error: String,
    pub message: String,
    /// For `invalid_flow`: every problem as `file:line:column: message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Too many failed key checks or sign-ins from this client address; the seconds until the
    /// next attempt is accepted (docs/security.md, "Failed sign-ins").
    #[error("too many failed attempts with an API key from this address; try again in {0} seconds")]
    TooManyFailedAttempts(u64),
    /// The flow has `max_waiting_runs_per_flow` runs waiting for a sign-in already.
    #[error("{0}")]
    TooManyWaitingRuns(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body is larger than {} bytes", crate::MAX_BODY_BYTES)]
    PayloadTooLarge,
    #[error("the request body did not arrive in time (body_read_timeout)")]
    RequestTimeout,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the flow is invalid")]
    InvalidFlow(FlowProblems),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    /// A change that would send a stored (write-only) client secret elsewhere, without it.
    #[error("{0}")]
    SecretRequired(String),
    /// An OAuth server of the configuration file, which only the file changes.
    #[error("{0}")]
    DefinedInConfiguration(String),
    /// The database's condition, not the request: try again once the operator fixed it
    /// (docs/operations.md, "When the database fails"). Nothing of the request was stored.
    #[error("{}", outage_message(*.0))]
    Outage(Outage),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(err))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            err @ (StoreError::Database(_) | StoreError::Sqlite(_)) => match err.outage() {
                Some(outage) => {
                    // Logged here, once per answer; the cause's text stays in the log.
                    tracing::warn!(error = %error_chain(&err), "the database failed");
                    ApiError::Outage(outage)
                }
                None => ApiError::internal(err),
            },
            // The database, its migrations, the data directory, the master key or stored data:
            // nothing the caller did, and nothing to tell them beyond "internal".
            err @ (StoreError::Closed
            | StoreError::WriterStopped
            | StoreError::Migration(_)
            | StoreError::DataDir { .. }
            | StoreError::WrongMasterKey
            | StoreError::RotationUnfinished
            | StoreError::InvalidMasterKey(_)
            | StoreError::Decrypt(_)
            | StoreError::Corrupt(_)) => ApiError::internal(err),
        }
    }
}

/// The run lifecycle's failures as HTTP answers. A failure of the store answers as the store's
/// own error does (above); everything that is not the caller's doing is internal.
impl From<RuntimeError> for ApiError {
    fn from(err: RuntimeError) -> Self {
        match err {
            RuntimeError::NotFound(what) => ApiError::NotFound(what),
            RuntimeError::Conflict(what) => ApiError::Conflict(what),
            err @ RuntimeError::TooManyWaitingRuns { .. } => {
                ApiError::TooManyWaitingRuns(err.to_string())
            }
            RuntimeError::InvalidInput(what) => ApiError::InvalidInput(what),
            RuntimeError::InvalidFlow(problems) => ApiError::InvalidFlow(problems),
            RuntimeError::SecretRequired(what) => ApiError::SecretRequired(what),
            RuntimeError::DefinedInConfiguration(what) => ApiError::DefinedInConfiguration(what),
            RuntimeError::Store(err) => err.into(),
            err @ (RuntimeError::InvalidFlowsDirectory { .. }
            | RuntimeError::HttpClient(_)
            | RuntimeError::Tls(_)
            | RuntimeError::Unreadable(_)) => ApiError::internal(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::TooManyFailedAttempts(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_failed_attempts")
            }
            ApiError::TooManyWaitingRuns(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_waiting_runs")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::InvalidFlow(_) => (StatusCode::BAD_REQUEST, "invalid_flow"),
            ApiError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::SecretRequired(_) => (StatusCode::BAD_REQUEST, "secret_required"),
            ApiError::DefinedInConfiguration(_) => {
                (StatusCode::CONFLICT, "defined_in_configuration")
            }
            ApiError::Outage(Outage::Unavailable) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ApiError::Outage(Outage::ReadOnly) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_read_only")
            }
            ApiError::Outage(Outage::Io) => (StatusCode::SERVICE_UNAVAILABLE, "store_io_error"),
            ApiError::Outage(Outage::DiskFull) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut body = ErrorBody {
            error: code.to_owned(),
            message: self.to_string(),
            problems: None,
        };
        match &self {
            ApiError::InvalidFlow(problems) => {
                body.problems = Some(problems.0.iter().map(ToString::to_string).collect());
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %error_chain(source.as_ref()), "internal error");
            }
            ApiError::Unauthorized
            | ApiError::TooManyFailedAttempts(_)
            | ApiError::TooManyWaitingRuns(_)
            | ApiError::NotFound(_)
            | ApiError::InvalidJson(_)
            | ApiError::PayloadTooLarge
            | ApiError::RequestTimeout
            | ApiError::UnsupportedMediaType(_)
            | ApiError::InvalidInput(_)
            | ApiError::Conflict(_)
            | ApiError::SecretRequired(_)
            | ApiError::DefinedInConfiguration(_)
            | ApiError::Outage(_) => {}
        }
        let retry_after = if let ApiError::TooManyFailedAttempts(seconds) = &self {
            Some(*seconds)
        } else {
            None
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Keeps `/api` errors in the documented JSON shape when they come from below the handlers: a
/// body over [`crate::MAX_BODY_BYTES`] is refused by axum's body limit with a plain-text 413,
/// which this turns into `payload_too_large`.
pub async fn json_api_errors(response: Response) -> Response {
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return ApiError::PayloadTooLarge.into_response();
    }
    response
}

/// What an [`ApiError::Outage`] says: the condition and what was (not) done, never the cause's
/// own text (paths, hosts).
fn outage_message(outage: Outage) -> &'static str {
    match outage {
        Outage::Unavailable => "the database is unavailable; nothing was stored, try again later",
        Outage::DiskFull => {
            "the database's disk is full (no space left); nothing was stored, try again once space is freed"
        }
        Outage::ReadOnly => "the database is read-only; nothing was stored, reads still work",
        Outage::Io => {
            "the database's storage failed (I/O error, e.g. a file system that turned read-only); nothing was stored"
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Json<T>` whose rejections are [`ApiError`]s (unknown fields, wrong types, too large).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                    "expected Content-Type: application/json".to_owned(),
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge
                }
                other => ApiError::InvalidJson(other.body_text()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokenflow_core::flow::FlowError;

    use super::*;

    async fn answer(err: RuntimeError) -> (u16, serde_json::Value) {
        let response = ApiError::from(err).into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn every_store_failure_answers_with_its_status_and_only_the_caller_s_own_say_why() {
        let internal = [
            StoreError::DataDir {
                path: "/secret/path".into(),
                source: std::io::Error::other("secret detail"),
            },
            StoreError::WrongMasterKey,
            StoreError::InvalidMasterKey("secret detail".into()),
            StoreError::Decrypt("secret detail".into()),
            StoreError::Corrupt("secret detail".into()),
        ];
        for err in internal {
            let (status, body) = answer(RuntimeError::Store(err)).await;
            assert_eq!(
                (status, &body["error"], &body["message"]),
                (500, &"internal".into(), &"internal error".into()),
                "{body}"
            );
        }
        let (status, body) = answer(RuntimeError::Store(StoreError::NotFound("x".into()))).await;
        assert_eq!((status, &body["error"]), (404, &"not_found".into()));
        let (status, body) = answer(RuntimeError::Store(StoreError::Conflict("x".into()))).await;
        assert_eq!((status, &body["error"]), (409, &"conflict".into()));
    }

    #[tokio::test]
    async fn the_run_lifecycle_s_failures_answer_with_the_documented_status_and_error_code() {
        let problems = FlowProblems(vec![FlowError {
            file: "f.yaml".into(),
            line: 2,
            column: 3,
            message: "bad".into(),
        }]);
        let cases = [
            (
                RuntimeError::NotFound("run `r`".into()),
                404,
                "not_found",
                "run `r` not found",
            ),
            (
                RuntimeError::Conflict("ended".into()),
                409,
                "conflict",
                "ended",
            ),
            (
                RuntimeError::InvalidInput("no".into()),
                400,
                "invalid_input",
                "no",
            ),
            (
                RuntimeError::InvalidFlow(problems),
                400,
                "invalid_flow",
                "the flow is invalid",
            ),
            (
                RuntimeError::SecretRequired("again".into()),
                400,
                "secret_required",
                "again",
            ),
            (
                RuntimeError::DefinedInConfiguration("file".into()),
                409,
                "defined_in_configuration",
                "file",
            ),
            // The store's own errors answer as they do when a handler meets them directly.
            (
                RuntimeError::Store(StoreError::NotFound("flow `f`".into())),
                404,
                "not_found",
                "flow `f` not found",
            ),
            (
                RuntimeError::Store(StoreError::Conflict("run r already exists".into())),
                409,
                "conflict",
                "run r already exists",
            ),
            (
                RuntimeError::Store(StoreError::Corrupt("secret detail".into())),
                500,
                "internal",
                "internal error",
            ),
            (
                RuntimeError::unreadable(StoreError::Corrupt("secret detail".into())),
                500,
                "internal",
                "internal error",
            ),
        ];
        for (err, status, code, message) in cases {
            let (got_status, body) = answer(err).await;
            assert_eq!(
                (got_status, &body["error"], &body["message"]),
                (status, &code.into(), &message.into()),
                "{body}"
            );
        }
        let (_, body) = answer(RuntimeError::InvalidFlow(FlowProblems(vec![FlowError {
            file: "f.yaml".into(),
            line: 2,
            column: 3,
            message: "bad".into(),
        }])))
        .await;
        assert_eq!(body["problems"].as_array().map(Vec::len), Some(1), "{body}");
    }
}
