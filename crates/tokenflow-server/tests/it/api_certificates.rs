//! Client certificates through the API (docs/connectors.md, "Mutual TLS", "PKCS#12 files"): a
//! PKCS#12 file is unpacked when it arrives, its key kept write-only and encrypted, neither the
//! file nor its password kept or shown; the stored server then authenticates with
//! `tls_client_auth` at the test IdP's HTTPS token endpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::json;
use tokenflow_testkit::pki::CLIENT_SUBJECT;
use tokenflow_testkit::{Idp, TestPki, unique};

use crate::support::{Options, spawn_app};

#[tokio::test]
async fn a_pkcs12_file_given_through_the_api_is_unpacked_and_neither_it_nor_its_password_is_kept() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    let app = spawn_app(Options::default()).await;
    let id = unique("api-mtls");
    idp.register(
        json!({ "client_id": id, "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": CLIENT_SUBJECT, "grant_types": ["client_credentials"],
            "response_types": [], "redirect_uris": [], "scope": "api:read" }),
        json!({}),
    )
    .await;
    let password = "api-Pfx-Secret-4";
    let pfx = STANDARD.encode(pki.pkcs12("client", "client.p12", password, false));
    let key_lines: Vec<String> = pki
        .read("client.key")
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let assert_hidden = |text: &str| {
        assert!(!text.contains(password), "the password is shown: {text}");
        assert!(!text.contains(&pfx[..64]), "the file is shown: {text}");
        for line in &key_lines {
            assert!(!text.contains(line.as_str()), "key material in: {text}");
        }
    };

    let created = app
        .request(Method::PUT, "/api/oauth-servers/mtls")
        .json(
            &json!({ "client_id": id, "token_endpoint_auth_method": "tls_client_auth",
            "pkcs12": pfx, "pkcs12_password": password, "tls_ca": pki.read("ca.pem"),
            "token_url": idp.tls_url("/token"), "scope": "api:read" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_hidden(&created.text().await.unwrap());
    let (_, shown) = app.get_json("/api/oauth-servers/mtls").await;
    assert_eq!(shown["has_private_key"], true, "{shown}");
    assert_eq!(shown["token_endpoint_auth_method"], "tls_client_auth");
    assert!(
        shown["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(
        shown["certificate_x5t_s256"],
        pki.x5t_s256("client").as_str()
    );
    assert!(shown.get("pkcs12").is_none() && shown.get("pkcs12_password").is_none());
    assert_hidden(&shown.to_string());
    let (_, listed) = app.get_json("/api/oauth-servers").await;
    assert_hidden(&listed.to_string());

    // The stored server works: the key came back from the store.
    let (_, tested, _) = app
        .post_json("/api/oauth-servers/mtls/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let requests = idp.token_requests(&id).await;
    assert_eq!(
        requests[0].client_certificate_subject.as_deref(),
        Some(CLIENT_SUBJECT)
    );
    assert_hidden(&tested.to_string());

    // A wrong password is refused naming the field, not the password.
    let refused = app
        .request(Method::PUT, "/api/oauth-servers/mtls2")
        .json(
            &json!({ "client_id": id, "token_endpoint_auth_method": "tls_client_auth",
            "pkcs12": pfx, "pkcs12_password": "Wrong-Api-Pw-8",
            "token_url": idp.tls_url("/token") }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let answer = refused.text().await.unwrap();
    assert!(answer.contains("`pkcs12`"), "{answer}");
    assert!(!answer.contains("Wrong-Api-Pw-8"), "{answer}");
}

#[tokio::test]
async fn a_server_whose_issuer_has_a_private_ca_is_discovered_at_start_up_with_its_tls_ca() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls_issuer(&pki).await;
    let client = idp
        .client_credentials_client(&unique("ca-disc"), "ca-disc-secret")
        .await;
    // Discovery only: no endpoint is configured.
    let config = format!(
        "[oauth_servers.idp]\nclient_id = \"{}\"\nclient_secret = \"ca-disc-secret\"\nissuer = \"{}\"\ntls_ca = {{ file = \"{}\" }}\nscope = \"api:read\"\n",
        client.id,
        idp.issuer(),
        pki.path("ca.pem").display()
    );
    let app = spawn_app(Options {
        config,
        ..Options::default()
    })
    .await;

    // The registry's start-up discovery read the document over the private CA.
    let (_, shown) = app.get_json("/api/oauth-servers/idp").await;
    assert_eq!(
        shown["resolved_token_url"],
        format!("{}/token", idp.issuer()),
        "{shown}"
    );
    assert!(
        shown["resolved_device_authorization_url"]
            .as_str()
            .is_some_and(|url| url.starts_with(&idp.issuer())),
        "{shown}"
    );
    let (_, tested, _) = app
        .post_json("/api/oauth-servers/idp/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    assert!(idp.token_requests(&client.id).await[0].tls);
}
