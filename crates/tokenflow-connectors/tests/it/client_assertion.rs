//! JWT client authentication (`client_secret_jwt`, `private_key_jwt`; RFC 7523 §2.2, OpenID Connect
//! Core §9) against the real test IdP, which verifies the assertions with the registered secret or
//! public key. The keys are the test-only fixtures of `tests/fixtures/client-keys`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::macros::datetime;
use tokenflow_connectors::oauth::ConnectorStatus as _;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::client_auth::{JWT_BEARER_ASSERTION_TYPE, client_assertion};
use tokenflow_connectors::oauth::{RefreshStatus, ServerLoginStatus, UserLoginStatus};
use tokenflow_core::{Input, ManualClock, OAuthServerSpec};
use tokenflow_testkit::{Idp, unique};
use url::Url;

use crate::support::{
    REDIRECT_URI, alice_allows, assert_no_secrets, connectors, connectors_with_clock, server,
    start_login,
};

/// A test-only key or certificate of `tests/fixtures/client-keys`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/client-keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// `openssl x509 -in test-only-rsa.cert.pem -noout -fingerprint -sha256` of the fixture.
const CERT_SHA256_FINGERPRINT: &str = "EA:C4:9D:8A:DA:A9:E2:AC:87:72:09:1C:F1:47:74:B3:08:EC:F2:1C:75:DA:C4:5C:D8:E8:66:76:99:84:BA:45";
/// `openssl x509 -in test-only-rsa.cert.pem -noout -fingerprint -sha1` of the fixture.
const CERT_SHA1_FINGERPRINT: &str = "EF:83:9D:7E:55:F1:0A:7E:A1:EA:56:7B:D0:1A:66:04:17:D9:03:55";

/// An openssl fingerprint (`AA:BB:…`) as a JOSE thumbprint (base64url of the bytes).
fn thumbprint(fingerprint: &str) -> String {
    let bytes: Vec<u8> = fingerprint
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Registers a client-credentials client that authenticates with `method`; `public_key` is the
/// fixture name of its public key (`private_key_jwt`), `secret` its secret (`client_secret_jwt`).
pub async fn register(
    idp: &Idp,
    id: &str,
    method: &str,
    secret: Option<&str>,
    public_key: Option<&str>,
) {
    let mut metadata = json!({
        "client_id": id,
        "token_endpoint_auth_method": method,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "scope": "api:read api:write",
    });
    if let Some(secret) = secret {
        metadata["client_secret"] = secret.into();
    }
    let options = public_key.map_or_else(
        || json!({}),
        |name| json!({ "public_key_pem": fixture(name) }),
    );
    idp.register(metadata, options).await;
}

fn key_fields(idp: &Idp, id: &str, key: &str, alg: &str) -> Value {
    json!({
        "client_id": id,
        "token_endpoint_auth_method": "private_key_jwt",
        "private_key": fixture(key),
        "signing_alg": alg,
        "token_url": idp.token_url(),
        "scope": "api:read",
    })
}

const JWT_SECRET: &str = "client-secret-jwt-test-value-0123456789-abcdefghijklmnop";

#[tokio::test]
async fn client_secret_jwt_gets_a_token_without_sending_the_secret() {
    let idp = Idp::start().await;
    let id = unique("cc-hs256");
    register(&idp, &id, "client_secret_jwt", Some(JWT_SECRET), None).await;
    let server = server(
        "idp",
        json!({
            "client_id": id,
            "client_secret": JWT_SECRET,
            "token_endpoint_auth_method": "client_secret_jwt",
            "token_url": idp.token_url(),
            "scope": "api:read",
        }),
    );

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let requests = idp.token_requests(&id).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].auth_method, "jwt");
    assert!(!requests[0].client_secret_in_body);
    assert_eq!(
        requests[0].assertion_header.as_ref().unwrap()["alg"],
        "HS256"
    );
    assert_no_secrets(&format!("{out:?} {server:?}"), &[JWT_SECRET]);
}

#[tokio::test]
async fn private_key_jwt_gets_a_token_with_rs256_ps256_and_es256() {
    let idp = Idp::start().await;
    let cases = [
        (
            "RS256",
            "test-only-rsa.pkcs8.pem",
            "test-only-rsa.public.pem",
        ),
        (
            "RS256",
            "test-only-rsa.pkcs1.pem",
            "test-only-rsa.public.pem",
        ),
        (
            "PS256",
            "test-only-rsa.pkcs8.pem",
            "test-only-rsa.public.pem",
        ),
        (
            "ES256",
            "test-only-ec-p256.pkcs8.pem",
            "test-only-ec-p256.public.pem",
        ),
        (
            "ES256",
            "test-only-ec-p256.sec1.pem",
            "test-only-ec-p256.public.pem",
        ),
    ];
    for (alg, key, public_key) in cases {
        let id = unique(&format!("cc-{}", alg.to_ascii_lowercase()));
        register(&idp, &id, "private_key_jwt", None, Some(public_key)).await;
        let server = server("idp", key_fields(&idp, &id, key, alg));

        let out = connectors()
            .server_login("idp", Some(&server), &Input::Unassigned)
            .await;

        assert_eq!(
            out.status,
            ServerLoginStatus::Successful,
            "{alg} {key}: {out:?}"
        );
        let token = out.access_token.unwrap();
        let requests = idp.token_requests(&id).await;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].auth_method, "jwt");
        assert!(!requests[0].client_secret_in_body);
        let header = requests[0].assertion_header.clone().unwrap();
        assert_eq!(header["alg"], alg, "{key}");
        assert!(
            header.get("x5t#S256").is_none(),
            "no certificate, no thumbprint"
        );
        // The IdP has the token on record for this client.
        assert!(
            idp.issued_tokens(&id)
                .await
                .contains(&token.expose().to_owned())
        );
    }
}

#[tokio::test]
async fn a_wrong_private_key_is_refused_by_the_idp_with_invalid_client() {
    let idp = Idp::start().await;
    let id = unique("cc-wrongkey");
    register(
        &idp,
        &id,
        "private_key_jwt",
        None,
        Some("test-only-rsa.public.pem"),
    )
    .await;
    let server = server(
        "idp",
        key_fields(&idp, &id, "test-only-rsa-other.pkcs8.pem", "RS256"),
    );

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Unknown, "{out:?}");
    assert_eq!(out.status.code(), -1);
    assert_eq!(out.error.as_deref(), Some("invalid_client"));
    assert!(out.access_token.is_none());
    let requests = idp.token_requests(&id).await;
    assert_eq!(requests[0].auth_method, "jwt");
    assert_eq!(requests[0].status, 401);
}

#[tokio::test]
async fn code_exchange_and_refresh_authenticate_with_private_key_jwt() {
    let idp = Idp::start().await;
    let id = unique("web-pkjwt");
    idp.register(
        json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid profile email offline_access api:read",
        }),
        json!({ "public_key_pem": fixture("test-only-ec-p256.public.pem"), "rotate_refresh_token": true }),
    )
    .await;
    let server = server(
        "idp",
        json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "private_key": fixture("test-only-ec-p256.sec1.pem"),
            "signing_alg": "ES256",
            "authorization_url": idp.authorization_url(),
            "token_url": idp.token_url(),
            "issuer": idp.issuer(),
            "scope": "openid profile offline_access",
        }),
    );
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let login = alice_allows(&c, &server, &request).await;
    assert_eq!(login.status, UserLoginStatus::Successful, "{login:?}");
    let refresh_token = login.refresh_token.expect("a refresh token");

    let refreshed = c
        .refresh_token(
            "idp",
            Some(&server),
            &Input::Assigned(refresh_token.clone()),
        )
        .await;

    assert_eq!(refreshed.status, RefreshStatus::Successful, "{refreshed:?}");
    assert_ne!(refreshed.refresh_token.unwrap(), refresh_token);
    let requests = idp.token_requests(&id).await;
    let grants: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r.grant_type.as_deref().unwrap_or(""),
                r.auth_method.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        grants,
        [
            ("authorization_code", "jwt", 200),
            ("refresh_token", "jwt", 200)
        ]
    );
}

#[tokio::test]
async fn the_certificate_thumbprint_goes_into_the_header_as_x5t_s256() {
    let idp = Idp::start().await;
    let id = unique("cc-x5t");
    register(
        &idp,
        &id,
        "private_key_jwt",
        None,
        Some("test-only-rsa.public.pem"),
    )
    .await;
    let mut fields = key_fields(&idp, &id, "test-only-rsa.pkcs8.pem", "RS256");
    fields["certificate"] = fixture("test-only-rsa.cert.pem").into();
    let server = server("idp", fields);

    let out = connectors()
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let header = idp.token_requests(&id).await[0]
        .assertion_header
        .clone()
        .unwrap();
    assert_eq!(header["x5t#S256"], thumbprint(CERT_SHA256_FINGERPRINT));
    assert!(header.get("x5t").is_none(), "x5t only with x5t_sha1 = true");
}

#[test]
fn the_assertion_carries_the_rfc7523_claims_and_the_thumbprints() {
    let token_url = Url::parse("https://login.example/tenant/oauth2/v2.0/token").unwrap();
    let mut fields = json!({
        "client_id": "app-1",
        "token_endpoint_auth_method": "private_key_jwt",
        "private_key": fixture("test-only-rsa.pkcs1.pem"),
        "certificate": fixture("test-only-rsa.cert.pem"),
        "x5t_sha1": true,
        "token_url": token_url.as_str(),
    });
    let now = datetime!(2030-01-02 03:04:05 UTC);
    let entra = server("entra", fields.clone());

    let first = client_assertion(&entra, &token_url, now).unwrap();
    let second = client_assertion(&entra, &token_url, now).unwrap();

    let parts: Vec<&str> = first.expose().split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_part(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5t#S256"], thumbprint(CERT_SHA256_FINGERPRINT));
    assert_eq!(header["x5t"], thumbprint(CERT_SHA1_FINGERPRINT));
    let claims = decode_part(parts[1]);
    assert_eq!(claims["iss"], "app-1");
    assert_eq!(claims["sub"], "app-1");
    assert_eq!(claims["aud"], token_url.as_str());
    assert_eq!(claims["iat"], now.unix_timestamp());
    assert_eq!(claims["exp"], now.unix_timestamp() + 60);
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    let second_claims = decode_part(second.expose().split('.').nth(1).unwrap());
    assert_ne!(
        claims["jti"], second_claims["jti"],
        "a fresh jti per assertion"
    );
    assert_eq!(
        JWT_BEARER_ASSERTION_TYPE,
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );

    // Without x5t_sha1 only the SHA-256 thumbprint is sent.
    fields.as_object_mut().unwrap().remove("x5t_sha1");
    let header = decode_part(
        client_assertion(&server("entra", fields), &token_url, now)
            .unwrap()
            .expose()
            .split('.')
            .next()
            .unwrap(),
    );
    assert!(header.get("x5t").is_none());
    assert_eq!(header["x5t#S256"], thumbprint(CERT_SHA256_FINGERPRINT));
}

#[tokio::test]
async fn the_assertion_is_dated_by_the_injected_clock() {
    // An assertion from a clock an hour behind has expired when it arrives: the IdP refuses it.
    let idp = Idp::start().await;
    let id = unique("cc-clock");
    register(
        &idp,
        &id,
        "private_key_jwt",
        None,
        Some("test-only-rsa.public.pem"),
    )
    .await;
    let server = server(
        "idp",
        key_fields(&idp, &id, "test-only-rsa.pkcs8.pem", "RS256"),
    );
    let real_now = tokenflow_core::Clock::now(&tokenflow_core::SystemClock);
    let clock = Arc::new(ManualClock::new(real_now - time::Duration::hours(1)));

    let out = connectors_with_clock(clock)
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;

    assert_eq!(out.error.as_deref(), Some("invalid_client"), "{out:?}");
    assert_eq!(out.status, ServerLoginStatus::Unknown);
    assert_eq!(out.status.code(), -1);
    assert_eq!(idp.token_requests(&id).await[0].status, 401);
}

#[test]
fn debug_and_errors_show_no_key_material() {
    let key = fixture("test-only-rsa.pkcs8.pem");
    let body_line = key.lines().nth(1).unwrap().to_owned();
    let server = server(
        "idp",
        json!({
            "client_id": "app",
            "token_endpoint_auth_method": "private_key_jwt",
            "private_key": key,
            "token_url": "https://idp.example/token",
        }),
    );
    assert_no_secrets(&format!("{server:?}"), &[&body_line, "PRIVATE KEY"]);

    // A damaged key, a key for another algorithm, a key with a certificate that is not one: the
    // errors name the field, never a character of the key.
    let damaged = key.replace(&body_line, &body_line.replace('A', "*"));
    for (fields, field) in [
        (json!({ "private_key": damaged }), "private_key"),
        (
            json!({ "private_key": key, "signing_alg": "ES256" }),
            "private_key",
        ),
        (
            json!({ "private_key": key, "certificate": "not a certificate" }),
            "certificate",
        ),
    ] {
        let mut spec = json!({
            "client_id": "app",
            "token_endpoint_auth_method": "private_key_jwt",
        });
        spec.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let errors = serde_json::from_value::<OAuthServerSpec>(spec)
            .unwrap()
            .validate("idp")
            .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, field);
        let text = format!("{errors:?} {}", errors[0]);
        assert_no_secrets(&text, &[&body_line]);
        for line in key.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!text.contains(line), "key material in: {text}");
        }
    }
}
