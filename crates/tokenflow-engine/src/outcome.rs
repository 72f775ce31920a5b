//! What an executed action produced: its status code and outputs by catalogue name, as the
//! connectors' arms (`actions.rs`, `http.rs`) return it and the engine records and routes it.

use serde_json::{Map, Value};
use tokenflow_core::flow::Action;
use tokenflow_core::secret::fingerprint;

/// What an executed action produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status_code: i32,
    /// Every output by catalogue name, raw (secrets included).
    pub outputs: Vec<(&'static str, Value)>,
    /// A one-line explanation of a failure (`error: description`).
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Unknown response members, already masked.
    pub response: Map<String, Value>,
}

impl Outcome {
    pub fn output(&self, name: &str) -> Value {
        self.outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Value::Null, |(_, v)| v.clone())
    }

    /// Moves an output out (leaving `null`), so a large value is not copied.
    pub fn take_output(&mut self, name: &str) -> Value {
        self.outputs
            .iter_mut()
            .find(|(n, _)| *n == name)
            .map_or(Value::Null, |(_, v)| std::mem::take(v))
    }

    /// The monitor's view of the outputs: secret ones as fingerprints, values over `limit`
    /// bytes summarized ([`crate::monitor::compact`]).
    pub fn masked(&self, action: &Action, limit: usize) -> Map<String, Value> {
        self.outputs
            .iter()
            .map(|(name, value)| {
                let secret = action.spec.output(name).is_some_and(|p| p.secret);
                let shown = match value {
                    Value::String(text) if secret => Value::String(fingerprint(text)),
                    other => crate::monitor::compact(other, limit),
                };
                ((*name).to_owned(), shown)
            })
            .collect()
    }
}
