//! The first half of `oauth_user_login`: the authorization request (RFC 6749 §4.1.1, RFC 7636,
//! OIDC Core §3.1.2.1), and the callback parameters the second half consumes.
//!
//! Everything the callback needs to finish is in [`PendingAuthorization`]; the engine stores it
//! (encrypted) so a run can be resumed after a restart and on another instance. Nothing about a
//! pending login lives only in memory.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokenflow_core::{Input, OAuthServer, SecretString};
use url::Url;

use super::random::{RandomError, random_token};

/// How long a person has to come back from the identity provider (docs/connectors.md).
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(10 * 60);

/// The path the identity provider redirects back to.
pub const CALLBACK_PATH: &str = "/oauth-callback";

/// What the callback needs to finish a user login.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    /// The `state` sent to the provider: 256 bits from the OS CSPRNG, single use.
    pub state: SecretString,
    pub server_id: String,
    /// Exactly as sent in the authorization request; the token request must repeat it (§4.1.3).
    pub redirect_uri: String,
    /// The scope sent (after precedence and `offline_access`), for `Granted scopes` when the
    /// provider does not echo one (RFC 6749 §5.1).
    pub requested_scope: String,
    pub code_verifier: Option<SecretString>,
    pub nonce: Option<SecretString>,
    /// The issuer the response's `iss` must equal (RFC 9207 §2.4): the one the discovery document
    /// spells, else the configured one; `None` when the server has no issuer.
    pub issuer: Option<String>,
    /// The provider advertises `authorization_response_iss_parameter_supported`, so a response
    /// without `iss` is refused.
    pub iss_required: bool,
    /// The RFC 8707 resource indicators sent, separated by spaces (empty: none); the code
    /// exchange repeats them (RFC 8707 §2.2).
    pub resource: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl PendingAuthorization {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

/// The issuer an authorization response of `server` must name: the discovery document's exact
/// spelling when there was one (and it is not a template), else the configured issuer.
pub fn expected_issuer(server: &OAuthServer) -> Option<String> {
    server
        .discovered
        .issuer
        .clone()
        .or_else(|| server.issuer.as_ref().map(ToString::to_string))
}

/// The RFC 9207 §2.4 check of an authorization response (success or error): `iss`, when present,
/// must be the expected issuer, compared as a string — no templates, no normalisation beyond one
/// trailing slash (a configured `https://idp.example` is kept as `https://idp.example/`); when the
/// provider advertises the parameter, a response without it is refused. The error is the
/// `error_description`.
pub fn check_callback_issuer(
    expected: Option<&str>,
    required: bool,
    iss: Option<&str>,
) -> Result<(), String> {
    match (iss, expected) {
        (Some(iss), Some(expected)) => {
            let same = iss == expected
                || expected.strip_suffix('/') == Some(iss)
                || iss.strip_suffix('/') == Some(expected);
            if same {
                Ok(())
            } else {
                Err(format!(
                    "the authorization response's `iss` does not match the OAuth server's issuer `{expected}` (RFC 9207): the response may come from another identity provider"
                ))
            }
        }
        // No configured issuer: nothing to compare with.
        (Some(_), None) => Ok(()),
        (None, _) if required => Err(
            "the authorization response has no `iss` although the identity provider advertises `authorization_response_iss_parameter_supported` (RFC 9207 §2.4)".to_owned(),
        ),
        (None, _) => Ok(()),
    }
}

/// A built authorization request: the URL to send the person to, and what to store.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: Url,
    pub pending: PendingAuthorization,
}

/// The inputs of `oauth_user_login`.
#[derive(Debug, Clone, Default)]
pub struct UserLoginInput {
    pub scope: Input<String>,
    /// `UsePrompt`; unassigned means true (Thinkwise's default).
    pub use_prompt: Input<bool>,
    /// RFC 8707 resource indicators, separated by white space: sent in the authorization request
    /// (§2.1) and again in the code exchange (§2.2).
    pub resource: Input<String>,
}

/// The redirect URI of docs/api.md: the server's own, else the global `oauth_redirect_uri`, else the
/// caller's default (`<public_url>/oauth-callback` for the server, `http://127.0.0.1:<port>/…`
/// for the CLI) — mirroring Thinkwise's `OAuthRedirectURI` with its `http://localhost/oauth-callback`.
pub fn resolve_redirect_uri(server: &OAuthServer, global: Option<&Url>, default: &Url) -> Url {
    server
        .redirect_uri
        .clone()
        .or_else(|| global.cloned())
        .unwrap_or_else(|| default.clone())
}

/// The effective scope of a user login: docs/connectors.md precedence, then `offline_access` added when the
/// server asks for refresh tokens and the scope lacks it.
pub fn user_login_scope(server: &OAuthServer, scope: &Input<String>) -> String {
    let mut scope =
        tokenflow_core::oauth_server::normalize_scope(scope.or_fallback(server.scope.as_deref()));
    if server.request_refresh_token && !scope.split(' ').any(|s| s == "offline_access") {
        if !scope.is_empty() {
            scope.push(' ');
        }
        scope.push_str("offline_access");
    }
    scope
}

/// Builds the authorization URL and the pending authorization. `authorization_url` is the
/// resolved endpoint (configured or discovered).
pub fn build_authorization_request(
    server: &OAuthServer,
    authorization_url: &Url,
    input: &UserLoginInput,
    redirect_uri: &Url,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<AuthorizationRequest, RandomError> {
    let scope = user_login_scope(server, &input.scope);
    let resource = input
        .resource
        .assigned()
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let state = random_token(32)?;
    let code_verifier = if server.pkce {
        Some(random_token(32)?)
    } else {
        None
    };
    let wants_openid = scope.split(' ').any(|s| s == "openid");
    let nonce = if wants_openid {
        Some(random_token(16)?)
    } else {
        None
    };

    let mut url = authorization_url.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("response_type", "code");
        query.append_pair("client_id", &server.client_id);
        query.append_pair("redirect_uri", redirect_uri.as_str());
        if !scope.is_empty() {
            query.append_pair("scope", &server.quirks.scope_separator.join(&scope));
        }
        query.append_pair("state", state.expose());
        if let Some(verifier) = &code_verifier {
            query.append_pair("code_challenge", &pkce_challenge(verifier));
            query.append_pair("code_challenge_method", "S256");
        }
        if let Some(nonce) = &nonce {
            query.append_pair("nonce", nonce.expose());
        }
        if input.use_prompt.assigned().copied().unwrap_or(true) {
            query.append_pair("prompt", server.prompt.as_str());
        }
        for value in resource.split(' ').filter(|v| !v.is_empty()) {
            query.append_pair("resource", value);
        }
        for (key, value) in &server.extra_authorize_params {
            query.append_pair(key, value);
        }
    }
    let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::minutes(10));
    Ok(AuthorizationRequest {
        url,
        pending: PendingAuthorization {
            state,
            server_id: server.id.clone(),
            redirect_uri: redirect_uri.to_string(),
            requested_scope: scope,
            code_verifier,
            nonce,
            issuer: expected_issuer(server),
            iss_required: server.discovered.iss_parameter_supported,
            resource,
            created_at: now,
            expires_at: now + ttl,
        },
    })
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()))
}

/// The parameters the identity provider sends to `/oauth-callback` (RFC 6749 §4.1.2, §4.1.2.1,
/// RFC 9207 `iss`).
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<SecretString>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl CallbackParams {
    /// From query or form pairs. A repeated parameter makes the request invalid (§3.1), which the
    /// callback reports as a missing value rather than guessing which one was meant.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params = CallbackParams::default();
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        for (key, value) in pairs {
            *seen.entry(key).or_default() += 1;
            let value = value.to_owned();
            match key {
                "state" => params.state = Some(value),
                "code" => params.code = Some(SecretString::new(value)),
                "error" => params.error = Some(value),
                "error_description" => params.error_description = Some(value),
                "iss" => params.iss = Some(value),
                _ => {}
            }
        }
        for (key, count) in seen {
            if count > 1 {
                match key {
                    "state" => params.state = None,
                    "code" => params.code = None,
                    _ => {}
                }
            }
        }
        params
    }

    /// From `application/x-www-form-urlencoded` text: a query string or a form body.
    pub fn from_urlencoded(raw: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// From a request to a redirect URI: the query of a GET (RFC 6749 §4.1.2), or the form body
    /// of a POST (`response_mode=form_post`, OAuth 2.0 Form Post Response Mode §2), whose query
    /// is ignored so that parameters are never mixed from both places.
    pub fn from_request(post: bool, query: Option<&str>, body: &[u8]) -> Self {
        if post {
            Self::from_urlencoded(body)
        } else {
            Self::from_urlencoded(query.unwrap_or_default().as_bytes())
        }
    }

    /// From a full callback URL (what a loopback listener or a test receives).
    pub fn from_url(url: &Url) -> Self {
        Self::from_urlencoded(url.query().unwrap_or_default().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenflow_core::{OAuthServerSpec, Prompt};

    #[test]
    fn callback_parameters_come_from_the_query_of_a_get_and_only_the_body_of_a_post() {
        let get = CallbackParams::from_request(
            false,
            Some("state=s1&code=c1&iss=https%3A%2F%2Fidp"),
            b"state=body",
        );
        assert_eq!(get.state.as_deref(), Some("s1"));
        assert_eq!(get.code.as_ref().map(SecretString::expose), Some("c1"));
        assert_eq!(get.iss.as_deref(), Some("https://idp"));

        let post = CallbackParams::from_request(
            true,
            Some("state=query&code=query"),
            b"state=s2&error=access_denied",
        );
        assert_eq!(post.state.as_deref(), Some("s2"));
        assert!(post.code.is_none(), "the query of a POST is not read");
        assert_eq!(post.error.as_deref(), Some("access_denied"));

        let empty = CallbackParams::from_request(false, None, b"");
        assert!(empty.state.is_none() && empty.code.is_none() && empty.error.is_none());
    }

    #[test]
    fn callback_values_are_form_decoded_and_unknown_parameters_ignored() {
        let params = CallbackParams::from_urlencoded(
            b"error=invalid_request&error_description=Bad+scope%3A%20%C3%A9&session_state=x",
        );
        assert_eq!(params.error.as_deref(), Some("invalid_request"));
        assert_eq!(
            params.error_description.as_deref(),
            Some("Bad scope: \u{e9}")
        );
        assert!(params.state.is_none() && params.code.is_none() && params.iss.is_none());
    }

    #[test]
    fn a_repeated_state_or_code_in_a_callback_counts_as_missing() {
        let params = CallbackParams::from_urlencoded(b"state=a&state=b&code=c&code=c");
        assert!(params.state.is_none());
        assert!(params.code.is_none());
        let url = Url::parse("http://127.0.0.1:8400/cb?code=c&state=s&state=s").unwrap();
        let params = CallbackParams::from_url(&url);
        assert!(params.state.is_none());
        assert_eq!(params.code.as_ref().map(SecretString::expose), Some("c"));
    }

    fn server(extra: &str) -> OAuthServer {
        let json = format!(
            r#"{{"client_id":"app","authorization_url":"https://idp.example/authorize","scope":"openid profile"{extra}}}"#
        );
        serde_json::from_str::<OAuthServerSpec>(&json)
            .unwrap()
            .validate("idp")
            .unwrap()
    }

    fn build(server: &OAuthServer, input: &UserLoginInput) -> AuthorizationRequest {
        let redirect = Url::parse("http://localhost/oauth-callback").unwrap();
        build_authorization_request(
            server,
            server.authorization_url.as_ref().unwrap(),
            input,
            &redirect,
            time::macros::datetime!(2026-01-01 00:00 UTC),
            DEFAULT_PENDING_TTL,
        )
        .unwrap()
    }

    fn query(url: &Url) -> std::collections::BTreeMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn request_carries_state_pkce_nonce_and_prompt() {
        let server = server("");
        let request = build(&server, &UserLoginInput::default());
        let q = query(&request.url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "app");
        assert_eq!(q["redirect_uri"], "http://localhost/oauth-callback");
        assert_eq!(q["scope"], "openid profile");
        assert_eq!(q["state"], request.pending.state.expose());
        assert!(
            request.pending.state.expose().len() >= 22,
            "at least 128 bits"
        );
        let verifier = request.pending.code_verifier.as_ref().unwrap();
        assert_eq!(q["code_challenge"], pkce_challenge(verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["nonce"], request.pending.nonce.as_ref().unwrap().expose());
        assert_eq!(q["prompt"], "consent");
        assert!(
            !request.url.as_str().contains(verifier.expose()),
            "verifier never leaves"
        );
        assert_eq!(
            request.pending.expires_at - request.pending.created_at,
            time::Duration::minutes(10)
        );
    }

    #[test]
    fn rfc7636_appendix_b_challenge() {
        let verifier = SecretString::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn use_prompt_false_sends_no_prompt_and_server_prompt_is_used_otherwise() {
        let server = server(r#","prompt":"select_account""#);
        let q = query(&build(&server, &UserLoginInput::default()).url);
        assert_eq!(q["prompt"], "select_account");
        let input = UserLoginInput {
            use_prompt: Input::Assigned(false),
            ..Default::default()
        };
        assert!(!query(&build(&server, &input).url).contains_key("prompt"));
        assert_eq!(Prompt::None.as_str(), "none");
    }

    #[test]
    fn scope_precedence_and_offline_access() {
        let server = server(r#","request_refresh_token":true"#);
        let q = query(&build(&server, &UserLoginInput::default()).url);
        assert_eq!(q["scope"], "openid profile offline_access");
        let input = UserLoginInput {
            scope: Input::Assigned("User.Read".into()),
            ..Default::default()
        };
        let request = build(&server, &input);
        assert_eq!(query(&request.url)["scope"], "User.Read offline_access");
        assert!(request.pending.nonce.is_none(), "no openid, no nonce");
        let input = UserLoginInput {
            scope: Input::Assigned("offline_access User.Read".into()),
            ..Default::default()
        };
        assert_eq!(
            query(&build(&server, &input).url)["scope"],
            "offline_access User.Read"
        );
        let plain = self::server("");
        let input = UserLoginInput {
            scope: Input::Assigned(String::new()),
            ..Default::default()
        };
        assert!(
            !query(&build(&plain, &input).url).contains_key("scope"),
            "assigned empty wins"
        );
    }

    #[test]
    fn pkce_off_sends_no_challenge_and_extra_params_are_added() {
        let server =
            server(r#","pkce":false,"extra_authorize_params":{"domain_hint":"contoso.com"}"#);
        let request = build(&server, &UserLoginInput::default());
        let q = query(&request.url);
        assert!(!q.contains_key("code_challenge"));
        assert!(request.pending.code_verifier.is_none());
        assert_eq!(q["domain_hint"], "contoso.com");
    }

    #[test]
    fn redirect_uri_precedence_is_server_then_global_then_default() {
        let default = Url::parse("http://localhost:8080/oauth-callback").unwrap();
        let global = Url::parse("https://app.example/oauth-callback").unwrap();
        let plain = server("");
        assert_eq!(resolve_redirect_uri(&plain, None, &default), default);
        assert_eq!(
            resolve_redirect_uri(&plain, Some(&global), &default),
            global
        );
        let own = server(r#","redirect_uri":"https://own.example/cb""#);
        assert_eq!(
            resolve_redirect_uri(&own, Some(&global), &default).as_str(),
            "https://own.example/cb"
        );
    }

    #[test]
    fn callback_issuer_is_compared_exactly_without_templates() {
        let expected = Some("http://127.0.0.1:9400");
        assert!(check_callback_issuer(expected, true, Some("http://127.0.0.1:9400")).is_ok());
        assert!(check_callback_issuer(expected, true, Some("http://127.0.0.1:9400/")).is_ok());
        assert!(check_callback_issuer(expected, false, Some("http://{tenantid}")).is_err());
        let entra = Some("https://login.microsoftonline.com/contoso/v2.0");
        assert!(
            check_callback_issuer(
                entra,
                false,
                Some("https://login.microsoftonline.com/{tenantid}/v2.0")
            )
            .is_err()
        );
        assert!(check_callback_issuer(expected, true, None).is_err());
        assert!(check_callback_issuer(expected, false, None).is_ok());
    }

    #[test]
    fn callback_params_reject_repeated_state() {
        let params = CallbackParams::from_pairs([("state", "a"), ("code", "c"), ("state", "b")]);
        assert!(params.state.is_none());
        assert_eq!(params.code.as_ref().map(SecretString::expose), Some("c"));
    }
}
