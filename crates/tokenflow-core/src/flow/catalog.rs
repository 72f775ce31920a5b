//! The action types a flow may use, with their inputs and outputs (SPEC §5, §12).
//!
//! Names are the seed's in snake_case. An output marked `secret` makes the variable it writes
//! secret automatically; an input marked `secret` is masked in the monitor.

/// How an input's constant is checked, and how a value is handed to the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A string; numbers and booleans written as constants are turned into text.
    Text,
    Bool,
    /// A whole number ≥ 0.
    Int,
    /// Any JSON value (headers, documents).
    Json,
}

/// One input or output of an action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub secret: bool,
}

const fn p(name: &'static str, ty: ParamType) -> Param {
    Param {
        name,
        ty,
        secret: false,
    }
}

const fn secret(name: &'static str) -> Param {
    Param {
        name,
        ty: ParamType::Text,
        secret: true,
    }
}

/// An action type.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionSpec {
    pub kind: &'static str,
    pub inputs: &'static [Param],
    pub outputs: &'static [Param],
    /// Takes the action-level `oauth_server` key.
    pub needs_server: bool,
    /// Needs a person (suspends the run); not allowed in scheduled flows.
    pub interactive: bool,
}

impl ActionSpec {
    /// Whether the action may do I/O or have effects outside the run (token requests, HTTP calls,
    /// the vault, a user login). `start`, `stop` and `extract_json` only compute on the run's
    /// variables, so a crash while they run loses nothing that cannot be recomputed.
    pub fn has_effects(&self) -> bool {
        !matches!(self.kind, "start" | "stop" | "extract_json")
    }

    pub fn input(&self, name: &str) -> Option<&'static Param> {
        self.inputs.iter().find(|param| param.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&'static Param> {
        self.outputs.iter().find(|param| param.name == name)
    }
}

use ParamType::{Bool, Int, Json, Text};

const TOKEN_OUTPUTS: &[Param] = &[
    secret("access_token"),
    p("granted_scopes", Text),
    p("expires_in", Int),
    secret("refresh_token"),
    p("token_type", Text),
    p("status_code", Int),
    p("error", Text),
    p("error_description", Text),
];

/// Every action type, in documentation order.
pub const CATALOG: &[ActionSpec] = &[
    ActionSpec {
        kind: "start",
        inputs: &[],
        outputs: &[],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: "stop",
        inputs: &[],
        outputs: &[],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: "oauth_server_login",
        inputs: &[p("scope", Text)],
        outputs: &[
            secret("access_token"),
            p("expires_in", Int),
            p("token_type", Text),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: "oauth_user_login",
        inputs: &[p("scope", Text), p("use_prompt", Bool)],
        outputs: TOKEN_OUTPUTS,
        needs_server: true,
        interactive: true,
    },
    ActionSpec {
        kind: "oauth_refresh_token",
        inputs: &[secret("refresh_token")],
        outputs: TOKEN_OUTPUTS,
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: "http_connector",
        inputs: &[
            p("url", Text),
            p("method", Text),
            p("headers", Json),
            p("content", Text),
            p("content_type", Text),
            secret("bearer_token"),
            p("timeout", Int),
            p("follow_redirects", Bool),
        ],
        outputs: &[
            p("http_status_code", Int),
            p("headers", Json),
            p("content", Text),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: "vault_store",
        inputs: &[
            p("name", Text),
            secret("access_token"),
            secret("refresh_token"),
            p("expires_in", Int),
            p("granted_scopes", Text),
        ],
        outputs: &[
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: "vault_get_token",
        inputs: &[p("name", Text)],
        outputs: &[
            secret("access_token"),
            p("expires_in", Int),
            p("token_type", Text),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: "extract_json",
        inputs: &[p("json", Json), p("path", Text)],
        outputs: &[
            p("value", Json),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: false,
        interactive: false,
    },
];

/// The action type called `kind`.
pub fn action_spec(kind: &str) -> Option<&'static ActionSpec> {
    CATALOG.iter().find(|spec| spec.kind == kind)
}

/// The names of all action types, for error messages.
pub fn kinds() -> Vec<&'static str> {
    CATALOG.iter().map(|spec| spec.kind).collect()
}
