//! `extract_json` stays bounded in memory when a path matches far more than the document holds.
//! A test binary of its own, so the process's peak memory belongs to this one test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tokenflow_connectors::json::extract_json_limited;
use tokenflow_connectors::status::{ConnectorStatus, ExtractJsonStatus};

/// A document of about 1 MB, nested 100 levels deep, each level holding 5000 numbers: `$..*`
/// matches every level's subtree, about 50 MB as JSON text and far more as values.
fn nested_document() -> String {
    let (depth, width) = (100, 5000);
    let numbers = vec!["1"; width].join(",");
    let mut text = String::new();
    for _ in 0..depth {
        text.push_str(&format!("{{\"n\":[{numbers}],\"c\":"));
    }
    text.push_str("null");
    text.push_str(&"}".repeat(depth));
    text
}

/// The process's peak resident memory (VmHWM) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn dollar_dot_dot_star_on_a_1_mb_document_fails_as_too_large_without_growing_memory() {
    let text = nested_document();
    assert!(
        (900_000..1_200_000).contains(&text.len()),
        "{} bytes",
        text.len()
    );
    let document = Value::String(text);
    // Start the peak from here (Linux: writing 5 to clear_refs resets VmHWM).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss();

    let out = extract_json_limited(Some(&document), Some("$..*"), 32 * 1024 * 1024);

    let grown = peak_rss().saturating_sub(before);
    assert_eq!(out.status, ExtractJsonStatus::TooLarge, "{out:?}");
    assert_eq!(out.status.code(), -3);
    assert_eq!(out.error.as_deref(), Some("too_large"));
    assert!(
        out.error_description
            .as_deref()
            .unwrap()
            .contains("larger than 33554432 bytes"),
        "{out:?}"
    );
    assert_eq!(out.value, None);
    // Parsing the document and the list of matching references take some MB; copying the
    // matches would take hundreds.
    assert!(
        grown < 64 * 1024 * 1024,
        "peak memory grew by {} MB",
        grown / (1024 * 1024)
    );
}
