//! `oauth_token_exchange` against the real test IdP, whose extension grants validate the subject
//! token (an access token it issued) and the assertion (signed with the key registered for the
//! client).

use serde_json::{Value, json};
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::token_exchange::{
    ACCESS_TOKEN_TYPE, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, TokenExchangeInput,
};
use tokenflow_connectors::oauth::{
    RefreshStatus, ServerLoginStatus, TokenExchangeStatus, UserLoginStatus,
};
use tokenflow_core::{Input, OAuthServer, SecretString};
use tokenflow_testkit::{Idp, TestClient, unique};

use crate::support::{
    REDIRECT_URI, alice_allows, assert_no_secrets, connectors, server, start_login,
    web_server_fields,
};

fn assigned(value: &str) -> Input<String> {
    Input::Assigned(value.to_owned())
}

fn secret(value: &SecretString) -> Input<SecretString> {
    Input::Assigned(value.clone())
}

/// A fresh RSA key pair from the `openssl` command: (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_rsa_key() -> (String, String) {
    let run = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the openssl command runs");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "openssl {args:?} failed");
        String::from_utf8(output.stdout).unwrap()
    };
    let private = run(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        None,
    );
    let public = run(&["pkey", "-pubout"], Some(&private));
    (private, public)
}

/// A confidential client allowed the client-credentials and the token-exchange grants.
async fn exchange_client(idp: &Idp, auth_method: &str, options: Value) -> TestClient {
    let id = unique("exchange");
    idp.register(
        json!({
            "client_id": id, "client_secret": "exchange-secret-1",
            "token_endpoint_auth_method": auth_method,
            "grant_types": ["client_credentials", TOKEN_EXCHANGE_GRANT],
            "response_types": [], "redirect_uris": [], "scope": "api:read api:write",
        }),
        options,
    )
    .await;
    TestClient {
        id,
        secret: Some("exchange-secret-1".to_owned()),
    }
}

fn exchange_server(idp: &Idp, client: &TestClient, auth_method: &str) -> OAuthServer {
    server(
        "idp",
        json!({ "client_id": client.id, "client_secret": client.secret,
                "token_endpoint_auth_method": auth_method, "issuer": idp.issuer(),
                "scope": "api:read", "token_cache": false }),
    )
}

async fn cc_token(server: &OAuthServer) -> SecretString {
    let out = connectors()
        .server_login("idp", Some(server), &Input::Unassigned)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    out.access_token.unwrap()
}

/// GET /api/whoami at the IdP with `token`: what the IdP says the token is.
async fn whoami(idp: &Idp, token: &SecretString) -> Value {
    let response = tokenflow_connectors::http::build_client(std::time::Duration::from_secs(30))
        .unwrap()
        .get(idp.url("/api/whoami"))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn token_exchange_returns_a_token_for_the_requested_audience_with_each_client_authentication()
{
    let idp = Idp::start().await;
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ] {
        let client = exchange_client(&idp, method, json!({})).await;
        let server = exchange_server(&idp, &client, method);
        let subject = cc_token(&server).await;

        let input = TokenExchangeInput {
            subject_token: secret(&subject),
            audience: assigned("https://api.example.test/orders"),
            ..TokenExchangeInput::default()
        };
        let out = connectors()
            .token_exchange("idp", Some(&server), &input)
            .await;

        assert_eq!(
            out.status,
            TokenExchangeStatus::Successful,
            "{method}: {out:?}"
        );
        assert_eq!(out.issued_token_type.as_deref(), Some(ACCESS_TOKEN_TYPE));
        assert_eq!(out.token_type.as_deref(), Some("Bearer"));
        assert!(out.expires_in.is_some());
        let issued = out.access_token.unwrap();
        assert_ne!(issued, subject);
        let seen = whoami(&idp, &issued).await;
        assert_eq!(seen["aud"], "https://api.example.test/orders", "{seen}");
        assert_eq!(seen["scope"], "api:read", "the server's scope: {seen}");
        let requests = idp.token_requests(&client.id).await;
        let last = requests.last().unwrap();
        assert_eq!(last.grant_type.as_deref(), Some(TOKEN_EXCHANGE_GRANT));
        let expected = match method {
            "client_secret_basic" => "basic",
            "client_secret_post" => "post",
            _ => "jwt",
        };
        assert_eq!(last.auth_method, expected, "{method}");
    }
}

#[tokio::test]
async fn an_unknown_or_revoked_subject_token_is_invalid_grant_with_minus_1() {
    let idp = Idp::start().await;
    let client = exchange_client(&idp, "client_secret_post", json!({})).await;
    let server = exchange_server(&idp, &client, "client_secret_post");
    let subject = cc_token(&server).await;
    idp.revoke_access_token(&client, subject.expose()).await;

    for token in [SecretString::new("not-a-token-of-this-idp"), subject] {
        let input = TokenExchangeInput {
            subject_token: secret(&token),
            ..TokenExchangeInput::default()
        };
        let out = connectors()
            .token_exchange("idp", Some(&server), &input)
            .await;
        assert_eq!(out.status, TokenExchangeStatus::Unknown, "{out:?}");
        assert_eq!(out.status_code(), -1);
        assert_eq!(out.error.as_deref(), Some("invalid_grant"));
        assert!(out.access_token.is_none());
        assert_no_secrets(&format!("{out:?}"), &[token.expose()]);
    }
}

#[tokio::test]
async fn missing_inputs_are_minus_3_and_an_unknown_server_minus_2_before_anything_is_sent() {
    // A token endpoint that would refuse the connection: nothing may be sent.
    let server = server(
        "idp",
        json!({ "client_id": "app", "client_secret": "s", "token_url": "http://127.0.0.1:9/token" }),
    );
    let token = secret(&SecretString::new("t"));
    let cases = [
        TokenExchangeInput::default(),
        TokenExchangeInput {
            subject_token: Input::Assigned(SecretString::new("")),
            ..TokenExchangeInput::default()
        },
        TokenExchangeInput {
            subject_token: token.clone(),
            actor_token: token.clone(),
            ..TokenExchangeInput::default()
        },
        TokenExchangeInput {
            mode: assigned("on_behalf_of"),
            scope: assigned("api:read"),
            ..TokenExchangeInput::default()
        },
        TokenExchangeInput {
            mode: assigned("on_behalf_of"),
            subject_token: token.clone(),
            ..TokenExchangeInput::default()
        },
        TokenExchangeInput {
            mode: assigned("jwt_bearer"),
            ..TokenExchangeInput::default()
        },
    ];
    for input in cases {
        let out = connectors()
            .token_exchange("idp", Some(&server), &input)
            .await;
        assert_eq!(
            out.status,
            TokenExchangeStatus::InputMissing,
            "{input:?}: {out:?}"
        );
        assert_eq!(out.error.as_deref(), Some("input_missing"));
    }
    let unknown = connectors()
        .token_exchange("nowhere", None, &TokenExchangeInput::default())
        .await;
    assert_eq!(unknown.status, TokenExchangeStatus::NoServer);
    let bad_mode = connectors()
        .token_exchange(
            "idp",
            Some(&server),
            &TokenExchangeInput {
                mode: assigned("saml2_bearer"),
                subject_token: token,
                ..TokenExchangeInput::default()
            },
        )
        .await;
    assert_eq!(bad_mode.status, TokenExchangeStatus::Unknown);
    assert_eq!(bad_mode.error.as_deref(), Some("invalid_mode"));
}

#[tokio::test]
async fn a_token_type_other_than_bearer_is_minus_5() {
    let idp = Idp::start().await;
    let client = exchange_client(&idp, "client_secret_post", json!({ "token_type": "DPoP" })).await;
    let mut server = exchange_server(&idp, &client, "client_secret_post");
    // The subject token comes from another client of the same IdP (bearer).
    let other = exchange_client(&idp, "client_secret_post", json!({})).await;
    let subject = cc_token(&exchange_server(&idp, &other, "client_secret_post")).await;
    server.scope = None;
    let input = TokenExchangeInput {
        subject_token: secret(&subject),
        ..TokenExchangeInput::default()
    };
    let out = connectors()
        .token_exchange("idp", Some(&server), &input)
        .await;
    assert_eq!(
        out.status,
        TokenExchangeStatus::UnsupportedTokenType,
        "{out:?}"
    );
    assert_eq!(out.status_code(), -5);
    assert!(out.access_token.is_none());
}

#[tokio::test]
async fn on_behalf_of_exchanges_a_users_token_for_a_token_of_the_same_user() {
    let idp = Idp::start().await;
    // The user signs in to the front end (a web client) and calls the middle-tier API with its
    // access token; the API (another client) asks for a token on the user's behalf.
    let web = unique("obo-web");
    idp.web_client(&web, "web-secret-1", REDIRECT_URI, json!({}))
        .await;
    let web_server = server("web", web_server_fields(&idp, &web, "web-secret-1"));
    let c = connectors();
    let request = start_login(&c, &web_server, &UserLoginInput::default()).await;
    let login = alice_allows(&c, &web_server, &request).await;
    assert_eq!(login.status, UserLoginStatus::Successful, "{login:?}");
    let user_token = login.access_token.unwrap();

    let api = unique("obo-api");
    idp.register(
        json!({ "client_id": api, "client_secret": "api-secret-1",
                "grant_types": [JWT_BEARER_GRANT], "response_types": [], "redirect_uris": [],
                "scope": "api:read api:write" }),
        json!({}),
    )
    .await;
    let api_server = server(
        "api",
        json!({ "client_id": api, "client_secret": "api-secret-1", "token_url": idp.token_url(),
                "scope": "api:write" }),
    );
    let input = TokenExchangeInput {
        mode: assigned("on_behalf_of"),
        subject_token: secret(&user_token),
        ..TokenExchangeInput::default()
    };
    let out = c.token_exchange("api", Some(&api_server), &input).await;

    assert_eq!(out.status, TokenExchangeStatus::Successful, "{out:?}");
    let seen = whoami(&idp, out.access_token.as_ref().unwrap()).await;
    assert_eq!(seen["sub"], "alice", "{seen}");
    assert_eq!(seen["client_id"], api.as_str());
    assert_eq!(seen["scope"], "api:write");
    let last = idp.token_requests(&api).await.pop().unwrap();
    assert_eq!(last.grant_type.as_deref(), Some(JWT_BEARER_GRANT));

    let refused = c
        .token_exchange(
            "api",
            Some(&api_server),
            &TokenExchangeInput {
                mode: assigned("on_behalf_of"),
                assertion: secret(&SecretString::new("forged-user-token")),
                ..TokenExchangeInput::default()
            },
        )
        .await;
    assert_eq!(refused.status, TokenExchangeStatus::Unknown, "{refused:?}");
    assert_eq!(refused.error.as_deref(), Some("invalid_grant"));
}

/// A Google-style service account key file's JSON for `private_key`, naming `token_uri`.
pub fn service_account_json(
    email: &str,
    key_id: &str,
    private_key: &str,
    token_uri: &str,
) -> String {
    json!({
        "type": "service_account", "project_id": "tokenflow-test", "private_key_id": key_id,
        "private_key": private_key, "client_email": email, "client_id": "1234567890",
        "auth_uri": "https://accounts.example.test/o/oauth2/auth", "token_uri": token_uri,
    })
    .to_string()
}

/// Registers the service account as a client whose `jwks` holds `public_key` (named `key_id`).
pub async fn register_service_account(idp: &Idp, email: &str, key_id: &str, public_key: &str) {
    idp.register(
        json!({ "client_id": email, "token_endpoint_auth_method": "none",
                "grant_types": [JWT_BEARER_GRANT], "response_types": [], "redirect_uris": [],
                "scope": "api:read api:write" }),
        json!({ "public_key_pem": public_key, "public_key_kid": key_id }),
    )
    .await;
}

#[tokio::test]
async fn jwt_bearer_signs_an_assertion_with_the_service_account_key_and_gets_a_token() {
    let idp = Idp::start().await;
    let (private_key, public_key) = generate_rsa_key();
    let email = format!("{}@tokenflow-test.iam.example.test", unique("sa"));
    register_service_account(&idp, &email, "key-1", &public_key).await;
    // Only the key: the client id is the account, the token endpoint the key's token_uri.
    let key_json = service_account_json(&email, "key-1", &private_key, &idp.token_url());
    let server = server(
        "google",
        json!({ "service_account_key": key_json, "scope": "api:read" }),
    );
    assert_eq!(server.client_id, email);

    let out = connectors()
        .token_exchange(
            "google",
            Some(&server),
            &TokenExchangeInput {
                mode: assigned("jwt_bearer"),
                ..TokenExchangeInput::default()
            },
        )
        .await;

    assert_eq!(out.status, TokenExchangeStatus::Successful, "{out:?}");
    let seen = whoami(&idp, out.access_token.as_ref().unwrap()).await;
    assert_eq!(seen["client_id"], email.as_str());
    assert_eq!(seen["scope"], "api:read");
    let last = idp.token_requests(&email).await.pop().unwrap();
    assert_eq!(last.grant_type.as_deref(), Some(JWT_BEARER_GRANT));
    let header = last.grant_assertion_header.unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "key-1");
    let body = private_key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>();
    assert_no_secrets(&format!("{out:?} {server:?}"), &[&body[..64]]);
}

#[tokio::test]
async fn jwt_bearer_signed_with_another_key_is_refused_with_minus_1() {
    let idp = Idp::start().await;
    let (_, registered_public) = generate_rsa_key();
    let (other_private, _) = generate_rsa_key();
    let email = format!("{}@tokenflow-test.iam.example.test", unique("sa"));
    register_service_account(&idp, &email, "key-1", &registered_public).await;
    let key_json = service_account_json(&email, "key-1", &other_private, &idp.token_url());
    let server = server("google", json!({ "service_account_key": key_json }));

    let out = connectors()
        .token_exchange(
            "google",
            Some(&server),
            &TokenExchangeInput {
                mode: assigned("jwt_bearer"),
                scope: assigned("api:read"),
                ..TokenExchangeInput::default()
            },
        )
        .await;

    assert_eq!(out.status, TokenExchangeStatus::Unknown, "{out:?}");
    assert_eq!(out.error.as_deref(), Some("invalid_grant"));
    assert!(out.access_token.is_none());
}

#[tokio::test]
async fn a_resource_indicator_makes_the_client_credentials_token_one_for_that_resource() {
    let idp = Idp::start().await;
    let client = exchange_client(&idp, "client_secret_post", json!({})).await;
    let server = exchange_server(&idp, &client, "client_secret_post");
    let c = connectors();
    let resource = Input::Assigned("https://api.example.test/orders".to_owned());
    let out = c
        .server_login_for("idp", Some(&server), &Input::Unassigned, &resource)
        .await;
    assert_eq!(out.status, ServerLoginStatus::Successful, "{out:?}");
    let seen = whoami(&idp, out.access_token.as_ref().unwrap()).await;
    assert_eq!(seen["aud"], "https://api.example.test/orders", "{seen}");
    let plain = c
        .server_login("idp", Some(&server), &Input::Unassigned)
        .await;
    let seen = whoami(&idp, plain.access_token.as_ref().unwrap()).await;
    assert_eq!(seen["aud"], Value::Null, "no resource, no audience: {seen}");
    let requests = idp.token_requests(&client.id).await;
    assert_eq!(
        requests[0].resource,
        Some(json!("https://api.example.test/orders"))
    );
    assert_eq!(requests[1].resource, None);
}

#[tokio::test]
async fn a_refresh_sends_its_resource_indicators() {
    let idp = Idp::start().await;
    let id = unique("resource-web");
    idp.web_client(&id, "web-secret-2", REDIRECT_URI, json!({}))
        .await;
    let server = server("idp", web_server_fields(&idp, &id, "web-secret-2"));
    let c = connectors();
    let request = start_login(&c, &server, &UserLoginInput::default()).await;
    let login = alice_allows(&c, &server, &request).await;
    let refresh_token = login.refresh_token.unwrap();
    let out = c
        .refresh_token_for(
            "idp",
            Some(&server),
            &secret(&refresh_token),
            &assigned("https://a.example.test/ https://b.example.test/"),
        )
        .await;
    assert_eq!(out.status, RefreshStatus::Successful, "{out:?}");
    let last = idp.token_requests(&id).await.pop().unwrap();
    assert_eq!(last.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(
        last.resource,
        Some(json!([
            "https://a.example.test/",
            "https://b.example.test/"
        ]))
    );
}

#[tokio::test]
async fn a_user_login_sends_its_resource_in_the_authorization_request_and_the_code_exchange() {
    let idp = Idp::start().await;
    let id = unique("resource-login");
    idp.web_client(&id, "web-secret-3", REDIRECT_URI, json!({}))
        .await;
    let server = server("idp", web_server_fields(&idp, &id, "web-secret-3"));
    let c = connectors();
    let input = UserLoginInput {
        scope: assigned("openid api:read"),
        resource: assigned("https://api.example.test/orders"),
        ..UserLoginInput::default()
    };
    let request = start_login(&c, &server, &input).await;
    // RFC 8707 §2.1: in the authorization request.
    let sent: Vec<String> = request
        .url
        .query_pairs()
        .filter(|(key, _)| key == "resource")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(sent, ["https://api.example.test/orders"]);
    let login = alice_allows(&c, &server, &request).await;

    assert_eq!(login.status, UserLoginStatus::Successful, "{login:?}");
    // §2.2: again in the code exchange, so the access token is for that resource.
    let exchange = idp.token_requests(&id).await.pop().unwrap();
    assert_eq!(exchange.grant_type.as_deref(), Some("authorization_code"));
    assert_eq!(
        exchange.resource,
        Some(json!("https://api.example.test/orders"))
    );
    let seen = whoami(&idp, login.access_token.as_ref().unwrap()).await;
    assert_eq!(seen["aud"], "https://api.example.test/orders", "{seen}");
}
