//! Client certificates: `tls_client_auth` (RFC 8705 §2.1.1) against the test IdP's HTTPS listener,
//! which reads the certificate from the TLS socket; `tls_ca` for a private CA; PKCS#12 files for
//! `tls_client_auth` and `private_key_jwt`; `http_connector`'s `client_certificate` against a
//! server that requires one. Every certificate is made by the test (`TestPki`, openssl).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokenflow_connectors::http::TlsClients;
use tokenflow_connectors::http_action::{HttpConnector, HttpInput};
use tokenflow_connectors::oauth::{ConnectorStatus as _, ServerLoginStatus};
use tokenflow_connectors::status::HttpStatus;
use tokenflow_core::{ClientCertificate, Input, OAuthServerSpec, SecretString};
use tokenflow_testkit::pki::CLIENT_SUBJECT;
use tokenflow_testkit::{Idp, TestPki, unique};

use crate::support::{assert_no_secrets, connectors, server};

const PFX_PASSWORD: &str = "pfx-Secret-7";

/// Registers a client-credentials client that authenticates with `tls_client_auth` and a
/// certificate whose subject is `CN=tokenflow-client`.
async fn register_mtls_client(idp: &Idp, id: &str) {
    idp.register(
        json!({
            "client_id": id,
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": CLIENT_SUBJECT,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "scope": "api:read",
        }),
        json!({}),
    )
    .await;
}

/// A `tls_client_auth` server at the IdP's HTTPS token endpoint with `<name>.pem`/`.key`.
fn mtls_fields(idp: &Idp, pki: &TestPki, id: &str, name: &str) -> Value {
    json!({
        "client_id": id,
        "token_url": idp.tls_url("/token"),
        "token_endpoint_auth_method": "tls_client_auth",
        "certificate": pki.read(&format!("{name}.pem")),
        "private_key": pki.read(&format!("{name}.key")),
        "tls_ca": pki.read("ca.pem"),
        "scope": "api:read",
    })
}

#[tokio::test]
async fn tls_client_auth_gets_a_token_with_the_certificate_presented_in_the_handshake() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    let id = unique("mtls");
    register_mtls_client(&idp, &id).await;
    let server = server("mtls", mtls_fields(&idp, &pki, &id, "client"));

    let out = connectors()
        .server_login("mtls", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    assert!(out.access_token.is_some());
    let requests = idp.token_requests(&id).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].tls);
    assert_eq!(
        requests[0].client_certificate_subject.as_deref(),
        Some(CLIENT_SUBJECT)
    );
    // RFC 8705 §2.1.1: client_id in the body, no secret, no assertion.
    assert_eq!(requests[0].auth_method, "none");
    assert!(!requests[0].client_secret_in_body);
}

#[tokio::test]
async fn tls_client_auth_with_a_certificate_the_provider_does_not_accept_is_invalid_client() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    let id = unique("mtls-refused");
    register_mtls_client(&idp, &id).await;
    // `rogue`: the registered subject, but self-signed; `other`: signed by the CA, another
    // subject.
    for name in ["rogue", "other"] {
        let server = server("mtls", mtls_fields(&idp, &pki, &id, name));
        let out = connectors()
            .server_login("mtls", Some(&server), &Input::Unassigned)
            .await;
        assert_eq!(out.status, ServerLoginStatus::Unknown, "{name}: {out:?}");
        assert_eq!(out.status.code(), -1);
        assert_eq!(out.error.as_deref(), Some("invalid_client"), "{name}");
        assert!(out.access_token.is_none());
    }
    let requests = idp.token_requests(&id).await;
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn an_https_endpoint_of_a_private_ca_needs_its_tls_ca() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    let id = unique("mtls-ca");
    register_mtls_client(&idp, &id).await;
    let mut fields = mtls_fields(&idp, &pki, &id, "client");
    fields.as_object_mut().unwrap().remove("tls_ca");
    let server = server("mtls", fields);

    let out = connectors()
        .server_login("mtls", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("connection_error"));
    assert!(idp.token_requests(&id).await.is_empty());
    // The global setting does the same for every connection.
    let tls = TlsClients::for_tokens(std::time::Duration::from_secs(30), Some(pki.read("ca.pem")))
        .unwrap();
    let out = connectors()
        .with_tls(tls)
        .server_login("mtls", Some(&server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
}

#[tokio::test]
async fn tls_client_auth_reads_the_certificate_from_pkcs12_files_of_today_and_legacy_ones() {
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls(&pki).await;
    let id = unique("mtls-p12");
    register_mtls_client(&idp, &id).await;
    for legacy in [false, true] {
        let file = pki.pkcs12("client", "client.p12", PFX_PASSWORD, legacy);
        let server = server(
            "mtls",
            json!({
                "client_id": id,
                "token_url": idp.tls_url("/token"),
                "token_endpoint_auth_method": "tls_client_auth",
                "pkcs12": STANDARD.encode(&file),
                "pkcs12_password": PFX_PASSWORD,
                "tls_ca": pki.read("ca.pem"),
                "scope": "api:read",
            }),
        );
        let out = connectors()
            .server_login("mtls", Some(&server), &Input::Unassigned)
            .await;
        assert_eq!(
            out.status,
            ServerLoginStatus::Successful,
            "legacy {legacy}: {out:?}"
        );
        assert_no_secrets(&format!("{server:?}"), &[PFX_PASSWORD]);
    }
}

#[tokio::test]
async fn private_key_jwt_with_a_pkcs12_file_sends_the_thumbprint_openssl_computes() {
    let pki = TestPki::generate();
    let idp = Idp::start().await;
    let id = unique("jwt-p12");
    let public_key = pki.openssl(&["x509", "-in", "client.pem", "-noout", "-pubkey"]);
    idp.register(
        json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "scope": "api:read",
        }),
        json!({ "public_key_pem": public_key }),
    )
    .await;
    let file = pki.pkcs12("client", "client.p12", PFX_PASSWORD, false);
    let server = server(
        "jwt",
        json!({
            "client_id": id,
            "token_url": idp.token_url(),
            "token_endpoint_auth_method": "private_key_jwt",
            "pkcs12": STANDARD.encode(&file),
            "pkcs12_password": PFX_PASSWORD,
            "scope": "api:read",
        }),
    );

    let out = connectors()
        .server_login("jwt", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let requests = idp.token_requests(&id).await;
    let header = requests[0].assertion_header.clone().unwrap();
    assert_eq!(header["x5t#S256"], pki.x5t_s256("client").as_str());
    assert_eq!(
        server.client_key.as_ref().unwrap().x5t_s256(),
        Some(pki.x5t_s256("client").as_str())
    );
}

#[test]
fn a_wrong_pkcs12_password_is_a_configuration_error_that_does_not_echo_it() {
    let pki = TestPki::generate();
    for legacy in [false, true] {
        let file = pki.pkcs12("client", "client.p12", PFX_PASSWORD, legacy);
        let wrong = "Wrong-Pfx-Password-9";
        let errors = serde_json::from_value::<OAuthServerSpec>(json!({
            "client_id": "app",
            "token_url": "https://idp.example/token",
            "token_endpoint_auth_method": "tls_client_auth",
            "pkcs12": STANDARD.encode(&file),
            "pkcs12_password": wrong,
        }))
        .unwrap()
        .validate("entra")
        .unwrap_err();
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(errors.len(), 1, "{text}");
        assert_eq!(errors[0].field, "pkcs12");
        assert!(text.contains("wrong pkcs12_password"), "{text}");
        assert_no_secrets(&text, &[wrong, PFX_PASSWORD]);
    }
}

fn get(url: &str, certificate: Option<ClientCertificate>) -> HttpInput {
    HttpInput {
        url: Some(format!("{url}/whoami")),
        client_certificate: certificate,
        ..HttpInput::default()
    }
}

#[tokio::test]
async fn http_connector_presents_its_client_certificate_to_a_server_that_requires_one() {
    let pki = TestPki::generate();
    let api = pki.mtls_server().await;
    let http = HttpConnector::with_tls(TlsClients::for_actions(Some(pki.read("ca.pem"))).unwrap());
    let pem = ClientCertificate::from_pem(
        &pki.read("client.pem"),
        &SecretString::new(pki.read("client.key")),
        "certificate",
        "private_key",
    )
    .unwrap();
    let file = pki.pkcs12("client", "client.p12", PFX_PASSWORD, false);
    let pkcs12 = ClientCertificate::from_pkcs12(
        &SecretString::new(STANDARD.encode(&file)),
        &SecretString::new(PFX_PASSWORD),
    )
    .unwrap();

    for certificate in [pem, pkcs12] {
        let out = http.call(&get(api.url(), Some(certificate))).await;
        assert_eq!(out.status, HttpStatus::Successful, "{out:?}");
        assert_eq!(out.http_status_code, Some(200));
        let body: Value = serde_json::from_str(out.content.as_deref().unwrap()).unwrap();
        assert_eq!(body["subject"], "tokenflow-client");
    }

    let out = http.call(&get(api.url(), None)).await;
    assert_eq!(out.status, HttpStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("connection_error"));
    assert_eq!(out.http_status_code, None);
}

#[tokio::test]
async fn a_device_login_discovers_its_endpoint_through_the_servers_tls_ca() {
    // The issuer is the IdP's HTTPS listener, whose certificate only `tls_ca` vouches for.
    let pki = TestPki::generate();
    let idp = Idp::start_with_tls_issuer(&pki).await;
    let id = unique("ca-device");
    idp.device_client(&id, "ca-device-secret", json!({})).await;
    let server = server(
        "idp",
        json!({
            "client_id": id,
            "client_secret": "ca-device-secret",
            "issuer": idp.issuer(),
            "tls_ca": pki.read("ca.pem"),
            "scope": "openid",
        }),
    );
    assert!(server.device_authorization_url.is_none() && server.token_url.is_none());

    let started = connectors()
        .start_device_login("idp", Some(&server), &Input::Unassigned)
        .await;

    let device = started.unwrap_or_else(|out| panic!("{out:?}"));
    assert!(
        device.verification_uri.starts_with(&idp.issuer()),
        "{}",
        device.verification_uri
    );
}
