//! Encryption at rest (docs/security.md): the master key and the cipher every secret column goes through.
//!
//! The one design decision: XChaCha20-Poly1305 with a fresh random 24-byte nonce per value and
//! the value's *place* as associated data (`b"runs.state:<run id>"`). The 192-bit nonce makes
//! random nonces safe for any number of values under one key (no counter to persist), and the
//! associated data means a ciphertext copied into another row or column fails to open instead of
//! being accepted as that row's secret.
//!
//! Sealed format: `b"v2:"` ‖ key id (8 bytes) ‖ nonce (24 bytes) ‖ ciphertext with its 16-byte
//! tag. The key id ([`MasterKey::id`], a one-way derivation that reveals nothing about the key)
//! tells which master key sealed a value without trying to open it: a key rotation finds the
//! values it has not re-sealed yet, and the database refuses values sealed with a key that was
//! rotated out (docs/operations.md, "Master key rotation"). Values of the earlier format
//! `b"v1:"` ‖ nonce ‖ ciphertext (no key id) still open; nothing writes them any more.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::StoreError;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 8;
const PREFIX: &[u8] = b"v2:";
const LEGACY_PREFIX: &[u8] = b"v1:";
/// The length of a sealed value's [`Cipher::tag`]: format prefix and key id.
pub(crate) const TAG_PREFIX_LEN: usize = 3 + KEY_ID_LEN;

/// The 32-byte master key. Zeroed on drop; `Debug` prints `[redacted]`.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Parses standard (padded) Base64 of exactly 32 bytes. Surrounding whitespace is ignored so
    /// that a key file ending in a newline, or an env value pasted with a space, still works.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::InvalidMasterKey("it is empty".into()));
        }
        // Decoded into a zeroizing buffer: the key must not linger in a freed Vec.
        let decoded =
            Zeroizing::new(BASE64.decode(text).map_err(|_| {
                StoreError::InvalidMasterKey("it is not valid standard Base64".into())
            })?);
        if decoded.len() != KEY_LEN {
            return Err(StoreError::InvalidMasterKey(format!(
                "it must decode to exactly {KEY_LEN} bytes, not {}",
                decoded.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self(key))
    }

    /// A key for another purpose (e.g. signing UI sessions), derived so that it reveals nothing
    /// about the master key and differs per `label`: SHA-256 over a domain-separated encoding.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"tokenflow derived key v1\0");
        hasher.update(label.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.0.as_slice());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(&hasher.finalize());
        out
    }

    /// The key's id: 8 bytes of a domain-separated SHA-256 derivation, stored in every value the
    /// key seals. It identifies the key and reveals nothing about it.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        let derived = self.derive("master key id");
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&derived[..KEY_ID_LEN]);
        id
    }

    /// Reads the key file at `path`: `None` when there is none. Never creates one.
    pub fn read_file(path: &Path) -> Result<Option<Self>, StoreError> {
        match read_key_file(path) {
            Ok(key) => key.map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(key_file_error(path, err)),
        }
    }

    /// Writes this key to a new key file at `path` (mode 0600, synced); an existing file is an
    /// error and is left alone.
    pub fn write_new_file(&self, path: &Path) -> Result<(), StoreError> {
        create_key_file(path, self).map_err(|err| key_file_error(path, err))
    }

    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Result<Self, StoreError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(key.as_mut_slice()).map_err(|_| {
            StoreError::InvalidMasterKey("the OS random number generator failed".into())
        })?;
        Ok(Self(key))
    }

    /// The master key for this process: `env_value` (`TOKENFLOW_MASTER_KEY`) wins; else the key
    /// file is read; else the key file is created (mode 0600, its directory 0700 when missing)
    /// holding a new key as Base64 and a newline.
    ///
    /// A key file that exists but is invalid is an error, never silently replaced: replacing it
    /// would make every stored secret unreadable.
    pub fn load(env_value: Option<&str>, key_file: &Path) -> Result<Self, StoreError> {
        if let Some(value) = env_value {
            return Self::from_base64(value);
        }
        match read_key_file(key_file) {
            Ok(key) => return key,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(key_file_error(key_file, err)),
        }
        let key = Self::generate()?;
        match create_key_file(key_file, &key) {
            Ok(()) => {
                tracing::info!(path = %key_file.display(), "created a new master key file");
                Ok(key)
            }
            // Another process created it between our read and our create: use theirs, so both
            // processes encrypt with the same key.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => read_key_file(key_file)
                .map_err(|err| key_file_error(key_file, err))
                .and_then(|key| key),
            Err(err) => Err(key_file_error(key_file, err)),
        }
    }

    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0.as_slice()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Reads and parses the key file; the outer error is IO, the inner one the content.
fn read_key_file(path: &Path) -> io::Result<Result<MasterKey, StoreError>> {
    let text = Zeroizing::new(fs::read_to_string(path)?);
    warn_if_readable_by_others(path);
    Ok(MasterKey::from_base64(&text).map_err(|err| match err {
        StoreError::InvalidMasterKey(why) => {
            StoreError::InvalidMasterKey(format!("key file {}: {why}", path.display()))
        }
        other => other,
    }))
}

fn create_key_file(path: &Path, key: &MasterKey) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, not chmod-ed afterwards: there is no moment when others can read it.
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = (|| {
        let mut line = key.to_base64();
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_all()
    })();
    if written.is_err() {
        // A half-written key file would fail every later start; better none at all.
        let _ = fs::remove_file(path);
    }
    written
}

/// Creates `dir` (and its parents) with mode 0700 on unix; an existing directory is left as is.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the master key file is accessible to other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn key_file_error(path: &Path, source: io::Error) -> StoreError {
    // The key file normally lives in the data directory; `DataDir` is the IO variant with a path.
    StoreError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// Seals and opens values with the master key. Cheap to clone; `Debug` shows no key material.
#[derive(Clone)]
pub struct Cipher {
    // Zeroizes its key on drop (chacha20poly1305's `ZeroizeOnDrop`).
    aead: XChaCha20Poly1305,
    /// `b"v2:"` ‖ the key's id: how every value this cipher seals begins.
    tag: [u8; TAG_PREFIX_LEN],
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        let mut tag = [0u8; TAG_PREFIX_LEN];
        tag[..PREFIX.len()].copy_from_slice(PREFIX);
        tag[PREFIX.len()..].copy_from_slice(&key.id());
        Self {
            aead: XChaCha20Poly1305::new(key.0.as_slice().into()),
            tag,
        }
    }

    /// How every value this cipher seals begins (format and key id): no secret.
    pub fn tag(&self) -> &[u8] {
        &self.tag
    }

    /// Whether `sealed` was sealed by this cipher's key in the current format.
    pub fn sealed_here(&self, sealed: &[u8]) -> bool {
        sealed.starts_with(&self.tag)
    }

    /// Encrypts `plaintext` bound to `aad` (the value's place, e.g. `b"runs.state:<run id>"`).
    /// Every call uses a new random nonce, so sealing the same value twice gives different bytes.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        // `StoreError` has no encryption variant; `Corrupt` is the closest (reported upstream).
        getrandom::fill(&mut nonce).map_err(|_| {
            StoreError::Corrupt("cannot encrypt: the OS random number generator failed".into())
        })?;
        // Encrypted in place in the sealed value's own buffer: a large value (a run's state can
        // hold MBs) is copied once, not twice. The layout is that of `encrypt`: ciphertext, tag.
        let start = TAG_PREFIX_LEN + NONCE_LEN;
        let mut sealed = Vec::with_capacity(start + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&self.tag);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut sealed[start..])
            .map_err(|_| StoreError::Corrupt("cannot encrypt the value".into()))?;
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    /// Decrypts a value sealed with [`Cipher::seal`] under the same key and `aad`. A wrong key, a
    /// wrong `aad`, any changed byte or an unknown format all give [`StoreError::Decrypt`].
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let rest = if let Some(rest) = sealed.strip_prefix(LEGACY_PREFIX) {
            rest
        } else if let Some(rest) = sealed.strip_prefix(&self.tag[..]) {
            rest
        } else if sealed.starts_with(PREFIX) {
            return Err(StoreError::Decrypt("sealed with another master key".into()));
        } else {
            return Err(StoreError::Decrypt("unknown format".into()));
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Decrypt("too short".into()));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                StoreError::Decrypt(
                    "authentication failed: wrong key, wrong place or altered".into(),
                )
            })
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher { algorithm: \"XChaCha20-Poly1305\", key: [redacted] }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_base64(&BASE64.encode([byte; KEY_LEN])).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_aad() {
        let cipher = Cipher::new(&key(1));
        let sealed = cipher.seal(b"refresh-token-123", b"runs.state:r1").unwrap();
        assert!(sealed.starts_with(b"v2:"));
        assert!(cipher.sealed_here(&sealed));
        assert_eq!(
            cipher.open(&sealed, b"runs.state:r1").unwrap(),
            b"refresh-token-123"
        );
    }

    #[test]
    fn an_empty_value_roundtrips() {
        let cipher = Cipher::new(&key(1));
        let sealed = cipher.seal(b"", b"a").unwrap();
        assert_eq!(cipher.open(&sealed, b"a").unwrap(), b"");
    }

    #[test]
    fn another_key_cannot_open_a_sealed_value() {
        let sealed = Cipher::new(&key(1)).seal(b"secret", b"aad").unwrap();
        let err = Cipher::new(&key(2)).open(&sealed, b"aad").unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
    }

    #[test]
    fn a_value_moved_to_another_place_does_not_open() {
        let cipher = Cipher::new(&key(1));
        let sealed = cipher.seal(b"secret", b"runs.state:r1").unwrap();
        let err = cipher.open(&sealed, b"runs.state:r2").unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
    }

    #[test]
    fn any_changed_byte_is_detected() {
        let cipher = Cipher::new(&key(1));
        let sealed = cipher.seal(b"secret", b"aad").unwrap();
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            let err = cipher.open(&tampered, b"aad").unwrap_err();
            assert!(
                matches!(err, StoreError::Decrypt(_)),
                "byte {index}: {err:?}"
            );
        }
        let err = cipher
            .open(&sealed[..sealed.len() - 1], b"aad")
            .unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
        let err = cipher.open(b"v1:", b"aad").unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
        let err = cipher.open(cipher.tag(), b"aad").unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
    }

    #[test]
    fn a_value_of_the_format_without_key_id_still_opens() {
        let master = key(1);
        let cipher = Cipher::new(&master);
        let nonce = [7u8; NONCE_LEN];
        let mut legacy = b"v1:".to_vec();
        legacy.extend_from_slice(&nonce);
        legacy.extend(
            XChaCha20Poly1305::new(master.0.as_slice().into())
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: b"old secret",
                        aad: b"aad",
                    },
                )
                .unwrap(),
        );
        assert_eq!(cipher.open(&legacy, b"aad").unwrap(), b"old secret");
        assert!(!cipher.sealed_here(&legacy));
        let err = Cipher::new(&key(2)).open(&legacy, b"aad").unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
    }

    #[test]
    fn the_key_id_tells_keys_apart_and_reveals_no_key_bytes() {
        let (first, second) = (key(1), key(2));
        assert_ne!(first.id(), second.id());
        assert_eq!(first.id(), key(1).id());
        assert!(!first.id().iter().all(|byte| *byte == 1));
        let sealed = Cipher::new(&first).seal(b"secret", b"aad").unwrap();
        assert!(!Cipher::new(&second).sealed_here(&sealed));
        let err = Cipher::new(&second).open(&sealed, b"aad").unwrap_err();
        let StoreError::Decrypt(why) = &err else {
            panic!("{err:?}");
        };
        assert!(why.contains("another master key"), "{why}");
    }

    #[test]
    fn sealing_the_same_value_twice_gives_different_bytes() {
        let cipher = Cipher::new(&key(1));
        let first = cipher.seal(b"same", b"aad").unwrap();
        let second = cipher.seal(b"same", b"aad").unwrap();
        assert_ne!(first, second);
        assert!(!first.windows(4).any(|w| w == b"same"));
    }

    #[test]
    fn debug_output_contains_no_key_material() {
        let raw = [0xABu8; KEY_LEN];
        let encoded = BASE64.encode(raw);
        let master = MasterKey::from_base64(&encoded).unwrap();
        let cipher = Cipher::new(&master);
        for shown in [format!("{master:?}"), format!("{cipher:?}")] {
            assert!(shown.contains("[redacted]"), "{shown}");
            assert!(!shown.contains(&encoded), "{shown}");
            assert!(!shown.contains("171"), "{shown}"); // 0xAB as a decimal byte list
            assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        }
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_read_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("master.key");
        let created = MasterKey::load(None, &path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.trim_end(), created.to_base64().as_str());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        let reread = MasterKey::load(None, &path).unwrap();
        assert_eq!(reread.0.as_slice(), created.0.as_slice());
        let sealed = Cipher::new(&created).seal(b"x", b"y").unwrap();
        assert_eq!(Cipher::new(&reread).open(&sealed, b"y").unwrap(), b"x");
    }

    #[test]
    fn the_env_value_wins_over_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, format!("{}\n", BASE64.encode([1u8; KEY_LEN]))).unwrap();
        let env = BASE64.encode([2u8; KEY_LEN]);
        let loaded = MasterKey::load(Some(&env), &path).unwrap();
        assert_eq!(loaded.0.as_slice(), &[2u8; KEY_LEN]);
        // And an env value never creates a file.
        let absent = dir.path().join("absent.key");
        MasterKey::load(Some(&env), &absent).unwrap();
        assert!(!absent.exists());
    }

    #[test]
    fn an_invalid_key_file_is_an_error_and_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "not base64!\n").unwrap();
        let err = MasterKey::load(None, &path).unwrap_err();
        assert!(matches!(err, StoreError::InvalidMasterKey(_)), "{err:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "not base64!\n");
    }

    #[test]
    fn bad_base64_or_a_wrong_length_is_an_invalid_master_key() {
        let short = BASE64.encode([7u8; 16]);
        let long = BASE64.encode([7u8; 33]);
        for text in ["", "   ", "%%%not-base64%%%", short.as_str(), long.as_str()] {
            let err = MasterKey::from_base64(text).unwrap_err();
            let StoreError::InvalidMasterKey(message) = &err else {
                panic!("{text:?}: {err:?}");
            };
            assert!(
                text.trim().is_empty() || !message.contains(text.trim()),
                "{message}"
            );
        }
        assert!(MasterKey::from_base64(&format!(" {}\n", BASE64.encode([7u8; 32]))).is_ok());
    }

    #[test]
    fn derived_keys_differ_by_label_and_from_the_master_key() {
        let key = MasterKey::generate().unwrap();
        let a = key.derive("sessions");
        let b = key.derive("other");
        assert_ne!(*a, *b);
        assert_ne!(a.as_slice(), key.0.as_slice());
        assert_eq!(*key.derive("sessions"), *a, "deterministic");
    }

    #[test]
    fn generated_keys_differ() {
        let first = MasterKey::generate().unwrap();
        let second = MasterKey::generate().unwrap();
        assert_ne!(first.0.as_slice(), second.0.as_slice());
    }
}
