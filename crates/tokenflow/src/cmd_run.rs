//! `tokenflow run <flow.yaml>`: runs one flow locally — Thinkwise's 2-tier mode. At a user login it
//! prints the authorization URL (and opens a browser with `--open`), receives the redirect on a
//! loopback listener, and continues; `--format json` prints the run as one JSON document (docs/flows.md,
//! secrets masked). Exit code 0 only when the run completed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use tokenflow_config::Config;
use tokenflow_connectors::http::TlsClients;
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_connectors::oauth::device::{DevicePoll, next_interval};
use tokenflow_connectors::status::meaning;
use tokenflow_core::flow::{Flow, ParseOptions, parse_flow};
use tokenflow_core::{Clock, SystemClock};
use tokenflow_engine::{Engine, Progress, Run, RunStatus, StaticServers};
use url::Url;

use crate::loopback::{Loopback, listen_address, loopback_redirect_uri};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow file.
    flow: PathBuf,
    /// A start value for a declared variable; repeatable. VALUE is JSON when it parses as JSON
    /// (numbers, true/false, objects, quoted strings), otherwise text.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Open the authorization URL in the default browser.
    #[arg(long)]
    open: bool,
    /// Loopback port for the redirect (`http://127.0.0.1:<port>/oauth-callback`); 0 = any free port.
    #[arg(long, default_value_t = 8400)]
    callback_port: u16,
    /// Loopback address for the redirect: `127.0.0.1` (default) or `::1`
    /// (`http://[::1]:<port>/oauth-callback`). A configured redirect URI is used as configured.
    #[arg(long, value_parser = parse_loopback, default_value = "127.0.0.1")]
    callback_host: IpAddr,
    /// How long a user login waits for the person, e.g. `90s`, `10m` (default 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    login_timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s or 10m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        _ => Err(format!("`{text}` is not a duration like 90s or 10m")),
    }
}

fn parse_loopback(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address; use 127.0.0.1 or ::1"))?;
    if ip.is_loopback() {
        Ok(ip)
    } else {
        Err(format!(
            "`{text}` is not a loopback address; use 127.0.0.1 or ::1"
        ))
    }
}

/// Whether a user login of `flow` would use the CLI's own redirect URI (no server `redirect_uri`
/// and no global `oauth_redirect_uri`): only then is the default listener needed.
fn uses_default_redirect(flow: &Flow, config: &Config) -> bool {
    config.oauth_redirect_uri.is_none()
        && flow
            .actions
            .values()
            .filter(|action| action.spec.interactive)
            .any(|action| {
                action
                    .oauth_server
                    .as_ref()
                    .and_then(|id| config.oauth_servers.get(id))
                    .is_none_or(|server| server.redirect_uri.is_none())
            })
}

fn parse_inputs(inputs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for input in inputs {
        let (name, value) = input
            .split_once('=')
            .with_context(|| format!("--input `{input}` is not NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        map.insert(name.to_owned(), value);
    }
    Ok(map)
}

pub async fn run(args: RunArgs, config: Config) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.flow)
        .with_context(|| format!("cannot read {}", args.flow.display()))?;
    let options = ParseOptions {
        known_servers: Some(config.oauth_servers.keys().cloned().collect()),
        max_steps_limit: config.run_limits.max_steps,
    };
    let parsed = parse_flow(&args.flow.display().to_string(), &text, &options)
        .map_err(|problems| anyhow::anyhow!("the flow is invalid:\n{problems}"))?;
    for warning in &parsed.warnings {
        eprintln!("warning: {warning}");
    }
    let flow = parsed.flow;
    let inputs = parse_inputs(&args.inputs)?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The global `tls_ca` is trusted by every outgoing connection, as in `tokenflow serve`
    // (docs/connectors.md); each server's own `tls_ca` is added for its requests.
    let tls = TlsClients::for_tokens(Duration::from_secs(30), config.tls_ca.clone())
        .context("cannot build the HTTP client")?;
    let mut servers = StaticServers::new(
        config
            .oauth_servers
            .clone()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
    );
    for warning in servers.resolve_endpoints(&tls).await {
        eprintln!("warning: {warning}");
    }
    // RFC 8252 §7.3/§8.3: the IP literal, not `localhost` (which may resolve elsewhere, or to
    // the other IP version than the one listened on). Bound before the run starts, so that port
    // 0 is known; only when a login will use it.
    let mut listeners: Vec<Loopback> = Vec::new();
    let default_redirect = if uses_default_redirect(&flow, &config) {
        let listener = Loopback::bind(
            SocketAddr::new(args.callback_host, args.callback_port),
            " (choose another port with --callback-port, 0 for any free one)",
        )
        .await?;
        let url = loopback_redirect_uri(args.callback_host, listener.address().port())?;
        listeners.push(listener);
        url
    } else {
        loopback_redirect_uri(args.callback_host, args.callback_port)?
    };
    let engine = Engine::new(
        OAuthConnectors::new(tls.default_client().clone(), clock.clone()).with_tls(tls),
        HttpConnector::with_tls(
            TlsClients::for_actions(config.tls_ca.clone())
                .context("cannot build the HTTP client")?,
        ),
        Arc::new(servers),
        clock.clone(),
        RedirectSettings {
            global: config.oauth_redirect_uri.clone(),
            default: default_redirect,
            pending_ttl: args.login_timeout,
        },
    )
    .with_limits(config.run_limits);

    let mut run = engine
        .start(&flow, inputs)
        .context("cannot start the run")?;
    while engine.run_until_blocked(&flow, &mut run).await == Progress::Suspended {
        wait_for_login(&engine, &flow, &mut run, &mut listeners, args.open).await?;
    }

    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &run.to_json_limited(&flow, config.run_limits.monitor_value)
            )?
        ),
        Format::Text => print_text(&run, &flow),
    }
    if run.status == RunStatus::Completed {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the run ended {}{}",
            run.status.as_str(),
            run.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Shows the authorization URL, waits for the matching redirect (or the expiry) and resumes.
async fn wait_for_login(
    engine: &Engine,
    flow: &Flow,
    run: &mut Run,
    listeners: &mut Vec<Loopback>,
    open: bool,
) -> anyhow::Result<()> {
    let Some(waiting) = run.waiting.clone() else {
        return Ok(());
    };
    if let Some(device) = &waiting.device {
        wait_for_device(engine, flow, run, &waiting, device).await;
        return Ok(());
    }
    let redirect = Url::parse(&waiting.pending.redirect_uri)?;
    let Some(address) = listen_address(&redirect) else {
        engine.fail(
            run,
            format!(
                "the redirect URI {redirect} is not a loopback http:// address, so `tokenflow run` cannot receive the sign-in; use `tokenflow serve` or a redirect_uri like http://127.0.0.1:8400/oauth-callback"
            ),
        );
        return Ok(());
    };
    if address.port() == 0 {
        engine.fail(
            run,
            format!("the redirect URI {redirect} names port 0; configure a fixed port"),
        );
        return Ok(());
    }
    // A configured redirect URI is sent as configured, so it is received where it points.
    if !listeners.iter().any(|l| l.address() == address) {
        let hint = format!(
            " (the redirect URI {redirect} names this address; free the port or configure another redirect URI)"
        );
        listeners.push(Loopback::bind(address, &hint).await?);
    }
    let Some(listener) = listeners.iter().find(|l| l.address() == address) else {
        anyhow::bail!("no listener on {address} for the sign-in redirect to {redirect}");
    };
    let receiver = listener.expect(waiting.pending.state.clone());

    eprintln!(
        "Sign in for action `{}` of flow `{}`: open this URL in a browser:",
        waiting.action, flow.id
    );
    eprintln!("  {}", waiting.authorization_url);
    eprintln!("Waiting for the redirect to {redirect} ...");
    if open {
        open_browser(&waiting.authorization_url);
    }
    let remaining = waiting.pending.expires_at - engine.clock().now();
    let remaining = Duration::try_from(remaining).unwrap_or(Duration::ZERO);
    match tokio::time::timeout(remaining, receiver).await {
        Ok(Ok(params)) => {
            engine.resume(flow, run, &params).await;
        }
        Ok(Err(_)) | Err(_) => {
            eprintln!("The sign-in was not completed in time; the login ends with -2.");
            engine.expire(flow, run);
        }
    }
    Ok(())
}

/// Shows the user code and where to enter it, then polls the token endpoint at the provider's
/// interval (RFC 8628 §3.5) until the login ends or the device code expires.
async fn wait_for_device(
    engine: &Engine,
    flow: &Flow,
    run: &mut Run,
    waiting: &tokenflow_engine::Waiting,
    device: &tokenflow_engine::DeviceWait,
) {
    eprintln!(
        "Device login for action `{}` of flow `{}`: on any device, open",
        waiting.action, flow.id
    );
    eprintln!("  {}", device.verification_uri);
    eprintln!("and enter the code");
    eprintln!("  {}", device.user_code);
    if let Some(complete) = &device.verification_uri_complete {
        eprintln!("(or open {complete})");
    }
    eprintln!("Waiting for the sign-in ...");
    let mut interval = Duration::from_secs(device.interval_secs.max(1));
    loop {
        let remaining = waiting.pending.expires_at - engine.clock().now();
        let remaining = Duration::try_from(remaining).unwrap_or(Duration::ZERO);
        if remaining.is_zero() {
            eprintln!("The device code expired before the sign-in; the login ends with -4.");
            engine.expire(flow, run);
            return;
        }
        tokio::time::sleep(interval.min(remaining)).await;
        match engine.poll_device(run).await {
            Some(DevicePoll::Done(out)) => {
                engine.finish_device(flow, run, *out);
                return;
            }
            Some(poll) => interval = next_interval(interval, &poll),
            None => return,
        }
    }
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener).arg(url).spawn() {
        Ok(_) => eprintln!("(opened with {opener})"),
        Err(err) => eprintln!("(could not start {opener}: {err}; open the URL yourself)"),
    }
}

fn print_text(run: &Run, flow: &Flow) {
    println!(
        "run {} of flow `{}`: {}",
        run.id,
        run.flow_id,
        run.status.as_str()
    );
    for record in &run.records {
        let code = record
            .status_code
            .map_or_else(|| "-".to_owned(), |c| c.to_string());
        let meaning = record
            .status_code
            .and_then(|c| meaning(record.kind, c))
            .unwrap_or("");
        println!(
            "  {:<20} {:<20} {:>3} {:<45} {:>6} ms",
            record.action, record.kind, code, meaning, record.duration_ms
        );
        if let Some(error) = &record.error {
            println!("  {:<20} error: {error}", "");
        }
        for warning in &record.warnings {
            println!("  {:<20} warning: {warning}", "");
        }
    }
    if let Some(reason) = &run.reason {
        println!("reason: {reason}");
    }
    println!("variables:");
    for (name, value) in run.variables.masked(flow) {
        let shown = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        let shown = if shown.chars().count() > 100 {
            format!("{}…", shown.chars().take(100).collect::<String>())
        } else {
            shown
        };
        println!("  {name} = {shown}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_inputs_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        let inputs = parse_inputs(&[
            "a=1".into(),
            "b=hello".into(),
            "c={\"x\":true}".into(),
            "d=".into(),
        ])
        .unwrap();
        assert_eq!(inputs["a"], 1);
        assert_eq!(inputs["b"], "hello");
        assert_eq!(inputs["c"]["x"], true);
        assert_eq!(inputs["d"], "");
        assert!(parse_inputs(&["novalue".into()]).is_err());
    }
}
