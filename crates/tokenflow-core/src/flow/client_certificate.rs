//! The `client_certificate` input of `http_connector` (docs/connectors.md, "Client
//! certificates"): the certificate and key presented in the TLS handshake (mutual TLS).
//!
//! ```yaml
//! client_certificate: { certificate: { var: cert }, private_key: { var: key } }   # PEM
//! client_certificate: { pkcs12: { var: pfx }, pkcs12_password: { var: pw } }     # Base64 PKCS#12
//! ```
//!
//! The shape is checked when the flow is loaded and again, with values, when the action runs;
//! messages name fields, never values. The monitor shows the whole input as a fingerprint.

use serde_json::Value;

use crate::client_cert::ClientCertificate;
use crate::secret::SecretString;

/// The two forms.
pub const FORMS: &str = "{ certificate, private_key } or { pkcs12, pkcs12_password }";

/// Checks the shape: one of the two forms (`pkcs12_password` may be left out), nothing unknown.
pub fn check_shape(value: &Value, is_leaf: &dyn Fn(&Value) -> bool) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(format!("client_certificate must be an object: {FORMS}"));
    };
    let required: &[&str] = if object.contains_key("pkcs12") {
        &["pkcs12"]
    } else {
        &["certificate", "private_key"]
    };
    let allowed: &[&str] = if object.contains_key("pkcs12") {
        &["pkcs12", "pkcs12_password"]
    } else {
        &["certificate", "private_key"]
    };
    if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!(
            "unknown or misplaced field `{unknown}` in client_certificate ({FORMS})"
        ));
    }
    for field in required {
        match object.get(*field) {
            None => return Err(format!("client_certificate.{field} is missing ({FORMS})")),
            Some(value) if is_leaf(value) => {}
            Some(_) => {
                return Err(format!(
                    "client_certificate.{field} must be a string, a template or {{ var: name }}"
                ));
            }
        }
    }
    if let Some(password) = object.get("pkcs12_password")
        && !is_leaf(password)
    {
        return Err(
            "client_certificate.pkcs12_password must be a string, a template or { var: name }"
                .to_owned(),
        );
    }
    Ok(())
}

/// The resolved input as a certificate with its key; the message names fields, never values.
pub fn from_value(value: &Value) -> Result<ClientCertificate, String> {
    check_shape(value, &|leaf| leaf.is_string())?;
    let text = |field: &str| {
        SecretString::new(
            value
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let certificate = if value.get("pkcs12").is_some() {
        ClientCertificate::from_pkcs12(&text("pkcs12"), &text("pkcs12_password"))
    } else {
        ClientCertificate::from_pem(
            text("certificate").expose(),
            &text("private_key"),
            "certificate",
            "private_key",
        )
    };
    certificate
        .map_err(|problem| format!("client_certificate.{}: {}", problem.field, problem.problem))
}
