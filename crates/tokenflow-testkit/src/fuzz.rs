//! The property and fuzz test loop shared by every crate's `fuzz` tests (docs/testing.md), and
//! the generators they build on.
//!
//! [`check`] runs a property on generated inputs with proptest's runner (shrinking a failure to
//! a minimal input) in batches, counting every input it tries. How many:
//! - `TOKENFLOW_FUZZ_SECONDS` set: batches until that many seconds have passed (the long runs of
//!   `scripts/fuzz DURATION`);
//! - otherwise `TOKENFLOW_FUZZ_CASES` inputs (default [`DEFAULT_CASES`]: the short pass of every
//!   `cargo test`).
//!
//! Every target prints one line, `fuzz-result target=NAME inputs=N failures=F`, which
//! `scripts/fuzz` collects into its table. A failure panics with the minimised input.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Inputs per target in an ordinary test run: enough to reach each generator's branches, few
/// enough that a crate's fuzz targets finish in a few seconds in a debug build.
pub const DEFAULT_CASES: u64 = 96;
/// Inputs per batch of a timed run; the clock is read between batches.
const BATCH: u32 = 64;

/// How long to run, from the environment: a time budget, or a number of inputs.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Cases(u64),
    Time(Duration),
}

fn budget() -> Budget {
    let number = |name: &str| {
        std::env::var(name).ok().map(|text| {
            text.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}"))
        })
    };
    if let Some(seconds) = number("TOKENFLOW_FUZZ_SECONDS") {
        return Budget::Time(Duration::from_secs_f64(seconds.max(0.0)));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let cases = number("TOKENFLOW_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n.max(1.0) as u64);
    Budget::Cases(cases)
}

/// Runs `property` on inputs from `strategy` for the configured budget. The property returns
/// `Err` (use [`prop_assert!`]) or panics to fail; the failing input, shrunk, is in the panic
/// message.
pub fn check<S>(target: &str, strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = budget();
    let started = Instant::now();
    let tried = std::cell::Cell::new(0u64);
    loop {
        let batch = match budget {
            Budget::Cases(cases) => {
                let left = cases.saturating_sub(tried.get());
                if left == 0 {
                    break;
                }
                u32::try_from(left).unwrap_or(u32::MAX).min(BATCH)
            }
            Budget::Time(limit) => {
                if started.elapsed() >= limit && tried.get() > 0 {
                    break;
                }
                BATCH
            }
        };
        let mut runner = TestRunner::new(Config {
            cases: batch,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        });
        let result = runner.run(&strategy, |input| {
            tried.set(tried.get() + 1);
            property(input)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                eprintln!(
                    "fuzz-result target={target} inputs={} failures=1",
                    tried.get()
                );
                panic!("fuzz target {target} failed: {reason}\nminimal failing input: {input:#?}");
            }
            Err(TestError::Abort(reason)) => {
                eprintln!(
                    "fuzz-result target={target} inputs={} failures=1",
                    tried.get()
                );
                panic!("fuzz target {target} aborted: {reason}");
            }
        }
    }
    eprintln!(
        "fuzz-result target={target} inputs={} failures=0 seconds={:.1}",
        tried.get(),
        started.elapsed().as_secs_f64()
    );
}

/// Fails the property when an error message is empty, over `max_len` bytes, or holds `secret`
/// (an input value that must never be echoed back).
pub fn clear_error(message: &str, max_len: usize, secret: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "an empty error message");
    prop_assert!(
        message.len() <= max_len,
        "an error message of {} bytes (at most {max_len}): {:.300}",
        message.len(),
        message
    );
    prop_assert!(
        secret.is_empty() || !message.contains(secret),
        "the error message echoes a secret input: {message:.300}"
    );
    Ok(())
}

/// A credential-looking value: long, random, marked so it is found in any echo.
pub fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{16,40}".prop_map(|tail| format!("sEcReT{tail}"))
}

/// Numbers as JSON text that break naive conversions: beyond `u64` and `f64`, negative,
/// fractions, exponents.
pub fn nasty_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551616".to_owned()), // 2^64
        Just("18446744073709551615".to_owned()), // 2^64 - 1
        Just("-9223372036854775809".to_owned()),
        Just("1e400".to_owned()),
        Just("-1e400".to_owned()),
        Just("1e-400".to_owned()),
        Just("0.5".to_owned()),
        Just("-0".to_owned()),
        Just("123456789012345678901234567890123456789012345678901234567890".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        "[0-9]{1,400}",
        "-?[0-9]{1,5}\\.[0-9]{1,5}[eE][+-]?[0-9]{1,4}",
    ]
}

/// Strings that break naive handling: empty, control characters, non-ASCII, very long.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,24}",
        1 => Just(String::new()),
        1 => "[\\x00-\\x1f\\x7f]{1,8}",
        1 => "[\u{80}-\u{10ffff}]{1,8}",
        1 => (1usize..200_000).prop_map(|n| "a".repeat(n)),
        1 => "(%[0-9A-Fa-f]{2}|%|\\+|&|=|;){1,16}",
    ]
}

/// JSON text nested `depth` levels deep in arrays and objects, around `inner`.
pub fn nested_json(depth: usize, inner: &str) -> String {
    let mut text = String::with_capacity(depth * 8 + inner.len());
    for level in 0..depth {
        text.push_str(if level % 2 == 0 { "[" } else { "{\"a\":" });
    }
    text.push_str(inner);
    for level in (0..depth).rev() {
        text.push(if level % 2 == 0 { ']' } else { '}' });
    }
    text
}

/// Any JSON value, up to a few levels deep, with nasty numbers and strings in its leaves; deep
/// nesting comes from [`nested_json`].
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_number().prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::String(n))),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Mutates text the way a broken or hostile peer would: truncates it, flips a byte, inserts
/// a character, or doubles it.
pub fn mutated(text: String) -> impl Strategy<Value = String> {
    let len = text.len().max(1);
    (0..5u8, 0..len, any::<char>()).prop_map(move |(how, at, c)| {
        let mut out = text.clone();
        let at = (0..=at)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        match how {
            0 => out.truncate(at),
            1 => out.insert(at, c),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => out = format!("{out}{out}"),
            _ => {}
        }
        out
    })
}

/// Callback parameters (RFC 6749 §4.1.2) as query or form text: `code` holds `code` (and only
/// it), the other names and unknown ones take values from `value`; names repeat; sometimes the
/// text is mutated or is no form at all.
pub fn callback_text(
    code: String,
    value: impl Strategy<Value = String> + 'static,
) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("state".to_owned()),
        Just("code".to_owned()),
        Just("error".to_owned()),
        Just("error_description".to_owned()),
        Just("iss".to_owned()),
        nasty_string(),
    ];
    let pair = prop_oneof![
        1 => Just(("code".to_owned(), code)),
        4 => (name, value),
    ];
    let pairs = proptest::collection::vec(pair, 0..12)
        .prop_map(|pairs| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &pairs {
                form.append_pair(name, value);
            }
            form.finish()
        })
        .boxed();
    prop_oneof![4 => pairs.clone(), 1 => pairs.prop_flat_map(mutated), 1 => nasty_string()]
}
