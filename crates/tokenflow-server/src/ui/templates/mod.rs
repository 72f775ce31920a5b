//! The UI's pages: minijinja templates (auto-escaping, compiled into the binary, beside this file)
//! and [`render`], which fills a template with the common context (sign-in state, the session's
//! CSRF token, the section) and adds the page's security headers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde_json::Value;

use crate::auth::session::Session;
use crate::html::CONTENT_SECURITY_POLICY;
use crate::state::AppState;

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    pub env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Result<Templates, minijinja::Error> {
        let mut env = Environment::new();
        env.add_filter("when", when);
        for (name, source) in [
            ("layout.html", include_str!("layout.html")),
            ("login.html", include_str!("login.html")),
            ("runs.html", include_str!("runs.html")),
            ("run.html", include_str!("run.html")),
            ("run_detail.html", include_str!("run_detail.html")),
            ("flows.html", include_str!("flows.html")),
            ("flow.html", include_str!("flow.html")),
            ("flow_edit.html", include_str!("flow_edit.html")),
            ("flow_versions.html", include_str!("flow_versions.html")),
            ("flow_diff.html", include_str!("flow_diff.html")),
            ("start_button.html", include_str!("start_button.html")),
            ("servers.html", include_str!("servers.html")),
            ("server_form.html", include_str!("server_form.html")),
            ("vault.html", include_str!("vault.html")),
            ("dashboard.html", include_str!("dashboard.html")),
        ] {
            env.add_template(name, source)?;
        }
        Ok(Templates { env })
    }
}

/// The `when` filter: an RFC 3339 timestamp as `2026-11-28 06:16:03 UTC` (to the second, in UTC);
/// anything else unchanged, and nothing for none.
fn when(value: minijinja::Value) -> String {
    if value.is_none() || value.is_undefined() {
        return String::new();
    }
    let text = value.to_string();
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|at| at.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or(text)
}

/// A timestamp as the templates receive it (RFC 3339; the `when` filter shows it).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Renders a template with the common context, and the UI's security headers.
pub fn render(
    state: &AppState,
    template: &str,
    session: Option<&Session>,
    section: &str,
    mut ctx: Value,
) -> Response {
    if let Some(object) = ctx.as_object_mut() {
        object.insert("signed_in".into(), session.is_some().into());
        let csrf = session.map(|s| s.csrf.clone()).unwrap_or_default();
        let csrf_q: String = url::form_urlencoded::byte_serialize(csrf.as_bytes()).collect();
        object.insert("csrf".into(), csrf.into());
        object.insert("csrf_q".into(), csrf_q.into());
        object.insert("section".into(), section.into());
    }
    let html = state
        .templates
        .env
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
    match html {
        Ok(html) => with_headers(Html(html).into_response()),
        Err(err) => {
            tracing::error!(error = %err, template, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_page_renders() {
        let templates = Templates::new().unwrap();
        let entries = serde_json::json!([{ "name": "a", "oauth_server": "s", "state": "ok", "expires_at": null,
            "has_refresh_token": true, "last_refresh_at": null, "last_refresh_outcome": null }]);
        for entries in [serde_json::json!([]), entries] {
            let ctx = serde_json::json!({ "entries": entries, "signed_in": true, "csrf": "t", "csrf_q": "t", "section": "vault" });
            let html = templates
                .env
                .get_template("vault.html")
                .unwrap()
                .render(minijinja::Value::from_serialize(&ctx));
            assert!(html.is_ok(), "{html:?}");
        }
    }

    #[test]
    fn timestamps_show_to_the_second_in_utc() {
        use minijinja::Value;
        assert_eq!(
            when(Value::from("2026-11-28T06:16:03.123456789Z")),
            "2026-11-28 06:16:03 UTC"
        );
        assert_eq!(
            when(Value::from("2026-11-28T07:16:03+01:00")),
            "2026-11-28 06:16:03 UTC"
        );
        assert_eq!(when(Value::from("not a time")), "not a time");
        assert_eq!(when(Value::from(())), "");
    }
}
