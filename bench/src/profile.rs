//! CPU profiles of `tokenflow serve` during benchmark 2: `perf record` samples the server process
//! (the `cpu-clock` event, which needs no hardware counters) while one measurement runs, and
//! `perf script`'s text is grouped into a few categories a reader knows (see BENCHMARKS.md,
//! "Profiling").

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Samples per second of CPU time, per thread.
pub const FREQUENCY: u32 = 999;

/// Where a sample's time goes: the first rule in this table that recognises a frame decides.
/// Kernel frames are matched from the sampled one outwards through the kernel's call chain (the
/// kernel's unwinder is reliable); a user-space sample only by its own frame, since release
/// builds keep no frame pointers. A pattern starting with `^` matches the symbol's start, any
/// other one a part of the symbol (or, for [`Space::Dso`], of the shared object's name).
const RULES: &[(&str, Space, &[&str])] = &[
    (
        SQLITE,
        Space::User,
        &[
            "sqlite3",
            "sqlx_sqlite",
            "^vdbe",
            "^btree",
            "^pager",
            "^pcache",
            "^wal",
            "^unix",
            "^pthreadMutex",
        ],
    ),
    (
        "encryption and hashing",
        Space::User,
        &["chacha20", "poly1305", "aead::", "sha2::", "hmac::"],
    ),
    ("JSON", Space::User, &["serde_json"]),
    (
        "HTTP (hyper, axum, reqwest)",
        Space::User,
        &[
            "hyper", "axum", "reqwest", "^http::", "^<http::", "httparse", "tower",
        ],
    ),
    (
        "flow engine (tokenflow, expressions, templates)",
        Space::User,
        &[
            "tokenflow",
            "cel::",
            "cel_parser",
            "minijinja",
            "serde_json_path",
        ],
    ),
    (
        "async runtime (tokio)",
        Space::User,
        &["tokio", "mio::", "futures_util", "futures_core"],
    ),
    (
        MEMORY,
        Space::User,
        &[
            "malloc",
            "^free",
            "^cfree",
            "^_int_free",
            "realloc",
            "calloc",
            "__rust_alloc",
            "__rust_dealloc",
            "__rust_realloc",
            "__rdl_",
            "^tcache",
        ],
    ),
    (
        "kernel: network",
        Space::Kernel,
        &[
            "tcp_",
            "inet_",
            "^sock_",
            "^sk_",
            "skb",
            "loopback",
            "netif",
            "net_rx",
            "^ip_",
            "dev_queue_xmit",
            "epoll",
            "ep_poll",
            "__sys_sendto",
            "__sys_recvfrom",
        ],
    ),
    (
        "kernel: file I/O",
        Space::Kernel,
        &[
            "ext4", "jbd2", "fsync", "pwrite", "pread", "vfs_", "filemap", "iomap", "^blk_",
            "xfs_", "overlay", "ovl_",
        ],
    ),
    (
        "kernel: scheduling and wake-ups",
        Space::Kernel,
        &[
            "futex",
            "schedule",
            "finish_task_switch",
            "try_to_wake_up",
            "ttwu",
            "wake_up",
            "enqueue_task",
            "dequeue_task",
            "pick_next",
            "sched_",
            "select_task_rq",
            "nanosleep",
        ],
    ),
    (
        MEMORY,
        Space::Kernel,
        &[
            "page_fault",
            "handle_mm_fault",
            "clear_page",
            "mmap",
            "munmap",
            "madvise",
            "brk",
        ],
    ),
];

const SQLITE: &str = "SQLite (sqlite3, sqlx)";
const MEMORY: &str = "memory allocation (malloc/free, page faults)";
const KERNEL_OTHER: &str = "kernel: other (system call entry, timers, …)";
const OTHER: &str = "other";
const NO_SYMBOL: &str = "other (no symbol)";

/// Which frames a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    User,
    Kernel,
}

/// One frame of a sample's call chain, as `perf script` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    symbol: String,
    dso: String,
}

impl Frame {
    fn kernel(&self) -> bool {
        self.dso.starts_with("[kernel") || self.dso.ends_with(".ko")
    }

    fn resolved(&self) -> bool {
        self.symbol != "[unknown]" && !self.symbol.is_empty() && !self.symbol.starts_with("0x")
    }

    /// The symbol without the hash suffix of Rust's legacy mangling (`::h0123456789abcdef`).
    fn name(&self) -> String {
        if !self.resolved() {
            return format!("[unknown] ({})", short_dso(&self.dso));
        }
        match self.symbol.rsplit_once("::h") {
            Some((path, hash))
                if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                path.to_owned()
            }
            _ => self.symbol.clone(),
        }
    }
}

fn short_dso(dso: &str) -> &str {
    dso.rsplit('/').next().unwrap_or(dso)
}

fn matches(pattern: &str, text: &str) -> bool {
    match pattern.strip_prefix('^') {
        Some(prefix) => text.starts_with(prefix),
        None => text.contains(pattern),
    }
}

fn rule_for(frame: &Frame, space: Space) -> Option<&'static str> {
    RULES
        .iter()
        .filter(|(_, rule_space, _)| *rule_space == space)
        .find(|(_, _, patterns)| patterns.iter().any(|p| matches(p, &frame.symbol)))
        .map(|(category, _, _)| *category)
}

/// The category of one sample (its frames, the sampled one first).
fn classify(frames: &[Frame]) -> &'static str {
    let Some(leaf) = frames.first() else {
        return NO_SYMBOL;
    };
    if leaf.kernel() {
        return frames
            .iter()
            .take_while(|frame| frame.kernel())
            .find_map(|frame| rule_for(frame, Space::Kernel))
            .unwrap_or(KERNEL_OTHER);
    }
    if !leaf.resolved() {
        return NO_SYMBOL;
    }
    rule_for(leaf, Space::User).unwrap_or(OTHER)
}

/// `perf script -F ip,sym,dso` output: one block per sample, its frames one per line
/// (`<address> <symbol> (<shared object>)`), blocks separated by empty lines. A sample without a
/// call chain is a single such line.
fn parse_script(text: &str) -> Vec<Vec<Frame>> {
    let mut samples = Vec::new();
    let mut current: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                samples.push(std::mem::take(&mut current));
            }
            continue;
        }
        let Some((address, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if !address.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let rest = rest.trim();
        let (symbol, dso) = match rest.rsplit_once(" (") {
            Some((symbol, dso)) if dso.ends_with(')') => (symbol.trim(), &dso[..dso.len() - 1]),
            _ if rest.starts_with('(') && rest.ends_with(')') => ("", &rest[1..rest.len() - 1]),
            _ => (rest, ""),
        };
        current.push(Frame {
            symbol: symbol.to_owned(),
            dso: dso.to_owned(),
        });
    }
    if !current.is_empty() {
        samples.push(current);
    }
    samples
}

/// Where the time of one profiled measurement went.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub samples: u64,
    /// Length of the recording.
    pub seconds: f64,
    /// `(category, samples)`, most samples first.
    pub categories: Vec<(&'static str, u64)>,
    /// `(symbol, category, samples)` of the sampled frames, most samples first (eight). A
    /// function sampled in two categories (a kernel lock under a wake-up and under a send) has
    /// a row for each.
    pub top: Vec<(String, &'static str, u64)>,
}

impl Profile {
    /// CPU cores the process used on average: samples / (frequency × seconds).
    pub fn cores(&self) -> f64 {
        self.samples as f64 / (f64::from(FREQUENCY) * self.seconds.max(1e-9))
    }

    /// `part` as a percentage of all samples.
    pub fn share(&self, part: u64) -> f64 {
        part as f64 * 100.0 / self.samples.max(1) as f64
    }
}

/// Groups `perf script` output into a [`Profile`] of a recording `seconds` long.
pub fn aggregate(script: &str, seconds: f64) -> Profile {
    let mut categories: HashMap<&'static str, u64> = HashMap::new();
    let mut symbols: HashMap<(String, &'static str), u64> = HashMap::new();
    let mut samples = 0;
    for frames in parse_script(script) {
        samples += 1;
        let category = classify(&frames);
        *categories.entry(category).or_default() += 1;
        *symbols.entry((frames[0].name(), category)).or_default() += 1;
    }
    let mut categories: Vec<_> = categories.into_iter().collect();
    categories.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut top: Vec<_> = symbols
        .into_iter()
        .map(|((symbol, category), n)| (symbol, category, n))
        .collect();
    top.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    top.truncate(8);
    Profile {
        samples,
        seconds,
        categories,
        top,
    }
}

/// A running `perf record` of one process.
#[derive(Debug)]
pub struct Recording {
    child: Child,
    dir: tempfile::TempDir,
    seconds: f64,
}

/// Starts sampling process `pid` for `duration`; `Err` says why perf cannot (missing, refused).
pub fn record(pid: u32, duration: Duration) -> Result<Recording, String> {
    let dir = tempfile::tempdir().map_err(|err| format!("no temporary folder: {err}"))?;
    let seconds = duration.as_secs_f64();
    let child = Command::new("perf")
        .args(["record", "-F", &FREQUENCY.to_string(), "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(dir.path().join("perf.data"))
        .args(["--", "sleep", &format!("{seconds:.3}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| {
            format!("`perf` cannot be started ({err}); Debian: apt-get install linux-perf")
        })?;
    Ok(Recording {
        child,
        dir,
        seconds,
    })
}

impl Recording {
    /// Waits for the recording to end and analyses it.
    pub async fn finish(self) -> Result<Profile, String> {
        let out = self
            .child
            .wait_with_output()
            .await
            .map_err(|err| format!("`perf record` failed: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`perf record` failed ({}): {}",
                out.status,
                last_line(&out.stderr)
            ));
        }
        let out = Command::new("perf")
            .args(["script", "-F", "ip,sym,dso", "-i"])
            .arg(self.dir.path().join("perf.data"))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|err| format!("`perf script` cannot be started: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`perf script` failed ({}): {}",
                out.status,
                last_line(&out.stderr)
            ));
        }
        let profile = aggregate(&String::from_utf8_lossy(&out.stdout), self.seconds);
        if profile.samples == 0 {
            return Err("`perf record` took no samples".to_owned());
        }
        Ok(profile)
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("no message")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six samples of `perf script -F ip,sym,dso` from a tokenflow release build.
    const SCRIPT: &str = "
\t    55d1c0a1b2c3 sqlite3VdbeExec (/opt/tokenflow/tokenflow)
\t    55d1c0a1b000 [unknown] (/opt/tokenflow/tokenflow)

\tffffffff8a2b1c40 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\tffffffff8a2b0f00 try_to_wake_up ([kernel.kallsyms])
\tffffffff8a3c0000 futex_wake ([kernel.kallsyms])
\tffffffff8a3c1000 __x64_sys_futex ([kernel.kallsyms])
\t    7f0011223344 syscall (/usr/lib/x86_64-linux-gnu/libc.so.6)

\tffffffff8a500000 copy_user_enhanced_fast_string ([kernel.kallsyms])
\tffffffff8a600000 tcp_sendmsg_locked ([kernel.kallsyms])
\tffffffff8a600100 __sys_sendto ([kernel.kallsyms])

\t    55d1c0b00000 serde_json::ser::format_escaped_str_contents::h0123456789abcdef (/opt/tokenflow/tokenflow)

\t    55d1c0a1b2c3 sqlite3VdbeExec (/opt/tokenflow/tokenflow)

\t    55d1c0c00000 [unknown] (/opt/tokenflow/tokenflow)

\tffffffff8a700000 entry_SYSCALL_64 ([kernel.kallsyms])
";

    #[test]
    fn samples_are_grouped_by_their_frames() {
        let profile = aggregate(SCRIPT, 0.5);
        assert_eq!(profile.samples, 7);
        let count = |name: &str| {
            profile
                .categories
                .iter()
                .find(|(category, _)| *category == name)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(count(SQLITE), 2);
        // The kernel's chain decides: the spin unlock is part of a futex wake-up.
        assert_eq!(count("kernel: scheduling and wake-ups"), 1);
        assert_eq!(count("kernel: network"), 1);
        assert_eq!(count("JSON"), 1);
        assert_eq!(count(NO_SYMBOL), 1);
        assert_eq!(count(KERNEL_OTHER), 1);
        assert_eq!(profile.categories[0], (SQLITE, 2));
        assert_eq!(
            profile.top[0],
            ("sqlite3VdbeExec".to_owned(), SQLITE, 2),
            "{:?}",
            profile.top
        );
        // Rust's hash suffix is dropped; unresolved addresses are named by their object.
        assert!(profile.top.iter().any(|(symbol, category, n)| symbol
            == "serde_json::ser::format_escaped_str_contents"
            && *category == "JSON"
            && *n == 1));
        assert!(
            profile
                .top
                .iter()
                .any(|(symbol, _, _)| symbol == "[unknown] (tokenflow)")
        );
        assert!((profile.share(2) - 200.0 / 7.0).abs() < 1e-9);
        // 7 samples in 0.5 s at 999 Hz.
        assert!((profile.cores() - 7.0 / 499.5).abs() < 1e-9);
    }

    #[test]
    fn user_space_samples_are_classified_by_their_own_frame_only() {
        let frames = |symbol: &str, caller: &str| {
            vec![
                Frame {
                    symbol: symbol.to_owned(),
                    dso: "/usr/lib/x86_64-linux-gnu/libc.so.6".to_owned(),
                },
                Frame {
                    symbol: caller.to_owned(),
                    dso: "/opt/tokenflow/tokenflow".to_owned(),
                },
            ]
        };
        assert_eq!(classify(&frames("_int_malloc", "sqlite3Malloc")), MEMORY);
        assert_eq!(
            classify(&frames("__memmove_avx_unaligned", "sqlite3Malloc")),
            OTHER
        );
        assert_eq!(
            classify(&frames("tokio::runtime::park::Inner::park", "")),
            "async runtime (tokio)"
        );
        assert_eq!(
            classify(&frames(
                "tokenflow_engine::run::Runner::step",
                "tokio::runtime::task::raw::poll"
            )),
            "flow engine (tokenflow, expressions, templates)"
        );
        assert_eq!(
            classify(&frames("chacha20::backends::avx2::inner", "")),
            "encryption and hashing"
        );
        assert_eq!(
            classify(&frames("hyper::proto::h1::role::Server::parse", "")),
            "HTTP (hyper, axum, reqwest)"
        );
    }
}
