//! Bounds on what one run may hold (docs/security.md, "Runs"). The defaults apply unless the
//! configuration sets `max_steps_limit`, `run_data_limit` or `monitor_value_limit`; each setting
//! has a safe range that the configuration cannot leave.

/// The default of `max_steps_limit`: the largest `max_steps` a flow may declare.
pub const DEFAULT_MAX_STEPS_LIMIT: u32 = 10_000;
/// The largest `max_steps_limit` the configuration may set.
pub const MAX_STEPS_LIMIT_MAX: u32 = 100_000;

/// The default of `run_data_limit`: the bytes one run may hold in its variables and monitor
/// records together (32 MiB).
pub const DEFAULT_RUN_DATA_LIMIT: u64 = 32 * 1024 * 1024;
/// The smallest `run_data_limit` (1 MiB, the largest API request body).
pub const RUN_DATA_LIMIT_MIN: u64 = 1024 * 1024;
/// The largest `run_data_limit` (256 MiB).
pub const RUN_DATA_LIMIT_MAX: u64 = 256 * 1024 * 1024;

/// The default of `monitor_value_limit`: an input or output value of a monitor record larger than
/// this (in bytes) is stored as a summary (size, SHA-256, preview) instead of in full (8 KiB).
pub const DEFAULT_MONITOR_VALUE_LIMIT: usize = 8 * 1024;
/// The smallest `monitor_value_limit` (1 KiB).
pub const MONITOR_VALUE_LIMIT_MIN: usize = 1024;
/// The largest `monitor_value_limit` (64 KiB).
pub const MONITOR_VALUE_LIMIT_MAX: usize = 64 * 1024;

/// The limits a run is executed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The largest `max_steps` a flow may declare; a run never executes more actions.
    pub max_steps: u32,
    /// Bytes of variables plus monitor records one run may hold.
    pub run_data: u64,
    /// Monitor values above this many bytes are summarised.
    pub monitor_value: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_steps: DEFAULT_MAX_STEPS_LIMIT,
            run_data: DEFAULT_RUN_DATA_LIMIT,
            monitor_value: DEFAULT_MONITOR_VALUE_LIMIT,
        }
    }
}
