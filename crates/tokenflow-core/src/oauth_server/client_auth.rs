//! The client-authentication part of an OAuth server's validation (docs/connectors.md, "Client
//! authentication"): which `token_endpoint_auth_method` applies, and the key material it needs —
//! a private key with `private_key_jwt`, a client certificate with `tls_client_auth` (RFC 8705
//! §2.1.1), from PEM (`private_key` + `certificate`) or from a PKCS#12 file (`pkcs12` +
//! `pkcs12_password`).

use super::{CredentialsDelivery, TokenEndpointAuthMethod};
use crate::client_cert::{ClientCertificate, open_pkcs12};
use crate::client_key::{ClientKey, SigningAlg};
use crate::secret::SecretString;

/// The client-authentication fields of a spec, for [`client_authentication`].
pub(crate) struct ClientAuthFields {
    pub(crate) method: Option<TokenEndpointAuthMethod>,
    pub(crate) delivery: Option<CredentialsDelivery>,
    pub(crate) has_secret: bool,
    pub(crate) private_key: Option<SecretString>,
    pub(crate) signing_alg: Option<SigningAlg>,
    pub(crate) certificate: Option<SecretString>,
    pub(crate) x5t_sha1: Option<bool>,
    pub(crate) pkcs12: Option<SecretString>,
    pub(crate) pkcs12_password: Option<SecretString>,
}

/// The method (`token_endpoint_auth_method`, or what `client_credentials_delivery` means) and,
/// for `private_key_jwt`, the parsed key, for `tls_client_auth` the client certificate; every
/// inconsistency is reported through `problem`.
pub(crate) fn client_authentication(
    fields: ClientAuthFields,
    problem: &mut impl FnMut(&str, String),
) -> (
    TokenEndpointAuthMethod,
    Option<ClientKey>,
    Option<ClientCertificate>,
) {
    use TokenEndpointAuthMethod as M;
    let method = match (fields.method, fields.delivery) {
        (Some(method), Some(delivery)) if method.delivery() != Some(delivery) => {
            problem(
                "token_endpoint_auth_method",
                format!(
                    "`{method}` contradicts client_credentials_delivery = \"{delivery}\" (which \
                     means `{}`); give only token_endpoint_auth_method",
                    match delivery {
                        CredentialsDelivery::Body => M::ClientSecretPost,
                        CredentialsDelivery::BasicHeader => M::ClientSecretBasic,
                    }
                ),
            );
            method
        }
        (Some(method), _) => method,
        (None, Some(CredentialsDelivery::BasicHeader)) => M::ClientSecretBasic,
        (None, _) => M::ClientSecretPost,
    };
    match method {
        M::ClientSecretJwt if !fields.has_secret => problem(
            "client_secret",
            "is required with token_endpoint_auth_method = \"client_secret_jwt\"".to_owned(),
        ),
        M::PrivateKeyJwt | M::TlsClientAuth | M::None if fields.has_secret => problem(
            "client_secret",
            format!("is not used with token_endpoint_auth_method = \"{method}\"; remove it"),
        ),
        _ => {}
    }
    let jwt_only = [
        ("signing_alg", fields.signing_alg.is_some()),
        ("x5t_sha1", fields.x5t_sha1.is_some()),
    ];
    let key_material = [
        ("private_key", fields.private_key.is_some()),
        ("certificate", fields.certificate.is_some()),
        ("pkcs12", fields.pkcs12.is_some()),
        ("pkcs12_password", fields.pkcs12_password.is_some()),
    ];
    let unused: Vec<(&str, bool)> = match method {
        M::PrivateKeyJwt => Vec::new(),
        M::TlsClientAuth => jwt_only.to_vec(),
        _ => jwt_only.iter().chain(&key_material).copied().collect(),
    };
    for (field, given) in unused {
        if given {
            problem(
                field,
                match method {
                    M::TlsClientAuth => "is only used with token_endpoint_auth_method = \"private_key_jwt\"",
                    _ => "is only used with token_endpoint_auth_method = \"private_key_jwt\" or \"tls_client_auth\"",
                }
                .to_owned(),
            );
        }
    }
    if !matches!(method, M::PrivateKeyJwt | M::TlsClientAuth) {
        return (method, None, None);
    }
    let Some((key, certificate)) = key_material_of(&fields, method, problem) else {
        return (method, None, None);
    };
    if method == M::TlsClientAuth {
        let Some(certificate) = certificate else {
            problem(
                "certificate",
                "is required with token_endpoint_auth_method = \"tls_client_auth\" (or give \
                 `pkcs12`)"
                    .to_owned(),
            );
            return (method, None, None);
        };
        return match ClientCertificate::from_pem(&certificate, &key, "certificate", "private_key") {
            Ok(client_certificate) => (method, None, Some(client_certificate)),
            Err(err) => {
                problem(err.field, err.problem);
                (method, None, None)
            }
        };
    }
    let x5t_sha1 = fields.x5t_sha1.unwrap_or(false);
    if x5t_sha1 && certificate.is_none() {
        problem(
            "x5t_sha1",
            "needs `certificate`: the thumbprint is the certificate's".to_owned(),
        );
    }
    match ClientKey::from_pem(
        &key,
        fields.signing_alg.unwrap_or_default(),
        certificate.as_deref(),
        x5t_sha1,
    ) {
        Ok(key) => (method, Some(key), None),
        Err(err) => {
            problem(err.field, err.problem);
            (method, None, None)
        }
    }
}

/// The private key (PEM) and the certificate (PEM, leaf first) from `private_key` +
/// `certificate` or from `pkcs12`; `None` after reporting why there is none.
fn key_material_of(
    fields: &ClientAuthFields,
    method: TokenEndpointAuthMethod,
    problem: &mut impl FnMut(&str, String),
) -> Option<(SecretString, Option<String>)> {
    if let Some(pkcs12) = fields.pkcs12.as_ref().filter(|p| !p.is_empty()) {
        for (field, given) in [
            ("private_key", fields.private_key.is_some()),
            ("certificate", fields.certificate.is_some()),
        ] {
            if given {
                problem(
                    field,
                    "give either `pkcs12` or `private_key` and `certificate`, not both".to_owned(),
                );
            }
        }
        let password = fields
            .pkcs12_password
            .clone()
            .unwrap_or_else(|| SecretString::new(""));
        return match open_pkcs12(pkcs12, &password) {
            Ok(contents) => Some((contents.private_key, Some(contents.certificates))),
            Err(err) => {
                problem(err.field, err.problem);
                None
            }
        };
    }
    if fields.pkcs12_password.is_some() {
        problem("pkcs12_password", "is only used with `pkcs12`".to_owned());
    }
    let Some(private_key) = fields.private_key.clone().filter(|key| !key.is_empty()) else {
        problem(
            "private_key",
            format!(
                "is required with token_endpoint_auth_method = \"{method}\" (or give `pkcs12`)"
            ),
        );
        return None;
    };
    let certificate = fields
        .certificate
        .as_ref()
        .map(|certificate| certificate.expose().to_owned());
    Some((private_key, certificate))
}
