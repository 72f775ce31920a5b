//! Process flows (docs/flows.md): the catalogue of action types, the flow model, the YAML format and
//! its validation.
//!
//! A flow is parsed and validated in one pass that collects *every* problem, each with the file,
//! line and column it comes from (`tokenflow flows validate` prints them all). The model keeps an
//! unassigned input apart from one assigned an empty value (docs/connectors.md): an input that is absent from
//! [`Action::inputs`] is unassigned.

pub mod auth;
pub mod catalog;
pub mod client_certificate;
pub mod error;
pub mod expr;
pub mod http_options;
pub mod model;
pub mod parse;
pub mod schedule;
mod validate;

pub use catalog::{ActionKind, ActionSpec, Param, ParamType, action_spec};
pub use error::{FlowError, FlowProblems, excerpt};
pub use expr::{
    Expression, MAX_COMPREHENSION_NESTING, MAX_EXPRESSION_BYTES, MAX_EXPRESSION_NESTING,
    MAX_EXPRESSION_OPERATORS, check_bounds,
};
pub use model::{
    Action, Binding, Condition, Flow, MAX_FLOW_ID_CHARS, START, STOP, Step, Template, VariableDecl,
    check_flow_id,
};
pub use parse::{ParseOptions, parse_flow};
pub use schedule::Schedule;
