//! The load generator: a fixed number of workers, each sending its next request as soon as the
//! previous answer is read (closed loop), bounded by a request count and a duration, loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stats::percentile;

/// Builds one request (the workers call it for every request).
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;
/// Tells whether an answer (status, body) is the expected one.
pub type Check = Arc<dyn Fn(u16, &[u8]) -> bool + Send + Sync>;

/// How much load: `concurrency` workers until `requests` were sent or `duration` passed.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub requests: u64,
    pub duration: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latencies of the answers that passed the check, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed or whose answer did not pass the check.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    /// Good answers per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.latencies, 99.0)
    }
}

/// An HTTP client for the load generator: keeps up to `concurrency` connections alive.
pub fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Runs `load` against `make`, checking every answer with `check`.
pub async fn run(
    client: &reqwest::Client,
    make: &MakeRequest,
    check: &Check,
    load: Load,
) -> Outcome {
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut workers = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        let (client, make, check, sent) =
            (client.clone(), make.clone(), check.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < load.requests
            {
                let begun = Instant::now();
                let answer = match make(&client).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(err) => Err(err),
                };
                match answer {
                    Ok((status, body)) if check(status, &body) => latencies.push(begun.elapsed()),
                    Ok((status, body)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| {
                            let text = String::from_utf8_lossy(&body);
                            format!(
                                "HTTP {status}: {}",
                                text.chars().take(300).collect::<String>()
                            )
                        });
                    }
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut outcome = Outcome {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        match worker.await {
            Ok((latencies, errors, first_error)) => {
                outcome.latencies.extend(latencies);
                outcome.errors += errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = first_error;
                }
            }
            Err(err) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort_unstable();
    outcome
}
