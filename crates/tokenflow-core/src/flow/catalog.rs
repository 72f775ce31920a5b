//! The action types a flow may use, with their inputs and outputs (docs/connectors.md, docs/flows.md).
//!
//! Names are Thinkwise's in snake_case. An output marked `secret` makes the variable it writes
//! secret automatically; an input marked `secret` is masked in the monitor.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// `http_connector`'s `auth` object ([`super::auth`]): its fields are constants, variables or
    /// templates; its secret parts are masked in the monitor.
    Auth,
    /// `http_connector`'s `client_certificate` object: `{ certificate, private_key }` or
    /// `{ pkcs12, pkcs12_password }`, each a constant, variable or template; masked as a whole.
    ClientCertificate,
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

/// The type of an action, as flow files name it (`type:`) in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Start,
    Stop,
    OauthServerLogin,
    OauthUserLogin,
    OauthRefreshToken,
    OauthRevokeToken,
    OauthTokenExchange,
    HttpConnector,
    VaultStore,
    VaultGetToken,
    ExtractJson,
    OauthDeviceLogin,
}

impl ActionKind {
    /// Every action type, in documentation order.
    pub const ALL: &'static [ActionKind] = &[
        ActionKind::Start,
        ActionKind::Stop,
        ActionKind::OauthServerLogin,
        ActionKind::OauthUserLogin,
        ActionKind::OauthRefreshToken,
        ActionKind::OauthRevokeToken,
        ActionKind::OauthTokenExchange,
        ActionKind::HttpConnector,
        ActionKind::VaultStore,
        ActionKind::VaultGetToken,
        ActionKind::ExtractJson,
        ActionKind::OauthDeviceLogin,
    ];

    /// The name flow files use.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Start => "start",
            ActionKind::Stop => "stop",
            ActionKind::OauthServerLogin => "oauth_server_login",
            ActionKind::OauthUserLogin => "oauth_user_login",
            ActionKind::OauthRefreshToken => "oauth_refresh_token",
            ActionKind::OauthRevokeToken => "oauth_revoke_token",
            ActionKind::OauthTokenExchange => "oauth_token_exchange",
            ActionKind::HttpConnector => "http_connector",
            ActionKind::VaultStore => "vault_store",
            ActionKind::VaultGetToken => "vault_get_token",
            ActionKind::ExtractJson => "extract_json",
            ActionKind::OauthDeviceLogin => "oauth_device_login",
        }
    }

    /// The action type a flow file calls `name`.
    pub fn parse(name: &str) -> Option<ActionKind> {
        ActionKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
    }

    /// Whether the action may do I/O or have effects outside the run (token requests, HTTP calls,
    /// the vault, a user login). `start`, `stop` and `extract_json` only compute on the run's
    /// variables, so a crash while they run loses nothing that cannot be recomputed.
    pub fn has_effects(self) -> bool {
        match self {
            ActionKind::Start | ActionKind::Stop | ActionKind::ExtractJson => false,
            ActionKind::OauthServerLogin
            | ActionKind::OauthUserLogin
            | ActionKind::OauthRefreshToken
            | ActionKind::OauthRevokeToken
            | ActionKind::OauthTokenExchange
            | ActionKind::HttpConnector
            | ActionKind::VaultStore
            | ActionKind::VaultGetToken
            | ActionKind::OauthDeviceLogin => true,
        }
    }

    /// Whether running the action again, or dying while it runs, does no harm and leaves
    /// nothing outside the run to account for: the actions without effects, and
    /// `oauth_server_login` (a client-credentials token request changes no resource, RFC 6749
    /// §4.4; a token left unused expires). A new run is first written before its first action
    /// that is not repeatable (docs/flows.md, "Durability").
    pub fn is_repeatable(self) -> bool {
        match self {
            ActionKind::Start
            | ActionKind::Stop
            | ActionKind::ExtractJson
            | ActionKind::OauthServerLogin => true,
            ActionKind::OauthUserLogin
            | ActionKind::OauthRefreshToken
            | ActionKind::OauthRevokeToken
            | ActionKind::OauthTokenExchange
            | ActionKind::HttpConnector
            | ActionKind::VaultStore
            | ActionKind::VaultGetToken
            | ActionKind::OauthDeviceLogin => false,
        }
    }

    /// The action's specification in [`CATALOG`].
    pub fn spec(self) -> &'static ActionSpec {
        match self {
            ActionKind::Start => &CATALOG[0],
            ActionKind::Stop => &CATALOG[1],
            ActionKind::OauthServerLogin => &CATALOG[2],
            ActionKind::OauthUserLogin => &CATALOG[3],
            ActionKind::OauthRefreshToken => &CATALOG[4],
            ActionKind::OauthRevokeToken => &CATALOG[5],
            ActionKind::HttpConnector => &CATALOG[6],
            ActionKind::VaultStore => &CATALOG[7],
            ActionKind::VaultGetToken => &CATALOG[8],
            ActionKind::ExtractJson => &CATALOG[9],
            ActionKind::OauthTokenExchange => &CATALOG[10],
            ActionKind::OauthDeviceLogin => &CATALOG[11],
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An action type.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionSpec {
    pub kind: ActionKind,
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
        self.kind.has_effects()
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
    p("response_fields", Json),
    p("status_code", Int),
    p("error", Text),
    p("error_description", Text),
];

/// Every action type, in documentation order.
pub const CATALOG: &[ActionSpec] = &[
    ActionSpec {
        kind: ActionKind::Start,
        inputs: &[],
        outputs: &[],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::Stop,
        inputs: &[],
        outputs: &[],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::OauthServerLogin,
        inputs: &[p("scope", Text), p("resource", Text)],
        outputs: &[
            secret("access_token"),
            p("expires_in", Int),
            p("token_type", Text),
            p("response_fields", Json),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::OauthUserLogin,
        inputs: &[p("scope", Text), p("use_prompt", Bool), p("resource", Text)],
        outputs: TOKEN_OUTPUTS,
        needs_server: true,
        interactive: true,
    },
    ActionSpec {
        kind: ActionKind::OauthRefreshToken,
        inputs: &[secret("refresh_token"), p("resource", Text)],
        outputs: TOKEN_OUTPUTS,
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::OauthRevokeToken,
        inputs: &[secret("token"), p("token_type_hint", Text)],
        outputs: &[
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::HttpConnector,
        inputs: &[
            p("url", Text),
            p("method", Text),
            p("headers", Json),
            p("content", Text),
            p("content_type", Text),
            secret("bearer_token"),
            Param {
                name: "auth",
                ty: ParamType::Auth,
                secret: true,
            },
            p("timeout", Int),
            p("follow_redirects", Bool),
            Param {
                name: "client_certificate",
                ty: ParamType::ClientCertificate,
                secret: true,
            },
            p("retry", Json),
            p("paginate", Json),
        ],
        outputs: &[
            p("http_status_code", Int),
            p("headers", Json),
            p("content", Text),
            p("attempts", Int),
            p("pages", Int),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: false,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::VaultStore,
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
        kind: ActionKind::VaultGetToken,
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
        kind: ActionKind::ExtractJson,
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
    ActionSpec {
        kind: ActionKind::OauthTokenExchange,
        inputs: &[
            p("mode", Text),
            secret("subject_token"),
            p("subject_token_type", Text),
            secret("actor_token"),
            p("actor_token_type", Text),
            p("audience", Text),
            p("resource", Text),
            p("scope", Text),
            p("requested_token_type", Text),
            secret("assertion"),
        ],
        outputs: &[
            secret("access_token"),
            p("issued_token_type", Text),
            p("expires_in", Int),
            p("token_type", Text),
            secret("refresh_token"),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: false,
    },
    ActionSpec {
        kind: ActionKind::OauthDeviceLogin,
        inputs: &[p("scope", Text)],
        outputs: &[
            secret("access_token"),
            secret("refresh_token"),
            p("expires_in", Int),
            p("token_type", Text),
            p("granted_scopes", Text),
            p("user_code", Text),
            p("verification_uri", Text),
            p("verification_uri_complete", Text),
            p("status_code", Int),
            p("error", Text),
            p("error_description", Text),
        ],
        needs_server: true,
        interactive: true,
    },
];

/// The action type called `kind`.
pub fn action_spec(kind: &str) -> Option<&'static ActionSpec> {
    ActionKind::parse(kind).map(ActionKind::spec)
}

/// The names of all action types, for error messages.
pub fn kinds() -> Vec<&'static str> {
    ActionKind::ALL.iter().map(|kind| kind.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_kind_has_its_own_spec_and_name() {
        for kind in ActionKind::ALL {
            assert_eq!(kind.spec().kind, *kind, "{kind}");
            assert_eq!(ActionKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
        assert_eq!(CATALOG.len(), ActionKind::ALL.len());
        assert_eq!(ActionKind::parse("oauth"), None);
    }

    #[test]
    fn only_actions_that_compute_on_variables_have_no_effects() {
        let without: Vec<_> = ActionKind::ALL
            .iter()
            .filter(|kind| !kind.has_effects())
            .map(|kind| kind.as_str())
            .collect();
        assert_eq!(without, ["start", "stop", "extract_json"]);
    }
}
