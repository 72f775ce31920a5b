//! Bounded monitor values. A monitor record keeps every input and output of an action; a value
//! larger than `monitor_value_limit` (default 8 KiB) is kept as a summary instead — its size, its
//! SHA-256 and a preview of its start — so a large HTTP body is held once, in its variable, and
//! not a second time in the record (docs/security.md, "Runs"). Secret values never reach this
//! point in clear: the monitor only ever sees their fingerprints.
//!
//! A value's *text* is a string's UTF-8 bytes, or any other value's compact JSON; its size and
//! hash are those of that text. Both are computed while serializing into a writer that counts and
//! hashes, so summarizing a large value copies nothing but the preview.

use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The preview's length in bytes (cut back to a character boundary).
pub const PREVIEW_BYTES: usize = 512;

/// The size in bytes of `value`'s text.
pub fn text_len(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.len() as u64,
        other => json_len(other),
    }
}

/// The size in bytes of `value` as compact JSON.
pub fn json_len(value: &impl serde::Serialize) -> u64 {
    let mut counter = Counter::default();
    // Writing to the counter cannot fail, and neither can serializing a JSON value.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.bytes
}

/// `value` as the monitor keeps it: itself when its text is at most `limit` bytes, else
/// `{ "truncated": true, "bytes", "sha256", "preview" }`.
pub fn compact(value: &Value, limit: usize) -> Value {
    match value {
        Value::String(text) if text.len() > limit => summary(
            text.len() as u64,
            Sha256::digest(text.as_bytes()).into(),
            preview(text.as_bytes()),
        ),
        Value::Array(_) | Value::Object(_) => {
            let mut bounded = Counter {
                stop_after: Some(limit as u64),
                ..Counter::default()
            };
            if serde_json::to_writer(&mut bounded, value).is_ok() {
                return value.clone();
            }
            let mut hashing = Hashing::default();
            let _ = serde_json::to_writer(&mut hashing, value);
            summary(
                hashing.bytes,
                hashing.digest.finalize().into(),
                preview(&hashing.start),
            )
        }
        other => other.clone(),
    }
}

/// Whether `value` is a summary made by [`compact`].
pub fn is_summary(value: &Value) -> bool {
    value.get("truncated") == Some(&Value::Bool(true))
        && value.get("sha256").is_some_and(Value::is_string)
        && value.get("bytes").is_some_and(Value::is_u64)
}

fn summary(bytes: u64, digest: [u8; 32], preview: String) -> Value {
    let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({ "truncated": true, "bytes": bytes, "sha256": sha256, "preview": preview })
}

/// The first [`PREVIEW_BYTES`] of `text`, cut back to a character boundary.
fn preview(text: &[u8]) -> String {
    let mut end = text.len().min(PREVIEW_BYTES);
    while end > 0 && std::str::from_utf8(&text[..end]).is_err() {
        end -= 1;
    }
    String::from_utf8_lossy(&text[..end]).into_owned()
}

/// Counts bytes; with `stop_after`, fails once more were written.
#[derive(Default)]
struct Counter {
    bytes: u64,
    stop_after: Option<u64>,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        if self.stop_after.is_some_and(|max| self.bytes > max) {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts and hashes bytes, keeping the first [`PREVIEW_BYTES`] (plus up to three more, so the
/// preview can end on a whole character).
#[derive(Default)]
struct Hashing {
    bytes: u64,
    digest: Sha256,
    start: Vec<u8>,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.digest.update(buf);
        let room = (PREVIEW_BYTES + 3).saturating_sub(self.start.len());
        self.start.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_kept_and_large_ones_summarized() {
        assert_eq!(compact(&json!("short"), 16), json!("short"));
        assert_eq!(compact(&json!([1, 2]), 16), json!([1, 2]));
        let long = "é".repeat(400);
        let summary = compact(&json!(long), 16);
        assert!(is_summary(&summary), "{summary}");
        assert_eq!(summary["bytes"], 800);
        let preview = summary["preview"].as_str().unwrap();
        assert_eq!(preview, "é".repeat(256), "cut on a character boundary");
        let list = json!(vec![12345; 100]);
        let summary = compact(&list, 16);
        assert_eq!(summary["bytes"], json_len(&list));
        let sha: String = Sha256::digest(list.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(summary["sha256"], sha);
    }
}
