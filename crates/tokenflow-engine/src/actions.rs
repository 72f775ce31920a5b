//! One action executed against its connector. Each arm reads its inputs, calls the connector and
//! returns every output by its catalogue name; the engine decides which variables receive them.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokenflow_connectors::json::extract_json_limited;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::device::DeviceAuthorization;
use tokenflow_connectors::oauth::random::{RandomError, random_token};
use tokenflow_connectors::oauth::token_exchange::TokenExchangeInput;
use tokenflow_connectors::oauth::{AuthorizationRequest, ConnectorStatus, TokenOutputs};
use tokenflow_connectors::oauth::{DeviceLoginStatus, PendingAuthorization};
use tokenflow_core::SecretString;
use tokenflow_core::flow::{Action, ActionKind};

pub use crate::outcome::Outcome;

use crate::context::ActionContext;
use crate::inputs::{InputError, Resolved};
use crate::run::{DeviceWait, Waiting};
use crate::vars::Variables;

/// An action either finished or must wait for a person.
#[derive(Debug)]
pub enum Execution {
    Done(Outcome),
    Suspend(Box<AuthorizationRequest>),
    /// An `oauth_device_login` waits for the person (RFC 8628).
    WaitDevice(Box<DeviceAuthorization>),
}

/// A vault action where no vault is configured (e.g. `tokenflow run` without a store).
fn no_vault() -> Outcome {
    Outcome {
        status_code: -1,
        outputs: vec![
            ("status_code", Value::from(-1)),
            ("error", "no_vault".into()),
        ],
        error: Some("no_vault: the token vault needs the store (tokenflow serve)".to_owned()),
        ..Outcome::default()
    }
}

/// `error: description` for the monitor record.
fn error_line(error: &Option<String>, description: &Option<String>) -> Option<String> {
    error.as_ref().map(|error| match description {
        Some(description) => format!("{error}: {description}"),
        None => error.clone(),
    })
}

fn secret_value(secret: &Option<SecretString>) -> Value {
    secret
        .as_ref()
        .map_or(Value::Null, |s| Value::String(s.expose().to_owned()))
}

fn opt<T: Into<Value> + Clone>(value: &Option<T>) -> Value {
    value.clone().map_or(Value::Null, Into::into)
}

/// The outputs of any OAuth connector.
pub fn token_outcome<S: ConnectorStatus>(out: TokenOutputs<S>, full: bool) -> Outcome {
    let mut outputs = vec![
        ("access_token", secret_value(&out.access_token)),
        ("expires_in", opt(&out.expires_in)),
        ("token_type", opt(&out.token_type)),
        ("status_code", Value::from(out.status.code())),
        ("error", opt(&out.error)),
        ("error_description", opt(&out.error_description)),
    ];
    if full {
        outputs.push(("granted_scopes", opt(&out.granted_scopes)));
        outputs.push(("refresh_token", secret_value(&out.refresh_token)));
    }
    outputs.push((
        "response_fields",
        Value::Object(out.response_fields.into_iter().collect()),
    ));
    Outcome {
        status_code: out.status.code(),
        error: error_line(&out.error, &out.error_description),
        warnings: out
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.code, w.message))
            .collect(),
        response: out.response.into_iter().collect(),
        outputs,
    }
}

/// Runs `action` (anything but `stop`) with the run's variables.
pub async fn execute(
    engine: &ActionContext,
    action: &Action,
    vars: &Variables,
) -> Result<(Execution, Map<String, Value>), InputError> {
    let inputs = Resolved::with_limits(action, vars, engine.limits());
    inputs.check()?;
    let masked = inputs.masked();
    let server_id = action.oauth_server.as_deref().unwrap_or("");
    let server = action
        .oauth_server
        .as_deref()
        .and_then(|id| engine.servers().get(id));
    let execution = match action.spec.kind {
        ActionKind::OauthServerLogin => {
            let out = engine
                .oauth()
                .server_login_for(
                    server_id,
                    server.as_ref(),
                    &inputs.text("scope"),
                    &inputs.text("resource"),
                )
                .await;
            Execution::Done(token_outcome(out, false))
        }
        ActionKind::OauthRefreshToken => {
            let out = engine
                .oauth()
                .refresh_token_for(
                    server_id,
                    server.as_ref(),
                    &inputs.secret("refresh_token"),
                    &inputs.text("resource"),
                )
                .await;
            Execution::Done(token_outcome(out, true))
        }
        ActionKind::OauthRevokeToken => {
            let out = engine
                .oauth()
                .revoke_token(
                    server_id,
                    server.as_ref(),
                    &inputs.secret("token"),
                    &inputs.text("token_type_hint"),
                )
                .await;
            Execution::Done(Outcome {
                status_code: out.status.code(),
                outputs: vec![
                    ("status_code", Value::from(out.status.code())),
                    ("error", opt(&out.error)),
                    ("error_description", opt(&out.error_description)),
                ],
                error: error_line(&out.error, &out.error_description),
                warnings: Vec::new(),
                response: out.response.into_iter().collect(),
            })
        }
        ActionKind::OauthTokenExchange => {
            let input = TokenExchangeInput {
                mode: inputs.text("mode"),
                subject_token: inputs.secret("subject_token"),
                subject_token_type: inputs.text("subject_token_type"),
                actor_token: inputs.secret("actor_token"),
                actor_token_type: inputs.text("actor_token_type"),
                audience: inputs.text("audience"),
                resource: inputs.text("resource"),
                scope: inputs.text("scope"),
                requested_token_type: inputs.text("requested_token_type"),
                assertion: inputs.secret("assertion"),
            };
            let out = engine
                .oauth()
                .token_exchange(server_id, server.as_ref(), &input)
                .await;
            let issued_token_type = opt(&out.issued_token_type);
            let refresh_token = secret_value(&out.refresh_token);
            let mut outcome = token_outcome(out, false);
            outcome
                .outputs
                .push(("issued_token_type", issued_token_type));
            outcome.outputs.push(("refresh_token", refresh_token));
            Execution::Done(outcome)
        }
        ActionKind::OauthUserLogin => {
            let input = UserLoginInput {
                scope: inputs.text("scope"),
                use_prompt: inputs.boolean("use_prompt")?,
                resource: inputs.text("resource"),
            };
            match engine
                .oauth()
                .start_user_login(server_id, server.as_ref(), &input, engine.redirect())
                .await
            {
                Ok(request) => Execution::Suspend(Box::new(request)),
                Err(out) => Execution::Done(token_outcome(out, true)),
            }
        }
        ActionKind::OauthDeviceLogin => {
            match engine
                .oauth()
                .start_device_login(server_id, server.as_ref(), &inputs.text("scope"))
                .await
            {
                Ok(authorization) => Execution::WaitDevice(Box::new(authorization)),
                Err(out) => Execution::Done(device_outcome(out, None)),
            }
        }
        ActionKind::HttpConnector => Execution::Done(crate::http::call(engine, &inputs).await?),
        ActionKind::VaultStore => {
            let Some(vault) = engine.vault() else {
                return Ok((Execution::Done(no_vault()), masked));
            };
            let input = crate::vault::StoreInput {
                name: inputs.text("name").assigned().cloned().unwrap_or_default(),
                server_id: action.oauth_server.clone(),
                access_token: inputs.secret("access_token").assigned().cloned(),
                refresh_token: inputs.secret("refresh_token").assigned().cloned(),
                expires_in: inputs.integer("expires_in")?,
                granted_scopes: inputs
                    .text("granted_scopes")
                    .assigned()
                    .cloned()
                    .filter(|s| !s.is_empty()),
            };
            let out = vault.store_tokens(input).await;
            Execution::Done(Outcome {
                status_code: out.status.code(),
                outputs: vec![
                    ("status_code", Value::from(out.status.code())),
                    ("error", opt(&out.error)),
                    ("error_description", opt(&out.error_description)),
                ],
                error: error_line(&out.error, &out.error_description),
                warnings: Vec::new(),
                response: Map::new(),
            })
        }
        ActionKind::VaultGetToken => {
            let Some(vault) = engine.vault() else {
                return Ok((Execution::Done(no_vault()), masked));
            };
            let name = inputs.text("name").assigned().cloned().unwrap_or_default();
            Execution::Done(token_outcome(vault.get_token(&name).await, false))
        }
        ActionKind::ExtractJson => {
            let json = inputs.json("json");
            let path = inputs.text("path");
            let out = extract_json_limited(
                json.as_ref(),
                path.assigned().map(String::as_str),
                engine.limits().run_data,
            );
            Execution::Done(Outcome {
                status_code: out.status.code(),
                outputs: vec![
                    ("value", opt(&out.value)),
                    ("status_code", Value::from(out.status.code())),
                    ("error", opt(&out.error)),
                    ("error_description", opt(&out.error_description)),
                ],
                error: error_line(&out.error, &out.error_description),
                warnings: Vec::new(),
                response: Map::new(),
            })
        }
        // The engine routes `stop` without executing it, and `start` is never an action.
        ActionKind::Start | ActionKind::Stop => Execution::Done(Outcome::default()),
    };
    Ok((execution, masked))
}

/// The wait of `action` for the person to approve `authorization` on another device.
pub fn device_waiting(
    action: &Action,
    authorization: DeviceAuthorization,
    started: OffsetDateTime,
) -> Result<Waiting, RandomError> {
    let DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at,
        interval,
        requested_scope,
    } = authorization;
    let pending = PendingAuthorization {
        state: random_token(32)?,
        server_id: action.oauth_server.clone().unwrap_or_default(),
        redirect_uri: String::new(),
        requested_scope,
        code_verifier: None,
        nonce: None,
        issuer: None,
        iss_required: false,
        resource: String::new(),
        created_at: started,
        expires_at,
    };
    Ok(Waiting {
        action: action.id.clone(),
        authorization_url: verification_uri_complete
            .clone()
            .unwrap_or_else(|| verification_uri.clone()),
        pending,
        since: started,
        device: Some(DeviceWait {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete,
            interval_secs: interval.as_secs(),
        }),
    })
}

/// The outputs of `oauth_device_login`: the token outputs and what the person was shown.
pub fn device_outcome(
    out: TokenOutputs<DeviceLoginStatus>,
    device: Option<&DeviceWait>,
) -> Outcome {
    let mut outcome = token_outcome(out, true);
    let shown = |value: Option<&String>| value.map_or(Value::Null, |v| Value::from(v.clone()));
    outcome
        .outputs
        .push(("user_code", shown(device.map(|d| &d.user_code))));
    outcome.outputs.push((
        "verification_uri",
        shown(device.map(|d| &d.verification_uri)),
    ));
    outcome.outputs.push((
        "verification_uri_complete",
        shown(device.and_then(|d| d.verification_uri_complete.as_ref())),
    ));
    outcome
}
