//! Step conditions written as expressions, in CEL (the Common Expression Language), through the
//! maintained `cel` crate rather than a language of our own. Variables of the run are the
//! expression's variables, e.g. `status == 0 && http_status < 300`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

thread_local! {
    /// CEL's standard functions, built once per thread (building them registers every function
    /// and showed up in profiles when done for every evaluation); each evaluation adds the run's
    /// variables in a scope of its own.
    static STANDARD: cel::Context<'static, 'static> = cel::Context::default();
}

/// A compiled condition.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compiles `source`; the error is CEL's message.
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source).map_err(|err| {
            // CEL prints the source with a caret on following lines; keep the first line.
            let text = err.to_string();
            text.lines()
                .next()
                .unwrap_or("invalid expression")
                .trim_start_matches("ERROR: ")
                .to_owned()
        })?;
        Ok(Self {
            source: source.to_owned(),
            program: Arc::new(program),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the expression reads.
    pub fn variables(&self) -> Vec<String> {
        self.program
            .references()
            .variables()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Evaluates to a boolean; anything else (or an evaluation error) is an error message.
    pub fn evaluate(&self, variables: &BTreeMap<String, Value>) -> Result<bool, String> {
        STANDARD.with(|standard| self.evaluate_in(standard, variables))
    }

    fn evaluate_in(
        &self,
        standard: &cel::Context<'static, 'static>,
        variables: &BTreeMap<String, Value>,
    ) -> Result<bool, String> {
        let mut context = standard.new_inner_scope();
        for name in self.variables() {
            let value = variables.get(&name).cloned().unwrap_or(Value::Null);
            context
                .add_variable(name.clone(), to_cel(&value))
                .map_err(|err| {
                    format!("variable `{name}` cannot be used in an expression: {err}")
                })?;
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!(
                "`{}` evaluated to {other:?}, not a boolean",
                self.source
            )),
            Err(err) => Err(format!("`{}` failed: {err}", self.source)),
        }
    }
}

/// JSON to CEL, with whole numbers as CEL `int` (not `uint`), so `status + 1` and `code == -1`
/// mix freely with integer literals.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(s.clone().into()),
        Value::Array(items) => {
            cel::Value::List(items.iter().map(to_cel).collect::<Vec<_>>().into())
        }
        Value::Object(map) => {
            let map: std::collections::HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn evaluates_over_variables() {
        let expr = Expression::compile("status == 0 && http_status < 300").unwrap();
        let mut names = expr.variables();
        names.sort();
        assert_eq!(names, ["http_status", "status"]);
        let ok = vars(&[("status", 0.into()), ("http_status", 200.into())]);
        assert_eq!(expr.evaluate(&ok), Ok(true));
        let bad = vars(&[("status", 0.into()), ("http_status", 404.into())]);
        assert_eq!(expr.evaluate(&bad), Ok(false));
    }

    #[test]
    fn json_numbers_are_ints_so_arithmetic_and_negative_codes_work() {
        let expr = Expression::compile("status + 1 == 0 && list[0] == 2 && obj.n > 1").unwrap();
        let v = vars(&[
            ("status", (-1).into()),
            ("list", serde_json::json!([2])),
            ("obj", serde_json::json!({"n": 5})),
        ]);
        assert_eq!(expr.evaluate(&v), Ok(true));
    }

    #[test]
    fn json_members_and_strings_work() {
        let expr = Expression::compile("profile.name == 'Alice' && size(token) > 3").unwrap();
        let v = vars(&[
            ("profile", serde_json::json!({"name": "Alice"})),
            ("token", "abcd".into()),
        ]);
        assert_eq!(expr.evaluate(&v), Ok(true));
    }

    #[test]
    fn syntax_errors_and_non_booleans_are_reported() {
        assert!(
            Expression::compile("status ==")
                .unwrap_err()
                .contains("Syntax error")
        );
        let expr = Expression::compile("status + 1").unwrap();
        assert!(
            expr.evaluate(&vars(&[("status", 1.into())]))
                .unwrap_err()
                .contains("not a boolean")
        );
        let expr = Expression::compile("missing.x == 1").unwrap();
        assert!(expr.evaluate(&vars(&[])).unwrap_err().contains("failed"));
    }
}
