//! The validated flow model.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::catalog::ActionSpec;
use super::expr::Expression;

/// The implicit first node of every flow.
pub const START: &str = "start";
/// The implicit last node of every flow.
pub const STOP: &str = "stop";

/// A validated process flow.
#[derive(Debug, Clone)]
pub struct Flow {
    pub id: String,
    pub description: Option<String>,
    pub variables: IndexMap<String, VariableDecl>,
    /// In file order.
    pub actions: IndexMap<String, Action>,
    /// In file order: the first step whose condition holds is taken.
    pub steps: Vec<Step>,
    pub schedule: Option<String>,
    pub max_steps: u32,
    /// The YAML it was parsed from, as written.
    pub source: String,
}

/// Default limit on executed actions per run (docs/flows.md).
pub const DEFAULT_MAX_STEPS: u32 = 1000;

impl Flow {
    /// Whether every action can run without a person (docs/flows.md: a *system flow*).
    pub fn is_system_flow(&self) -> bool {
        self.actions.values().all(|action| !action.spec.interactive)
    }

    /// The steps leaving `node`, in file order.
    pub fn steps_from<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Step> + 'a {
        self.steps.iter().filter(move |step| step.from == node)
    }

    /// Whether the variable is secret (declared so, or written by a secret output).
    pub fn is_secret(&self, variable: &str) -> bool {
        self.variables.get(variable).is_some_and(|decl| decl.secret)
    }

    /// Variables that must be given when a run starts.
    pub fn required_inputs(&self) -> Vec<&str> {
        self.variables
            .iter()
            .filter(|(_, decl)| decl.required && decl.default.is_none())
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// A declared variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariableDecl {
    /// Masked in the monitor and API, encrypted at rest.
    pub secret: bool,
    pub default: Option<Value>,
    /// Must be given as an input when a run starts.
    pub required: bool,
    pub description: Option<String>,
}

/// One action of a flow.
#[derive(Debug, Clone)]
pub struct Action {
    pub id: String,
    pub spec: &'static ActionSpec,
    pub oauth_server: Option<String>,
    /// Assigned inputs by name; an input that is absent is *unassigned*.
    pub inputs: BTreeMap<&'static str, Binding>,
    /// (output name, variable it writes), in file order.
    pub outputs: Vec<(&'static str, String)>,
}

/// How an assigned input gets its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    Const(Value),
    /// `{ var: name }`: the variable's value, of any JSON type.
    Var(String),
    /// A string with `{name}` placeholders.
    Template(Template),
    /// An object whose members are bindings of their own (`http_connector`'s `auth`).
    Object(BTreeMap<String, Binding>),
}

impl Binding {
    /// The variables this binding reads.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            Binding::Const(_) => Vec::new(),
            Binding::Var(name) => vec![name.as_str()],
            Binding::Template(template) => template.variables(),
            Binding::Object(members) => members.values().flat_map(Binding::variables).collect(),
        }
    }
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Var(String),
}

/// A string with `{name}` placeholders; `{{` and `}}` stand for literal braces. Braces around
/// anything that is not a variable name (e.g. JSON like `{"a":1}`) are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// Splits `text` into parts; `None` when it has no placeholder (then it is a constant). One
    /// pass: after a `{` only the identifier that may follow is looked at, so text full of braces
    /// (JSON, or a hostile flow) costs linear time.
    pub fn parse(text: &str) -> Option<Template> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut any_var = false;
        while let Some(pos) = rest.find(['{', '}']) {
            literal.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            let name_len = tail[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len() - 1);
            let end = 1 + name_len;
            if tail.starts_with('{') && tail[end..].starts_with('}') && is_identifier(&tail[1..end])
            {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(tail[1..end].to_owned()));
                any_var = true;
                rest = &tail[end + 1..];
                continue;
            }
            literal.push_str(&tail[..1]);
            rest = &tail[1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        any_var.then_some(Template { parts })
    }

    pub fn variables(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Var(name) => Some(name.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// Renders with `lookup` giving each variable's text.
    pub fn render(&self, mut lookup: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => out.push_str(&lookup(name)),
            }
        }
        out
    }
}

/// Longest template (a string input with `{name}` placeholders) accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Most placeholders in one template.
pub const MAX_TEMPLATE_PLACEHOLDERS: usize = 256;

impl Template {
    /// The template limits; the error names the limit.
    pub fn check_bounds(&self, text: &str) -> Result<(), String> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "the template is {} bytes long; at most {MAX_TEMPLATE_BYTES} bytes are allowed",
                text.len()
            ));
        }
        let placeholders = self.variables().len();
        if placeholders > MAX_TEMPLATE_PLACEHOLDERS {
            return Err(format!(
                "the template has {placeholders} placeholders; at most {MAX_TEMPLATE_PLACEHOLDERS} are allowed"
            ));
        }
        Ok(())
    }
}

/// Longest flow id accepted, in characters.
pub const MAX_FLOW_ID_CHARS: usize = 128;

/// The one check of a flow id, wherever one is accepted (a flow file's `id:`, the API's URL):
/// 1–128 letters, digits, `-`, `_` and `.`, and not `.` or `..`, which name no flow but a
/// directory in paths and URLs, and not one of [`RESERVED_FLOW_IDS`].
pub fn check_flow_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the flow id is empty".to_owned());
    }
    let chars = id.chars().count();
    if chars > MAX_FLOW_ID_CHARS {
        return Err(format!(
            "the flow id is {chars} characters long; at most {MAX_FLOW_ID_CHARS} are allowed"
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("the flow id must use only letters, digits, `-`, `_` and `.`".to_owned());
    }
    if id == "." || id == ".." {
        return Err(format!(
            "the flow id cannot be `{id}` (it names a directory, not a flow)"
        ));
    }
    if RESERVED_FLOW_IDS.contains(&id) {
        return Err(format!(
            "the flow id cannot be `{id}` (`/flows/{id}` is the flow editor's own address)"
        ));
    }
    Ok(())
}

/// Flow ids that name the flow editor's pages and endpoints (`/flows/new`, `/flows/validate`,
/// `/api/flows/validate`, docs/flows.md), so no flow may take them.
pub const RESERVED_FLOW_IDS: [&str; 2] = ["new", "validate"];

/// `[A-Za-z_][A-Za-z0-9_]*`: variable and action names, usable in placeholders and expressions.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An arrow from one node to the next.
#[derive(Debug, Clone)]
pub struct Step {
    pub from: String,
    pub to: String,
    pub when: Condition,
}

/// When a step is taken (docs/flows.md).
#[derive(Debug, Clone)]
pub enum Condition {
    /// The default.
    Always,
    /// The action's status code is ≥ 0.
    Successful,
    /// The action's status code is < 0.
    NotSuccessful,
    Expr(Expression),
}

impl Condition {
    /// The flow-file spelling.
    pub fn label(&self) -> &str {
        match self {
            Condition::Always => "always",
            Condition::Successful => "successful",
            Condition::NotSuccessful => "not_successful",
            Condition::Expr(expr) => expr.source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_find_placeholders_and_keep_json_braces() {
        let t = Template::parse("https://graph/{user}/x?q={{lit}}").unwrap();
        assert_eq!(t.variables(), ["user"]);
        assert_eq!(
            t.render(|_| "alice".into()),
            "https://graph/alice/x?q={lit}"
        );
        assert!(
            Template::parse(r#"{"a":1}"#).is_none(),
            "JSON is a constant"
        );
        assert!(Template::parse("plain").is_none());
        let t = Template::parse(r#"{"user":"{name}"}"#).unwrap();
        assert_eq!(t.render(|_| "bob".into()), r#"{"user":"bob"}"#);
    }

    #[test]
    fn templates_of_braces_parse_in_one_pass() {
        let text = "{".repeat(200_000);
        assert!(Template::parse(&text).is_none());
        let t = Template::parse("{a}{{b}}{c").unwrap();
        assert_eq!(t.variables(), ["a"]);
        assert_eq!(t.render(|_| "x".into()), "x{b}{c");
        assert_eq!(Template::parse("{a-b}{ok}").unwrap().variables(), ["ok"]);
    }

    #[test]
    fn flow_ids_are_bounded_and_dot_names_are_refused() {
        assert!(check_flow_id("graph_me.v2").is_ok());
        assert!(check_flow_id(&"a".repeat(MAX_FLOW_ID_CHARS)).is_ok());
        let long = check_flow_id(&"a".repeat(MAX_FLOW_ID_CHARS + 1)).unwrap_err();
        assert!(long.contains("at most 128"), "{long}");
        for dots in [".", ".."] {
            assert!(
                check_flow_id(dots)
                    .unwrap_err()
                    .contains("names a directory")
            );
        }
        assert!(check_flow_id("").is_err());
        assert!(check_flow_id("a/b").is_err());
        for reserved in RESERVED_FLOW_IDS {
            assert!(check_flow_id(reserved).unwrap_err().contains("editor"));
        }
        assert!(check_flow_id("new-flow").is_ok());
        assert!(
            check_flow_id("...").is_ok(),
            "only `.` and `..` are special"
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("access_token") && is_identifier("_x1"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier(""));
    }
}
