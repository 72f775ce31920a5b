//! From bindings to action inputs. An input the flow does not mention stays unassigned
//! ([`Input::Unassigned`]); an assigned one is resolved against the run's variables and converted to
//! the type the action expects. A value of the wrong type (e.g. `"yes"` for a boolean input) is an
//! error of the flow, which fails the run with a message naming the action and input. So is a
//! template whose text would be larger than `run_data_limit`: its length is added up before it is
//! rendered, so `{big}{big}{big}…` cannot allocate without bound.

use serde_json::Value;
use tokenflow_core::flow::model::Part;
use tokenflow_core::flow::{Action, Binding, ParamType};
use tokenflow_core::secret::fingerprint;
use tokenflow_core::{Input, RunLimits, SecretString};

use crate::vars::{Val, Variables};

/// An input value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input `{input}` of action `{action}`: {problem}")]
pub struct InputError {
    pub action: String,
    pub input: String,
    pub problem: String,
}

/// The assigned inputs of one action, resolved, plus their masked view for the monitor.
#[derive(Debug)]
pub struct Resolved<'a> {
    action: &'a Action,
    /// (name, value, from a secret variable or a secret input).
    values: Vec<(&'static str, Value, bool)>,
    /// An input that could not be resolved within the limits.
    problem: Option<InputError>,
    monitor_value_limit: usize,
    /// The secret variables the inputs read, for masking the parts of `auth` they fill.
    secret_vars: Vec<String>,
}

impl<'a> Resolved<'a> {
    /// Resolves every assigned input of `action` under the default limits.
    pub fn new(action: &'a Action, vars: &Variables) -> Self {
        Self::with_limits(action, vars, &RunLimits::default())
    }

    /// Resolves every assigned input of `action`; a template longer than `run_data_limit` is
    /// not rendered but reported by [`Resolved::check`].
    pub fn with_limits(action: &'a Action, vars: &Variables, limits: &RunLimits) -> Self {
        let mut problem = None;
        let values = action
            .inputs
            .iter()
            .map(|(name, binding)| {
                let (value, from_secret) = match resolve(binding, vars, limits.run_data) {
                    Ok(resolved) => resolved,
                    Err(length) => {
                        problem.get_or_insert_with(|| InputError {
                            action: action.id.clone(),
                            input: (*name).to_owned(),
                            problem: format!(
                                "the template's text would be {length} bytes, more than the run_data_limit of {} bytes",
                                limits.run_data
                            ),
                        });
                        (Value::Null, false)
                    }
                };
                let param = action.spec.input(name);
                // `auth` is masked part by part (see `masked`): only a whole `auth` from a
                // secret variable is secret as a whole.
                let secret = match param {
                    Some(p) if p.ty == ParamType::Auth => {
                        from_secret && !matches!(binding, Binding::Object(_))
                    }
                    _ => from_secret || param.is_some_and(|p| p.secret),
                };
                (*name, value, secret)
            })
            .collect();
        let secret_vars = action
            .inputs
            .values()
            .flat_map(Binding::variables)
            .filter(|name| vars.get(name).is_some_and(Val::is_secret))
            .map(str::to_owned)
            .collect();
        Self {
            action,
            values,
            problem,
            monitor_value_limit: limits.monitor_value,
            secret_vars,
        }
    }

    /// Fails when an input could not be resolved within the limits.
    pub fn check(&self) -> Result<(), InputError> {
        self.problem.clone().map_or(Ok(()), Err)
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v)
    }

    fn error(&self, input: &str, problem: impl Into<String>) -> InputError {
        InputError {
            action: self.action.id.clone(),
            input: input.to_owned(),
            problem: problem.into(),
        }
    }

    /// A text input: strings as they are, null as empty, other JSON as its text.
    pub fn text(&self, name: &str) -> Input<String> {
        match self.raw(name) {
            None => Input::Unassigned,
            Some(value) => Input::Assigned(as_text(value)),
        }
    }

    /// A secret text input.
    pub fn secret(&self, name: &str) -> Input<SecretString> {
        match self.text(name) {
            Input::Unassigned => Input::Unassigned,
            Input::Assigned(text) => Input::Assigned(SecretString::new(text)),
        }
    }

    /// A boolean input: JSON booleans, or the strings `true`/`false`.
    pub fn boolean(&self, name: &str) -> Result<Input<bool>, InputError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(Input::Unassigned),
            Some(Value::Bool(b)) => Ok(Input::Assigned(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Input::Assigned(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Input::Assigned(false)),
            Some(other) => Err(self.error(
                name,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    /// A whole-number input: JSON numbers or numeric strings.
    pub fn integer(&self, name: &str) -> Result<Option<u64>, InputError> {
        match self.raw(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(other) => Err(self.error(
                name,
                format!("expected a whole number, got {}", describe(other)),
            )),
        }
    }

    /// A JSON input as given.
    pub fn json(&self, name: &str) -> Option<Value> {
        self.raw(name).cloned()
    }

    /// The monitor's view of the inputs: secrets as fingerprints, values over
    /// `monitor_value_limit` bytes summarized ([`crate::monitor::compact`]).
    pub fn masked(&self) -> serde_json::Map<String, Value> {
        self.values
            .iter()
            .map(|(name, value, secret)| {
                let auth = self
                    .action
                    .spec
                    .input(name)
                    .is_some_and(|p| p.ty == ParamType::Auth);
                let shown = if auth {
                    let binding = self.action.inputs.get(name);
                    tokenflow_core::flow::auth::mask_with(value, &|path| {
                        *secret || binding.is_some_and(|b| reads_secret(b, path, &self.secret_vars))
                    })
                } else if *secret && !value.is_null() {
                    Value::String(fingerprint(&as_text(value)))
                } else {
                    crate::monitor::compact(value, self.monitor_value_limit)
                };
                ((*name).to_owned(), shown)
            })
            .collect()
    }
}

/// Whether the member of an object binding at `path` reads a secret variable.
fn reads_secret(binding: &Binding, path: &[&str], secret_vars: &[String]) -> bool {
    let mut member = binding;
    for name in path {
        match member {
            Binding::Object(members) => match members.get(*name) {
                Some(inner) => member = inner,
                None => return false,
            },
            _ => break,
        }
    }
    member
        .variables()
        .iter()
        .any(|name| secret_vars.iter().any(|secret| secret == name))
}

/// The value of a binding, and whether it came from a secret variable; a template whose text
/// would be longer than `max_bytes` gives its length instead.
fn resolve(binding: &Binding, vars: &Variables, max_bytes: u64) -> Result<(Value, bool), u64> {
    Ok(match binding {
        Binding::Const(value) => (value.clone(), false),
        Binding::Var(name) => match vars.get(name) {
            Some(val) => (val.expose(), val.is_secret()),
            None => (Value::Null, false),
        },
        Binding::Template(template) => {
            let length: u64 = template
                .parts
                .iter()
                .map(|part| match part {
                    Part::Text(text) => text.len() as u64,
                    Part::Var(name) => vars.get(name).map_or(0, text_len),
                })
                .sum();
            if length > max_bytes {
                return Err(length);
            }
            let mut secret = false;
            let text = template.render(|name| match vars.get(name) {
                Some(val) => {
                    secret |= val.is_secret();
                    as_text(&val.expose())
                }
                None => String::new(),
            });
            (Value::String(text), secret)
        }
        Binding::Object(members) => {
            let mut object = serde_json::Map::new();
            let mut secret = false;
            let mut budget = max_bytes;
            for (name, member) in members {
                let (value, from_secret) = resolve(member, vars, budget)?;
                budget = budget.saturating_sub(value_len(&value));
                secret |= from_secret;
                object.insert(name.clone(), value);
            }
            (Value::Object(object), secret)
        }
    })
}

/// The length of a resolved member's text, for the template budget of an object binding.
fn value_len(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.len() as u64,
        Value::Null => 0,
        other => other.to_string().len() as u64,
    }
}

/// The length of a variable's text in a template (as [`as_text`] gives it).
fn text_len(val: &Val) -> u64 {
    match val {
        Val::Plain(Value::Null) => 0,
        other => other.data_len(),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(_) => "a string".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        Value::Null => "nothing".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use tokenflow_core::flow::{ParseOptions, parse_flow};

    use super::*;
    use crate::vars::Val;

    fn action() -> tokenflow_core::flow::Flow {
        parse_flow(
            "f.yaml",
            "id: f\nvariables:\n  tok: { secret: true }\n  who: {}\nactions:\n  a:\n    type: http_connector\n    input: { url: \"https://x/{who}\", bearer_token: { var: tok }, follow_redirects: { var: who }, content: \"k={tok}\" }\nsteps:\n  - { from: start, to: a }\n  - { from: a, to: stop }\n",
            &ParseOptions::default(),
        )
        .unwrap()
        .flow
    }

    #[test]
    fn inputs_resolve_and_secrets_are_masked() {
        let flow = action();
        let mut vars = Variables::default();
        vars.set(
            "tok",
            Val::for_variable(&flow, "tok", "T0KEN".into(), false),
        );
        vars.set("who", Val::Plain("alice".into()));
        let resolved = Resolved::new(&flow.actions["a"], &vars);
        assert_eq!(
            resolved.text("url"),
            Input::Assigned("https://x/alice".into())
        );
        assert_eq!(
            resolved
                .secret("bearer_token")
                .assigned()
                .map(|s| s.expose().to_owned()),
            Some("T0KEN".into())
        );
        assert_eq!(resolved.text("method"), Input::Unassigned);
        let masked = serde_json::Value::Object(resolved.masked()).to_string();
        assert!(!masked.contains("T0KEN"), "{masked}");
        assert!(
            masked.contains("sha256:"),
            "a template with a secret is masked too: {masked}"
        );
        let err = resolved.boolean("follow_redirects").unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `follow_redirects` of action `a`: expected true or false, got a string"
        );
    }

    #[test]
    fn an_unset_variable_is_assigned_but_empty() {
        let flow = action();
        let resolved = Resolved::new(&flow.actions["a"], &Variables::default());
        assert_eq!(resolved.text("url"), Input::Assigned("https://x/".into()));
        assert_eq!(
            resolved
                .secret("bearer_token")
                .assigned()
                .map(SecretString::is_empty),
            Some(true)
        );
    }
}
