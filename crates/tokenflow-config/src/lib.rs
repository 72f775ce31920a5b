//! Loads `tokenflow.toml` (docs/flows.md): the file, then `TOKENFLOW_<KEY>` environment overrides
//! (`__` between levels), then secret sources (`{ env = "NAME" }`, `{ file = "path" }`), then
//! validation that reports every problem, each naming its key.
//!
//! The file is first parsed into the typed model so syntax, type and unknown-key errors carry the
//! file's line and column; overrides are then merged at the TOML-table level and the result is
//! deserialized again. Environment values are typed by a small schema of the non-string keys
//! rather than guessed, so a `client_id` of `123` stays a string.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenflow_core::limits::{
    MAX_STEPS_LIMIT_MAX, MONITOR_VALUE_LIMIT_MAX, MONITOR_VALUE_LIMIT_MIN, RUN_DATA_LIMIT_MAX,
    RUN_DATA_LIMIT_MIN,
};
use tokenflow_core::{OAuthServer, OAuthServerSpec, RunLimits, SecretString};
use toml::{Table, Value};
use url::Url;

/// Environment variables with the prefix that are not configuration keys (the last two set the
/// property and fuzz tests' length, docs/testing.md, and may be set for a whole test run).
pub const RESERVED_ENV: &[&str] = &[
    "TOKENFLOW_MASTER_KEY",
    "TOKENFLOW_CONFIG",
    "TOKENFLOW_LOG",
    "TOKENFLOW_FUZZ_CASES",
    "TOKENFLOW_FUZZ_SECONDS",
];
const ENV_PREFIX: &str = "TOKENFLOW_";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub oauth_redirect_uri: Option<Url>,
    pub data_dir: PathBuf,
    /// May carry a password, hence secret.
    pub database_url: Option<SecretString>,
    pub flows_dir: PathBuf,
    pub api_keys: Vec<SecretString>,
    pub log_format: LogFormat,
    pub oauth_servers: BTreeMap<String, OAuthServer>,
    /// How long a run's lease lasts (seconds): an instance that stops renewing it for this long
    /// is taken for dead, and another instance fails the run.
    pub run_lease: std::time::Duration,
    /// How long a client may take to send a request's head, counted from when the server starts
    /// waiting for it — so it also ends keep-alive connections idle for that long.
    pub header_read_timeout: std::time::Duration,
    /// How long a client may take to send a request's body, counted from its head.
    pub body_read_timeout: std::time::Duration,
    /// How many client connections are served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// What one run may hold: `max_steps_limit`, `run_data_limit`, `monitor_value_limit`
    /// (docs/security.md, "Runs").
    pub run_limits: RunLimits,
    /// Extra trusted CA certificates (PEM) for every outgoing connection (`tls_ca`).
    pub tls_ca: Option<String>,
    /// Which ended runs the sweeper deletes (docs/operations.md, "Retention").
    pub retention: Retention,
    /// How many runs of one flow may wait for a sign-in at once; starting another is refused.
    pub max_waiting_runs_per_flow: u64,
}

/// `retention = { max_age = "30d", max_runs_per_flow = 10000 }`: ended runs (completed, failed,
/// cancelled) older than `max_age`, and those beyond the newest `max_runs_per_flow` of their
/// flow, are deleted with their monitor records. `None` turns a part off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<std::time::Duration>,
    pub max_runs_per_flow: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Some(std::time::Duration::from_secs(
                RETENTION_MAX_AGE_DAYS.default * DAY,
            )),
            max_runs_per_flow: Some(RETENTION_MAX_RUNS_PER_FLOW.default),
        }
    }
}

const DAY: u64 = 24 * 3600;

/// Default and bounds of `retention.max_age`, in days (`"30d"`; hours are written `"12h"`, at
/// least `"1h"`; `"off"` keeps runs of any age).
pub const RETENTION_MAX_AGE_DAYS: Bounded = Bounded {
    default: 30,
    min: 1,
    max: 3650,
};
/// Default and bounds of `retention.max_runs_per_flow` (0 keeps any number).
pub const RETENTION_MAX_RUNS_PER_FLOW: Bounded = Bounded {
    default: 10_000,
    min: 1,
    max: 10_000_000,
};
/// Default and bounds of `max_waiting_runs_per_flow`.
pub const MAX_WAITING_RUNS_PER_FLOW: Bounded = Bounded {
    default: 1000,
    min: 1,
    max: 1_000_000,
};

/// Default and bounds of `header_read_timeout` (seconds).
pub const HEADER_READ_TIMEOUT: Bounded = Bounded {
    default: 10,
    min: 1,
    max: 300,
};
/// Default and bounds of `body_read_timeout` (seconds).
pub const BODY_READ_TIMEOUT: Bounded = Bounded {
    default: 30,
    min: 1,
    max: 600,
};
/// Default and bounds of `max_connections`.
pub const MAX_CONNECTIONS: Bounded = Bounded {
    default: 1024,
    min: 1,
    max: 65_536,
};

/// A whole-number setting's default and the range it is accepted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

impl Bounded {
    /// The value, or the default when unset; out of range is an error naming `key`.
    fn check(&self, key: &str, value: Option<i64>, unit: &str, errors: &mut Vec<String>) -> u64 {
        let Some(value) = value else {
            return self.default;
        };
        match u64::try_from(value) {
            Ok(value) if (self.min..=self.max).contains(&value) => value,
            _ => {
                errors.push(format!(
                    "`{key}`: {value} is out of range; use {} to {}{unit} (default {})",
                    self.min, self.max, self.default
                ));
                self.default
            }
        }
    }
}

impl Config {
    /// `<public_url>/oauth-callback`, the server's default redirect URI (docs/api.md).
    pub fn default_redirect_uri(&self) -> Url {
        let base = self.public_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/oauth-callback")).unwrap_or_else(|_| self.public_url.clone())
    }
}

/// A secret written inline, or taken from an environment variable or a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Inline(SecretString),
    Env { env: String },
    File { file: PathBuf },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    oauth_redirect_uri: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<SecretSource>,
    flows_dir: Option<PathBuf>,
    #[serde(default)]
    api_keys: Vec<SecretSource>,
    log_format: Option<LogFormat>,
    run_lease: Option<u64>,
    header_read_timeout: Option<i64>,
    body_read_timeout: Option<i64>,
    max_connections: Option<i64>,
    max_steps_limit: Option<u64>,
    run_data_limit: Option<u64>,
    monitor_value_limit: Option<u64>,
    tls_ca: Option<SecretSource>,
    retention: Option<RawRetention>,
    max_waiting_runs_per_flow: Option<i64>,
    #[serde(default)]
    oauth_servers: BTreeMap<String, OAuthServerSpec<SecretSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age: Option<String>,
    max_runs_per_flow: Option<i64>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Where the configuration comes from. `env` is the process environment in production and a
/// fixed list in tests.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    pub env: Vec<(String, String)>,
}

impl Sources<'_> {
    /// The process environment.
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

/// Loads, merges, resolves and validates.
pub fn load(sources: &Sources<'_>) -> Result<Config, ConfigError> {
    let base_dir = sources
        .file
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut table = match sources.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            // Parse once into the typed model for errors with line and column.
            toml::from_str::<RawConfig>(&text).map_err(|err| ConfigError::Syntax {
                path: path.to_owned(),
                message: syntax_message(&text, &err),
            })?;
            toml::from_str::<Table>(&text).map_err(|err| ConfigError::Syntax {
                path: path.to_owned(),
                message: syntax_message(&text, &err),
            })?
        }
        None => Table::new(),
    };
    let mut env: Vec<&(String, String)> = sources.env.iter().collect();
    env.sort();
    for (var, value) in env {
        apply_env(&mut table, var, value)?;
    }
    let raw: RawConfig = Value::Table(table)
        .try_into()
        .map_err(|err: toml::de::Error| {
            ConfigError::Invalid(vec![format!(
                "after environment overrides: {}",
                err.message()
            )])
        })?;
    let env_lookup: BTreeMap<&str, &str> = sources
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    build(raw, &base_dir, &env_lookup)
}

/// A TOML error as `line L, column C: message`. The toml crate's own text quotes the line,
/// which may hold an inline secret (`client_secret = "…"`), so only its message and position
/// are kept.
fn syntax_message(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

fn build(
    raw: RawConfig,
    base_dir: &Path,
    env: &BTreeMap<&str, &str>,
) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen.parse::<SocketAddr>().unwrap_or_else(|err| {
        errors.push(format!(
            "`listen`: `{listen}` is not an address like 127.0.0.1:8080 ({err})"
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_url = parse_url(
        "public_url",
        raw.public_url.as_deref().unwrap_or("http://127.0.0.1:8080"),
        &mut errors,
    );
    let oauth_redirect_uri = raw
        .oauth_redirect_uri
        .as_deref()
        .and_then(|text| parse_url("oauth_redirect_uri", text, &mut errors));
    let database_url = raw
        .database_url
        .map(|source| resolve("database_url", source, base_dir, env, &mut errors))
        .and_then(|secret| secret.filter(|s| !s.is_empty()));
    let api_keys = raw
        .api_keys
        .into_iter()
        .enumerate()
        .filter_map(|(i, source)| {
            resolve(
                &format!("api_keys[{i}]"),
                source,
                base_dir,
                env,
                &mut errors,
            )
        })
        .collect();
    let run_limits = run_limits(
        [
            raw.max_steps_limit,
            raw.run_data_limit,
            raw.monitor_value_limit,
        ],
        &mut errors,
    );
    let tls_ca = raw
        .tls_ca
        .and_then(|source| resolve("tls_ca", source, base_dir, env, &mut errors))
        .and_then(|pem| {
            tokenflow_core::client_cert::check_ca_pem(pem.expose())
                .map_err(|problem| errors.push(format!("`tls_ca`: {problem}")))
                .ok()
        });
    let mut oauth_servers = BTreeMap::new();
    for (id, spec) in raw.oauth_servers {
        let spec = spec.map_secrets(|field, source| {
            let key = format!("oauth_servers.{id}.{field}");
            match (field, source) {
                // A PKCS#12 file is binary: read as bytes, carried as Base64.
                ("pkcs12", SecretSource::File { file }) => {
                    read_binary(&key, &base_dir.join(file), &mut errors)
                }
                (_, source) => resolve(&key, source, base_dir, env, &mut errors),
            }
        });
        match spec.validate(&id) {
            Ok(server) => {
                oauth_servers.insert(id, server);
            }
            Err(problems) => errors.extend(problems.iter().map(ToString::to_string)),
        }
    }
    let header_read_timeout = HEADER_READ_TIMEOUT.check(
        "header_read_timeout",
        raw.header_read_timeout,
        " seconds",
        &mut errors,
    );
    let body_read_timeout = BODY_READ_TIMEOUT.check(
        "body_read_timeout",
        raw.body_read_timeout,
        " seconds",
        &mut errors,
    );
    let max_connections =
        MAX_CONNECTIONS.check("max_connections", raw.max_connections, "", &mut errors);
    let retention = retention(raw.retention, &mut errors);
    let max_waiting_runs_per_flow = MAX_WAITING_RUNS_PER_FLOW.check(
        "max_waiting_runs_per_flow",
        raw.max_waiting_runs_per_flow,
        "",
        &mut errors,
    );
    let (true, Some(public_url)) = (errors.is_empty(), public_url) else {
        return Err(ConfigError::Invalid(errors));
    };
    Ok(Config {
        listen,
        public_url,
        oauth_redirect_uri,
        data_dir: base_dir.join(
            raw.data_dir
                .unwrap_or_else(|| PathBuf::from("tokenflow-data")),
        ),
        database_url,
        flows_dir: base_dir.join(raw.flows_dir.unwrap_or_else(|| PathBuf::from("flows"))),
        api_keys,
        log_format: raw.log_format.unwrap_or_default(),
        run_lease: std::time::Duration::from_secs(raw.run_lease.unwrap_or(30).max(1)),
        header_read_timeout: std::time::Duration::from_secs(header_read_timeout),
        body_read_timeout: std::time::Duration::from_secs(body_read_timeout),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        run_limits,
        oauth_servers,
        tls_ca,
        retention,
        max_waiting_runs_per_flow,
    })
}

/// The retention setting: each part its default when unset, `"off"` / `0` turning it off.
fn retention(raw: Option<RawRetention>, errors: &mut Vec<String>) -> Retention {
    let defaults = Retention::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let max_age = match raw.max_age.as_deref().map(str::trim) {
        None => defaults.max_age,
        Some("off") => None,
        Some(text) => match max_age_seconds(text) {
            Some(seconds) => Some(std::time::Duration::from_secs(seconds)),
            None => {
                errors.push(format!(
                    "`retention.max_age`: `{text}` is not an age from \"1h\" to \"{}d\" (like \"30d\" or \"12h\") or \"off\"",
                    RETENTION_MAX_AGE_DAYS.max
                ));
                defaults.max_age
            }
        },
    };
    let max_runs_per_flow = match raw.max_runs_per_flow {
        Some(0) => None,
        written => Some(RETENTION_MAX_RUNS_PER_FLOW.check(
            "retention.max_runs_per_flow",
            written,
            " (0 keeps any number)",
            errors,
        )),
    };
    Retention {
        max_age,
        max_runs_per_flow,
    }
}

/// `"<n>d"` or `"<n>h"` within 1 hour and `RETENTION_MAX_AGE_DAYS.max` days, in seconds.
fn max_age_seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "d" => number.checked_mul(DAY)?,
        "h" => number.checked_mul(3600)?,
        _ => return None,
    };
    (3600..=RETENTION_MAX_AGE_DAYS.max * DAY)
        .contains(&seconds)
        .then_some(seconds)
}

/// A binary file (a PKCS#12 file) as Base64 text.
fn read_binary(key: &str, path: &Path, errors: &mut Vec<String>) -> Option<SecretString> {
    use base64::Engine;
    match std::fs::read(path) {
        Ok(bytes) => Some(SecretString::new(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )),
        Err(err) => {
            errors.push(format!(
                "`{key}`: cannot read file {}: {err}",
                path.display()
            ));
            None
        }
    }
}

/// The run limits, each within its safe range (a value outside it is an error naming the key).
/// `[max_steps_limit, run_data_limit, monitor_value_limit]` as written.
fn run_limits(written: [Option<u64>; 3], errors: &mut Vec<String>) -> RunLimits {
    let [max_steps_limit, run_data_limit, monitor_value_limit] = written;
    let defaults = RunLimits::default();
    let mut within = |key: &str, value: Option<u64>, min: u64, max: u64, default: u64| match value {
        None => default,
        Some(value) if (min..=max).contains(&value) => value,
        Some(value) => {
            errors.push(format!(
                "`{key}`: {value} is outside the allowed range {min}..={max}"
            ));
            default
        }
    };
    let max_steps = within(
        "max_steps_limit",
        max_steps_limit,
        1,
        u64::from(MAX_STEPS_LIMIT_MAX),
        u64::from(defaults.max_steps),
    );
    let run_data = within(
        "run_data_limit",
        run_data_limit,
        RUN_DATA_LIMIT_MIN,
        RUN_DATA_LIMIT_MAX,
        defaults.run_data,
    );
    let monitor_value = within(
        "monitor_value_limit",
        monitor_value_limit,
        MONITOR_VALUE_LIMIT_MIN as u64,
        MONITOR_VALUE_LIMIT_MAX as u64,
        defaults.monitor_value as u64,
    );
    RunLimits {
        max_steps: u32::try_from(max_steps).unwrap_or(defaults.max_steps),
        run_data,
        monitor_value: usize::try_from(monitor_value).unwrap_or(defaults.monitor_value),
    }
}

fn parse_url(key: &str, text: &str, errors: &mut Vec<String>) -> Option<Url> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(url) => {
            errors.push(format!(
                "`{key}`: scheme `{}` is not http or https",
                url.scheme()
            ));
            None
        }
        Err(err) => {
            errors.push(format!("`{key}`: `{text}` is not a valid URL ({err})"));
            None
        }
    }
}

fn resolve(
    key: &str,
    source: SecretSource,
    base_dir: &Path,
    env: &BTreeMap<&str, &str>,
    errors: &mut Vec<String>,
) -> Option<SecretString> {
    match source {
        SecretSource::Inline(secret) => Some(secret),
        SecretSource::Env { env: name } => match env.get(name.as_str()) {
            Some(value) => Some(SecretString::new(*value)),
            None => {
                errors.push(format!("`{key}`: environment variable `{name}` is not set"));
                None
            }
        },
        SecretSource::File { file } => {
            let path = base_dir.join(&file);
            match std::fs::read_to_string(&path) {
                // A trailing newline is an editor's, not the secret's.
                Ok(text) => Some(SecretString::new(text.trim_end_matches(['\r', '\n']))),
                Err(err) => {
                    errors.push(format!(
                        "`{key}`: cannot read secret file {}: {err}",
                        path.display()
                    ));
                    None
                }
            }
        }
    }
}

/// How an environment value is typed: by the key it sets.
fn env_value(key: &str, value: &str) -> Result<Value, String> {
    match key {
        "pkce" | "request_refresh_token" | "token_cache" | "x5t_sha1" => value
            .parse::<bool>()
            .map(Value::Boolean)
            .map_err(|_| format!("`{value}` is not true or false")),
        "token_cache_skew" | "run_lease" | "header_read_timeout" | "body_read_timeout" => value
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{value}` is not a whole number of seconds")),
        "max_connections"
        | "max_steps_limit"
        | "run_data_limit"
        | "monitor_value_limit"
        | "max_runs_per_flow"
        | "max_waiting_runs_per_flow" => value
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{value}` is not a whole number")),
        "timeout" => Ok(value
            .parse::<i64>()
            .map_or_else(|_| Value::String(value.to_owned()), Value::Integer)),
        _ => Ok(Value::String(value.to_owned())),
    }
}

fn apply_env(table: &mut Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    if RESERVED_ENV.contains(&var) || rest.is_empty() {
        return Ok(());
    }
    let env_error = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(env_error("has an empty key segment".to_owned()));
    }
    let leaf = path.last().map(String::as_str).unwrap_or_default();
    let typed = if path.len() == 1 && leaf == "api_keys" {
        // A comma-separated list, since one variable cannot hold a TOML array comfortably.
        Value::Array(
            value
                .split(',')
                .map(|k| Value::String(k.trim().to_owned()))
                .collect(),
        )
    } else {
        env_value(leaf, value).map_err(env_error)?
    };
    let known_top = [
        "listen",
        "public_url",
        "oauth_redirect_uri",
        "data_dir",
        "database_url",
        "flows_dir",
        "api_keys",
        "log_format",
        "run_lease",
        "header_read_timeout",
        "body_read_timeout",
        "max_connections",
        "max_steps_limit",
        "run_data_limit",
        "monitor_value_limit",
        "retention",
        "max_waiting_runs_per_flow",
        "oauth_servers",
    ];
    if !known_top.contains(&path[0].as_str()) {
        return Err(env_error(format!(
            "`{}` is not a configuration key",
            path[0]
        )));
    }
    let mut node = table;
    for segment in &path[..path.len() - 1] {
        let entry = node
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(inner) => inner,
            _ => return Err(env_error(format!("`{segment}` is not a table"))),
        };
    }
    node.insert(leaf.to_owned(), typed);
    Ok(())
}
