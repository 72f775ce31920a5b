//! Certificates made by the test itself with the `openssl` command line, in a temporary folder:
//! a CA, a server certificate for `127.0.0.1`, client certificates the CA signed, a client
//! certificate nobody signed, and PKCS#12 files of them (docs/connectors.md, "Client
//! certificates").

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small PKI in a temporary folder (removed when dropped).
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
}

/// The subject of [`TestPki`]'s client certificate (`client.pem`).
pub const CLIENT_SUBJECT: &str = "CN=tokenflow-client";

impl TestPki {
    /// Makes `ca.pem`, `server.pem`/`server.key` (SAN `IP:127.0.0.1`, `DNS:localhost`),
    /// `client.pem`/`client.key` (`CN=tokenflow-client`, signed by the CA), `other.pem`/`other.key`
    /// (`CN=other-client`, signed by the CA) and `rogue.pem`/`rogue.key` (`CN=tokenflow-client`,
    /// self-signed).
    pub fn generate() -> TestPki {
        let pki = TestPki {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tokenflow test CA",
        ]);
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.ext");
        // X.509 v3 (extensions), as every CA issues them: TLS libraries refuse v1 certificates.
        std::fs::write(
            pki.path("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write client.ext");
        pki.signed("server", "/CN=127.0.0.1", Some("server.ext"));
        pki.signed("client", "/CN=tokenflow-client", Some("client.ext"));
        pki.signed("other", "/CN=other-client", Some("client.ext"));
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tokenflow-client",
        ]);
        pki
    }

    fn signed(&self, name: &str, subject: &str, extensions: Option<&str>) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ]);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
        ];
        if let Some(ext) = extensions {
            args.extend(["-extfile", ext]);
        }
        self.openssl(&args);
    }

    /// Runs `openssl` in the folder; panics with its stderr when it fails.
    pub fn openssl(&self, args: &[&str]) -> String {
        self.openssl_env(args, &[])
    }

    fn openssl_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|err| panic!("cannot run openssl (install it): {err}"));
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file of the folder as text (PEM).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read PKI file")
    }

    /// `openssl pkcs12 -export` of `<name>.pem` + `<name>.key` (with the CA certificate) into
    /// `<file>`, with `password`; `legacy` adds `-legacy` (3DES and RC2, SHA-1 MAC) instead of
    /// today's default (AES-256-CBC, PBKDF2, SHA-256 MAC). Returns the file's bytes.
    pub fn pkcs12(&self, name: &str, file: &str, password: &str, legacy: bool) -> Vec<u8> {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            &pem,
            "-inkey",
            &key,
            "-certfile",
            "ca.pem",
            "-out",
            file,
            "-passout",
            "env:TEST_PFX_PASSWORD",
        ];
        if legacy {
            args.push("-legacy");
        }
        self.openssl_env(&args, &[("TEST_PFX_PASSWORD", password)]);
        std::fs::read(self.path(file)).expect("read PKCS#12 file")
    }

    /// `x5t#S256` of `<name>.pem` computed by openssl: `openssl x509 -fingerprint -sha256`,
    /// hex to bytes, base64url without padding.
    pub fn x5t_s256(&self, name: &str) -> String {
        let out = self.openssl(&[
            "x509",
            "-in",
            &format!("{name}.pem"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let hex = out
            .trim()
            .rsplit('=')
            .next()
            .expect("fingerprint line")
            .replace(':', "");
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        base64url(&bytes)
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A local HTTPS server that requires a client certificate signed by the PKI's CA (Node's https
/// module with `requestCert` and `rejectUnauthorized`): every request is answered 200 with
/// `{"subject": "<client certificate CN>"}`. Stopped when dropped.
#[derive(Debug)]
pub struct MtlsServer {
    _child: tokio::process::Child,
    url: String,
}

impl MtlsServer {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

const MTLS_SERVER: &str = r"
const https = require('node:https');
const fs = require('node:fs');
const server = https.createServer({
  cert: fs.readFileSync(process.env.TLS_CERT),
  key: fs.readFileSync(process.env.TLS_KEY),
  ca: fs.readFileSync(process.env.TLS_CA),
  requestCert: true,
  rejectUnauthorized: true,
}, (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ subject: req.socket.getPeerCertificate().subject.CN }));
});
server.listen(0, '127.0.0.1', () => console.log(`MTLS_READY https://127.0.0.1:${server.address().port}`));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
";

impl TestPki {
    /// Starts an [`MtlsServer`] with `server.pem` that trusts client certificates of `ca.pem`.
    pub async fn mtls_server(&self) -> MtlsServer {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("node")
            .args(["-e", MTLS_SERVER])
            .env("TLS_CERT", self.path("server.pem"))
            .env("TLS_KEY", self.path("server.key"))
            .env("TLS_CA", self.path("ca.pem"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("MTLS_READY ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the mTLS test server printed MTLS_READY");
        MtlsServer { _child: child, url }
    }
}
