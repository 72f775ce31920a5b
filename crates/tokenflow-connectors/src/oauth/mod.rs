//! The OAuth 2.0 connectors (docs/connectors.md, Thinkwise's contracts).
//!
//! | file | owns |
//! |---|---|
//! | [`client_auth`] | client authentication at the token endpoint (RFC 6749 §2.3.1) |
//! | [`token_response`] | tolerant parsing of token responses, with warnings (docs/connectors.md) |
//! | [`token_endpoint`] | the three grant requests and their failure classes |
//! | [`revocation`] | token revocation requests (RFC 7009) |
//! | [`token_exchange`] | `oauth_token_exchange`: RFC 8693, Entra on-behalf-of, RFC 7523 JWT bearer (service account keys) |
//! | [`discovery`] | endpoints from `/.well-known/openid-configuration` |
//! | [`authorize`] | the authorization request: `state`, PKCE, `nonce`, `prompt`, redirect URI |
//! | [`id_token`] | the `nonce`/`iss`/`aud` checks of an ID token received from the token endpoint |
//! | [`device`] | `oauth_device_login`: the device authorization grant (RFC 8628) |
//! | [`connectors`] | `oauth_server_login`, `oauth_user_login` (both halves), `oauth_refresh_token`, `oauth_revoke_token` |

pub mod authorize;
pub mod client_auth;
pub mod connectors;
pub mod device;
pub mod discovery;
pub mod id_token;
pub mod outputs;
pub mod random;
pub mod revocation;
pub mod token_endpoint;
pub mod token_exchange;
pub mod token_response;

pub use crate::status::{
    ConnectorStatus, DeviceLoginStatus, RefreshStatus, RevokeStatus, ServerLoginStatus,
    TokenExchangeStatus, UserLoginStatus,
};
pub use authorize::{
    AuthorizationRequest, CallbackParams, PendingAuthorization, resolve_redirect_uri,
};
pub use connectors::OAuthConnectors;
pub use outputs::TokenOutputs;
pub use token_response::{TokenResponse, Warning};
