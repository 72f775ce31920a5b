//! Web UI sessions: kept in the store, ended by sign-out and key removal on every instance, a
//! cookie that carries nothing derived from the API key, and sign-in's `next` that never fails.

use reqwest::redirect::Policy;

use crate::support::{API_KEY, another_instance, world};
use crate::ui::{client, get_page, post_form, signed_in, value_of};

#[tokio::test]
async fn deleting_the_api_key_ends_the_ui_sessions_opened_with_it() {
    let w = world(false).await;
    let key = "a-stored-key-for-the-ui-0001";
    w.app
        .state
        .store
        .put_api_key(&tokenflow_store::ApiKeyRow {
            name: "ui".into(),
            hash: tokenflow_server::auth::hash_key(key),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        })
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let (login_cookie, token) = crate::ui::login_form(&http, &w.app.url).await;
    let response = http
        .post(format!("{}/login", w.app.url))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("api_key", key),
            ("next", "/runs"),
        ])
        .send()
        .await
        .unwrap();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tokenflow_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let runs = |session: String| {
        let http = http.clone();
        let url = format!("{}/runs", w.app.url);
        async move {
            http.get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(runs(session.clone()).await, 200);
    assert!(w.app.state.store.delete_api_key("ui").await.unwrap());
    assert_eq!(runs(session).await, 303, "the session ended with its key");
}
/// The value of the session cookie (`tokenflow_session=…` without attributes).
fn cookie_value(session: &str) -> &str {
    session.strip_prefix("tokenflow_session=").unwrap()
}
#[tokio::test]
async fn signing_out_ends_the_session_on_every_instance() {
    let w = world(false).await;
    let other = another_instance(&w.app).await;
    let (session, csrf) = signed_in(&w.app).await;
    let (status, _, _) = get_page(&other, &session, "/runs").await;
    assert_eq!(status, 200, "the other instance knows the session");

    let (status, _) = post_form(&w.app, &session, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);

    for app in [&w.app, &other] {
        for path in ["/runs", "/servers", "/flows/profile"] {
            let (status, location, _) = get_page(app, &session, path).await;
            assert_eq!(status, 303, "{path}");
            assert!(location.unwrap().starts_with("/login"), "{path}");
        }
        let start = format!(
            "/flows/profile/start?csrf={}",
            url::form_urlencoded::byte_serialize(csrf.as_bytes()).collect::<String>()
        );
        let (status, location, _) = get_page(app, &session, &start).await;
        assert_eq!(status, 303);
        assert!(location.unwrap().starts_with("/login"), "no login started");
        // CSRF-protected posts with the old cookie and its token are refused.
        let (status, _) = post_form(
            app,
            &session,
            "/servers/create",
            &[("csrf", &csrf), ("id", "afterlogout"), ("client_id", "x")],
        )
        .await;
        assert_eq!(status, 303, "sent to sign in, not saved");
        let (status, _) = post_form(app, &session, "/logout", &[("csrf", &csrf)]).await;
        assert_eq!(status, 303);
    }
    assert_eq!(
        w.app.get_json("/api/oauth-servers/afterlogout").await.0,
        404
    );
    let id_hash = tokenflow_server::auth::tokens::id_hash(cookie_value(&session));
    assert_eq!(
        w.app
            .state
            .store
            .find_ui_session(&id_hash, w.app.state.clock.now())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_session_ends_when_its_key_leaves_the_configuration() {
    let w = world(false).await;
    let (session, _) = signed_in(&w.app).await;
    // An instance started after the key was replaced in tokenflow.toml.
    let config = w.app._dir.path().join("tokenflow.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(API_KEY, "a-replacement-key-0123456789"),
    )
    .unwrap();
    let restarted = another_instance(&w.app).await;
    let (status, location, _) = get_page(&restarted, &session, "/runs").await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/login"));
    let (status, _, _) = get_page(&w.app, &session, "/runs").await;
    assert_eq!(status, 200, "the instance that still has the key keeps it");
}

#[tokio::test]
async fn the_session_cookie_carries_nothing_derived_from_the_api_key() {
    use base64::Engine;
    use sha2::Digest;
    let w = world(false).await;
    let (session, _) = signed_in(&w.app).await;
    let value = cookie_value(&session);
    let digest = sha2::Sha256::digest(API_KEY.as_bytes());
    let hex = tokenflow_server::auth::hash_key(API_KEY);
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut encodings = vec![hex.clone(), hex.to_uppercase(), API_KEY.to_owned()];
    encodings.extend(engines.iter().map(|e| e.encode(digest)));
    encodings.extend(engines.iter().map(|e| e.encode(&hex)));
    for encoded in &encodings {
        // Any 12 characters of an encoding would do to guess keys offline.
        assert!(
            !value.contains(&encoded[..12]),
            "the cookie holds {encoded}"
        );
    }
    // Whatever parts the value has, decoded, hold neither the hash nor its hex.
    for part in value.split('.') {
        for engine in &engines {
            if let Ok(bytes) = engine.decode(part) {
                assert!(
                    !bytes
                        .windows(12)
                        .any(|w| digest.windows(12).any(|d| d == w))
                );
                let text = String::from_utf8_lossy(&bytes).to_lowercase();
                assert!(!text.contains(&hex[..12]), "decoded cookie: {text}");
            }
        }
    }
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .unwrap();
    assert_eq!(decoded.len(), 32, "the cookie is a random session id");

    // The store names a configured key by a keyed reference, not by its hash either.
    let id_hash = tokenflow_server::auth::tokens::id_hash(value);
    let row = w
        .app
        .state
        .store
        .find_ui_session(&id_hash, w.app.state.clock.now())
        .await
        .unwrap()
        .unwrap();
    match row.owner {
        tokenflow_store::UiSessionOwner::ConfiguredKey(reference) => {
            assert_ne!(reference, hex);
            assert!(!reference.contains(&hex[..12]));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_session_is_refused_and_the_sweeper_purges_it() {
    let w = world(true).await;
    let (session, _) = signed_in(&w.app).await;
    let id_hash = tokenflow_server::auth::tokens::id_hash(cookie_value(&session));
    let signed_in_at = w.app.state.clock.now();
    w.app
        .clock
        .as_ref()
        .unwrap()
        .advance(time::Duration::hours(12));
    let (status, location, _) = get_page(&w.app, &session, "/runs").await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/login"));
    let store = &w.app.state.store;
    assert!(
        store
            .find_ui_session(&id_hash, signed_in_at)
            .await
            .unwrap()
            .is_some(),
        "still stored until the purge"
    );
    w.app.state.runner.sweep_once().await.unwrap();
    assert_eq!(
        store.find_ui_session(&id_hash, signed_in_at).await.unwrap(),
        None,
        "purged"
    );
}

#[tokio::test]
async fn control_characters_in_next_never_give_a_server_error() {
    let w = world(false).await;
    for bad in [
        "/\r/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\u{b}/evil.example",
        "/\0/evil.example",
        "/\u{7f}/evil.example",
        "/\t/evil.example",
        "\r\n//evil.example",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let page = client()
            .get(format!("{}/login?next={encoded}", w.app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{bad:?}");
        let login_cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        assert_eq!(value_of(&html, "next"), "&#x2f;dashboard", "{bad:?}");
        let token = value_of(&html, "csrf");
        for key in [API_KEY, "a-wrong-key"] {
            let response = client()
                .post(format!("{}/login", w.app.url))
                .header("cookie", &login_cookie)
                .form(&[("csrf", token.as_str()), ("api_key", key), ("next", bad)])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(status < 500, "{bad:?}: {status}");
            if key == API_KEY {
                assert_eq!(status, 303);
                assert_eq!(response.headers()["location"], "/dashboard", "{bad:?}");
            } else {
                assert_eq!(status, 401);
                let html = response.text().await.unwrap();
                assert_eq!(value_of(&html, "next"), "&#x2f;dashboard");
            }
        }
    }
}
