//! Approves or denies a device login (RFC 8628) at the test IdP over plain HTTP with a cookie
//! jar, through the IdP's real pages: the `verification_uri_complete` (a self-submitting form),
//! the confirm page, then the login and consent pages of [`crate::signin`].

use url::Url;

/// What the person does with the device login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// Confirm the code, sign in and allow.
    Approve,
    /// Press Abort on the confirm page (`access_denied`).
    Abort,
    /// Confirm the code, sign in, then press Deny on the consent page (`access_denied`).
    DenyConsent,
}

/// Drives the person's side of a device login from `verification_uri_complete` until the IdP's
/// success page (or, after an abort, its answer); returns the last page's HTML.
pub async fn approve_device(
    verification_uri_complete: &str,
    user: &str,
    password: &str,
    decision: DeviceDecision,
) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds");
    let mut url = Url::parse(verification_uri_complete).expect("valid verification URI");
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        let response = match form.take() {
            Some(fields) => http.post(url.clone()).form(&fields).send().await,
            None => http.get(url.clone()).send().await,
        }
        .unwrap_or_else(|err| panic!("IdP request to {url} failed: {err}"));
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("redirect has a Location");
            url = url.join(location).expect("valid Location");
            continue;
        }
        let html = response.text().await.unwrap_or_default();
        if html.contains("id=\"device-success\"") || !status.is_success() {
            return html;
        }
        let (action, mut fields) = if html.contains("Submitting Callback") {
            first_form(&html)
        } else if html.contains("id=\"op.deviceConfirmForm\"") {
            let (action, mut fields) = first_form(&html);
            if decision == DeviceDecision::Abort {
                fields.push(("abort".to_owned(), "yes".to_owned()));
            }
            (action, fields)
        } else if html.contains("id=\"login-form\"") {
            let (action, _) = form_with_id(&html, "login-form");
            let fields = vec![
                ("login".to_owned(), user.to_owned()),
                ("password".to_owned(), password.to_owned()),
            ];
            (action, fields)
        } else if html.contains("id=\"consent-form\"") {
            let id = if decision == DeviceDecision::DenyConsent {
                "deny-form"
            } else {
                "consent-form"
            };
            form_with_id(&html, id)
        } else {
            return html;
        };
        url = url.join(&action).expect("form action");
        form = Some(std::mem::take(&mut fields));
    }
    panic!("the device login did not end within 20 requests");
}

/// The action and hidden inputs of the first form of `html`.
fn first_form(html: &str) -> (String, Vec<(String, String)>) {
    let start = html.find("<form").expect("a form");
    form_at(html, start)
}

/// The action and hidden inputs of the form with id `id`.
fn form_with_id(html: &str, id: &str) -> (String, Vec<(String, String)>) {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no form `{id}` in page:\n{html}"));
    let start = html[..at].rfind("<form").expect("form tag");
    form_at(html, start)
}

fn form_at(html: &str, start: usize) -> (String, Vec<(String, String)>) {
    let end = start + html[start..].find("</form>").expect("form end");
    let form = &html[start..end];
    let action = attribute(form, "action").expect("form has an action");
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(at) = rest.find("<input") {
        let tag_end = at + rest[at..].find('>').expect("input end");
        let tag = &rest[at..tag_end];
        if tag.contains("type=\"hidden\"")
            && let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value"))
        {
            fields.push((name, value));
        }
        rest = &rest[tag_end..];
    }
    (action, fields)
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    let value = &tag[at..];
    Some(value[..value.find('"')?].replace("&amp;", "&"))
}
