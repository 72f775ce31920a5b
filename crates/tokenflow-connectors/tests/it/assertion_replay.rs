//! A client assertion that reaches the real test IdP twice (RFC 7523 §3: the `jti` may be used
//! only once): a recording proxy between tokenflow and the IdP's token endpoint sends the first
//! request's bytes again in place of the second. oidc-provider keeps every assertion's `jti`
//! until it expires and refuses a second use with `invalid_client`.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokenflow_connectors::oauth::{ConnectorStatus as _, ServerLoginStatus};
use tokenflow_core::Input;
use tokenflow_testkit::{Idp, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client_assertion::{fixture, register};
use crate::support::{connectors, server};

/// A proxy that forwards the first request unchanged and every later one as the first one's
/// bytes; it records what tokenflow sent.
struct ReplayProxy {
    url: String,
    sent: Arc<Mutex<Vec<String>>>,
}

impl ReplayProxy {
    async fn start(target: String) -> ReplayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let first: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let seen = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let request = read_request(&mut socket).await;
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).into_owned());
                let forward = first
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| request.clone())
                    .clone();
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                upstream.write_all(&close_after(&forward)).await.unwrap();
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).await.unwrap();
                socket.write_all(&answer).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        ReplayProxy { url, sent }
    }

    /// The `client_assertion` of every request tokenflow sent.
    fn assertions(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|request| {
                let body = request.split("\r\n\r\n").nth(1).unwrap();
                url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "client_assertion")
                    .map(|(_, v)| v.into_owned())
                    .unwrap()
            })
            .collect()
    }
}

/// One HTTP/1.1 request: the head, then as many body bytes as `Content-Length` says.
async fn read_request(socket: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the request ended early");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, value)| value.trim().parse::<usize>().unwrap());
            if data.len() >= end + 4 + length {
                return data;
            }
        }
    }
}

/// The request with `Connection: close`, so the IdP's answer ends with the connection.
fn close_after(request: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let (line, rest) = text.split_once("\r\n").unwrap();
    format!("{line}\r\nconnection: close\r\n{rest}").into_bytes()
}

fn jti(assertion: &str) -> String {
    let payload = assertion.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_replayed_client_assertion_is_refused_by_the_idp_with_invalid_client() {
    let idp = Idp::start().await;
    let id = unique("cc-replay");
    register(
        &idp,
        &id,
        "private_key_jwt",
        None,
        Some("test-only-rsa.public.pem"),
    )
    .await;
    let proxy = ReplayProxy::start(idp.issuer().trim_start_matches("http://").to_owned()).await;
    // The assertion's `aud` is the proxy's token URL, which is the token endpoint the IdP sees
    // (it names its endpoints after the request's Host).
    let server = server(
        "idp",
        json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "private_key": fixture("test-only-rsa.pkcs8.pem"),
            "token_url": format!("{}/token", proxy.url),
            "scope": "api:read",
        }),
    );

    // Two calls, each with its own token cache, so each sends a request.
    let first = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    let replayed = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(first.status, ServerLoginStatus::Successful, "{first:?}");
    assert_eq!(replayed.status, ServerLoginStatus::Unknown, "{replayed:?}");
    assert_eq!(replayed.status.code(), -1);
    assert_eq!(replayed.error.as_deref(), Some("invalid_client"));
    assert!(replayed.access_token.is_none());
    let requests = idp.token_requests(&id).await;
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(
        requests[1].error_detail.as_deref(),
        Some("client assertion tokens must only be used once"),
        "refused for the replay, not for another reason"
    );
    // tokenflow itself never reuses a `jti`: the IdP saw the first assertion twice only because
    // the proxy sent it again.
    let assertions = proxy.assertions();
    assert_eq!(assertions.len(), 2);
    assert_ne!(jti(&assertions[0]), jti(&assertions[1]));
}
