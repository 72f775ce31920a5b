//! A TCP proxy in front of a real server (usually the test IdP) that can be switched to fail.
//!
//! oidc-provider cannot be made to refuse connections, stall or answer 500 on demand, so tests
//! point tokenflow at this proxy instead of the IdP and switch it between [`Fault`]s; the IdP
//! behind it stays the real one, with its grants and counters. Switching aborts every open
//! connection, so a pooled keep-alive connection cannot carry a request past the new fault.
//! `Refuse` closes the listening socket (connection refused, as for a stopped IdP) and the next
//! switch listens again on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards bytes both ways.
    None,
    /// Nothing listens on the port: connections are refused.
    Refuse,
    /// Accepts and reads the request, never forwards it and never answers (a server slower than
    /// any timeout). The upstream never sees the request.
    Stall,
    /// Reads the request and answers `500 Internal Server Error` itself (not forwarded).
    Error500,
    /// Forwards the request, lets the upstream act on it and answer, and never delivers the
    /// answer: the caller is left waiting after the upstream's effect.
    HoldAnswer,
}

/// How many connections met each fault; see [`FaultProxy::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Forwarded,
    Stalled,
    Failed500,
    /// Requests whose upstream answer arrived at the proxy and was held back.
    AnswersHeld,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicUsize,
    stalled: AtomicUsize,
    failed: AtomicUsize,
    held: AtomicUsize,
}

impl Counters {
    fn of(&self, seen: Seen) -> &AtomicUsize {
        match seen {
            Seen::Forwarded => &self.forwarded,
            Seen::Stalled => &self.stalled,
            Seen::Failed500 => &self.failed,
            Seen::AnswersHeld => &self.held,
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    counters: Counters,
    connections: Mutex<JoinSet<()>>,
}

/// A running fault proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// The largest request head the proxy reads before answering 500 itself.
const MAX_HEAD: usize = 64 * 1024;

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream` (`http://host:port`, any path ignored).
    pub async fn start(upstream: &str) -> FaultProxy {
        let url = url::Url::parse(upstream).expect("upstream is a URL");
        let host = url.host_str().expect("upstream has a host");
        let port = url.port_or_known_default().expect("upstream has a port");
        let upstream = tokio::net::lookup_host((host, port))
            .await
            .expect("upstream resolves")
            .next()
            .expect("upstream has an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::None),
            counters: Counters::default(),
            connections: Mutex::new(JoinSet::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        FaultProxy {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Switches to `fault`, closing every open connection; `Refuse` stops listening, any other
    /// fault listens again on the same port.
    pub async fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
        self.shared.connections.lock().unwrap().abort_all();
        let running = self.accept.lock().unwrap().take();
        if fault == Fault::Refuse {
            if let Some(task) = running {
                task.abort();
                let _ = task.await;
            }
            return;
        }
        if let Some(task) = running {
            *self.accept.lock().unwrap() = Some(task);
            return;
        }
        let listener = bind_again(self.addr).await;
        *self.accept.lock().unwrap() =
            Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
    }

    /// How many connections met `seen` so far.
    pub fn count(&self, seen: Seen) -> usize {
        self.shared.counters.of(seen).load(Ordering::SeqCst)
    }

    /// Waits until `count(seen) >= n`, for at most 30 s (a deadline poll: the caller is another
    /// process or task).
    pub async fn wait_for(&self, seen: Seen, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.count(seen) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the proxy saw {} of {n} {seen:?} within 30 s",
                self.count(seen)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Ok(mut accept) = self.accept.lock()
            && let Some(task) = accept.take()
        {
            task.abort();
        }
        if let Ok(mut connections) = self.shared.connections.lock() {
            connections.abort_all();
        }
    }
}

/// The port was ours a moment ago; another process may take it in between, which the deadline
/// turns into a clear failure instead of a hang.
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the proxy cannot listen on {addr} again: {err}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let fault = *shared.fault.lock().unwrap();
        let task_shared = shared.clone();
        let mut connections = shared.connections.lock().unwrap();
        while connections.try_join_next().is_some() {}
        connections.spawn(handle(client, fault, task_shared));
    }
}

async fn handle(mut client: TcpStream, fault: Fault, shared: Arc<Shared>) {
    let counters = &shared.counters;
    match fault {
        // A connection accepted just before the switch to `Refuse`: closed unanswered.
        Fault::Refuse => {}
        Fault::None => {
            let Ok(mut upstream) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            counters.forwarded.fetch_add(1, Ordering::SeqCst);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Fault::Stall => {
            counters.stalled.fetch_add(1, Ordering::SeqCst);
            drain(&mut client).await;
        }
        Fault::Error500 => {
            if read_request(&mut client).await.is_some() {
                counters.failed.fetch_add(1, Ordering::SeqCst);
                let body = "<html><body>Internal Server Error</body></html>";
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
                let _ = client.shutdown().await;
            }
        }
        Fault::HoldAnswer => {
            let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            let (mut client_read, _client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = upstream.into_split();
            let forward = async {
                let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
            };
            let hold = async {
                let mut buf = vec![0u8; 8192];
                let mut counted = false;
                while let Ok(n) = upstream_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !counted {
                        counted = true;
                        counters.held.fetch_add(1, Ordering::SeqCst);
                    }
                }
            };
            // The client's half stays open (never answered) until the client goes away.
            tokio::join!(forward, hold);
        }
    }
}

/// Reads and discards until the peer closes.
async fn drain(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Reads one HTTP/1.1 request (head and a `content-length` body) so that closing the socket
/// afterwards does not reset the connection before the client reads the answer.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(())
}
