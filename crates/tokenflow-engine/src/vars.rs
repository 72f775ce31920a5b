//! Run variables. Secret values live as [`SecretString`], so printing a run's variables by mistake
//! shows `[redacted]`; [`Variables::masked`] gives the monitor's view with fingerprints.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokenflow_core::SecretString;
use tokenflow_core::flow::Flow;

/// A variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Plain(Value),
    /// Secret values are text; a non-string JSON value written to a secret variable is kept as its
    /// JSON text.
    Secret(SecretString),
}

impl Val {
    /// A value for `variable` of `flow`: secret when the flow says so (or `force_secret`).
    pub fn for_variable(flow: &Flow, variable: &str, value: Value, force_secret: bool) -> Val {
        if !(force_secret || flow.is_secret(variable)) || value.is_null() {
            return Val::Plain(value);
        }
        match value {
            Value::String(text) => Val::Secret(SecretString::new(text)),
            other => Val::Secret(SecretString::new(other.to_string())),
        }
    }

    /// The raw value, for handing to an action or an expression.
    pub fn expose(&self) -> Value {
        match self {
            Val::Plain(value) => value.clone(),
            Val::Secret(secret) => Value::String(secret.expose().to_owned()),
        }
    }

    /// The monitor's view: secrets as fingerprints.
    pub fn masked(&self) -> Value {
        match self {
            Val::Plain(value) => value.clone(),
            Val::Secret(secret) => Value::String(secret.fingerprint()),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Val::Secret(_))
    }

    /// The bytes this value counts for in the run's `run_data_limit`: its text (a string's
    /// bytes, any other value's compact JSON).
    pub fn data_len(&self) -> u64 {
        match self {
            Val::Plain(value) => crate::monitor::text_len(value),
            Val::Secret(secret) => secret.expose().len() as u64,
        }
    }
}

/// The variables of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    values: BTreeMap<String, Val>,
    /// Each variable's [`Val::data_len`], and their sum, kept up to date by [`Variables::set`].
    sizes: BTreeMap<String, u64>,
    bytes: u64,
}

impl Variables {
    pub fn get(&self, name: &str) -> Option<&Val> {
        self.values.get(name)
    }

    pub fn set(&mut self, name: impl Into<String>, value: Val) {
        let name = name.into();
        let size = value.data_len() + name.len() as u64;
        if let Some(old) = self.sizes.insert(name.clone(), size) {
            self.bytes -= old;
        }
        self.bytes += size;
        self.values.insert(name, value);
    }

    /// The bytes all variables hold (names and values), for `run_data_limit`.
    pub fn data_bytes(&self) -> u64 {
        self.bytes
    }

    /// Replaces every plain value over `limit` bytes by its summary
    /// ([`crate::monitor::compact`]), which is all the monitor ever shows of it: for a run that
    /// has ended, so its stored state stays small. Secret values stay (they are small, and
    /// encrypted at rest).
    pub fn compact(&mut self, limit: usize) {
        let large: Vec<String> = self
            .values
            .iter()
            .filter(|(_, val)| matches!(val, Val::Plain(_)) && val.data_len() > limit as u64)
            .map(|(name, _)| name.clone())
            .collect();
        for name in large {
            if let Some(Val::Plain(value)) = self.values.get(&name) {
                let summary = crate::monitor::compact(value, limit);
                self.set(name, Val::Plain(summary));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Val)> {
        self.values.iter()
    }

    /// Every variable's raw value (for CEL conditions).
    pub fn exposed(&self) -> BTreeMap<String, Value> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose()))
            .collect()
    }

    /// Every variable with secrets masked, declared ones first in declaration order.
    pub fn masked(&self, flow: &Flow) -> Map<String, Value> {
        let mut out = Map::new();
        for name in flow.variables.keys() {
            let value = self.values.get(name).map_or(Value::Null, Val::masked);
            out.insert(name.clone(), value);
        }
        for (name, value) in &self.values {
            if !out.contains_key(name) {
                out.insert(name.clone(), value.masked());
            }
        }
        out
    }

    /// [`Variables::masked`] with values over `limit` bytes summarized as in the monitor
    /// ([`crate::monitor::compact`]), for the run's JSON.
    pub fn shown(&self, flow: &Flow, limit: usize) -> Map<String, Value> {
        let shown = |val: &Val| match val {
            Val::Plain(value) => crate::monitor::compact(value, limit),
            Val::Secret(secret) => Value::String(secret.fingerprint()),
        };
        let mut out = Map::new();
        for name in flow.variables.keys() {
            out.insert(
                name.clone(),
                self.values.get(name).map_or(Value::Null, shown),
            );
        }
        for (name, value) in &self.values {
            if !out.contains_key(name) {
                out.insert(name.clone(), shown(value));
            }
        }
        out
    }
}
