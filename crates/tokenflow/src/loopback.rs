//! The loopback listener of `tokenflow run` (RFC 8252 §7.3): receives the identity provider's
//! redirect on `http://127.0.0.1:<port>/oauth-callback` (or `http://[::1]:<port>/…`, or the
//! host and port of a configured redirect URI) and hands the parameters to the waiting run — but
//! only when their `state` is the one the run is waiting for; anything else gets a 400 page and
//! changes nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Html;
use axum::routing::get;
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_core::SecretString;
use tokio::sync::oneshot;
use url::{Host, Url};

type Expected = Option<(SecretString, oneshot::Sender<CallbackParams>)>;

/// A bound loopback listener.
#[derive(Debug)]
pub struct Loopback {
    address: SocketAddr,
    expected: Arc<Mutex<Expected>>,
    server: tokio::task::JoinHandle<()>,
}

/// The redirect URI of a loopback listener on `ip` and `port` (RFC 8252 §7.3: the IP literal,
/// not `localhost`, §8.3).
pub fn loopback_redirect_uri(ip: IpAddr, port: u16) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "http://{}/oauth-callback",
        SocketAddr::new(ip, port)
    ))
}

/// Where to listen for a redirect to `redirect`: its host (`localhost` is 127.0.0.1) and port
/// (80 when it names none). `None` when it is not a loopback `http://` URI.
pub fn listen_address(redirect: &Url) -> Option<SocketAddr> {
    if redirect.scheme() != "http" {
        return None;
    }
    let ip = match redirect.host()? {
        Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        Host::Domain(_) => return None,
        Host::Ipv4(ip) => IpAddr::V4(ip),
        Host::Ipv6(ip) => IpAddr::V6(ip),
    };
    ip.is_loopback()
        .then(|| SocketAddr::new(ip, redirect.port_or_known_default().unwrap_or(80)))
}

impl Loopback {
    /// Binds `address` (port 0 = any free port) and serves `/oauth-callback`. The error names the
    /// address and the operating system's reason; `hint` (what the user can change) is appended.
    pub async fn bind(address: SocketAddr, hint: &str) -> anyhow::Result<Loopback> {
        let failed = |err: std::io::Error| {
            anyhow::anyhow!("cannot listen on {address} for the sign-in redirect: {err}{hint}")
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
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
            address,
            expected,
            server,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
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
    let params = CallbackParams::from_request(method == Method::POST, query.as_deref(), &body);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_use_ip_literals_and_configured_ones_name_where_to_listen() {
        let v4 = loopback_redirect_uri(IpAddr::V4(Ipv4Addr::LOCALHOST), 8400).unwrap();
        assert_eq!(v4.as_str(), "http://127.0.0.1:8400/oauth-callback");
        let v6 = loopback_redirect_uri("::1".parse().unwrap(), 8400).unwrap();
        assert_eq!(v6.as_str(), "http://[::1]:8400/oauth-callback");
        let at = |uri: &str| listen_address(&Url::parse(uri).unwrap()).map(|a| a.to_string());
        assert_eq!(
            at("http://localhost:9000/cb").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(
            at("http://localhost/oauth-callback").as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(at("http://[::1]:9001/cb").as_deref(), Some("[::1]:9001"));
        assert_eq!(
            at("http://127.0.0.2:9002/cb").as_deref(),
            Some("127.0.0.2:9002")
        );
        assert_eq!(at("https://localhost:9000/cb"), None);
        assert_eq!(at("http://app.example/cb"), None);
        assert_eq!(at("http://10.0.0.1:9000/cb"), None);
    }
}
