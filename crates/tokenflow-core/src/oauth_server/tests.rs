//! Defaults, validation and normalisation of OAuth server configurations.

use super::*;

fn spec(json: &str) -> OAuthServerSpec {
    serde_json::from_str(json).unwrap()
}

#[test]
fn defaults_follow_the_spec_table() {
    let server = spec(r#"{"client_id":"app","token_url":"https://idp.example/token"}"#)
        .validate("entra")
        .unwrap();
    assert_eq!(
        server.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretPost
    );
    assert!(server.client_key.is_none());
    assert!(server.pkce);
    assert!(!server.request_refresh_token);
    assert_eq!(server.prompt, Prompt::Consent);
    assert_eq!(server.timeout, Duration::from_secs(30));
    assert!(server.token_cache);
    assert_eq!(server.token_cache_skew, Duration::from_secs(60));
    assert!(server.client_secret.is_none());
}

#[test]
fn every_problem_is_reported_with_server_and_field() {
    let errors = spec(
        r#"{"token_url":"ftp://x/token","redirect_uri":"http://x/cb#frag",
            "extra_authorize_params":{"state":"x"},"timeout":"soon"}"#,
    )
    .validate("entra")
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "client_id",
            "token_url",
            "redirect_uri",
            "extra_authorize_params",
            "timeout"
        ]
    );
    assert!(errors.iter().all(|e| e.server == "entra"));
    assert_eq!(
        errors[0].to_string(),
        "oauth server `entra`, field `client_id`: is required"
    );
}

#[test]
fn unknown_fields_are_rejected() {
    let err = serde_json::from_str::<OAuthServerSpec>(r#"{"client_idd":"x"}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `client_idd`"),
        "{err}"
    );
}

#[test]
fn timeout_accepts_seconds_and_units() {
    let ok = |json: &str| spec(json).validate("s").unwrap().timeout;
    assert_eq!(
        ok(r#"{"client_id":"a","timeout":5}"#),
        Duration::from_secs(5)
    );
    assert_eq!(
        ok(r#"{"client_id":"a","timeout":"250ms"}"#),
        Duration::from_millis(250)
    );
    assert_eq!(
        ok(r#"{"client_id":"a","timeout":"7s"}"#),
        Duration::from_secs(7)
    );
    assert!(
        spec(r#"{"client_id":"a","timeout":0}"#)
            .validate("s")
            .is_err()
    );
}

#[test]
fn basic_auth_encoding_defaults_to_form_urlencoded_and_raw_refuses_a_colon_in_the_id() {
    let server = spec(r#"{"client_id":"a"}"#).validate("s").unwrap();
    assert_eq!(
        server.basic_auth_encoding,
        BasicAuthEncoding::FormUrlencoded
    );
    let raw = spec(r#"{"client_id":"a","basic_auth_encoding":"raw"}"#)
        .validate("s")
        .unwrap();
    assert_eq!(raw.basic_auth_encoding, BasicAuthEncoding::Raw);
    let errors = spec(r#"{"client_id":"a:b","basic_auth_encoding":"raw"}"#)
        .validate("s")
        .unwrap_err();
    assert_eq!(errors[0].field, "basic_auth_encoding");
    assert!(serde_json::from_str::<OAuthServerSpec>(r#"{"basic_auth_encoding":"plain"}"#).is_err());
}

#[test]
fn empty_secret_means_public_client_and_scope_is_normalized() {
    let server = spec(r#"{"client_id":"a","client_secret":"","scope":"  a   b "}"#)
        .validate("s")
        .unwrap();
    assert!(server.client_secret.is_none());
    assert_eq!(server.scope.as_deref(), Some("a b"));
}
