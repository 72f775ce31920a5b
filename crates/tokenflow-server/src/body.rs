//! How long a client may take to send a request's body (`body_read_timeout`). hyper bounds the
//! time to send a request's head (see [`crate::serve`]) but not the body after it, so a client
//! could otherwise hold a connection by sending a body a byte at a time.
//!
//! The body is not buffered here: it is wrapped so that reading it fails once the deadline has
//! passed, and the handler reads it as before — after the API-key check, so nobody without a key
//! makes the server read a body at all. When the deadline cut the body short, the handler's
//! answer (a rejection of the incomplete body) is replaced by `408 Request Timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::html;
use crate::state::AppState;

/// The middleware: a deadline for the request body, `body_read_timeout` after its head.
pub async fn read_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let api = request.uri().path().starts_with("/api/");
    let deadline = tokio::time::Instant::now() + state.settings.body_read_timeout;
    let late = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| with_deadline(body, deadline, late.clone()));
    let response = next.run(request).await;
    if !late.load(Ordering::Relaxed) {
        return response;
    }
    if api {
        ApiError::RequestTimeout.into_response()
    } else {
        html::message(
            StatusCode::REQUEST_TIMEOUT,
            "Request too slow",
            "The request's body did not arrive in time. Nothing was changed; try again.",
            None,
        )
    }
}

/// `body`, failing at `deadline` if it has not ended by then (and setting `late`).
fn with_deadline(body: Body, deadline: tokio::time::Instant, late: Arc<AtomicBool>) -> Body {
    let chunks = futures_util::stream::unfold(Some(body.into_data_stream()), move |chunks| {
        let late = late.clone();
        async move {
            let mut chunks = chunks?;
            match tokio::time::timeout_at(deadline, chunks.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(chunks))),
                Ok(None) => None,
                Err(_) => {
                    late.store(true, Ordering::Relaxed);
                    let timed_out = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    );
                    Some((Err(axum::Error::new(timed_out)), None))
                }
            }
        }
    });
    Body::from_stream(chunks)
}
