//! `tokenflow providers list|show` and the catalogue it prints.

use std::process::Output;

use tokenflow_core::providers::{CATALOGUE_TOML, Catalogue, Parameter};

fn tokenflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args(args)
        .env_remove("TOKENFLOW_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_catalogue_entry_parses_declares_its_parameters_and_cites_its_docs() {
    let catalogue = Catalogue::parse(CATALOGUE_TOML).unwrap();
    for required in [
        "microsoft-entra",
        "google",
        "github",
        "gitlab",
        "okta",
        "auth0",
        "keycloak",
        "salesforce",
        "slack",
        "hubspot",
        "atlassian",
        "dropbox",
        "zoom",
        "xero",
        "linkedin",
        "spotify",
        "box",
        "intuit",
    ] {
        assert!(catalogue.get(required).is_some(), "missing {required}");
    }
    for (name, provider) in &catalogue.providers {
        assert!(
            provider.docs.starts_with("https://"),
            "{name}: docs must be an https URL"
        );
        assert!(!provider.display_name.is_empty(), "{name}");
        assert!(
            provider.token_url.is_some() || provider.issuer.is_some(),
            "{name}: needs a token_url or an issuer"
        );
        for parameter in provider.defaults.keys() {
            assert!(
                provider.parameters.contains(parameter),
                "{name}: default for undeclared {parameter}"
            );
        }
        for (field, template) in provider.templates() {
            let mut used = Vec::new();
            for parameter in Parameter::ALL {
                if template.contains(&format!("{{{parameter}}}")) {
                    used.push(parameter);
                }
            }
            for parameter in &used {
                assert!(
                    provider.parameters.contains(parameter),
                    "{name}.{field} uses undeclared {{{parameter}}}"
                );
            }
            // Every placeholder is a parameter: filling them all leaves a valid URL.
            let values = provider
                .parameters
                .iter()
                .map(|p| {
                    let sample = match p {
                        Parameter::BaseUrl => "https://sso.example.com",
                        _ => "example",
                    };
                    (*p, sample.to_owned())
                })
                .collect();
            let url = tokenflow_core::providers::expand(template, &values)
                .unwrap_or_else(|err| panic!("{name}.{field}: {err}"));
            assert!(url::Url::parse(&url).is_ok(), "{name}.{field}: {url}");
        }
        for parameter in &provider.parameters {
            assert!(
                provider
                    .templates()
                    .iter()
                    .any(|(_, t)| t.contains(&format!("{{{parameter}}}"))),
                "{name}: parameter {parameter} is used by no template"
            );
        }
    }
}

#[test]
fn providers_list_names_every_entry_with_its_parameters() {
    let output = tokenflow(&["providers", "list"]);
    assert!(output.status.success());
    let out = stdout(&output);
    let catalogue = Catalogue::parse(CATALOGUE_TOML).unwrap();
    assert_eq!(out.lines().count(), catalogue.providers.len(), "{out}");
    let entra = out
        .lines()
        .find(|line| line.starts_with("microsoft-entra "))
        .unwrap();
    assert!(
        entra.contains("Microsoft Entra ID") && entra.ends_with("[tenant]"),
        "{entra}"
    );
    let keycloak = out
        .lines()
        .find(|line| line.starts_with("keycloak "))
        .unwrap();
    assert!(keycloak.ends_with("[base_url, realm]"), "{keycloak}");
    let gitlab = out
        .lines()
        .find(|line| line.starts_with("gitlab "))
        .unwrap();
    assert!(
        gitlab.contains("base_url (default https://gitlab.com)"),
        "{gitlab}"
    );
}

#[test]
fn providers_show_prints_every_entry_with_docs_and_quirks() {
    let catalogue = Catalogue::parse(CATALOGUE_TOML).unwrap();
    for (name, provider) in &catalogue.providers {
        let output = tokenflow(&["providers", "show", name]);
        assert!(output.status.success(), "{name}");
        let out = stdout(&output);
        assert!(out.contains(&provider.docs), "{name}: {out}");
        for quirk in &provider.quirks {
            assert!(out.contains(quirk.as_str()), "{name}: {quirk}");
        }
        for (_, template) in provider.templates() {
            assert!(out.contains(template), "{name}: {template}");
        }
    }
    let out = stdout(&tokenflow(&["providers", "show", "microsoft-entra"]));
    assert!(
        out.contains(
            "token_url                 https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        ),
        "{out}"
    );
    assert!(out.contains("request_refresh_token     true"), "{out}");
    let out = stdout(&tokenflow(&["providers", "show", "slack-user"]));
    assert!(
        out.contains("token_path                authed_user"),
        "{out}"
    );
    assert!(out.contains("scope_separator           \",\""), "{out}");
}

#[test]
fn providers_show_of_an_unknown_name_fails_and_lists_the_known_ones() {
    let output = tokenflow(&["providers", "show", "nope"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("unknown provider `nope`"), "{err}");
    assert!(err.contains("microsoft-entra"), "{err}");
}
