//! `tokenflow providers list|show`: the provider catalogue (docs/connectors.md, "Provider
//! catalogue"). Needs no configuration file.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use tokenflow_core::providers::{Provider, catalogue};

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Lists the catalogue: name, display name and the parameters a server must give.
    List,
    /// Prints one entry: endpoints, parameters, quirks and the documentation it was taken from.
    Show {
        /// The provider name, e.g. `microsoft-entra`.
        name: String,
    },
}

pub fn run(command: ProvidersCommand) -> anyhow::Result<ExitCode> {
    let catalogue = catalogue()
        .map_err(|err| anyhow!("{err}"))
        .context("the provider catalogue is unreadable")?;
    match command {
        ProvidersCommand::List => {
            let width = catalogue
                .providers
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0);
            for (name, provider) in &catalogue.providers {
                println!(
                    "{name:width$}  {}  [{}]",
                    provider.display_name,
                    parameters(provider)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProvidersCommand::Show { name } => {
            let Some(provider) = catalogue.get(&name) else {
                eprintln!(
                    "error: unknown provider `{name}`; known: {}",
                    catalogue
                        .providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(ExitCode::FAILURE);
            };
            print!("{}", show(&name, provider));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tenant`, `base_url (default https://gitlab.com)`, or `-`.
fn parameters(provider: &Provider) -> String {
    if provider.parameters.is_empty() {
        return "-".to_owned();
    }
    provider
        .parameters
        .iter()
        .map(|parameter| match provider.defaults.get(parameter) {
            Some(default) => format!("{parameter} (default {default})"),
            None => parameter.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(name: &str, provider: &Provider) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:26}{value}");
    };
    line("provider", name);
    line("display_name", &provider.display_name);
    line("docs", &provider.docs);
    line("parameters", &parameters(provider));
    for parameter in &provider.parameters {
        line(&format!("  {parameter}"), parameter.shape());
    }
    for (field, template) in provider.templates() {
        line(field, template);
    }
    let flag = |value: Option<bool>| value.map_or("-".to_owned(), |v| v.to_string());
    line("pkce", &flag(provider.pkce));
    line(
        "request_refresh_token",
        &flag(provider.request_refresh_token),
    );
    if let Some(prompt) = provider.prompt {
        line("prompt", prompt.as_str());
    }
    if let Some(method) = provider.token_endpoint_auth_method {
        line("token_endpoint_auth_method", method.as_str());
    }
    line(
        "scope_separator",
        &format!(
            "\"{}\"",
            provider.scope_separator.unwrap_or_default().as_str()
        ),
    );
    for (key, value) in &provider.extra_authorize_params {
        line("extra_authorize_params", &format!("{key}={value}"));
    }
    for (key, value) in &provider.extra_token_params {
        line("extra_token_params", &format!("{key}={value}"));
    }
    if let Some(path) = &provider.token_path {
        line("token_path", path);
    }
    if !provider.bearer_token_types.is_empty() {
        line(
            "bearer_token_types",
            &provider.bearer_token_types.join(", "),
        );
    }
    if !provider.response_fields.is_empty() {
        line("response_fields", &provider.response_fields.join(", "));
    }
    for quirk in &provider.quirks {
        line("quirk", quirk);
    }
    out
}
