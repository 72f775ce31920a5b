//! tokenflow's domain model, shared by every other crate. No IO lives here.
//!
//! - [`secret`]: values that must never be printed, logged or returned (tokens, client secrets).
//! - [`input`]: action inputs that keep *unassigned* apart from *assigned but empty* (docs/connectors.md).
//! - [`oauth_server`]: the OAuth server configuration of docs/connectors.md, its defaults and validation.
//! - [`providers`]: the provider catalogue (`providers.toml`): presets and provider quirks.
//! - [`client_key`]: the private key of `private_key_jwt` client authentication.
//! - [`service_account`]: a Google-style service account key, the JWT bearer grant's credential.
//! - [`client_cert`]: client certificates for mutual TLS and extra trusted CAs (`tls_ca`).
//! - [`pkcs12`]: the key and certificates inside a PKCS#12 file.
//! - [`clock`]: injected time, so tests control expiry.
//! - [`flow`]: process flows: the action catalogue, the YAML format, validation with file/line/column.
//! - [`line_diff`]: a bounded line diff of two texts (two versions of a flow).
//! - [`limits`]: the bounds on what one run may hold.
//! - [`status`]: the life states of a run and of a vault entry.
//! - [`token_life`]: when a cached or stored access token is due for renewal.

pub mod client_cert;
pub mod client_key;
pub mod clock;
mod der;
pub mod flow;
pub mod input;
pub mod limits;
pub mod line_diff;
pub mod oauth_server;
pub mod pkcs12;
pub mod provider_quirks;
pub mod providers;
pub mod secret;
pub mod service_account;
pub mod status;
pub mod token_life;

pub use client_cert::ClientCertificate;
pub use client_key::{ClientKey, SigningAlg};
pub use clock::{Clock, ManualClock, SystemClock};
pub use input::Input;
pub use limits::RunLimits;
pub use oauth_server::{
    BasicAuthEncoding, ConfigError, CredentialsDelivery, DiscoveredIssuer, OAuthServer,
    OAuthServerSpec, Prompt, TokenEndpointAuthMethod,
};
pub use secret::SecretString;
pub use service_account::ServiceAccountKey;
pub use status::{RunStatus, VaultEntryState};
