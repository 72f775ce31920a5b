//! Every connector's status codes, exactly as in Thinkwise's documentation.
//!
//! This file is the only place the numbers are written. `docs/connectors.md` carries the same
//! tables; a test renders them from here and fails when the docs drift.

use std::fmt;

use tokenflow_core::flow::ActionKind;

/// A connector's status: a number (≥ 0 success, < 0 failure) with a fixed meaning.
pub trait ConnectorStatus: Copy + fmt::Debug + PartialEq + Eq + 'static {
    /// The connector's action type.
    const ACTION: ActionKind;
    /// Every status of this connector, in table order.
    const ALL: &'static [Self];
    fn code(self) -> i32;
    /// Thinkwise's wording.
    fn meaning(self) -> &'static str;
    fn is_success(self) -> bool {
        self.code() >= 0
    }
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident, $action:ident, { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $meaning:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl ConnectorStatus for $name {
            const ACTION: ActionKind = ActionKind::$action;
            const ALL: &'static [Self] = &[$($name::$variant,)+];
            fn code(self) -> i32 {
                match self { $($name::$variant => $code,)+ }
            }
            fn meaning(self) -> &'static str {
                match self { $($name::$variant => $meaning,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.code(), self.meaning())
            }
        }
    };
}

status_enum!(
    /// `oauth_server_login` (client credentials).
    ServerLoginStatus, OauthServerLogin, {
    Successful = 0 => "Successful",
    /// Transport error, provider error, unparseable response, non-bearer token type.
    Unknown = -1 => "Unsuccessful (unknown)",
    /// Server unknown, or missing `client_id`, `client_secret` or `token_url`.
    NoConfiguration = -2 => "Unsuccessful (no configuration)",
    /// The effective scope is empty.
    NoScope = -3 => "Unsuccessful (no scope)",
});

status_enum!(
    /// `oauth_user_login` (authorization code). `-4` is not used, as in Thinkwise's documentation.
    UserLoginStatus, OauthUserLogin, {
    Successful = 0 => "Successful",
    Unknown = -1 => "Unsuccessful, cause unknown",
    /// The user cancelled or denied (`error=access_denied`), or never came back in time.
    Aborted = -2 => "Unsuccessful, aborted",
    /// Transport failure, timeout or 5xx at the token endpoint.
    ConnectionError = -3 => "Unsuccessful, connection error with the OAuth server",
    /// `token_type` is not `bearer` (case-insensitive).
    UnsupportedTokenType = -5 => "Unsuccessful, unsupported token type",
});

status_enum!(
    /// `oauth_refresh_token`.
    RefreshStatus, OauthRefreshToken, {
    Successful = 0 => "Successful",
    /// Including `invalid_grant` and a non-bearer token type.
    Unknown = -1 => "Unsuccessful, cause unknown",
    NoServer = -2 => "Unsuccessful, no OAuth server configured",
    InputMissing = -3 => "Unsuccessful, input data is missing",
});

status_enum!(
    /// `oauth_revoke_token` (RFC 7009).
    RevokeStatus, OauthRevokeToken, {
    /// The revocation endpoint answered 200, also for a token it did not know (RFC 7009 §2.2).
    Successful = 0 => "Successful",
    /// The provider refused (`unsupported_token_type`, `invalid_client`, …), answered unusably,
    /// or could not be reached (`connection_error`, `timeout`).
    Unknown = -1 => "Unsuccessful, cause unknown",
    /// Server unknown, or no revocation endpoint configured or discovered.
    NoEndpoint = -2 => "Unsuccessful, no revocation endpoint configured",
    InputMissing = -3 => "Unsuccessful, input data is missing",
});

status_enum!(
    /// `oauth_token_exchange` (RFC 8693 token exchange, Entra on-behalf-of, RFC 7523 JWT bearer).
    TokenExchangeStatus, OauthTokenExchange, {
    Successful = 0 => "Successful",
    /// A provider error (`invalid_grant` for a wrong or expired subject token or assertion), a
    /// transport failure, an unusable answer, an unknown `mode`.
    Unknown = -1 => "Unsuccessful, cause unknown / provider error",
    /// Server unknown, or without `token_url` (and no `issuer` to discover it from).
    NoServer = -2 => "Unsuccessful, no OAuth server configured",
    /// The mode's token or assertion (or the scope of `on_behalf_of`) is missing.
    InputMissing = -3 => "Unsuccessful, input data is missing",
    /// The issued token is not a bearer access token (`token_type` other than `Bearer`).
    UnsupportedTokenType = -5 => "Unsuccessful, token type not supported",
});

status_enum!(
    /// `oauth_device_login` (RFC 8628 device authorization grant).
    DeviceLoginStatus, OauthDeviceLogin, {
    Successful = 0 => "Successful",
    Unknown = -1 => "Unsuccessful, cause unknown",
    /// The person denied the login (`access_denied`).
    Denied = -2 => "Unsuccessful, denied by the user",
    /// Transport failure, timeout or 5xx at the device authorization endpoint.
    ConnectionError = -3 => "Unsuccessful, connection error with the OAuth server",
    /// `expired_token`, or the device code's `expires_in` passed without an answer.
    Expired = -4 => "Unsuccessful, the device code expired",
    /// `token_type` is not `bearer` (case-insensitive).
    UnsupportedTokenType = -5 => "Unsuccessful, unsupported token type",
});

status_enum!(
    /// `http_connector` (Thinkwise's HTTP connector codes; `-5` is not used).
    HttpStatus, HttpConnector, {
    /// A response was received, whatever its HTTP status.
    Successful = 0 => "Successful",
    Unknown = -1 => "Unsuccessful, cause unknown",
    InvalidUrl = -2 => "Unsuccessful, invalid URL",
    InvalidMethod = -3 => "Unsuccessful, invalid HTTP method",
    InvalidHeaders = -4 => "Unsuccessful, invalid headers",
    Timeout = -6 => "Unsuccessful, timeout",
});

status_enum!(
    /// `extract_json` (RFC 9535 JSONPath).
    ExtractJsonStatus, ExtractJson, {
    Found = 0 => "Found",
    NotFound = 1 => "Not found",
    InvalidJson = -1 => "Invalid JSON",
    InvalidPath = -2 => "Invalid path",
    /// The matches together are larger than the run may hold (`run_data_limit`).
    TooLarge = -3 => "Result too large",
});

status_enum!(
    /// `vault_store` (tokenflow's token vault, docs/connectors.md).
    VaultStoreStatus, VaultStore, {
    Successful = 0 => "Successful",
    Unknown = -1 => "Unsuccessful, cause unknown",
    NoServer = -2 => "Unsuccessful, no OAuth server configured",
    InputMissing = -3 => "Unsuccessful, input data is missing",
});

status_enum!(
    /// `vault_get_token` (tokenflow's token vault, docs/connectors.md).
    VaultGetStatus, VaultGetToken, {
    Successful = 0 => "Successful",
    /// Including a refresh that failed for another reason than a revoked grant.
    Unknown = -1 => "Unsuccessful, cause unknown",
    NoServer = -2 => "Unsuccessful, no OAuth server configured",
    NoEntry = -3 => "Unsuccessful, no such vault entry",
    /// `invalid_grant`: a person must sign in again (route to a user login).
    GrantGone = -4 => "Unsuccessful, the grant is gone: sign in again",
});

/// The meaning of `code` for an action type, from the tables above (`None` for other types or
/// codes).
pub fn meaning(action_kind: ActionKind, code: i32) -> Option<&'static str> {
    fn find<S: ConnectorStatus>(code: i32) -> Option<&'static str> {
        S::ALL
            .iter()
            .find(|s| s.code() == code)
            .map(|s| s.meaning())
    }
    match action_kind {
        ActionKind::Start | ActionKind::Stop => None,
        ActionKind::OauthServerLogin => find::<ServerLoginStatus>(code),
        ActionKind::OauthUserLogin => find::<UserLoginStatus>(code),
        ActionKind::OauthRefreshToken => find::<RefreshStatus>(code),
        ActionKind::OauthRevokeToken => find::<RevokeStatus>(code),
        ActionKind::OauthTokenExchange => find::<TokenExchangeStatus>(code),
        ActionKind::HttpConnector => find::<HttpStatus>(code),
        ActionKind::ExtractJson => find::<ExtractJsonStatus>(code),
        ActionKind::VaultStore => find::<VaultStoreStatus>(code),
        ActionKind::VaultGetToken => find::<VaultGetStatus>(code),
        ActionKind::OauthDeviceLogin => find::<DeviceLoginStatus>(code),
    }
}

/// The Markdown table of one connector's codes, as `docs/connectors.md` shows it.
pub fn markdown_table<S: ConnectorStatus>() -> String {
    let mut table = format!("| `{}` status | meaning |\n|---|---|\n", S::ACTION);
    for status in S::ALL {
        table.push_str(&format!("| {} | {} |\n", status.code(), status.meaning()));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_seed() {
        let codes = |all: &[i32]| all.to_vec();
        assert_eq!(
            codes(
                &ServerLoginStatus::ALL
                    .iter()
                    .map(|s| s.code())
                    .collect::<Vec<_>>()
            ),
            [0, -1, -2, -3]
        );
        assert_eq!(
            UserLoginStatus::ALL
                .iter()
                .map(|s| s.code())
                .collect::<Vec<_>>(),
            [0, -1, -2, -3, -5]
        );
        assert_eq!(
            RefreshStatus::ALL
                .iter()
                .map(|s| s.code())
                .collect::<Vec<_>>(),
            [0, -1, -2, -3]
        );
        assert!(UserLoginStatus::Successful.is_success());
        assert!(!UserLoginStatus::Aborted.is_success());
    }

    #[test]
    fn meanings_are_found_by_action_type() {
        assert_eq!(
            meaning(ActionKind::OauthUserLogin, -2),
            Some("Unsuccessful, aborted")
        );
        assert_eq!(
            meaning(ActionKind::HttpConnector, -6),
            Some("Unsuccessful, timeout")
        );
        assert_eq!(
            meaning(ActionKind::OauthUserLogin, -4),
            None,
            "-4 is not used"
        );
        assert_eq!(meaning(ActionKind::Stop, 0), None);
    }

    #[test]
    fn docs_carry_the_same_tables() {
        let docs = include_str!("../../../docs/connectors.md");
        for table in [
            markdown_table::<ServerLoginStatus>(),
            markdown_table::<UserLoginStatus>(),
            markdown_table::<RefreshStatus>(),
            markdown_table::<RevokeStatus>(),
            markdown_table::<TokenExchangeStatus>(),
            markdown_table::<HttpStatus>(),
            markdown_table::<ExtractJsonStatus>(),
            markdown_table::<VaultStoreStatus>(),
            markdown_table::<VaultGetStatus>(),
            markdown_table::<DeviceLoginStatus>(),
        ] {
            assert!(
                docs.contains(&table),
                "docs/connectors.md lacks this table (regenerate it):\n{table}"
            );
        }
    }
}
