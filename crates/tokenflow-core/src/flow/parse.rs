//! The YAML flow format (docs/flows.md), parsed with `serde-saphyr` (YAML 1.2, maintained, with source
//! locations) into raw structs that reject unknown fields, then checked into a [`Flow`].
//!
//! YAML syntax and shape errors stop at the first one (the parser cannot go on); every problem
//! after that — unknown types, inputs, variables, unreachable actions — is collected, so a user sees
//! all of them at once.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::catalog::{ActionKind, ActionSpec, ParamType, action_spec, kinds};
use super::error::{FlowError, FlowProblems, Problems, excerpt};
use super::expr::{Expression, check_bounds};
use super::model::{
    Action, Binding, Condition, DEFAULT_MAX_STEPS, Flow, START, STOP, Step, Template, VariableDecl,
    check_flow_id, is_identifier,
};
use super::validate::check_graph;

/// Largest flow file accepted.
pub const MAX_FLOW_BYTES: usize = 1024 * 1024;

/// What validation may know about its surroundings.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The configured OAuth servers; `None` skips the check. An unknown server is a warning
    /// (docs/flows.md: the action then ends `-2` at run time).
    pub known_servers: Option<BTreeSet<String>>,
    /// The largest `max_steps` a flow may declare (the `max_steps_limit` setting); a flow without
    /// `max_steps` gets the default, lowered to this limit when it is smaller.
    pub max_steps_limit: u32,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            known_servers: None,
            max_steps_limit: crate::limits::DEFAULT_MAX_STEPS_LIMIT,
        }
    }
}

/// A flow that parsed, with warnings that do not stop it.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub flow: Flow,
    pub warnings: Vec<FlowError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    variables: IndexMap<Spanned<String>, Option<RawVariable>>,
    #[serde(default)]
    actions: IndexMap<Spanned<String>, RawAction>,
    #[serde(default)]
    steps: Vec<RawStep>,
    schedule: Option<Spanned<String>>,
    max_steps: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default)]
    secret: bool,
    default: Option<Value>,
    #[serde(default)]
    required: bool,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    oauth_server: Option<Spanned<String>>,
    description: Option<String>,
    #[serde(default)]
    input: IndexMap<Spanned<String>, Spanned<Value>>,
    #[serde(default)]
    output: IndexMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    from: Spanned<String>,
    to: Spanned<String>,
    when: Option<Spanned<String>>,
}

/// Parses and validates one flow file. `file` names it in messages.
pub fn parse_flow(file: &str, text: &str, options: &ParseOptions) -> Result<Parsed, FlowProblems> {
    let mut problems = Problems::new(file);
    if text.len() > MAX_FLOW_BYTES {
        problems.error(
            Location::UNKNOWN,
            format!("the flow is larger than {MAX_FLOW_BYTES} bytes"),
        );
        return Err(FlowProblems(problems.errors));
    }
    let raw: RawFlow = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            let location = err.location().unwrap_or(Location::UNKNOWN);
            problems.error(location, first_line(&err.to_string()));
            return Err(FlowProblems(problems.errors));
        }
    };
    let flow = check(raw, text, &mut problems, options);
    if problems.errors.is_empty() {
        Ok(Parsed {
            flow,
            warnings: problems.warnings,
        })
    } else {
        Err(FlowProblems(problems.errors))
    }
}

/// serde-saphyr's message is `error: line L column C: text` followed by a source snippet.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.find(": ") {
        Some(pos) if line.starts_with("line ") => line[pos + 2..].to_owned(),
        _ => line.to_owned(),
    }
}

fn check(raw: RawFlow, text: &str, problems: &mut Problems<'_>, options: &ParseOptions) -> Flow {
    let id = raw.id.value.clone();
    if let Err(message) = check_flow_id(&id) {
        problems.error(raw.id.referenced, message);
    }

    let mut variables = IndexMap::new();
    for (name, decl) in raw.variables {
        if !is_identifier(&name.value) {
            problems.error(
                name.referenced,
                format!(
                    "`{}` is not a valid variable name (letters, digits, `_`)",
                    name.value
                ),
            );
        }
        let decl = decl.map_or_else(VariableDecl::default, |raw| VariableDecl {
            secret: raw.secret,
            default: raw.default,
            required: raw.required,
            description: raw.description,
        });
        variables.insert(name.value, decl);
    }

    let default_max_steps = DEFAULT_MAX_STEPS.min(options.max_steps_limit.max(1));
    let max_steps = match raw.max_steps {
        Some(spanned) if spanned.value == 0 => {
            problems.error(spanned.referenced, "max_steps must be at least 1");
            default_max_steps
        }
        Some(spanned) if spanned.value > options.max_steps_limit => {
            problems.error(
                spanned.referenced,
                format!(
                    "max_steps {} is above the limit of {} (the server's `max_steps_limit`)",
                    spanned.value, options.max_steps_limit
                ),
            );
            default_max_steps
        }
        Some(spanned) => spanned.value,
        None => default_max_steps,
    };
    let schedule = raw.schedule.inspect(|spanned| {
        if let Err(message) = spanned.value.parse::<super::schedule::Schedule>() {
            problems.error(
                spanned.referenced,
                format!("invalid schedule `{}`: {message}", excerpt(&spanned.value)),
            );
        }
    });

    let mut actions = IndexMap::new();
    let mut action_locations = BTreeMap::new();
    for (name, raw_action) in raw.actions {
        if name.value == START || name.value == STOP {
            problems.error(
                name.referenced,
                format!(
                    "`{}` is implicit and cannot be declared as an action",
                    name.value
                ),
            );
            continue;
        }
        if !is_identifier(&name.value) {
            problems.error(
                name.referenced,
                format!(
                    "`{}` is not a valid action name (letters, digits, `_`)",
                    name.value
                ),
            );
        }
        action_locations.insert(name.value.clone(), name.referenced);
        if let Some(action) =
            check_action(&name.value, raw_action, &mut variables, problems, options)
        {
            if let Some(schedule) = &schedule
                && action.spec.interactive
            {
                problems.error(
                    name.referenced,
                    format!(
                        "`{}` is an {} action, which needs a person: a flow with a schedule (`{}`) must be a system flow",
                        name.value,
                        action.spec.kind,
                        excerpt(&schedule.value)
                    ),
                );
            }
            actions.insert(name.value, action);
        }
    }

    let mut steps = Vec::new();
    for raw_step in raw.steps {
        let known = |node: &str| actions.contains_key(node) || action_locations.contains_key(node);
        if raw_step.from.value == STOP {
            problems.error(raw_step.from.referenced, "a step cannot leave `stop`");
        } else if raw_step.from.value != START && !known(&raw_step.from.value) {
            problems.error(
                raw_step.from.referenced,
                format!("step from unknown action `{}`", raw_step.from.value),
            );
        }
        if raw_step.to.value == START {
            problems.error(raw_step.to.referenced, "a step cannot lead back to `start`");
        } else if raw_step.to.value != STOP && !known(&raw_step.to.value) {
            problems.error(
                raw_step.to.referenced,
                format!("step to unknown action `{}`", raw_step.to.value),
            );
        }
        let when = match &raw_step.when {
            None => Condition::Always,
            Some(when) => match when.value.trim() {
                "always" => Condition::Always,
                "successful" => Condition::Successful,
                "not_successful" => Condition::NotSuccessful,
                source => match Expression::compile(source) {
                    Ok(expr) => {
                        for var in expr.variables() {
                            if !variables.contains_key(&var) {
                                problems.error(
                                    when.referenced,
                                    format!("unknown variable `{var}` in condition"),
                                );
                            }
                        }
                        Condition::Expr(expr)
                    }
                    Err(message) => {
                        problems.error(when.referenced, format!("invalid condition: {message}"));
                        Condition::Always
                    }
                },
            },
        };
        steps.push((
            Step {
                from: raw_step.from.value.clone(),
                to: raw_step.to.value.clone(),
                when,
            },
            raw_step.from.referenced,
        ));
    }

    let flow = Flow {
        id,
        description: raw.description,
        variables,
        actions,
        steps: steps.iter().map(|(step, _)| step.clone()).collect(),
        schedule: schedule.map(|s| s.value),
        max_steps,
        source: text.to_owned(),
    };
    if problems.errors.is_empty() {
        check_graph(&flow, &action_locations, raw.id.referenced, problems);
    }
    flow
}

fn check_action(
    name: &str,
    raw: RawAction,
    variables: &mut IndexMap<String, VariableDecl>,
    problems: &mut Problems<'_>,
    options: &ParseOptions,
) -> Option<Action> {
    let Some(spec) = action_spec(&raw.kind.value) else {
        problems.error(
            raw.kind.referenced,
            format!(
                "unknown action type `{}` (known: {})",
                raw.kind.value,
                kinds().join(", ")
            ),
        );
        return None;
    };
    if spec.kind == ActionKind::Start {
        problems.error(
            raw.kind.referenced,
            "only the implicit `start` has type start",
        );
    }
    let _ = raw.description;
    let oauth_server = match (&raw.oauth_server, spec.needs_server) {
        (Some(server), true) => {
            if let Some(known) = &options.known_servers
                && !known.contains(&server.value)
            {
                problems.warning(
                    server.referenced,
                    format!(
                        "OAuth server `{}` is not configured; this action will end with -2",
                        server.value
                    ),
                );
            }
            Some(server.value.clone())
        }
        (None, true) => {
            problems.error(
                raw.kind.referenced,
                format!("`{name}` ({}) needs `oauth_server`", spec.kind),
            );
            None
        }
        (Some(server), false) => {
            problems.error(
                server.referenced,
                format!("`{}` actions do not take `oauth_server`", spec.kind),
            );
            None
        }
        (None, false) => None,
    };

    let mut inputs = BTreeMap::new();
    for (key, value) in raw.input {
        let Some(param) = spec.input(&key.value) else {
            problems.error(
                key.referenced,
                unknown_param("input", &key.value, spec, true),
            );
            continue;
        };
        // A JSONPath written in the flow is bounded like a condition (the connector checks one
        // that comes from a variable when the action runs).
        if spec.kind == ActionKind::ExtractJson
            && param.name == "path"
            && let Value::String(path) = &value.value
            && let Err(message) = check_bounds("the JSONPath", path, false)
        {
            problems.error(value.referenced, message);
            continue;
        }
        // `retry` and `paginate` written as constants are checked here (docs/connectors.md); one
        // that comes from a variable is checked when the action runs.
        if spec.kind == ActionKind::HttpConnector
            && let Err(message) = check_http_option(param.name, &value.value)
        {
            problems.error(value.referenced, message);
            continue;
        }
        if param.ty == ParamType::Auth {
            if let Some(binding) = auth_binding(value, variables, problems, options) {
                inputs.insert(param.name, binding);
            }
            continue;
        }
        if param.ty == ParamType::ClientCertificate {
            if let Some(binding) = client_certificate_binding(value, variables, problems) {
                inputs.insert(param.name, binding);
            }
            continue;
        }
        if let Some(binding) = binding(param.ty, value, variables, problems) {
            inputs.insert(param.name, binding);
        }
    }

    let mut outputs = Vec::new();
    for (key, variable) in raw.output {
        let Some(param) = spec.output(&key.value) else {
            problems.error(
                key.referenced,
                unknown_param("output", &key.value, spec, false),
            );
            continue;
        };
        match variables.get_mut(&variable.value) {
            Some(decl) => {
                // docs/flows.md: a variable that receives a token or a secret is secret automatically.
                decl.secret |= param.secret;
                outputs.push((param.name, variable.value));
            }
            None => problems.error(
                variable.referenced,
                format!(
                    "unknown variable `{}` (declare it under `variables`)",
                    variable.value
                ),
            ),
        }
    }

    Some(Action {
        id: name.to_owned(),
        spec,
        oauth_server,
        inputs,
        outputs,
    })
}

fn unknown_param(what: &str, name: &str, spec: &ActionSpec, input: bool) -> String {
    let params = if input { spec.inputs } else { spec.outputs };
    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
    let known = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    format!("unknown {what} `{name}` for {} (known: {known})", spec.kind)
}

fn binding(
    ty: ParamType,
    value: Spanned<Value>,
    variables: &IndexMap<String, VariableDecl>,
    problems: &mut Problems<'_>,
) -> Option<Binding> {
    let at = value.referenced;
    let check_var = |name: &str, problems: &mut Problems<'_>| {
        if !variables.contains_key(name) {
            problems.error(
                at,
                format!("unknown variable `{name}` (declare it under `variables`)"),
            );
        }
    };
    match value.value {
        Value::Object(map) if map.len() == 1 && map.contains_key("var") => match map.get("var") {
            Some(Value::String(name)) => {
                check_var(name, problems);
                Some(Binding::Var(name.clone()))
            }
            _ => {
                problems.error(at, "`var` must name a variable");
                None
            }
        },
        Value::String(text) => match Template::parse(&text) {
            Some(template) if ty != ParamType::Bool && ty != ParamType::Int => {
                if let Err(message) = template.check_bounds(&text) {
                    problems.error(at, message);
                    return None;
                }
                for name in template.variables() {
                    check_var(name, problems);
                }
                Some(Binding::Template(template))
            }
            _ => constant(ty, Value::String(text), at, problems),
        },
        other => constant(ty, other, at, problems),
    }
}

/// `http_connector`'s `auth` (docs/connectors.md): `{ var: name }` is read when the action runs;
/// an object is checked here, kind and fields, and each field becomes a binding of its own.
fn auth_binding(
    value: Spanned<Value>,
    variables: &IndexMap<String, VariableDecl>,
    problems: &mut Problems<'_>,
    options: &ParseOptions,
) -> Option<Binding> {
    let at = value.referenced;
    if is_var(&value.value) {
        return binding(ParamType::Json, value, variables, problems);
    }
    let is_leaf = |leaf: &Value| {
        matches!(leaf, Value::String(_) | Value::Number(_) | Value::Bool(_)) || is_var(leaf)
    };
    if let Err(message) = super::auth::check_shape(&value.value, &is_leaf) {
        problems.error(at, message);
        return None;
    }
    if let Some(Value::String(server)) = value.value.get("oauth_server")
        && Template::parse(server).is_none()
        && let Some(known) = &options.known_servers
        && !known.contains(server.trim())
    {
        problems.warning(
            at,
            format!(
                "OAuth server `{}` is not configured; this action will end with -4",
                server.trim()
            ),
        );
    }
    members(value.value, at, variables, problems)
}

/// An object of constants, `{ var: name }` and templates as a binding of its members.
fn members(
    value: Value,
    at: Location,
    variables: &IndexMap<String, VariableDecl>,
    problems: &mut Problems<'_>,
) -> Option<Binding> {
    match value {
        Value::Object(map) if !(map.len() == 1 && map.contains_key("var")) => {
            let mut out = BTreeMap::new();
            for (name, member) in map {
                out.insert(name, members(member, at, variables, problems)?);
            }
            Some(Binding::Object(out))
        }
        leaf => binding(
            ParamType::Text,
            Spanned {
                value: leaf,
                referenced: at,
                defined: at,
            },
            variables,
            problems,
        ),
    }
}

/// `client_certificate`: `{ var: name }` (the whole object), or `{ certificate, private_key }` or
/// `{ pkcs12, pkcs12_password }` with leaves (docs/connectors.md).
fn client_certificate_binding(
    value: Spanned<Value>,
    variables: &IndexMap<String, VariableDecl>,
    problems: &mut Problems<'_>,
) -> Option<Binding> {
    let at = value.referenced;
    if is_var(&value.value) {
        return binding(ParamType::Json, value, variables, problems);
    }
    let is_leaf = |leaf: &Value| matches!(leaf, Value::String(_)) || is_var(leaf);
    if let Err(message) = super::client_certificate::check_shape(&value.value, &is_leaf) {
        problems.error(at, message);
        return None;
    }
    members(value.value, at, variables, problems)
}

/// `http_connector`'s `retry` or `paginate` given as a constant object: read as it will be run.
fn check_http_option(name: &str, value: &Value) -> Result<(), String> {
    use super::http_options::{Paginate, Retry};
    match name {
        _ if is_var(value) || value.is_string() => Ok(()),
        "retry" => Retry::from_value(value).map(|_| ()),
        "paginate" => Paginate::from_value(value).map(|_| ()),
        _ => Ok(()),
    }
}

fn is_var(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.len() == 1 && map.contains_key("var"))
}

fn constant(
    ty: ParamType,
    value: Value,
    at: Location,
    problems: &mut Problems<'_>,
) -> Option<Binding> {
    let ok = match (ty, &value) {
        (ParamType::Json | ParamType::Auth | ParamType::ClientCertificate, _)
        | (ParamType::Bool, Value::Bool(_))
        | (ParamType::Text, Value::String(_)) => Some(value.clone()),
        (ParamType::Int, Value::Number(n)) if n.is_u64() => Some(value.clone()),
        (ParamType::Text, Value::Number(n)) => Some(Value::String(n.to_string())),
        (ParamType::Text, Value::Bool(b)) => Some(Value::String(b.to_string())),
        _ => None,
    };
    if ok.is_none() {
        let expected = match ty {
            ParamType::Text => "a string",
            ParamType::Bool => "true or false",
            ParamType::Int => "a whole number",
            ParamType::Json | ParamType::Auth | ParamType::ClientCertificate => "a JSON value",
        };
        problems.error(
            at,
            format!("expected {expected} or {{ var: name }}, found {value}"),
        );
    }
    ok.map(Binding::Const)
}
