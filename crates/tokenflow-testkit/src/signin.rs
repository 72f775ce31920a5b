//! Signs a person in at the test IdP over plain HTTP with a cookie jar: follows redirects by hand,
//! fills the login form, answers the consent page, and stops at the client's redirect URI.
//!
//! The real browser comes with the web UI; this driver exercises the same IdP pages for the
//! library and engine tests.

use url::Url;

/// What the person does on the IdP's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sign in and press Allow on the consent page (when one is shown).
    Allow,
    /// Sign in, then press Deny on the consent page.
    Deny,
    /// Press Cancel on the login page.
    CancelLogin,
}

/// Drives the sign-in from `authorization_url` and returns the URL the IdP finally redirected to,
/// the first one that starts with `redirect_prefix` (its query holds `code`/`error` and `state`).
pub async fn sign_in(
    authorization_url: &str,
    redirect_prefix: &str,
    user: &str,
    password: &str,
    decision: Decision,
) -> Url {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds");
    let mut next = Request::Get(Url::parse(authorization_url).expect("valid authorization URL"));
    for _ in 0..20 {
        let (current, response) = match &next {
            Request::Get(url) => (url.clone(), http.get(url.clone()).send().await),
            Request::Post(url, form) => {
                (url.clone(), http.post(url.clone()).form(form).send().await)
            }
        };
        let response =
            response.unwrap_or_else(|err| panic!("IdP request to {current} failed: {err}"));
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("redirect has a Location");
            let target = current.join(location).expect("valid Location");
            if target.as_str().starts_with(redirect_prefix) {
                return target;
            }
            next = Request::Get(target);
            continue;
        }
        let html = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "IdP page {current} answered {status}: {html}"
        );
        next = if html.contains("id=\"login-form\"") {
            if decision == Decision::CancelLogin {
                Request::Post(
                    current
                        .join(&form_action(&html, "cancel-form"))
                        .expect("url"),
                    vec![],
                )
            } else {
                let form = vec![
                    ("login".to_owned(), user.to_owned()),
                    ("password".to_owned(), password.to_owned()),
                ];
                Request::Post(
                    current
                        .join(&form_action(&html, "login-form"))
                        .expect("url"),
                    form,
                )
            }
        } else if html.contains("id=\"consent-form\"") {
            let form_id = if decision == Decision::Deny {
                "deny-form"
            } else {
                "consent-form"
            };
            Request::Post(
                current.join(&form_action(&html, form_id)).expect("url"),
                vec![],
            )
        } else {
            panic!("unexpected IdP page at {current}:\n{html}");
        };
    }
    panic!("the sign-in did not reach {redirect_prefix} within 20 requests");
}

enum Request {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

/// The `action` of the form with id `form_id` in `html`.
fn form_action(html: &str, form_id: &str) -> String {
    let start = html
        .find(&format!("id=\"{form_id}\""))
        .unwrap_or_else(|| panic!("no form `{form_id}` in page:\n{html}"));
    let tag_start = html[..start].rfind('<').expect("form tag");
    let tag_end = start + html[start..].find('>').expect("form tag end");
    let tag = &html[tag_start..tag_end];
    let action_at = tag.find("action=\"").expect("form has an action") + "action=\"".len();
    let action = &tag[action_at..];
    action[..action.find('"').expect("closing quote")].replace("&amp;", "&")
}
