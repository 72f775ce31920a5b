//! The private key of `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core
//! §9; docs/connectors.md, "Client authentication").
//!
//! A [`ClientKey`] is parsed once, when the configuration is validated: PEM PKCS#8, PKCS#1 (RSA) or
//! SEC1 (EC P-256), checked by signing a probe, so a wrong or unusable key is a configuration
//! error and not a failure of the first token request. Its `Debug` shows the algorithm and the
//! certificate thumbprints only; no error text ever carries key material (not even the decoder's
//! messages, which can quote a character of the input).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::der::der_element;
use crate::secret::SecretString;

/// The JWS algorithm of a `private_key_jwt` client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (what Entra ID expects).
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA with P-256 and SHA-256.
    ES256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::ES256 => "ES256",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::PS256 => Algorithm::PS256,
            SigningAlg::ES256 => Algorithm::ES256,
        }
    }

    fn key_kind(self) -> &'static str {
        match self {
            SigningAlg::RS256 | SigningAlg::PS256 => "an RSA private key (2048 bits or more)",
            SigningAlg::ES256 => "an EC P-256 private key",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated signing key with the header values derived from its certificate.
#[derive(Clone)]
pub struct ClientKey {
    alg: SigningAlg,
    key: EncodingKey,
    /// `x5t#S256`: base64url SHA-256 of the certificate's DER (RFC 7515 §4.1.8).
    x5t_s256: Option<String>,
    /// `x5t`: base64url SHA-1 of the certificate's DER (RFC 7515 §4.1.7), only when asked for.
    x5t: Option<String>,
    /// The certificate's PEM as configured (public), so a stored server reads back the same.
    certificate: Option<String>,
    /// `kid`: names the key at the provider (a service account key's `private_key_id`).
    kid: Option<String>,
}

/// Why a key or certificate is refused; the texts name no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// `private_key` or `certificate`.
    pub field: &'static str,
    pub problem: String,
}

impl ClientKey {
    /// Parses `pem` for `alg`; with `certificate` (PEM), the header carries `x5t#S256`, and `x5t`
    /// too when `x5t_sha1`.
    pub fn from_pem(
        pem: &SecretString,
        alg: SigningAlg,
        certificate: Option<&str>,
        x5t_sha1: bool,
    ) -> Result<Self, KeyProblem> {
        let key_problem = |problem: String| KeyProblem {
            field: "private_key",
            problem,
        };
        let der = PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|_| {
            key_problem(
                "is not a PEM private key (expected `-----BEGIN PRIVATE KEY-----` (PKCS#8), \
                 `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) or `-----BEGIN EC PRIVATE KEY-----` \
                 (SEC1), unencrypted)"
                    .to_owned(),
            )
        })?;
        let unusable = || {
            key_problem(format!(
                "is not usable with signing_alg = \"{alg}\", which needs {}",
                alg.key_kind()
            ))
        };
        let key = match (alg, &der) {
            (SigningAlg::RS256 | SigningAlg::PS256, PrivateKeyDer::Pkcs1(der)) => {
                EncodingKey::from_rsa_der(der.secret_pkcs1_der())
            }
            (SigningAlg::RS256 | SigningAlg::PS256, PrivateKeyDer::Pkcs8(der)) => {
                let pkcs1 = rsa_pkcs1_of_pkcs8(der.secret_pkcs8_der()).ok_or_else(unusable)?;
                EncodingKey::from_rsa_der(pkcs1)
            }
            (SigningAlg::ES256, PrivateKeyDer::Pkcs8(der)) => {
                EncodingKey::from_ec_der(der.secret_pkcs8_der())
            }
            (SigningAlg::ES256, PrivateKeyDer::Sec1(der)) => {
                let pair = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der.secret_sec1_der(),
                )
                .map_err(|_| unusable())?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| unusable())?;
                EncodingKey::from_ec_der(pkcs8.as_ref())
            }
            _ => return Err(unusable()),
        };
        let (x5t_s256, x5t) = match certificate {
            None => (None, None),
            Some(pem) => {
                let der =
                    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyProblem {
                        field: "certificate",
                        problem: "is not a PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                            .to_owned(),
                    })?;
                let sha256 = URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref()));
                let sha1 = x5t_sha1.then(|| {
                    let digest = aws_lc_rs::digest::digest(
                        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                        der.as_ref(),
                    );
                    URL_SAFE_NO_PAD.encode(digest.as_ref())
                });
                (Some(sha256), sha1)
            }
        };
        let key = ClientKey {
            alg,
            key,
            x5t_s256,
            x5t,
            certificate: certificate.map(|pem| pem.trim().to_owned()),
            kid: None,
        };
        // The probe: a key the crypto library refuses (wrong curve, too short, damaged) fails here.
        key.sign(&serde_json::json!({ "probe": true }))
            .map_err(|_| unusable())?;
        Ok(key)
    }

    /// The same key, its JWS headers carrying `kid` (RFC 7515 §4.1.4).
    pub fn with_kid(mut self, kid: Option<String>) -> Self {
        self.kid = kid;
        self
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The `x5t#S256` header value, when a certificate was given.
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// The `x5t` header value, when a certificate was given with `x5t_sha1 = true`.
    pub fn x5t(&self) -> Option<&str> {
        self.x5t.as_deref()
    }

    /// The certificate's PEM, when one was given.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate.as_deref()
    }

    /// The JWS header: `alg`, `typ` `JWT` and the certificate thumbprints.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg.algorithm());
        header.x5t_s256.clone_from(&self.x5t_s256);
        header.x5t.clone_from(&self.x5t);
        header.kid.clone_from(&self.kid);
        header
    }

    /// A compact JWS of `claims` signed with this key.
    pub fn sign<T: serde::Serialize>(
        &self,
        claims: &T,
    ) -> Result<SecretString, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header(), claims, &self.key).map(SecretString::new)
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .field("x5t_s256", &self.x5t_s256)
            .field("x5t", &self.x5t)
            .finish()
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` of an `rsaEncryption` key
/// (RFC 5208 §5, RFC 8017 Appendix A.1.2): the form the signer takes.
fn rsa_pkcs1_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (tag, info, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _version, rest) = der_element(info)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, algorithm, rest) = der_element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    if tag != 0x06 || oid != RSA_ENCRYPTION {
        return None;
    }
    let (tag, private_key, _) = der_element(rest)?;
    (tag == 0x04).then_some(private_key)
}
