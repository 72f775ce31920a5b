//! The six benchmarks. Each takes the shared [`Ctx`] and returns its section of the report.

pub mod ablation;
pub mod dashboard;
pub mod footprint;
pub mod overhead;
pub mod soak;
pub mod throughput;
pub mod vault;
pub mod waiting;

use std::path::PathBuf;
use std::time::Duration;

use tokenflow_testkit::Idp;

use crate::procs::Process;

/// What every benchmark shares: the sizes, the binaries, the IdP and the stub API.
#[derive(Debug)]
pub struct Ctx {
    pub plan: Plan,
    pub tokenflow: PathBuf,
    pub peers: PathBuf,
    pub idp: Idp,
    pub stub: Process,
    /// The PostgreSQL server for benchmark 2's PostgreSQL rows; `None` leaves them out.
    pub postgres: Option<String>,
}

/// The sizes of one suite run: the full run or `--quick`, which only shows that every benchmark
/// works end to end (its figures mean nothing).
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Repetitions of each measurement (the report shows their median and range).
    pub repeats: usize,
    /// Benchmark 1: interleaved request pairs per repetition (after a warm-up).
    pub overhead_pairs: usize,
    /// Benchmark 2: concurrency levels, and time per measurement (after a warm-up).
    pub levels: Vec<usize>,
    pub measure: Duration,
    pub warmup: Duration,
    /// Benchmark 3: waiting runs at the small and the large level; samples per repetition.
    pub waiting_levels: (u64, u64),
    pub waiting_samples: u64,
    /// Benchmark 4: concurrent `vault_get_token` runs on one expired entry.
    pub vault_callers: u64,
    /// Benchmark 5: starts of `tokenflow serve`.
    pub starts: usize,
    /// Benchmark 6: runs in the store, and timed requests per window.
    pub dashboard_runs: u64,
    pub dashboard_requests: usize,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            quick: false,
            repeats: 5,
            overhead_pairs: 400,
            levels: vec![1, 16, 64],
            measure: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            waiting_levels: (1_000, 100_000),
            waiting_samples: 200,
            vault_callers: 1_000,
            starts: 5,
            dashboard_runs: 1_000_000,
            dashboard_requests: 50,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            quick: true,
            repeats: 1,
            overhead_pairs: 20,
            levels: vec![1, 16],
            measure: Duration::from_millis(500),
            warmup: Duration::from_millis(100),
            waiting_levels: (50, 300),
            waiting_samples: 20,
            vault_callers: 50,
            starts: 1,
            dashboard_runs: 20_000,
            dashboard_requests: 10,
        }
    }
}

/// The client secret of the suite's client-credentials client at the IdP.
pub const CC_CLIENT: &str = "bench-service";
pub const CC_SECRET: &str = "bench-service-secret";
pub const CC_SCOPE: &str = "api:read";
