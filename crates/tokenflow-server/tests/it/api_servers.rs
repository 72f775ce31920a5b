//! The OAuth server API: secrets and private keys are write-only and bound to the endpoints and
//! the client authentication they were given for; servers of the configuration file stay as the
//! file says.

use reqwest::Method;
use serde_json::json;

use crate::support::{Capture, Options, spawn_app, world};

#[tokio::test]
async fn oauth_servers_have_a_write_only_secret_and_can_be_tested() {
    let w = world(false).await;
    let client = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("api-cc"), "api-cc-secret-value")
        .await;
    let put = w
        .app
        .request(Method::PUT, "/api/oauth-servers/svc")
        .json(&json!({ "client_id": client.id, "client_secret": "api-cc-secret-value", "issuer": w.idp.issuer(), "scope": "api:read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let text = put.text().await.unwrap();
    assert!(!text.contains("api-cc-secret-value"), "{text}");
    let (status, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(status, 200);
    assert_eq!(shown["has_client_secret"], true);
    assert_eq!(shown["source"], "store");
    assert_eq!(shown["resolved_token_url"], w.idp.token_url());
    let (_, list) = w.app.get_json("/api/oauth-servers").await;
    assert!(!list.to_string().contains("api-cc-secret-value"));
    assert!(
        !list.to_string().contains("srv-web-secret"),
        "config secrets are not shown either"
    );

    let (status, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tested["status_code"], 0, "{tested}");
    assert!(
        tested["access_token"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // Without a secret in the body the stored one is kept.
    let update = w
        .app
        .request(Method::PUT, "/api/oauth-servers/svc")
        .json(&json!({ "client_id": client.id, "issuer": w.idp.issuer(), "scope": "api:write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(
        tested["status_code"], 0,
        "the secret survived the update: {tested}"
    );

    let unknown_field = w
        .app
        .request(Method::PUT, "/api/oauth-servers/x")
        .json(&json!({ "client_id": "a", "clent_secret": "b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);
    let body: serde_json::Value = unknown_field.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `clent_secret`"),
        "{body}"
    );
    let invalid = w
        .app
        .request(Method::PUT, "/api/oauth-servers/x")
        .json(&json!({ "token_url": "not a url" }))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let body: serde_json::Value = invalid.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("oauth server `x`, field `client_id`"),
        "{body}"
    );
    assert_eq!(w.app.get_json("/api/oauth-servers/x").await.0, 404);

    let deleted = w
        .app
        .request(Method::DELETE, "/api/oauth-servers/svc")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(w.app.get_json("/api/oauth-servers/svc").await.0, 404);
    let (status, _, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_changed_endpoint_without_the_secret_is_refused_and_the_secret_never_reaches_it() {
    let w = world(false).await;
    let secret = "write-only-secret-value-1";
    let client = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("api-moved"), secret)
        .await;
    let capture = Capture::start().await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/svc")
            .json(&body)
            .send()
    };
    let created = put(json!({ "client_id": client.id, "client_secret": secret,
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);

    // Every field that decides where or how the secret goes needs it again.
    for (field, value) in [
        ("token_url", format!("{}/token", capture.url)),
        ("authorization_url", format!("{}/authorize", capture.url)),
        ("issuer", capture.url.clone()),
        ("client_credentials_delivery", "basic_header".to_owned()),
    ] {
        let mut body =
            json!({ "client_id": client.id, "token_url": w.idp.token_url(), "scope": "api:read" });
        body[field] = value.into();
        let refused = put(body).await.unwrap();
        assert_eq!(refused.status(), 400, "{field}");
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["error"], "secret_required", "{field}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("client_secret"),
            "{field}: {message}"
        );
        assert!(!message.contains(secret));
    }
    let (_, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(shown["token_url"], w.idp.token_url(), "nothing was saved");
    assert_eq!(shown["issuer"], serde_json::Value::Null);
    assert_eq!(shown["has_client_secret"], true);

    // The test goes to the old endpoint, where the secret still works.
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");

    // A change that cannot move the secret keeps it.
    let rescoped = put(
        json!({ "client_id": client.id, "token_url": w.idp.token_url(), "scope": "api:write" }),
    )
    .await
    .unwrap();
    assert_eq!(rescoped.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    assert!(
        capture.requests().is_empty(),
        "the caller's listener got a request"
    );

    // Moving the server while removing the secret is allowed: there is nothing to send.
    let moved = put(json!({ "client_id": client.id, "client_secret": "",
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(moved.status(), 200);
    let (_, shown) = w.app.get_json("/api/oauth-servers/svc").await;
    assert_eq!(shown["has_client_secret"], false);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], -2, "no secret, no request: {tested}");
    assert!(capture.requests().is_empty());

    // A secret given with the change is the caller's own: that one goes to the new endpoint.
    let own = put(
        json!({ "client_id": client.id, "client_secret": "the-callers-own-secret",
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(own.status(), 200);
    w.app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    let received = capture.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains("the-callers-own-secret"),
        "{}",
        received[0]
    );
    assert!(!received[0].contains(secret), "{}", received[0]);

    // With the secret given again, any change is fine.
    let back = put(json!({ "client_id": client.id, "client_secret": secret,
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(back.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/svc/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
}

#[tokio::test]
async fn a_server_of_the_configuration_file_cannot_be_replaced_and_keeps_its_secret() {
    let idp = tokenflow_testkit::Idp::start().await;
    let secret = "configured-secret-value-1";
    let client = idp
        .client_credentials_client(&tokenflow_testkit::unique("cfg-cc"), secret)
        .await;
    let app = spawn_app(Options {
        config: format!(
            "[oauth_servers.cfg]\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\ntoken_url = \"{}\"\nscope = \"api:read\"\n",
            client.id,
            idp.token_url()
        ),
        ..Options::default()
    })
    .await;
    let capture = Capture::start().await;
    for body in [
        json!({ "client_id": client.id, "token_url": format!("{}/token", capture.url) }),
        json!({ "client_id": client.id, "client_secret": "another", "token_url": idp.token_url() }),
        json!({ "client_id": client.id, "token_url": idp.token_url(), "scope": "api:read" }),
    ] {
        let refused = app
            .request(Method::PUT, "/api/oauth-servers/cfg")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 409);
        let answer: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(answer["error"], "defined_in_configuration", "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("tokenflow.toml"),
            "{answer}"
        );
    }
    assert_eq!(app.state.store.get_oauth_server("cfg").await.unwrap(), None);
    let (_, shown) = app.get_json("/api/oauth-servers/cfg").await;
    assert_eq!(shown["source"], "config");
    assert_eq!(shown["has_client_secret"], true);
    assert_eq!(shown["token_url"], idp.token_url());
    let (_, tested, _) = app
        .post_json("/api/oauth-servers/cfg/test", json!({}))
        .await;
    assert_eq!(
        tested["status_code"], 0,
        "the configured secret works: {tested}"
    );
    assert!(capture.requests().is_empty());
}

#[tokio::test]
async fn client_secret_jwt_works_through_the_api_and_the_method_is_bound_to_the_secret() {
    let w = world(false).await;
    let secret = "api-client-secret-jwt-value-0123456789-abcdefghij";
    let id = tokenflow_testkit::unique("api-hs256");
    w.idp
        .register(
            json!({ "client_id": id, "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_jwt",
                "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "scope": "api:read" }),
            json!({}),
        )
        .await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/jwt")
            .json(&body)
            .send()
    };
    let created = put(json!({ "client_id": id, "client_secret": secret,
        "token_endpoint_auth_method": "client_secret_jwt",
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let (_, shown) = w.app.get_json("/api/oauth-servers/jwt").await;
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_jwt");
    assert_eq!(
        shown["client_credentials_delivery"],
        serde_json::Value::Null
    );
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/jwt/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let requests = w.idp.token_requests(&id).await;
    assert_eq!(requests.last().unwrap().auth_method, "jwt");

    // Changing how the stored secret is used needs it again.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "client_secret_post",
        "token_url": w.idp.token_url(), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "secret_required", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("token_endpoint_auth_method")
    );

    // The stored secret was an HMAC key only; it is not kept for a private key.
    let (_, shown) = w.app.get_json("/api/oauth-servers/jwt").await;
    assert_eq!(shown["has_private_key"], false);
}

const TEST_ONLY_RSA_KEY: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.pkcs8.pem"
);
const TEST_ONLY_RSA_PUBLIC: &str = include_str!(
    "../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.public.pem"
);
const TEST_ONLY_RSA_CERT: &str =
    include_str!("../../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.cert.pem");

#[tokio::test]
async fn a_private_key_given_through_the_api_is_write_only_and_bound_like_the_secret() {
    let w = world(false).await;
    let id = tokenflow_testkit::unique("api-pkjwt");
    w.idp
        .register(
            json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
                "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "scope": "api:read api:write" }),
            json!({ "public_key_pem": TEST_ONLY_RSA_PUBLIC }),
        )
        .await;
    let capture = Capture::start().await;
    let put = |body: serde_json::Value| {
        w.app
            .request(Method::PUT, "/api/oauth-servers/pk")
            .json(&body)
            .send()
    };
    let key_lines: Vec<&str> = TEST_ONLY_RSA_KEY
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let assert_no_key = |text: &str| {
        for line in &key_lines {
            assert!(!text.contains(line), "key material in: {text}");
        }
    };

    let created = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "private_key": TEST_ONLY_RSA_KEY, "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": w.idp.token_url(), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    assert_no_key(&created.text().await.unwrap());
    let (_, shown) = w.app.get_json("/api/oauth-servers/pk").await;
    assert_eq!(shown["has_private_key"], true);
    assert_eq!(shown["signing_alg"], "PS256");
    assert!(shown["certificate_x5t_s256"].is_string());
    assert_no_key(&shown.to_string());
    let (_, listed) = w.app.get_json("/api/oauth-servers").await;
    assert_no_key(&listed.to_string());
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/pk/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let header = w.idp.token_requests(&id).await[0]
        .assertion_header
        .clone()
        .unwrap();
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["x5t#S256"], shown["certificate_x5t_s256"]);

    // Omitted, the stored key is kept for changes that cannot move it ...
    let rescoped = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": w.idp.token_url(), "scope": "api:write" }),
    )
    .await
    .unwrap();
    assert_eq!(rescoped.status(), 200);
    let (_, tested, _) = w
        .app
        .post_json("/api/oauth-servers/pk/test", json!({}))
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");

    // ... and refused for one that would sign for another endpoint.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "signing_alg": "PS256", "certificate": TEST_ONLY_RSA_CERT,
        "token_url": format!("{}/token", capture.url), "scope": "api:read" }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(answer["error"], "secret_required", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("token_url") && message.contains("private_key"),
        "{message}"
    );
    assert!(capture.requests().is_empty());

    // A key that is not PEM is refused naming the field, without quoting it.
    let refused = put(
        json!({ "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
        "private_key": "-----BEGIN PRIVATE KEY-----\nNOT-A-KEY-e41f\n-----END PRIVATE KEY-----",
        "token_url": w.idp.token_url() }),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let answer = refused.text().await.unwrap();
    assert!(
        answer.contains("`private_key`") && !answer.contains("NOT-A-KEY-e41f"),
        "{answer}"
    );

    // "" removes it.
    let removed = put(json!({ "client_id": id, "private_key": "",
        "token_url": w.idp.token_url(), "scope": "api:read" }))
    .await
    .unwrap();
    assert_eq!(removed.status(), 200);
    let (_, shown) = w.app.get_json("/api/oauth-servers/pk").await;
    assert_eq!(shown["has_private_key"], false);
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_post");
}
