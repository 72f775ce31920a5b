//! Client certificates for mutual TLS (RFC 8705 §2.1 `tls_client_auth`; `http_connector`'s
//! `client_certificate`) and extra trusted CA certificates (`tls_ca`); docs/connectors.md.
//!
//! A [`ClientCertificate`] is checked when it is configured or given: the certificate chain and
//! the private key are parsed (from PEM, or unpacked from PKCS#12), so a broken one is a
//! configuration error naming the field. Its `Debug` shows the fingerprint only; no error text
//! carries key material or the PKCS#12 password.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::client_key::KeyProblem;
use crate::pkcs12;
use crate::secret::SecretString;

/// A certificate chain with its private key, ready to be presented in a TLS handshake.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificates (leaf first), PEM.
    certificates: String,
    /// The private key, PEM.
    key: SecretString,
    /// Hex SHA-256 of the leaf certificate's DER.
    fingerprint: String,
    /// Hex SHA-256 of the certificates and the key together: what tells two identities apart
    /// (the same certificate with another key is another identity).
    identity_digest: String,
}

impl ClientCertificate {
    /// From PEM: `certificate` (one or more `CERTIFICATE` blocks, the leaf first) and `key`
    /// (PKCS#8, PKCS#1 or SEC1). Problems name `certificate_field` or `key_field`.
    pub fn from_pem(
        certificate: &str,
        key: &SecretString,
        certificate_field: &'static str,
        key_field: &'static str,
    ) -> Result<Self, KeyProblem> {
        let certificates: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(certificate.as_bytes())
                .collect::<Result<_, _>>()
                .ok()
                .filter(|certs: &Vec<_>| !certs.is_empty())
                .ok_or(KeyProblem {
                    field: certificate_field,
                    problem: "is not a PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned(),
                })?;
        PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|_| KeyProblem {
            field: key_field,
            problem: "is not a PEM private key (expected `-----BEGIN PRIVATE KEY-----` (PKCS#8), \
                      `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) or `-----BEGIN EC PRIVATE KEY-----` \
                      (SEC1), unencrypted)"
                .to_owned(),
        })?;
        let certificates_pem: String = certificates
            .iter()
            .map(|der| pkcs12::pem("CERTIFICATE", der.as_ref()))
            .collect();
        let fingerprint = hex(&Sha256::digest(certificates[0].as_ref()));
        let mut digest = Sha256::new();
        digest.update(certificates_pem.as_bytes());
        digest.update([0]);
        digest.update(key.expose().trim().as_bytes());
        Ok(Self {
            certificates: certificates_pem,
            key: SecretString::new(key.expose().trim().to_owned() + "\n"),
            fingerprint,
            identity_digest: hex(&digest.finalize()),
        })
    }

    /// From a PKCS#12 file given as Base64 text (`pkcs12`) and its password.
    pub fn from_pkcs12(
        pkcs12_base64: &SecretString,
        password: &SecretString,
    ) -> Result<Self, KeyProblem> {
        let contents = open_pkcs12(pkcs12_base64, password)?;
        Self::from_pem(
            &contents.certificates,
            &contents.private_key,
            "pkcs12",
            "pkcs12",
        )
    }

    /// The certificates (leaf first) and the key as one PEM text: what a TLS library takes as
    /// an identity.
    pub fn identity_pem(&self) -> SecretString {
        SecretString::new(format!("{}{}", self.certificates, self.key.expose()))
    }

    /// The certificates as PEM (public).
    pub fn certificates_pem(&self) -> &str {
        &self.certificates
    }

    /// The private key as PEM.
    pub fn key_pem(&self) -> &SecretString {
        &self.key
    }

    /// `sha256:<hex>` of the leaf certificate's DER (what `openssl x509 -fingerprint -sha256`
    /// shows, in lower case without colons).
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", self.fingerprint)
    }

    /// `x5t#S256` of the leaf certificate: base64url of the same SHA-256 (RFC 8705 §3.1).
    pub fn x5t_s256(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes: Vec<u8> = (0..self.fingerprint.len() / 2)
            .filter_map(|i| u8::from_str_radix(&self.fingerprint[2 * i..2 * i + 2], 16).ok())
            .collect();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Tells identities apart: the same for the same certificates and key, else different.
    pub fn identity_digest(&self) -> &str {
        &self.identity_digest
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("fingerprint", &self.fingerprint)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Opens a PKCS#12 file given as Base64 text; problems name `pkcs12` and never the password.
pub fn open_pkcs12(
    pkcs12_base64: &SecretString,
    password: &SecretString,
) -> Result<pkcs12::Pkcs12Contents, KeyProblem> {
    let compact: String = pkcs12_base64
        .expose()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let data = STANDARD.decode(compact).map_err(|_| KeyProblem {
        field: "pkcs12",
        problem: "is not Base64 (inline and `{ env }` values are the file in Base64; `{ file }` \
                  reads the file itself)"
            .to_owned(),
    })?;
    pkcs12::unpack(&data, password).map_err(|err| KeyProblem {
        field: "pkcs12",
        problem: err.to_string(),
    })
}

/// Checks `tls_ca`: one or more PEM certificates. Returns them normalised, or the problem.
pub fn check_ca_pem(pem: &str) -> Result<String, String> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| "is not PEM (`-----BEGIN CERTIFICATE-----` blocks)".to_owned())?;
    if certificates.is_empty() {
        return Err("holds no certificate (`-----BEGIN CERTIFICATE-----`)".to_owned());
    }
    Ok(certificates
        .iter()
        .map(|der| pkcs12::pem("CERTIFICATE", der.as_ref()))
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
