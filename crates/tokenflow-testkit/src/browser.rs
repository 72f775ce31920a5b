//! A real headless Chromium for UI tests, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, through the `fantoccini` crate). Each test gets its own chromedriver on a
//! free port and a fresh profile. The flags are the ones this closed network needs: without
//! `--disable-background-networking` and friends Chromium keeps dialling Google.
//!
//! [`Browser::check`] runs a test body and, when it panics, saves a screenshot and the page HTML
//! under `target/browser-artifacts/` (or `$BROWSER_ARTIFACTS_DIR`) before failing the test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

/// Where Debian installs them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; chromedriver is killed when this is dropped.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. Missing binaries are a failure with the
    /// install command, never a skip.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let capabilities = capabilities.as_object().cloned().unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        _driver: driver,
                        _profile: profile,
                    };
                }
                Err(err) => {
                    last_error = err.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("cannot start a WebDriver session on chromedriver: {last_error}");
    }

    /// Runs `body` with the client; on a panic saves `<name>.png` and `<name>.html`, then fails.
    pub async fn check<F, Fut>(&self, name: &str, body: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let result = tokio::spawn(body(self.client.clone())).await;
        if let Err(err) = result {
            let dir = artifacts_dir();
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(png) = self.client.screenshot().await {
                let _ = std::fs::write(dir.join(format!("{name}.png")), png);
            }
            if let Ok(html) = self.client.source().await {
                let _ = std::fs::write(dir.join(format!("{name}.html")), html);
            }
            eprintln!("browser artifacts saved in {}", dir.display());
            if err.is_panic() {
                std::panic::resume_unwind(err.into_panic());
            }
            panic!("the browser test body failed: {err}");
        }
    }

    /// Closes the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `$BROWSER_ARTIFACTS_DIR`, or `target/browser-artifacts` of the workspace.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("BROWSER_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts")
        })
}

/// Waits (at most `secs`) until `css` matches an element, and returns it.
pub async fn wait_for(client: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no element `{css}` within {secs} s: {err}"))
}

/// Waits (at most `secs`) until the current URL starts with `prefix`.
pub async fn wait_for_url(client: &Client, prefix: &str, secs: u64) -> url::Url {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(url) = client.current_url().await
            && url.as_str().starts_with(prefix)
        {
            return url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser did not reach {prefix} within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in at the test IdP's login and consent pages in the browser (see tests/idp).
pub async fn idp_sign_in(client: &Client, user: &str, password: &str, allow: bool) {
    wait_for(client, "#login", 20)
        .await
        .send_keys(user)
        .await
        .expect("type the login");
    client
        .find(Locator::Css("#password"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    client
        .find(Locator::Css("#submit"))
        .await
        .expect("submit button")
        .click()
        .await
        .expect("click");
    let button = if allow { "#allow" } else { "#deny" };
    wait_for(client, button, 20)
        .await
        .click()
        .await
        .expect("click consent");
}
