//! The loopback listener of `tokenflow run` (RFC 8252 §7.3): receives the identity provider's
//! redirect on `http://localhost:<port>/oauth-callback` and hands the parameters to the waiting
//! run — but only when their `state` is the one the run is waiting for; anything else gets a 400
//! page and changes nothing.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Html;
use axum::routing::get;
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_core::SecretString;
use tokio::sync::oneshot;

type Expected = Option<(SecretString, oneshot::Sender<CallbackParams>)>;

/// A bound loopback listener.
#[derive(Debug)]
pub struct Loopback {
    port: u16,
    expected: Arc<Mutex<Expected>>,
    server: tokio::task::JoinHandle<()>,
}

impl Loopback {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves `/oauth-callback`.
    pub async fn bind(port: u16) -> anyhow::Result<Loopback> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port} for the sign-in redirect (choose another with --callback-port)"))?;
        let port = listener.local_addr()?.port();
        let expected: Arc<Mutex<Expected>> = Arc::new(Mutex::new(None));
        let app = Router::new()
            .route("/oauth-callback", get(callback).post(callback))
            .layer(DefaultBodyLimit::max(64 * 1024))
            .with_state(expected.clone());
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "the loopback listener stopped");
            }
        });
        Ok(Loopback {
            port,
            expected,
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for a callback carrying `state`.
    pub fn expect(&self, state: SecretString) -> oneshot::Receiver<CallbackParams> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut slot) = self.expected.lock() {
            *slot = Some((state, sender));
        }
        receiver
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn callback(
    State(expected): State<Arc<Mutex<Expected>>>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> (StatusCode, Html<String>) {
    // response_mode=form_post delivers the parameters in the body (OAuth 2.0 Form Post).
    let raw = if method == Method::POST {
        body.to_vec()
    } else {
        query.unwrap_or_default().into_bytes()
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&raw).into_owned().collect();
    let params = CallbackParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sender = {
        let Ok(mut slot) = expected.lock() else {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "tokenflow could not process this sign-in.",
            );
        };
        let matches = match (slot.as_ref(), params.state.as_deref()) {
            (Some((state, _)), Some(given)) => state.ct_eq(given),
            _ => false,
        };
        if matches {
            slot.take().map(|(_, sender)| sender)
        } else {
            None
        }
    };
    let Some(sender) = sender else {
        return page(
            StatusCode::BAD_REQUEST,
            "This sign-in response does not belong to the login tokenflow is waiting for (unknown or already used state). Nothing was changed.",
        );
    };
    let cancelled = params.error.as_deref() == Some("access_denied");
    let _ = sender.send(params);
    if cancelled {
        page(
            StatusCode::OK,
            "The sign-in was cancelled. You can close this window; the flow continues in the terminal.",
        )
    } else {
        page(
            StatusCode::OK,
            "tokenflow received the sign-in response. You can close this window and return to the terminal.",
        )
    }
}

fn page(status: StatusCode, message: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tokenflow</title></head>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>tokenflow</h1><p id=\"message\">{message}</p></body></html>"
        )),
    )
}
