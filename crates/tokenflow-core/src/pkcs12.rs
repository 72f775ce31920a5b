//! PKCS#12 files (RFC 7292, "PFX", `.p12`/`.pfx`): the private key and the certificates inside,
//! for `pkcs12` + `pkcs12_password` (docs/connectors.md, "Client authentication").
//!
//! Read with the crypto library rustls already uses (aws-lc-rs: PBKDF2, HMAC, AES-CBC), so a
//! PKCS#12 file adds no second crypto stack. What is read:
//!
//! - what `openssl pkcs12 -export` writes today: PBES2 (RFC 8018 §6.2) with PBKDF2-HMAC-SHA-256
//!   and AES-256-CBC, an HMAC-SHA-256 MAC (AES-128/192 and the other SHA-2 PRFs too);
//! - the legacy files of OpenSSL 1.x, `-legacy` and older Windows exports: the PKCS#12 PBE schemes
//!   (RFC 7292 Appendix C) with 3DES or RC2 and a SHA-1 MAC. 3DES and RC2 are not in aws-lc-rs;
//!   the small RustCrypto `des`, `rc2` and `cbc` crates decrypt them (same `cipher` traits as the
//!   workspace's ChaCha20-Poly1305).
//!
//! The MAC is checked before anything is decrypted, so a wrong password is told as such. Errors
//! never carry the password or any decrypted byte.

use aws_lc_rs::{cipher, digest, hmac, pbkdf2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::num::NonZeroU32;

use crate::der::{CONTEXT_0, CONTEXT_0_PRIMITIVE, Der, SET};
use crate::secret::SecretString;

/// What a PKCS#12 file holds, as PEM.
#[derive(Debug, Clone)]
pub struct Pkcs12Contents {
    /// The private key (PKCS#8, `-----BEGIN PRIVATE KEY-----`).
    pub private_key: SecretString,
    /// The key's certificate first, then the other certificates of the file (the chain).
    pub certificates: String,
}

/// Why a PKCS#12 file cannot be read; the texts name no password and no content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("is not a PKCS#12 file (RFC 7292)")]
    NotPkcs12,
    #[error("cannot be opened: wrong pkcs12_password, or the file is damaged")]
    WrongPassword,
    #[error(
        "uses an encryption tokenflow does not read ({0}); export it again with `openssl pkcs12 -export` (AES-256)"
    )]
    Unsupported(&'static str),
    #[error("holds no private key")]
    NoKey,
    #[error("holds {0} private keys; export the one to use on its own")]
    SeveralKeys(usize),
    #[error("holds no certificate")]
    NoCertificate,
}

const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const OID_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const OID_CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
const OID_X509_CERTIFICATE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const OID_LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_PBE_SHA_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
const OID_PBE_SHA_RC2_128: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
const OID_PBE_SHA_RC2_40: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];

/// The most PBKDF2 or PKCS#12-KDF iterations accepted (OpenSSL writes 2,048; Windows 2,000 or
/// 10,000): a hostile file cannot make tokenflow spin.
const MAX_ITERATIONS: u32 = 10_000_000;

/// Opens a PKCS#12 file with `password`.
pub fn unpack(data: &[u8], password: &SecretString) -> Result<Pkcs12Contents, Pkcs12Error> {
    use Pkcs12Error::NotPkcs12;
    let mut pfx = Der(data).sequence().ok_or(NotPkcs12)?;
    if pfx.small_integer() != Some(3) {
        return Err(NotPkcs12);
    }
    let mut auth_safe = pfx.sequence().ok_or(NotPkcs12)?;
    if auth_safe.oid() != Some(OID_DATA) {
        return Err(NotPkcs12);
    }
    let content = Der(auth_safe.take(CONTEXT_0).ok_or(NotPkcs12)?)
        .octets()
        .ok_or(NotPkcs12)?;
    match pfx.sequence() {
        Some(mac_data) => check_mac(mac_data, content, password)?,
        // RFC 7292 §4: password integrity mode needs the MAC; without one the password is not
        // checked until a decryption fails.
        None if pfx.is_empty() => {}
        None => return Err(NotPkcs12),
    }
    let mut keys: Vec<Bag> = Vec::new();
    let mut certificates: Vec<Bag> = Vec::new();
    let mut safes = Der(content).sequence().ok_or(NotPkcs12)?;
    while !safes.is_empty() {
        let mut info = safes.sequence().ok_or(NotPkcs12)?;
        let kind = info.oid().ok_or(NotPkcs12)?;
        let mut inner = Der(info.take(CONTEXT_0).ok_or(NotPkcs12)?);
        let safe_contents = if kind == OID_DATA {
            inner.octets().ok_or(NotPkcs12)?.to_vec()
        } else if kind == OID_ENCRYPTED_DATA {
            let mut encrypted = inner.sequence().ok_or(NotPkcs12)?;
            encrypted.small_integer().ok_or(NotPkcs12)?;
            let mut content_info = encrypted.sequence().ok_or(NotPkcs12)?;
            content_info.oid().ok_or(NotPkcs12)?;
            let algorithm = content_info.sequence().ok_or(NotPkcs12)?;
            let ciphertext = content_info
                .take(CONTEXT_0_PRIMITIVE)
                .ok_or(Pkcs12Error::Unsupported("constructed encrypted content"))?;
            decrypt(algorithm, ciphertext, password)?
        } else {
            continue;
        };
        read_bags(&safe_contents, password, &mut keys, &mut certificates)?;
    }
    let key = match keys.len() {
        0 => return Err(Pkcs12Error::NoKey),
        1 => keys.remove(0),
        n => return Err(Pkcs12Error::SeveralKeys(n)),
    };
    if certificates.is_empty() {
        return Err(Pkcs12Error::NoCertificate);
    }
    // The key's certificate carries the key's localKeyId (RFC 7292 §4.2); without one, the
    // first certificate (OpenSSL and Windows write the key's first).
    let leaf = key
        .key_id
        .as_ref()
        .and_then(|id| {
            certificates
                .iter()
                .position(|cert| cert.key_id.as_ref() == Some(id))
        })
        .unwrap_or(0);
    let leaf = certificates.remove(leaf);
    let certificates = std::iter::once(leaf)
        .chain(certificates)
        .map(|cert| pem("CERTIFICATE", &cert.der))
        .collect::<String>();
    Ok(Pkcs12Contents {
        private_key: SecretString::new(pem("PRIVATE KEY", &key.der)),
        certificates,
    })
}

/// A key (decrypted PKCS#8) or a certificate, with its `localKeyId` attribute.
struct Bag {
    der: Vec<u8>,
    key_id: Option<Vec<u8>>,
}

/// The SafeBags of one SafeContents: keys (decrypted) and certificates.
fn read_bags(
    safe_contents: &[u8],
    password: &SecretString,
    keys: &mut Vec<Bag>,
    certificates: &mut Vec<Bag>,
) -> Result<(), Pkcs12Error> {
    use Pkcs12Error::NotPkcs12;
    let mut bags = Der(safe_contents).sequence().ok_or(NotPkcs12)?;
    while !bags.is_empty() {
        let mut bag = bags.sequence().ok_or(NotPkcs12)?;
        let kind = bag.oid().ok_or(NotPkcs12)?;
        let value = bag.take(CONTEXT_0).ok_or(NotPkcs12)?;
        let key_id = bag.optional(SET).and_then(local_key_id);
        if kind == OID_SHROUDED_KEY_BAG {
            let mut encrypted = Der(value).sequence().ok_or(NotPkcs12)?;
            let algorithm = encrypted.sequence().ok_or(NotPkcs12)?;
            let ciphertext = encrypted.octets().ok_or(NotPkcs12)?;
            let der = decrypt(algorithm, ciphertext, password)?;
            keys.push(Bag { der, key_id });
        } else if kind == OID_KEY_BAG {
            // The PrivateKeyInfo itself, unencrypted.
            let (_, _, rest) = crate::der::der_element(value).ok_or(NotPkcs12)?;
            let der = value[..value.len() - rest.len()].to_vec();
            keys.push(Bag { der, key_id });
        } else if kind == OID_CERT_BAG {
            let mut cert = Der(value).sequence().ok_or(NotPkcs12)?;
            if cert.oid() != Some(OID_X509_CERTIFICATE) {
                continue;
            }
            let der = Der(cert.take(CONTEXT_0).ok_or(NotPkcs12)?)
                .octets()
                .ok_or(NotPkcs12)?
                .to_vec();
            certificates.push(Bag { der, key_id });
        }
    }
    Ok(())
}

/// The `localKeyId` among a bag's attributes (a SET OF SEQUENCE { OID, SET OF value }).
fn local_key_id(attributes: &[u8]) -> Option<Vec<u8>> {
    let mut attributes = Der(attributes);
    while !attributes.is_empty() {
        let mut attribute = attributes.sequence()?;
        if attribute.oid()? == OID_LOCAL_KEY_ID {
            return Der(attribute.take(SET)?).octets().map(<[u8]>::to_vec);
        }
    }
    None
}

/// Checks the MacData (RFC 7292 §4): HMAC over the AuthenticatedSafe with a key from the
/// PKCS#12 KDF (Appendix B, ID 3).
fn check_mac(
    mut mac_data: Der<'_>,
    content: &[u8],
    password: &SecretString,
) -> Result<(), Pkcs12Error> {
    use Pkcs12Error::NotPkcs12;
    let mut digest_info = mac_data.sequence().ok_or(NotPkcs12)?;
    let mut algorithm = digest_info.sequence().ok_or(NotPkcs12)?;
    let digest_oid = algorithm.oid().ok_or(NotPkcs12)?;
    let expected = digest_info.octets().ok_or(NotPkcs12)?;
    let salt = mac_data.octets().ok_or(NotPkcs12)?;
    let iterations = if mac_data.is_empty() {
        1
    } else {
        mac_data.small_integer().ok_or(NotPkcs12)?
    };
    let (hash, hmac_alg) = match digest_oid {
        d if d == OID_SHA1 => (
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        ),
        d if d == OID_SHA256 => (&digest::SHA256, hmac::HMAC_SHA256),
        d if d == OID_SHA384 => (&digest::SHA384, hmac::HMAC_SHA384),
        d if d == OID_SHA512 => (&digest::SHA512, hmac::HMAC_SHA512),
        _ => return Err(Pkcs12Error::Unsupported("MAC digest")),
    };
    let key = pkcs12_kdf(
        hash,
        3,
        &bmp_password(password),
        salt,
        iterations,
        hash.output_len(),
    )?;
    let key = hmac::Key::new(hmac_alg, &key);
    hmac::verify(&key, content, expected).map_err(|_| Pkcs12Error::WrongPassword)
}

/// Decrypts an EncryptedData's or a shrouded key bag's content with its AlgorithmIdentifier.
fn decrypt(
    mut algorithm: Der<'_>,
    ciphertext: &[u8],
    password: &SecretString,
) -> Result<Vec<u8>, Pkcs12Error> {
    use Pkcs12Error::NotPkcs12;
    let oid = algorithm.oid().ok_or(NotPkcs12)?;
    let mut params = algorithm.sequence().ok_or(NotPkcs12)?;
    if oid == OID_PBES2 {
        return pbes2(params, ciphertext, password);
    }
    let legacy = if oid == OID_PBE_SHA_3DES {
        legacy::Scheme::TripleDes
    } else if oid == OID_PBE_SHA_RC2_128 {
        legacy::Scheme::Rc2 { key_bits: 128 }
    } else if oid == OID_PBE_SHA_RC2_40 {
        legacy::Scheme::Rc2 { key_bits: 40 }
    } else {
        return Err(Pkcs12Error::Unsupported("unknown PBE scheme"));
    };
    let salt = params.octets().ok_or(NotPkcs12)?;
    let iterations = params.small_integer().ok_or(NotPkcs12)?;
    let password = bmp_password(password);
    let (key_len, iv_len) = legacy.sizes();
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let key = pkcs12_kdf(sha1, 1, &password, salt, iterations, key_len)?;
    let iv = pkcs12_kdf(sha1, 2, &password, salt, iterations, iv_len)?;
    legacy
        .decrypt(&key, &iv, ciphertext)
        .ok_or(Pkcs12Error::WrongPassword)
}

/// PBES2 (RFC 8018 §6.2) with PBKDF2 and AES-CBC. The password goes in as UTF-8, as OpenSSL
/// writes it.
fn pbes2(
    mut params: Der<'_>,
    ciphertext: &[u8],
    password: &SecretString,
) -> Result<Vec<u8>, Pkcs12Error> {
    use Pkcs12Error::NotPkcs12;
    let mut kdf = params.sequence().ok_or(NotPkcs12)?;
    if kdf.oid() != Some(OID_PBKDF2) {
        return Err(Pkcs12Error::Unsupported("PBES2 without PBKDF2"));
    }
    let mut kdf_params = kdf.sequence().ok_or(NotPkcs12)?;
    let salt = kdf_params
        .octets()
        .ok_or(Pkcs12Error::Unsupported("PBKDF2 salt choice"))?;
    let iterations = kdf_params.small_integer().ok_or(NotPkcs12)?;
    let _key_length = kdf_params.optional(crate::der::INTEGER);
    let prf = match kdf_params.sequence() {
        None => pbkdf2::PBKDF2_HMAC_SHA1,
        Some(mut prf) => match prf.oid().ok_or(NotPkcs12)? {
            p if p == OID_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
            p if p == OID_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
            p if p == OID_HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
            p if p == OID_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => return Err(Pkcs12Error::Unsupported("PBKDF2 PRF")),
        },
    };
    let mut scheme = params.sequence().ok_or(NotPkcs12)?;
    let (aes, key_len) = match scheme.oid().ok_or(NotPkcs12)? {
        s if s == OID_AES256_CBC => (&cipher::AES_256, 32),
        s if s == OID_AES128_CBC => (&cipher::AES_128, 16),
        _ => {
            return Err(Pkcs12Error::Unsupported(
                "PBES2 cipher other than AES-128/256-CBC",
            ));
        }
    };
    let iv: [u8; 16] = scheme
        .octets()
        .and_then(|iv| iv.try_into().ok())
        .ok_or(NotPkcs12)?;
    let iterations = NonZeroU32::new(iterations)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or(Pkcs12Error::Unsupported("iteration count"))?;
    let mut key = zeroize::Zeroizing::new(vec![0u8; key_len]);
    pbkdf2::derive(
        prf,
        iterations,
        salt,
        password.expose().as_bytes(),
        &mut key,
    );
    let key = cipher::UnboundCipherKey::new(aes, &key).map_err(|_| NotPkcs12)?;
    let key = cipher::PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| NotPkcs12)?;
    let mut buffer = ciphertext.to_vec();
    let plain = key
        .decrypt(&mut buffer, cipher::DecryptionContext::Iv128(iv.into()))
        .map_err(|_| Pkcs12Error::WrongPassword)?;
    Ok(plain.to_vec())
}

/// The password as the PKCS#12 KDF takes it: a BMPString (UTF-16 big-endian) with a final
/// zero character (RFC 7292 Appendix B.1).
fn bmp_password(password: &SecretString) -> zeroize::Zeroizing<Vec<u8>> {
    let mut bytes: Vec<u8> = password
        .expose()
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    bytes.extend_from_slice(&[0, 0]);
    zeroize::Zeroizing::new(bytes)
}

/// The PKCS#12 key derivation (RFC 7292 Appendix B.2): `id` 1 for a key, 2 for an IV, 3 for a
/// MAC key.
fn pkcs12_kdf(
    hash: &'static digest::Algorithm,
    id: u8,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    len: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>, Pkcs12Error> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(Pkcs12Error::Unsupported("iteration count"));
    }
    let v = hash.block_len();
    let u = hash.output_len();
    let fill = |input: &[u8]| -> Vec<u8> {
        if input.is_empty() {
            return Vec::new();
        }
        let n = v * input.len().div_ceil(v);
        input.iter().copied().cycle().take(n).collect()
    };
    let mut i = fill(salt);
    i.extend_from_slice(&fill(password));
    let i = &mut zeroize::Zeroizing::new(i);
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(len.div_ceil(u) * u));
    while out.len() < len {
        let mut context = digest::Context::new(hash);
        context.update(&vec![id; v]);
        context.update(i);
        let mut a = context.finish();
        for _ in 1..iterations {
            a = digest::digest(hash, a.as_ref());
        }
        out.extend_from_slice(a.as_ref());
        // I_j = (I_j + B + 1) mod 2^(8v), with B = A repeated to v bytes.
        let b: Vec<u8> = a.as_ref().iter().copied().cycle().take(v).collect();
        for block in i.chunks_mut(v) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(&b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(len);
    Ok(out)
}

/// DER as PEM with 64-character lines (RFC 7468).
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The PKCS#12 PBE schemes of RFC 7292 Appendix C that legacy files use.
mod legacy {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockDecryptMut, InnerIvInit, KeyIvInit};

    #[derive(Debug, Clone, Copy)]
    pub(super) enum Scheme {
        /// pbeWithSHAAnd3-KeyTripleDES-CBC.
        TripleDes,
        /// pbeWithSHAAnd128BitRC2-CBC and pbeWithSHAAnd40BitRC2-CBC.
        Rc2 { key_bits: usize },
    }

    impl Scheme {
        /// Key and IV lengths in bytes.
        pub(super) fn sizes(self) -> (usize, usize) {
            match self {
                Scheme::TripleDes => (24, 8),
                Scheme::Rc2 { key_bits } => (key_bits / 8, 8),
            }
        }

        /// `None` when the padding is wrong (a wrong password, or a damaged file).
        pub(super) fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
            let mut buffer = ciphertext.to_vec();
            let len = match self {
                Scheme::TripleDes => cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
                    .ok()?
                    .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                    .ok()?
                    .len(),
                Scheme::Rc2 { key_bits } => {
                    let rc2 = rc2::Rc2::new_with_eff_key_len(key, key_bits);
                    let iv = cbc::cipher::generic_array::GenericArray::from_exact_iter(
                        iv.iter().copied(),
                    )?;
                    cbc::Decryptor::<rc2::Rc2>::inner_iv_init(rc2, &iv)
                        .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                        .ok()?
                        .len()
                }
            };
            buffer.truncate(len);
            Some(buffer)
        }
    }
}
